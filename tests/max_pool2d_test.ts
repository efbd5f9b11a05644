// maxPool2d on the real adapter against the float64 reference: strides,
// padding, dilation, ceil mode; and bad calls rejected before recording.
import assert from "node:assert/strict";
import { maxPool2d, type MaxPool2dOptions, maxPool2dRef, tensor } from "../kernels/mod.ts";
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

const CASES: [number[], MaxPool2dOptions][] = [
  [[1, 3, 8, 8], { kernelSize: 2 }],
  [[2, 4, 9, 9], { kernelSize: 3, stride: 2, padding: 1 }],
  [[1, 2, 7, 5], { kernelSize: 2, stride: 2, ceilMode: true }],
  [[1, 2, 7, 5], { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }],
  [[1, 3, 10, 9], { kernelSize: 3, dilation: 2, stride: 1, padding: 1 }],
  [[2, 1, 6, 7], { kernelSize: [3, 2], stride: [2, 1], padding: [1, 0] }],
  [[1, 5, 4, 3], { kernelSize: 1 }],
  [[1, 1, 1, 1], { kernelSize: 1 }],
  [[3, 2, 5, 5], { kernelSize: 5 }],
];

Deno.test("maxPool2d() matches the reference exactly, leaving no block live", async () => {
  await withCheckedAllocator(async (allocator) => {
    const random = rng(21);
    for (const [shape, options] of CASES) {
      const xr = randomRef(random, shape);
      const ref = maxPool2dRef(xr, options);
      using x = tensor(allocator, xr.data, shape);
      using y = maxPool2d(x, options);
      assert.deepEqual(y.shape, ref.shape, JSON.stringify(options));
      const out = await y.read();
      assertClose(out, ref.data, 1e-5, `maxPool2d ${shape} ${JSON.stringify(options)}`);
      assert.deepEqual([...out], [...ref.data]);
    }
  });
});

Deno.test("maxPool2d() rejects bad kernels, padding over half the kernel, empty outputs", async () => {
  await withAllocator((allocator) => {
    const x = filled(allocator, [1, 2, 5, 5]);
    const x3d = filled(allocator, [2, 5, 5]);
    assertRejected(
      allocator,
      RangeError,
      () => maxPool2d(x, { kernelSize: 3, padding: 2 }),
      "Cannot maxPool2d: padding must be at most half the kernel size, got padding [2,2] for kernel [3,3]",
    );
    assertRejected(
      allocator,
      RangeError,
      () => maxPool2d(x, { kernelSize: 0 }),
      /kernelSize must be a positive integer/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => maxPool2d(x, { kernelSize: 2.5 }),
      /kernelSize must be a positive integer.*2\.5/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => maxPool2d(x, { kernelSize: 2, stride: 0 }),
      /stride must be a positive/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => maxPool2d(x, { kernelSize: 2, dilation: -1 }),
      /dilation must be a positive/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => maxPool2d(x, { kernelSize: 6 }),
      /^Cannot maxPool2d: output would be 0x0 for input \[1,2,5,5\] with kernel \[6,6\]/,
    );
    assertRejected(
      allocator,
      TypeError,
      () => maxPool2d(x, {} as MaxPool2dOptions),
      "Cannot maxPool2d: options.kernelSize is required",
    );
    assertRejected(allocator, RangeError, () => maxPool2d(x3d, { kernelSize: 2 }), /4-D/);
  });
});

f16Test("maxPool2d() matches the reference", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(602);
    for (const shape of [[2, 3, 5, 7], [4, 4, 4, 4]]) {
      const xr = half(randomRef(random, shape));
      const x = tensor(allocator, xr.data, shape, { dtype: "f16" });
      const pool = { kernelSize: 3, stride: 2, padding: 1, ceilMode: true };
      assertClose(
        await maxPool2d(x, pool).read(),
        maxPool2dRef(xr, pool).data,
        1e-2,
        `maxPool2d ${shape}`,
      );
    }
  });
});
