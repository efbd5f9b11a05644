// The command batch: blocks disposed mid-batch are not reused before the
// work reading them is submitted, parameters read as storage where uniform
// blocks share tensor heaps, and a long batch submits itself.
import assert from "node:assert/strict";
import type { Block } from "../allocator/allocator.ts";
import {
  AUTO_SUBMIT_DISPATCHES,
  commandBatchOf,
  conv2d,
  conv2dRef,
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
    const w = tensor(allocator, wr.data, wr.shape);
    const batch = commandBatchOf(allocator);
    batch.submit();
    const submits = batch.submits;
    // One relu first, then two dispatches per tiled conv (weight packing,
    // then the conv): the threshold is reached in the middle of a conv,
    // whose dispatches must still go out together.
    relu(x).dispose();
    const outputs = [];
    for (let i = 0; i < AUTO_SUBMIT_DISPATCHES + 1; i++) {
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
