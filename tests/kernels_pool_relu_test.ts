// relu, maxPool2d and avgPool2d on the real adapter against the float64
// references: strides, padding, dilation, ceil mode, countIncludePad.
import assert from "node:assert/strict";
import {
  avgPool2d,
  type AvgPool2dOptions,
  avgPool2dRef,
  empty,
  maxPool2d,
  type MaxPool2dOptions,
  maxPool2dRef,
  relu,
  reluRef,
  tensor,
} from "../kernels/mod.ts";
import { assertClose, randomRef, rng, withHeap } from "./_kernels_util.ts";

Deno.test("poisoned outputs read back as NaN until written", async () => {
  await withHeap(async (heap) => {
    const t = empty(heap, [3, 5]);
    const values = await t.read();
    assert.ok(values.every((v) => Number.isNaN(v)));
  });
});

Deno.test("relu matches the reference, vectorised and scalar sizes", async () => {
  await withHeap(async (heap) => {
    const random = rng(11);
    for (const shape of [[4, 4, 4, 4], [2, 3, 5, 7], [1], [3, 1, 1, 1], [1025]]) {
      const xr = randomRef(random, shape);
      const y = relu(tensor(heap, xr.data, shape));
      assert.deepEqual(y.shape, shape);
      const out = await y.read();
      const ref = reluRef(xr);
      assertClose(out, ref.data, 1e-5, `relu ${shape}`);
      // ReLU is exact: every element equals the reference.
      assert.deepEqual([...out], [...ref.data]);
    }
  });
});

const MAX_CASES: [number[], MaxPool2dOptions][] = [
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

Deno.test("maxPool2d matches the reference", async () => {
  await withHeap(async (heap) => {
    const random = rng(21);
    for (const [shape, options] of MAX_CASES) {
      const xr = randomRef(random, shape);
      const ref = maxPool2dRef(xr, options);
      const y = maxPool2d(tensor(heap, xr.data, shape), options);
      assert.deepEqual(y.shape, ref.shape, JSON.stringify(options));
      const out = await y.read();
      assertClose(out, ref.data, 1e-5, `maxPool2d ${shape} ${JSON.stringify(options)}`);
      assert.deepEqual([...out], [...ref.data]);
    }
  });
});

const AVG_CASES: [number[], AvgPool2dOptions][] = [
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

Deno.test("avgPool2d matches the reference, countIncludePad both ways, ceil mode", async () => {
  await withHeap(async (heap) => {
    const random = rng(31);
    for (const [shape, options] of AVG_CASES) {
      const xr = randomRef(random, shape);
      const ref = avgPool2dRef(xr, options);
      const y = avgPool2d(tensor(heap, xr.data, shape), options);
      assert.deepEqual(y.shape, ref.shape, JSON.stringify(options));
      assertClose(await y.read(), ref.data, 1e-5, `avgPool2d ${shape} ${JSON.stringify(options)}`);
    }
  });
});

Deno.test("avgPool2d countIncludePad changes border values, as in PyTorch", async () => {
  await withHeap(async (heap) => {
    const x = tensor(heap, [1, 2, 3, 4], [1, 1, 2, 2]);
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
