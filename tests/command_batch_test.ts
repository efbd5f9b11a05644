// The command batch: blocks disposed mid-batch are not reused before the
// work reading them is submitted, parameters read as storage where uniform
// blocks share tensor heaps, a long batch submits itself, parameter slots by
// content (written once, never rewritten, released on request), and bind
// groups made once for a loop.
import assert from "node:assert/strict";
import type { Block } from "../allocator/allocator.ts";
import {
  AUTO_SUBMIT_DISPATCHES,
  commandBatchOf,
  conv2d,
  conv2dRef,
  conv2dRelu,
  maxPool2d,
  pipeline,
  pipelineRef,
  readAll,
  relu,
  scope,
  tensor,
  type TensorAllocator,
} from "../kernels/mod.ts";
import {
  assertClose,
  countCalls,
  randomRef,
  randomValues,
  randomWeights,
  rng,
  uploadWeights,
  withAllocator,
} from "./_kernels_util.ts";

Deno.test("CommandBatch keeps an input disposed before submit from a new tensor's upload", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(8);
    const a = randomValues(random, 1024);
    const b = randomValues(random, 1024);
    const x = tensor(allocator, a, [1024]);
    const y = relu(x);
    x.dispose();
    // Same size: with x's memory it would be written before the relu runs.
    const z = tensor(allocator, b, [1024]);
    const [yv, zv] = await readAll([y, z]);
    assert.deepEqual([...yv], [...a].map((e) => Math.max(e, 0)));
    assert.deepEqual([...zv], [...b]);
  });
});

Deno.test("CommandBatch reads parameters from storage when uniform blocks share tensor heaps", async () => {
  await withAllocator(async (allocator) => {
    // An allocator whose uniform blocks sit in the storage heaps: binding one
    // as a uniform next to a writable tensor of the same GPUBuffer is a
    // validation error, so the batch must read parameters as storage.
    const shared: TensorAllocator = {
      device: allocator.device,
      alloc: (size, options) =>
        allocator.alloc(
          size,
          options?.usage === "uniform" ? { ...options, usage: "storage" } : options,
        ),
      free: (block) => allocator.free(block as Block),
      submit: (commands) => allocator.submit(commands),
      beforeSubmit: (hook) => allocator.beforeSubmit(hook),
    };
    assert.equal(commandBatchOf(shared).paramsSpace, "storage");
    const random = rng(12);
    const xr = randomRef(random, [1, 8, 16, 16]);
    const wr = randomWeights(random, 8, [16, 16, 16]);
    const ref = pipelineRef(xr, wr);
    for (const algorithm of ["naive", "tiled"] as const) {
      const y = pipeline(tensor(shared, xr.data, xr.shape), uploadWeights(shared, wr), {
        algorithm,
      });
      assertClose(await y.read(), ref.data, 1e-5, `storage params, ${algorithm}`);
    }
  });
});

Deno.test("CommandBatch submits itself after AUTO_SUBMIT_DISPATCHES, never inside an op, and stays correct", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(13);
    const xr = randomRef(random, [1, 4, 6, 6]);
    const wr = randomRef(random, [8, 4, 3, 3]);
    const x = tensor(allocator, xr.data, xr.shape);
    const batch = commandBatchOf(allocator);
    batch.submit();
    const submits = batch.submits;
    // One relu first, then two dispatches per tiled conv with a new weight
    // (weight packing, then the conv): the threshold is reached in the middle
    // of a conv, whose dispatches must still go out together.
    relu(x).dispose();
    const outputs = [];
    for (let i = 0; i < AUTO_SUBMIT_DISPATCHES + 1; i++) {
      using w = tensor(allocator, wr.data, wr.shape);
      const y = conv2d(x, w, null, { padding: 1, algorithm: "tiled" });
      assert.notEqual(batch.dispatches, 1, `conv ${i} was split across two submits`);
      if (i % 16 === 0) outputs.push(y);
      else y.dispose();
    }
    assert.equal(batch.submits, submits + 2);
    const ref = conv2dRef(xr, wr, null, { padding: 1 });
    for (const out of await readAll(outputs)) assertClose(out, ref.data, 1e-5, "conv");
  });
});

