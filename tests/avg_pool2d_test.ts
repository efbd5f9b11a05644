// avgPool2d on the real adapter against the float64 reference: strides,
// padding, ceil mode, countIncludePad, divisorOverride; and bad calls
// rejected before recording.
import assert from "node:assert/strict";
import { avgPool2d, type AvgPool2dOptions, avgPool2dRef, tensor } from "../kernels/mod.ts";
import {
  assertClose,
  assertRejected,
  f16Test,
  filled,
  half,
  randomRef,
  rng,
  withAllocator,
  withCheckedAllocator,
} from "./_kernels_util.ts";

const CASES: [number[], AvgPool2dOptions][] = [
  [[1, 3, 8, 8], { kernelSize: 2 }],
  [[2, 4, 9, 9], { kernelSize: 3, stride: 2, padding: 1 }],
  [[2, 4, 9, 9], { kernelSize: 3, stride: 2, padding: 1, countIncludePad: false }],
  [[1, 2, 7, 5], { kernelSize: 2, stride: 2, ceilMode: true }],
  // ceil mode windows that run past the padded input: the divisor differs
  // from kH*kW even with countIncludePad.
  [[1, 2, 7, 5], { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }],
  [[1, 2, 7, 5], { kernelSize: 3, stride: 2, padding: 1, ceilMode: true, countIncludePad: false }],
  [[2, 1, 6, 7], { kernelSize: [3, 2], stride: [2, 1], padding: [1, 1] }],
  [[1, 3, 6, 6], { kernelSize: 3, padding: 1, divisorOverride: 4 }],
  [[1, 5, 4, 3], { kernelSize: 1 }],
];

Deno.test("avgPool2d() matches the reference, countIncludePad both ways, ceil mode, leaving no block live", async () => {
  await withCheckedAllocator(async (allocator) => {
    const random = rng(31);
    for (const [shape, options] of CASES) {
      const xr = randomRef(random, shape);
      const ref = avgPool2dRef(xr, options);
      using x = tensor(allocator, xr.data, shape);
      using y = avgPool2d(x, options);
      assert.deepEqual(y.shape, ref.shape, JSON.stringify(options));
      assertClose(await y.read(), ref.data, 1e-5, `avgPool2d ${shape} ${JSON.stringify(options)}`);
    }
  });
});

Deno.test("avgPool2d() countIncludePad changes border values, as in PyTorch", async () => {
  await withAllocator(async (allocator) => {
    const x = tensor(allocator, [1, 2, 3, 4], [1, 1, 2, 2]);
    const incl = await avgPool2d(x, { kernelSize: 2, stride: 1, padding: 1 }).read();
    const excl = await avgPool2d(x, {
      kernelSize: 2,
      stride: 1,
      padding: 1,
      countIncludePad: false,
    }).read();
    // torch.nn.functional.avg_pool2d(x, 2, 1, 1) and with count_include_pad=False
    assert.deepEqual([...incl], [0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1]);
    assert.deepEqual([...excl], [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4]);
  });
});

Deno.test("avgPool2d() rejects bad kernels, padding over half the kernel, bad divisors", async () => {
  await withAllocator((allocator) => {
    const x = filled(allocator, [1, 2, 5, 5]);
    const x3d = filled(allocator, [2, 5, 5]);
    assertRejected(
      allocator,
      RangeError,
      () => avgPool2d(x, { kernelSize: 3, padding: 2 }),
      "Cannot avgPool2d: padding must be at most half the kernel size, got padding [2,2] for kernel [3,3]",
    );
    assertRejected(
      allocator,
      RangeError,
      () => avgPool2d(x, { kernelSize: 0 }),
      /kernelSize must be a positive integer/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => avgPool2d(x, { kernelSize: 2, stride: 0 }),
      /stride must be a positive/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => avgPool2d(x, { kernelSize: 6 }),
      /^Cannot avgPool2d: output would be 0x0 for input \[1,2,5,5\] with kernel \[6,6\]/,
    );
    assertRejected(
      allocator,
      TypeError,
      () => avgPool2d(x, {} as AvgPool2dOptions),
      "Cannot avgPool2d: options.kernelSize is required",
    );
    assertRejected(allocator, RangeError, () => avgPool2d(x3d, { kernelSize: 2 }), /4-D/);
    assertRejected(
      allocator,
      RangeError,
      () => avgPool2d(x, { kernelSize: 2, divisorOverride: 0 }),
      "Cannot avgPool2d: divisorOverride must be a non-zero integer, got 0",
    );
  });
});

f16Test("avgPool2d() matches the reference, countIncludePad both ways", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(602);
    for (const shape of [[2, 3, 5, 7], [4, 4, 4, 4]]) {
      const xr = half(randomRef(random, shape));
      const x = tensor(allocator, xr.data, shape, { dtype: "f16" });
      for (const countIncludePad of [true, false]) {
        const pool = { kernelSize: 3, stride: 2, padding: 1, ceilMode: true, countIncludePad };
        assertClose(
          await avgPool2d(x, pool).read(),
          avgPool2dRef(xr, pool).data,
          1e-2,
          `avgPool2d ${shape} countIncludePad ${countIncludePad}`,
        );
      }
    }
  });
});
