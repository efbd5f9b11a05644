// Argument checks: every bad call throws at the call, naming the shapes,
// and records nothing (no dispatch, no block left allocated).
import assert from "node:assert/strict";
import type { HeapAllocator } from "../allocator/allocator.ts";
import {
  avgPool2d,
  avgPool2dRef,
  commandBatchOf,
  conv2d,
  conv2dRef,
  maxPool2d,
  maxPool2dRef,
  pipeline,
  relu,
  Tensor,
  tensor,
} from "../kernels/mod.ts";
import { withHeap } from "./_kernels_util.ts";

function zeros(heap: HeapAllocator, shape: number[]): Tensor {
  return tensor(heap, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), shape);
}

/** Asserts `fn` throws a message matching `pattern` and leaves the batch and the heap as they were. */
function assertRejected(heap: HeapAllocator, fn: () => unknown, pattern: RegExp | string): void {
  const batch = commandBatchOf(heap);
  const dispatches = batch.dispatches;
  const blocks = heap.memoryStats().blocks;
  assert.throws(
    fn,
    (e: Error) => {
      if (typeof pattern === "string") assert.equal(e.message, pattern);
      else assert.match(e.message, pattern);
      return true;
    },
  );
  assert.equal(batch.dispatches, dispatches, "a rejected call recorded a dispatch");
  assert.equal(heap.memoryStats().blocks, blocks, "a rejected call kept a block");
}

Deno.test("conv2d rejects mismatched shapes with a message naming them", async () => {
  await withHeap((heap) => {
    const x = zeros(heap, [1, 3, 8, 8]);
    const w = zeros(heap, [4, 4, 3, 3]);
    assertRejected(
      heap,
      () => conv2d(x, w),
      "Cannot conv2d: input has 3 channels but weight expects 4 (input [1,3,8,8], weight [4,4,3,3])",
    );
    const w3 = zeros(heap, [4, 3, 3, 3]);
    const b3 = zeros(heap, [3]);
    const x3d = zeros(heap, [3, 8, 8]);
    const w3d = zeros(heap, [4, 3, 3]);
    const w9 = zeros(heap, [4, 3, 9, 9]);
    const x6 = zeros(heap, [1, 6, 8, 8]);
    const w42 = zeros(heap, [4, 2, 3, 3]);
    assertRejected(
      heap,
      () => conv2d(x, w3, b3),
      "Cannot conv2d: bias must be [4] for weight [4,3,3,3], got [3]",
    );
    assertRejected(heap, () => conv2d(x3d, w3), /input must be 4-D.*\[3,8,8\]/);
    assertRejected(heap, () => conv2d(x, w3d), /weight must be 4-D/);
    assertRejected(
      heap,
      () => conv2d(x, w9),
      "Cannot conv2d: padded input 8x8 is smaller than the dilated kernel 9x9 (input [1,3,8,8], weight [4,3,9,9])",
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { dilation: 4 }),
      /padded input 8x8 is smaller than the dilated kernel 9x9/,
    );
    assertRejected(
      heap,
      () => conv2d(x6, w42, null, { groups: 3 }),
      /weight has 4 output channels, not divisible by groups 3/,
    );
    assertRejected(
      heap,
      () => conv2d(x6, w42, null, { groups: 2 }),
      "Cannot conv2d: input has 6 channels but weight expects 4 (2 per group, groups 2) (input [1,6,8,8], weight [4,2,3,3])",
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { groups: 0 }),
      /groups must be a positive integer, got 0/,
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { stride: 1.5 }),
      /stride must be a positive integer.*1\.5/,
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { stride: 0 }),
      /stride must be a positive integer/,
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { padding: -1 }),
      /padding must be a non-negative integer/,
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { padding: [1] as unknown as [number, number] }),
      /padding must be .* a pair/,
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { padding: "same", stride: 2 }),
      /padding "same" needs stride 1/,
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { algorithm: "fast" as "naive" }),
      /algorithm must be "auto", "naive", "tiled" or "winograd", got "fast"/,
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { algorithm: "winograd", stride: 2 }),
      /the Winograd kernel takes 3x3 filters with stride 1 and dilation 1, got 3x3 stride 2x2/,
    );
    assertRejected(
      heap,
      () => conv2d(x, w3, null, { pool: "min" as "max" }),
      /pool must be "max" or "avg", got "min"/,
    );
    const thin = zeros(heap, [1, 3, 3, 1]);
    assertRejected(
      heap,
      () => conv2d(thin, w3, null, { padding: 1, pool: "max" }),
      /a 2x2 pool needs an output of at least 2x2, got 3x1/,
    );
    assertRejected(
      heap,
      () =>
        conv2d(x, w3, null, {
          algorithm: "winograd",
          winogradTiles: { tiles: 32, tileN: 32, tileK: 8, threadM: 8, threadN: 4 },
        }),
      /bad Winograd tiles: each of the 16 products takes 16 threads/,
    );
    assertRejected(
      heap,
      () =>
        conv2d(x, w3, null, {
          algorithm: "tiled",
          tiles: { tileM: 64, tileN: 64, tileK: 8, threadM: 3, threadN: 4 },
        }),
      /bad tiles: threadM and threadN must be multiples of 4/,
    );
  });
});

