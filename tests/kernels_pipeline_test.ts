// The three-stage pipeline end to end, the batch (one submit, shared
// readbacks, intermediates freed mid-batch), the pipeline cache, and a long
// loop whose memory and createBuffer calls stop growing.
import assert from "node:assert/strict";
import type { Block } from "../allocator/allocator.ts";
import {
  AUTO_SUBMIT_DISPATCHES,
  commandBatchOf,
  conv2d,
  conv2dRef,
  type ConvWeights,
  pipeline,
  pipelineRef,
  readAll,
  type RefConvWeights,
  relu,
  shaderCompilations,
  tensor,
  type TensorAllocator,
} from "../kernels/mod.ts";
import { assertClose, gpu, randomRef, randomValues, rng, withHeap } from "./_kernels_util.ts";

/** Random weights for convolutions cin -> channels[0] -> channels[1] -> ..., 3x3. */
function randomWeights(random: () => number, cin: number, channels: number[]): RefConvWeights[] {
  return channels.map((cout, i) => {
    const prev = i === 0 ? cin : channels[i - 1];
    // Scaled like PyTorch's default init so activations stay O(1) across stages.
    const scale = 1 / Math.sqrt(prev * 9);
    const w = randomRef(random, [cout, prev, 3, 3]);
    w.data.forEach((v, j) => (w.data[j] = v * scale));
    return { weight: w, bias: randomRef(random, [cout]) };
  });
}

function upload(heap: TensorAllocator, weights: RefConvWeights[]): ConvWeights[] {
  return weights.map((w) => ({
    weight: tensor(heap, w.weight.data, w.weight.shape),
    bias: w.bias ? tensor(heap, w.bias.data, w.bias.shape) : null,
  }));
}

for (const algorithm of ["naive", "tiled", "winograd"] as const) {
  Deno.test(`pipeline [1,16,32,32] -> 32 channels matches the reference (${algorithm})`, async () => {
    await withHeap(async (heap) => {
      const random = rng(42);
      const xr = randomRef(random, [1, 16, 32, 32]);
      const wr = randomWeights(random, 16, [32, 32, 32]);
      const ref = pipelineRef(xr, wr);
      assert.deepEqual(ref.shape, [1, 32, 4, 4]);
      const y = pipeline(tensor(heap, xr.data, xr.shape), upload(heap, wr), { algorithm });
      assert.deepEqual(y.shape, ref.shape);
      assertClose(await y.read(), ref.data, 1e-5, `pipeline ${algorithm}`);
    });
  });
}

Deno.test("pipeline with batch 2 and odd sizes matches the reference", async () => {
  await withHeap(async (heap) => {
    const random = rng(43);
    const xr = randomRef(random, [2, 3, 19, 13]);
    const wr = randomWeights(random, 3, [8, 12, 6]);
    const ref = pipelineRef(xr, wr);
    const y = pipeline(tensor(heap, xr.data, xr.shape), upload(heap, wr));
    assert.deepEqual(y.shape, ref.shape);
    assertClose(await y.read(), ref.data, 1e-5, "pipeline batch 2");
  });
});

Deno.test("readAll reads many tensors with one submit", async () => {
  await withHeap(async (heap) => {
    const random = rng(7);
    const inputs = Array.from({ length: 6 }, (_, i) => randomValues(random, 16 + i));
    const xs = inputs.map((v) => tensor(heap, v, [v.length]));
    const ys = xs.map((x) => relu(x));
    const batch = commandBatchOf(heap);
    const submits = batch.submits;
    const out = await readAll([...xs, ...ys]);
    assert.equal(batch.submits, submits + 1);
    inputs.forEach((v, i) => {
      assert.deepEqual([...out[i]], [...v]);
      assert.deepEqual([...out[6 + i]], [...v].map((e) => Math.max(e, 0)));
    });
  });
});

Deno.test("an input disposed before submit is not overwritten by a new tensor", async () => {
  await withHeap(async (heap) => {
    const random = rng(8);
    const a = randomValues(random, 1024);
    const b = randomValues(random, 1024);
    const x = tensor(heap, a, [1024]);
    const y = relu(x);
    x.dispose();
    // Same size: with x's memory it would be written before the relu runs.
    const z = tensor(heap, b, [1024]);
    const [yv, zv] = await readAll([y, z]);
    assert.deepEqual([...yv], [...a].map((e) => Math.max(e, 0)));
    assert.deepEqual([...zv], [...b]);
  });
});

Deno.test("one compiled shader serves every shape of a kernel", async () => {
  await withHeap(async (heap, device) => {
    const random = rng(9);
    const w = tensor(heap, randomValues(random, 8 * 8 * 9), [8, 8, 3, 3]);
    let before = -1;
    for (const [n, h, wd] of [[1, 8, 8], [2, 12, 4], [1, 16, 16], [3, 4, 4]]) {
      const x = tensor(heap, randomValues(random, n * 8 * h * wd), [n, 8, h, wd]);
      const y = relu(conv2d(x, w, null, { padding: 1, algorithm: "tiled" }));
      await y.read();
      if (before < 0) before = shaderCompilations(device);
      else assert.equal(shaderCompilations(device), before, `[${n},8,${h},${wd}] compiled`);
    }
  });
});

