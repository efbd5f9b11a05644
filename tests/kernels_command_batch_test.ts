// The command batch on the real adapter: parameter slots by content, written
// once and never rewritten, and bind groups made once for a loop.
import assert from "node:assert/strict";
import { commandBatchOf, conv2d, conv2dRef, pipeline, tensor } from "../kernels/mod.ts";
import { assertClose, randomRef, rng, withHeap } from "./_kernels_util.ts";

/** Counts calls of `target[name]` while `fn` runs (the method is shadowed on the object). */
async function counting(
  target: object,
  name: string,
  fn: () => Promise<void>,
): Promise<number> {
  const o = target as Record<string, unknown>;
  const original = o[name] as (...args: unknown[]) => unknown;
  let calls = 0;
  o[name] = function (this: unknown, ...args: unknown[]) {
    calls++;
    return original.apply(this, args);
  };
  try {
    await fn();
  } finally {
    delete o[name];
  }
  return calls;
}

Deno.test("CommandBatch.params() keeps one slot per content, written once", async () => {
  await withHeap(async (heap, device) => {
    const batch = commandBatchOf(heap);
    const a = new Int32Array([1, 2, 3, 4, 5]).buffer;
    const b = new Int32Array([1, 2, 3, 4, 6]).buffer;
    let first: GPUBufferBinding | undefined;
    const writes = await counting(device.queue, "writeBuffer", () => {
      first = batch.params(a);
      const again = batch.params(new Int32Array([1, 2, 3, 4, 5]).buffer);
      assert.equal(again.buffer, first.buffer);
      assert.equal(again.offset, first.offset);
      const other = batch.params(b);
      assert.ok(other.buffer !== first.buffer || other.offset !== first.offset);
      return Promise.resolve();
    });
    assert.equal(writes, 2, "one write per distinct content");
    // A submit leaves the slots in place: the same content binds the same slot after it.
    batch.submit();
    const after = batch.params(a);
    assert.equal(after.offset, first!.offset);
  });
});

Deno.test("CommandBatch.releaseParams() frees the slots, so emptyCache() releases their heap", async () => {
  await withHeap((heap) => {
    const batch = commandBatchOf(heap);
    batch.params(new Int32Array([7, 8, 9]).buffer);
    assert.equal(heap.memoryStats().pools.uniform.blocks, 1);
    batch.releaseParams();
    batch.submit();
    assert.equal(heap.memoryStats().pools.uniform.blocks, 0);
    heap.emptyCache();
    assert.equal(heap.memoryStats().pools.uniform.reservedBytes.current, 0);
    // Parameters written after the release get a fresh slot.
    const again = batch.params(new Int32Array([7, 8, 9]).buffer);
    assert.equal(heap.memoryStats().pools.uniform.blocks, 1);
    assert.ok((again.size ?? 0) >= 12);
  });
});

Deno.test("dispatches of different parameters in one batch each read their own", async () => {
  await withHeap(async (heap) => {
    const random = rng(31);
    // Two shapes, alternating, all in one batch: a slot written again in
    // place would give the earlier dispatches the later parameters.
    const shapes = [[1, 3, 7, 5], [2, 3, 4, 9]];
    const wr = randomRef(random, [4, 3, 3, 3]);
    const w = tensor(heap, wr.data, wr.shape);
    const inputs = shapes.map((s) => randomRef(random, s));
    const outputs = [];
    for (let i = 0; i < 6; i++) {
      const xr = inputs[i % 2];
      outputs.push({ i, y: conv2d(tensor(heap, xr.data, xr.shape), w, null, { padding: 1 }) });
    }
    for (const { i, y } of outputs) {
      const ref = conv2dRef(inputs[i % 2], wr, null, { padding: 1 });
      assertClose(await y.read(), ref.data, 1e-5, `dispatch ${i}`);
    }
  });
});

Deno.test("a loop of the same ops makes its bind groups and parameter writes once", async () => {
  await withHeap(async (heap, device) => {
    const random = rng(32);
    const xr = randomRef(random, [1, 8, 16, 16]);
    const weights = [8, 8, 8].map((cin) => ({
      weight: tensor(heap, randomRef(random, [8, cin, 3, 3]).data, [8, cin, 3, 3]),
      bias: tensor(heap, randomRef(random, [8]).data, [8]),
    }));
    const iteration = () => {
      const x = tensor(heap, xr.data, xr.shape);
      pipeline(x, weights).dispose();
      x.dispose();
      commandBatchOf(heap).submit();
    };
    for (let i = 0; i < 3; i++) iteration();
    await device.queue.onSubmittedWorkDone();
    const writes = await counting(device.queue, "writeBuffer", async () => {
      const groups = await counting(device, "createBindGroup", async () => {
        for (let i = 0; i < 10; i++) iteration();
        await device.queue.onSubmittedWorkDone();
      });
      assert.equal(groups, 0, "bind groups made after warm-up");
    });
    assert.equal(writes, 10, "writes after warm-up: the input uploads only");
  }, { poison: false });
});