Deno.test("pools reject bad kernels, padding over half the kernel, empty outputs", async () => {
  await withHeap((heap) => {
    const x = zeros(heap, [1, 2, 5, 5]);
    const x3d = zeros(heap, [2, 5, 5]);
    for (const pool of [maxPool2d, avgPool2d]) {
      const op = pool === maxPool2d ? "maxPool2d" : "avgPool2d";
      assertRejected(
        heap,
        () => pool(x, { kernelSize: 3, padding: 2 }),
        `Cannot ${op}: padding must be at most half the kernel size, got padding [2,2] for kernel [3,3]`,
      );
      assertRejected(
        heap,
        () => pool(x, { kernelSize: 0 }),
        /kernelSize must be a positive integer/,
      );
      assertRejected(
        heap,
        () => pool(x, { kernelSize: 2.5 }),
        /kernelSize must be a positive integer.*2\.5/,
      );
      assertRejected(
        heap,
        () => pool(x, { kernelSize: 2, stride: 0 }),
        /stride must be a positive/,
      );
      assertRejected(
        heap,
        () => pool(x, { kernelSize: 6 }),
        new RegExp(
          `Cannot ${op}: output would be 0x0 for input \\[1,2,5,5\\] with kernel \\[6,6\\]`,
        ),
      );
      assertRejected(heap, () => pool(x, {} as { kernelSize: number }), /kernelSize is required/);
      assertRejected(heap, () => pool(x3d, { kernelSize: 2 }), /4-D/);
    }
    assertRejected(
      heap,
      () => avgPool2d(x, { kernelSize: 2, divisorOverride: 0 }),
      /divisorOverride must be a non-zero integer, got 0/,
    );
  });
});

Deno.test("ops reject disposed tensors, other allocators, dtype mismatches, non-tensors", async () => {
  await withHeap(async (heap, device) => {
    const x = zeros(heap, [1, 2, 4, 4]);
    const w = zeros(heap, [2, 2, 3, 3]);
    const gone = zeros(heap, [1, 2, 4, 4]);
    gone.dispose();
    assertRejected(heap, () => relu(gone), "Cannot relu: input [1,2,4,4] was disposed");
    assertRejected(heap, () => conv2d(x, w, gone), /bias \[1,2,4,4\] was disposed/);
    await assert.rejects(() => gone.read(), /Cannot read tensor \[1,2,4,4\]: it was disposed/);

    const { HeapAllocator } = await import("../allocator/allocator.ts");
    const other = new HeapAllocator(device);
    try {
      const w2 = zeros(other, [2, 2, 3, 3]);
      assertRejected(
        heap,
        () => conv2d(x, w2),
        "Cannot conv2d: weight comes from a different allocator than input (tensors of one op must share an allocator)",
      );
    } finally {
      other.destroy();
    }

    // An f16 tensor, made directly: this adapter may lack shader-f16.
    const block = heap.alloc(2 * 2 * 9 * 2);
    const wHalf = new Tensor(heap, block, [2, 2, 3, 3], "f16");
    assertRejected(
      heap,
      () => conv2d(x, wHalf),
      "Cannot conv2d: weight has dtype f16 but input has f32",
    );
    wHalf.dispose();

    assertRejected(
      heap,
      () => conv2d(x, new Float32Array(36) as unknown as Tensor),
      "Cannot conv2d: weight must be a Tensor, got a Float32Array",
    );
    assertRejected(
      heap,
      () => tensor(heap, [1, 2, 3], [2, 2]),
      /data has 3 elements but shape \[2,2\] needs 4/,
    );
    assertRejected(heap, () => tensor(heap, [1, 2], [2, 0]), /positive integer sizes, got \[2,0\]/);
    assertRejected(
      heap,
      () => tensor(heap, [1, 2], [2], { dtype: "f64" as "f32" }),
      /dtype must be "f32" or "f16"/,
    );
    if (!device.features.has("shader-f16")) {
      assertRejected(
        heap,
        () => tensor(heap, [1, 2], [2], { dtype: "f16" }),
        "Cannot create tensor: dtype f16 needs the device feature shader-f16, which this device lacks",
      );
    }
  });
});

Deno.test("pipeline checks every stage before recording any", async () => {
  await withHeap((heap) => {
    const conv = (cin: number, cout: number) => ({
      weight: zeros(heap, [cout, cin, 3, 3]),
      bias: zeros(heap, [cout]),
    });
    const small = zeros(heap, [1, 2, 4, 4]);
    const x = zeros(heap, [1, 2, 8, 8]);
    const a = conv(2, 4), b = conv(4, 4), c = conv(4, 4), bad = conv(3, 4);
    // Stage 3's pool would see a 1x1 image: nothing of stages 1 and 2 may be recorded.
    assertRejected(
      heap,
      () => pipeline(small, [a, b, c]),
      /Cannot run pipeline: stage 3 of input \[1,2,4,4\] fails: Cannot avgPool2d: output would be 0x0/,
    );
    assertRejected(
      heap,
      () => pipeline(x, [a, bad, c]),
      /stage 2 .* input has 4 channels but weight expects 3 \(input \[1,4,4,4\], weight \[4,3,3,3\]\)/,
    );
    assertRejected(heap, () => pipeline(x, [a]), /expected 3 convolutions' weights, got 1/);
  });
});

Deno.test("references reject what the ops reject", () => {
  const x = { data: new Float64Array(1 * 3 * 8 * 8), shape: [1, 3, 8, 8] };
  assert.throws(
    () => conv2dRef(x, { data: new Float64Array(4 * 4 * 9), shape: [4, 4, 3, 3] }),
    {
      message:
        "Cannot conv2d: input has 3 channels but weight expects 4 (input [1,3,8,8], weight [4,4,3,3])",
    },
  );
  assert.throws(
    () => maxPool2dRef(x, { kernelSize: 2, padding: 2 }),
    /at most half the kernel size/,
  );
  assert.throws(() => avgPool2dRef(x, { kernelSize: 9 }), /output would be 0x0/);
  assert.throws(
    () => conv2dRef({ data: [1, 2], shape: [1, 1, 2, 2] }, x),
    /has 2 values but shape \[1,1,2,2\] needs 4/,
  );
});