Deno.test("a long pipeline loop stops growing memory, buffers and compilations", async () => {
  const device = await gpu();
  const create = device.createBuffer;
  let createBufferCalls = 0;
  device.createBuffer = function (descriptor: GPUBufferDescriptor): GPUBuffer {
    createBufferCalls++;
    return create.call(this, descriptor);
  };
  try {
    await withHeap(async (heap) => {
      const random = rng(10);
      const wr = randomWeights(random, 8, [16, 16, 16]);
      const weights = upload(heap, wr);
      const batch = commandBatchOf(heap);
      const inputs = Array.from({ length: 4 }, () => randomRef(random, [1, 8, 16, 16]));
      const refs = inputs.map((x) => pipelineRef(x, wr));
      const ITERATIONS = 48;
      const WARMUP_GROUPS = 3;
      let groups = 0;
      let steady: Record<string, number> | null = null;
      let pending: { y: ReturnType<typeof pipeline>; i: number }[] = [];
      for (let it = 0; it < ITERATIONS; it++) {
        const i = it % inputs.length;
        const x = tensor(heap, inputs[i].data, inputs[i].shape);
        pending.push({ y: pipeline(x, weights), i });
        x.dispose();
        batch.submit();
        if (pending.length === 4) {
          const out = await readAll(pending.map((p) => p.y));
          out.forEach((o, j) => assertClose(o, refs[pending[j].i].data, 1e-5, `iteration ${it}`));
          pending.forEach((p) => p.y.dispose());
          pending = [];
        }
        // Compare at the end of each read-back group, when no output is live.
        if (pending.length > 0) continue;
        const stats = heap.memoryStats();
        const now = {
          reservedBytes: stats.reservedBytes.current,
          driverAllocatedMemory: heap.driverAllocatedMemory(),
          createBufferCalls,
          compilations: shaderCompilations(device),
          liveBlocks: stats.blocks,
          allocatedBytes: stats.allocatedBytes.current,
        };
        // The first groups make the heaps; the allocator may also release an
        // idle one to bound its cache while a later group makes another.
        if (++groups < WARMUP_GROUPS) continue;
        if (steady === null) steady = now;
        else assert.deepEqual(now, steady, `iteration ${it}: memory or buffers changed`);
      }
      // Every createBuffer of the data path is the allocator's.
      assert.equal(heap.memoryStats().createBufferCalls, createBufferCalls);
    });
  } finally {
    device.createBuffer = create;
  }
});

Deno.test("kernels read parameters from storage when uniform blocks share tensor heaps", async () => {
  await withHeap(async (heap) => {
    // An allocator whose uniform blocks sit in the storage heaps: binding one
    // as a uniform next to a writable tensor of the same GPUBuffer is a
    // validation error, so the batch must read parameters as storage.
    const shared: TensorAllocator = {
      device: heap.device,
      alloc: (size, options) =>
        heap.alloc(size, options?.usage === "uniform" ? { ...options, usage: "storage" } : options),
      free: (block) => heap.free(block as Block),
      submit: (commands) => heap.submit(commands),
      beforeSubmit: (hook) => heap.beforeSubmit(hook),
    };
    assert.equal(commandBatchOf(shared).paramsSpace, "storage");
    const random = rng(12);
    const xr = randomRef(random, [1, 8, 16, 16]);
    const wr = randomWeights(random, 8, [16, 16, 16]);
    const ref = pipelineRef(xr, wr);
    for (const algorithm of ["naive", "tiled"] as const) {
      const y = pipeline(tensor(shared, xr.data, xr.shape), upload(shared, wr), { algorithm });
      assertClose(await y.read(), ref.data, 1e-5, `storage params, ${algorithm}`);
    }
  });
});

Deno.test("a long batch submits itself, mid-op included, and stays correct", async () => {
  await withHeap(async (heap) => {
    const random = rng(13);
    const xr = randomRef(random, [1, 4, 6, 6]);
    const wr = randomRef(random, [8, 4, 3, 3]);
    const x = tensor(heap, xr.data, xr.shape);
    const w = tensor(heap, wr.data, wr.shape);
    const batch = commandBatchOf(heap);
    batch.submit();
    const submits = batch.submits;
    // Two dispatches per tiled conv (weight packing, then the conv): an odd
    // threshold crossing lands between the two.
    const outputs = [];
    for (let i = 0; i < AUTO_SUBMIT_DISPATCHES + 1; i++) {
      const y = conv2d(x, w, null, { padding: 1, algorithm: "tiled" });
      if (i % 16 === 0) outputs.push(y);
      else y.dispose();
    }
    assert.equal(batch.submits, submits + 2);
    const ref = conv2dRef(xr, wr, null, { padding: 1 });
    for (const out of await readAll(outputs)) assertClose(out, ref.data, 1e-5, "conv");
  });
});
