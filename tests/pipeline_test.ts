// The three-stage pipeline end to end against its float64 reference, a long
// loop whose memory and createBuffer calls stop growing, and bad calls
// rejected before any stage is recorded.
import assert from "node:assert/strict";
import {
  commandBatchOf,
  pipeline,
  pipelineRef,
  readAll,
  shaderCompilations,
  type Tensor,
  tensor,
} from "../kernels/mod.ts";
import {
  assertClose,
  assertRejected,
  f16Test,
  filled,
  gpu,
  half,
  kernelsOf,
  randomRef,
  randomWeights,
  rng,
  uploadWeights,
  withAllocator,
} from "./_kernels_util.ts";

for (const algorithm of ["naive", "tiled", "winograd"] as const) {
  Deno.test(`pipeline() [1,16,32,32] -> 32 channels matches the reference (${algorithm})`, async () => {
    await withAllocator(async (allocator) => {
      const random = rng(42);
      const xr = randomRef(random, [1, 16, 32, 32]);
      const wr = randomWeights(random, 16, [32, 32, 32]);
      const ref = pipelineRef(xr, wr);
      assert.deepEqual(ref.shape, [1, 32, 4, 4]);
      const x = tensor(allocator, xr.data, xr.shape);
      const weights = uploadWeights(allocator, wr);
      const [y, kernels] = kernelsOf(() => pipeline(x, weights, { algorithm }));
      // Three stages of the chosen kernel; Winograd's pools are in its epilogue.
      const convs = kernels.filter((k) => k === `conv2d_${algorithm}`);
      const pools = kernels.filter((k) => k === "max_pool2d" || k === "avg_pool2d");
      assert.equal(convs.length, 3, `${kernels}`);
      assert.equal(pools.length, algorithm === "winograd" ? 0 : 3, `${kernels}`);
      assert.deepEqual(y.shape, ref.shape);
      assertClose(await y.read(), ref.data, 1e-5, `pipeline ${algorithm}`);
    });
  });
}

Deno.test("pipeline() with batch 2 and odd sizes matches the reference", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(43);
    const xr = randomRef(random, [2, 3, 19, 13]);
    const wr = randomWeights(random, 3, [8, 12, 6]);
    const ref = pipelineRef(xr, wr);
    const y = pipeline(tensor(allocator, xr.data, xr.shape), uploadWeights(allocator, wr));
    assert.deepEqual(y.shape, ref.shape);
    assertClose(await y.read(), ref.data, 1e-5, "pipeline batch 2");
  });
});

Deno.test("pipeline() in a long loop stops growing memory, buffers and compilations", async () => {
  const device = await gpu();
  const create = device.createBuffer;
  let createBufferCalls = 0;
  device.createBuffer = function (descriptor: GPUBufferDescriptor): GPUBuffer {
    createBufferCalls++;
    return create.call(this, descriptor);
  };
  try {
    await withAllocator(async (allocator) => {
      const random = rng(10);
      const wr = randomWeights(random, 8, [16, 16, 16]);
      const weights = uploadWeights(allocator, wr);
      const batch = commandBatchOf(allocator);
      const inputs = Array.from({ length: 4 }, () => randomRef(random, [1, 8, 16, 16]));
      const refs = inputs.map((x) => pipelineRef(x, wr));
      const ITERATIONS = 48;
      const WARMUP_GROUPS = 3;
      let groups = 0;
      let steady: Record<string, number> | null = null;
      let pending: { y: ReturnType<typeof pipeline>; i: number }[] = [];
      for (let it = 0; it < ITERATIONS; it++) {
        const i = it % inputs.length;
        const x = tensor(allocator, inputs[i].data, inputs[i].shape);
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
        const stats = allocator.memoryStats();
        const now = {
          reservedBytes: stats.reservedBytes.current,
          driverAllocatedMemory: allocator.driverAllocatedMemory(),
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
      assert.equal(allocator.memoryStats().createBufferCalls, createBufferCalls);
    });
  } finally {
    device.createBuffer = create;
  }
});

Deno.test("pipeline() checks every stage before recording any", async () => {
  await withAllocator((allocator) => {
    const conv = (cin: number, cout: number) => ({
      weight: filled(allocator, [cout, cin, 3, 3]),
      bias: filled(allocator, [cout]),
    });
    const small = filled(allocator, [1, 2, 4, 4]);
    const x = filled(allocator, [1, 2, 8, 8]);
    const a = conv(2, 4), b = conv(4, 4), c = conv(4, 4), bad = conv(3, 4);
    // Stage 3's pool would see a 1x1 image: nothing of stages 1 and 2 may be recorded.
    assertRejected(
      allocator,
      RangeError,
      () => pipeline(small, [a, b, c]),
      /Cannot run pipeline: stage 3 of input \[1,2,4,4\] fails: Cannot avgPool2d: output would be 0x0/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => pipeline(x, [a, bad, c]),
      /stage 2 .* input has 4 channels but weight expects 3 \(input \[1,4,4,4\], weight \[4,3,3,3\]\)/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => pipeline(x, [a]),
      /expected 3 convolutions' weights, got 1/,
    );
    assertRejected(
      allocator,
      TypeError,
      () => pipeline(null as unknown as Tensor, [a, b, c]),
      "Cannot run pipeline: input must be a Tensor, got null",
    );
    // With one input channel, algorithm "auto" runs stage 1 naive and the
    // next tiled: bad tiles fail in stage 2, and stage 1 must not be recorded.
    const one = filled(allocator, [1, 1, 8, 8]);
    const first = conv(1, 4);
    assertRejected(
      allocator,
      RangeError,
      () =>
        pipeline(one, [first, b, c], {
          tiles: { tileM: 64, tileN: 16, tileK: 4, threadM: 3, threadN: 4 },
        }),
      "Cannot conv2dRelu: bad tiles: threadM and threadN must be multiples of 4, got 3 and 4",
    );
  });
});

f16Test("pipeline() [1,16,32,32] -> 32 channels matches the reference, every kernel", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(603);
    const xr = half(randomRef(random, [1, 16, 32, 32]));
    const wr = [16, 32, 32].map((cin) => ({
      weight: half({
        data: randomRef(random, [32, cin, 3, 3]).data.map((v) => v / Math.sqrt(cin * 9)),
        shape: [32, cin, 3, 3],
      }),
      bias: half(randomRef(random, [32])),
    }));
    const ref = pipelineRef(xr, wr);
    const weights = wr.map((w) => ({
      weight: tensor(allocator, w.weight.data, w.weight.shape, { dtype: "f16" }),
      bias: tensor(allocator, w.bias.data, w.bias.shape, { dtype: "f16" }),
    }));
    const x = tensor(allocator, xr.data, xr.shape, { dtype: "f16" });
    for (const algorithm of ["naive", "tiled", "winograd"] as const) {
      const y = pipeline(x, weights, { algorithm });
      assert.equal(y.dtype, "f16");
      assertClose(await y.read(), ref.data, 1e-2, `f16 pipeline ${algorithm}`);
      y.dispose();
    }
  });
});
