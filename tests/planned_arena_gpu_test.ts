// Planned memory on the real adapter: trap 1 under a plan, and the README's kernel loop.
import assert from "node:assert/strict";
import { HeapAllocator } from "../allocator/allocator.ts";
import { conv2dRelu, maxPool2d, readAll, scope, tensor } from "../kernels/mod.ts";
import { conv2dRef, maxPool2dRef } from "../kernels/reference.ts";
import { assertClose, gpu, randomRef, rng, withAllocator } from "./_kernels_util.ts";

const BYTES = 1024;

function values(seed: number): Float32Array<ArrayBuffer> {
  return Float32Array.from({ length: BYTES / 4 }, (_, i) => seed * 1000 + i + 1);
}

Deno.test("planned runs keep trap 1 on the real adapter: a block written after a free before the submit keeps its own bytes", async () => {
  const device = await gpu();
  const allocator = new HeapAllocator(device);
  try {
    for (let run = 0; run < 4; run++) {
      const out = allocator.alloc(BYTES, { usage: "readback" });
      allocator.beginIteration("trap 1");
      const a = allocator.alloc(BYTES);
      device.queue.writeBuffer(a.buffer, a.offset, values(run));
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(a.buffer, a.offset, out.buffer, out.offset, BYTES);
      allocator.free(a); // the copy reading a is recorded, not submitted
      const b = allocator.alloc(BYTES);
      device.queue.writeBuffer(b.buffer, b.offset, values(run + 100)); // lands before the copy
      allocator.free(b);
      allocator.submit([encoder.finish()]);
      allocator.endIteration();
      if (run > 0) assert.equal(a.heapId, b.heapId, `run ${run}: both in the plan's arena`);
      await out.buffer.mapAsync(GPUMapMode.READ, out.offset, BYTES);
      const got = new Float32Array(out.buffer.getMappedRange(out.offset, BYTES).slice(0));
      out.buffer.unmap();
      allocator.free(out);
      assert.deepEqual(got, values(run), `run ${run}: the copy read a's data`);
    }
    const [plan] = allocator.plans();
    assert.deepEqual([plan.runs, plan.departures, plan.safetySubmits], [4, 0, 0]);
  } finally {
    allocator.destroy();
  }
});

// Both algorithms: the Winograd kernel packs its weights inside the recorded run.
for (const algorithm of ["tiled", "winograd"] as const) {
  Deno.test(`planned runs of the README's kernel loop (${algorithm}) match the float64 reference at ≤ 1.02 × peak live`, async () => {
    await withAllocator(async (allocator) => {
      const random = rng(22);
      const wRef = randomRef(random, [32, 16, 3, 3]);
      const bRef = randomRef(random, [32]);
      using w = tensor(allocator, wRef.data, wRef.shape);
      using b = tensor(allocator, bRef.data, bRef.shape);
      let storageHeaps = 0;
      for (let i = 0; i < 6; i++) {
        const xRef = randomRef(random, [1, 16, 32, 32]);
        allocator.beginIteration(`1x16x32x32 ${algorithm}`);
        {
          using y = scope(() => {
            const x = tensor(allocator, xRef.data, xRef.shape);
            return maxPool2d(conv2dRelu(x, w, b, { padding: 1, algorithm }), { kernelSize: 2 });
          });
          const [out] = await readAll([y]);
          const ref = maxPool2dRef(conv2dRef(xRef, wRef, bRef, { padding: 1, relu: true }), {
            kernelSize: 2,
          });
          assertClose(out, ref.data, 1e-5, `run ${i}`);
        }
        allocator.endIteration();
        const pools = allocator.memoryStats().pools;
        const made = pools.small.createBufferCalls + pools.large.createBufferCalls;
        if (i === 1) storageHeaps = made;
        if (i > 1) assert.equal(made, storageHeaps, `run ${i} made a storage heap`);
      }
      const [plan] = allocator.plans();
      assert.equal(plan.departures, 0);
      assert.equal(plan.runs, 6);
      assert.ok(plan.blocks >= 3, `${plan.blocks} blocks planned`);
      assert.ok(plan.ratio <= 1.02, `plan is ${plan.ratio} × its peak live`);
    });
  });
}