Deno.test("CommandBatch.atomic() records what its function recorded, or nothing if it throws", async () => {
  await withAllocator(async (allocator) => {
    const batch = commandBatchOf(allocator);
    batch.submit();
    const x = tensor(allocator, [1, -2, 3, -4], [1, 1, 2, 2]);
    const blocks = allocator.memoryStats().blocks;
    assert.throws(
      () =>
        scope(() =>
          batch.atomic(() => {
            const y = relu(x);
            assert.equal(batch.dispatches, 0, "held back, not recorded yet");
            return maxPool2d(y, { kernelSize: 3 });
          })
        ),
      RangeError,
    );
    assert.equal(batch.dispatches, 0);
    assert.equal(allocator.memoryStats().blocks, blocks);
    const y = batch.atomic(() => batch.atomic(() => maxPool2d(relu(x), { kernelSize: 2 })));
    assert.equal(batch.dispatches, 2);
    assert.deepEqual([...await y.read()], [3]);
  });
});

Deno.test("CommandBatch.atomic() keeps blocks disposed inside it from reuse until its dispatches are recorded", async () => {
  await withAllocator(async (allocator) => {
    const batch = commandBatchOf(allocator);
    const xr = randomValues(rng(14), 1024);
    const x = tensor(allocator, xr, [1024]);
    // A batch at the length where it submits itself: recording the held-back
    // dispatches must not submit first, or the intermediate disposed inside
    // would be reusable before the dispatch that reads it is recorded.
    batch.submit();
    while (batch.dispatches < AUTO_SUBMIT_DISPATCHES) relu(x).dispose();
    let id = -1;
    const y = batch.atomic(() => {
      const a = relu(x);
      id = (a.block as Block).id;
      const b = relu(a);
      a.dispose();
      return b;
    });
    const state = (blockId: number) =>
      allocator.snapshot().heaps.flatMap((h) => h.blocks).find((b) => b.id === blockId)?.state;
    assert.equal(state(id), "pending");
    assert.deepEqual([...await y.read()], [...xr].map((v) => Math.max(v, 0)));
    // Not poisoned: a block whose buffer nothing read is reusable at once
    // when freed, so the held dispatch must have read it already.
  }, { poison: false });
});

Deno.test("CommandBatch.params() keeps one slot per content, written once", async () => {
  await withAllocator(async (allocator, device) => {
    const batch = commandBatchOf(allocator);
    const a = new Int32Array([1, 2, 3, 4, 5]).buffer;
    const b = new Int32Array([1, 2, 3, 4, 6]).buffer;
    const [first, writes] = await countCalls(device.queue, "writeBuffer", () => {
      const first = batch.params(a);
      const again = batch.params(new Int32Array([1, 2, 3, 4, 5]).buffer);
      assert.equal(again.buffer, first.buffer);
      assert.equal(again.offset, first.offset);
      const other = batch.params(b);
      assert.ok(other.buffer !== first.buffer || other.offset !== first.offset);
      return first;
    });
    assert.equal(writes, 2, "one write per distinct content");
    // A submit leaves the slots in place: the same content binds the same slot after it.
    batch.submit();
    const after = batch.params(a);
    assert.equal(after.buffer, first.buffer);
    assert.equal(after.offset, first.offset);
  });
});

Deno.test("CommandBatch.releaseParams() frees the slots, so emptyCache() releases their heap", async () => {
  await withAllocator((allocator) => {
    const batch = commandBatchOf(allocator);
    const liveSlots = () =>
      allocator.snapshot().heaps.flatMap((h) => h.blocks)
        .filter((b) => b.label === "kernel params" && b.state === "live").length;
    batch.params(new Int32Array([7, 8, 9]).buffer);
    assert.equal(liveSlots(), 1);
    batch.releaseParams();
    batch.submit();
    assert.equal(liveSlots(), 0);
    allocator.emptyCache();
    assert.equal(allocator.memoryStats().reservedBytes.current, 0);
    // Parameters written after the release get a fresh slot.
    const again = batch.params(new Int32Array([7, 8, 9]).buffer);
    assert.equal(liveSlots(), 1);
    assert.ok((again.size ?? 0) >= 12);
  });
});

Deno.test("CommandBatch.params() gives dispatches of different parameters in one batch each their own", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(31);
    // Two shapes, alternating, all in one batch: a slot written again in
    // place would give the earlier dispatches the later parameters.
    const shapes = [[1, 3, 7, 5], [2, 3, 4, 9]];
    const wr = randomRef(random, [4, 3, 3, 3]);
    const w = tensor(allocator, wr.data, wr.shape);
    const inputs = shapes.map((s) => randomRef(random, s));
    const refs = inputs.map((xr) => conv2dRef(xr, wr, null, { padding: 1 }));
    const batch = commandBatchOf(allocator);
    batch.submit();
    const submits = batch.submits;
    const outputs = [];
    for (let i = 0; i < 6; i++) {
      const xr = inputs[i % 2];
      outputs.push(conv2d(tensor(allocator, xr.data, xr.shape), w, null, { padding: 1 }));
    }
    assert.equal(batch.submits, submits, "all six in one batch");
    const values = await readAll(outputs);
    values.forEach((v, i) => assertClose(v, refs[i % 2].data, 1e-5, `dispatch ${i}`));
  });
});

Deno.test("CommandBatch makes a loop's bind groups and parameter writes once", async () => {
  await withAllocator(async (allocator, device) => {
    const random = rng(32);
    const xr = randomRef(random, [1, 8, 16, 16]);
    const wr = randomWeights(random, 8, [8, 8, 8]);
    const weights = uploadWeights(allocator, wr);
    const ref = pipelineRef(xr, wr);
    const iteration = () => {
      const x = tensor(allocator, xr.data, xr.shape);
      const y = pipeline(x, weights);
      x.dispose();
      commandBatchOf(allocator).submit();
      return y;
    };
    for (let i = 0; i < 3; i++) iteration().dispose();
    await device.queue.onSubmittedWorkDone();
    const [groups, writes] = await countCalls(device.queue, "writeBuffer", async () => {
      const [, groups] = await countCalls(device, "createBindGroup", async () => {
        for (let i = 0; i < 10; i++) iteration().dispose();
        await device.queue.onSubmittedWorkDone();
      });
      return groups;
    });
    assert.equal(groups, 0, "bind groups made after warm-up");
    assert.equal(writes, 10, "writes after warm-up: the input uploads only");
    // The loop still computes the pipeline.
    const y = iteration();
    assertClose(await y.read(), ref.data, 1e-5, "after the loop");
  }, { poison: false });
});

Deno.test("CommandBatch's parameter slots count as cached: after the README's kernel loop, currentAllocatedMemory() is back at its baseline", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(20);
    const baseline = allocator.currentAllocatedMemory();
    {
      using w = tensor(allocator, randomValues(random, 32 * 16 * 3 * 3), [32, 16, 3, 3]);
      using b = tensor(allocator, randomValues(random, 32), [32]);
      for (let i = 0; i < 3; i++) {
        using y = scope(() => {
          const x = tensor(allocator, randomValues(random, 16 * 32 * 32), [1, 16, 32, 32]);
          return maxPool2d(conv2dRelu(x, w, b, { padding: 1 }), { kernelSize: 2 });
        });
        using z = relu(y);
        const [out] = await readAll([z]);
        assert.equal(out.length, 32 * 16 * 16);
      }
    }
    assert.equal(allocator.currentAllocatedMemory(), baseline);
    assert.equal(allocator.memoryStats().blocks, 0);
    // The slots are still held, for the next loop: as cached bytes.
    const params = allocator.snapshot().heaps.flatMap((h) => h.blocks)
      .filter((b) => b.label === "kernel params" && b.state === "live");
    assert.ok(params.length > 0, "the parameter slots were released");
    assert.ok(allocator.memoryStats().cachedBytes >= params[0].size);
  });
});
