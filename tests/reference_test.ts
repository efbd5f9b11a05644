// The float64 references on hand-checked values and PyTorch's output sizes,
// so the GPU tests compare against something known to be right.
import assert from "node:assert/strict";
import {
  avgPool2dRef,
  conv2dRef,
  maxPool2dRef,
  PIPELINE_STAGES,
  pipelineRef,
  relativeError,
  reluRef,
} from "../kernels/mod.ts";

const seq = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

Deno.test("conv2dRef() computes hand-checked sums with padding, stride, bias, relu", () => {
  // x = [[1,2,3],[4,5,6],[7,8,9]], 2x2 ones
  const x = { data: seq(9), shape: [1, 1, 3, 3] };
  const ones = { data: [1, 1, 1, 1], shape: [1, 1, 2, 2] };
  assert.deepEqual([...conv2dRef(x, ones).data], [12, 16, 24, 28]);
  const padded = conv2dRef(x, ones, null, { padding: 1, stride: 2 });
  assert.deepEqual(padded.shape, [1, 1, 2, 2]);
  assert.deepEqual([...padded.data], [1, 5, 11, 28]);
  const neg = { data: [-1, -1, -1, -1], shape: [1, 1, 2, 2] };
  const bias = { data: [20], shape: [1] };
  assert.deepEqual([...conv2dRef(x, neg, bias, { relu: true }).data], [8, 4, 0, 0]);
  // dilation 2 on 3x3 with a 2x2 kernel touches the corners only
  assert.deepEqual([...conv2dRef(x, ones, null, { dilation: 2 }).data], [20]);
});

Deno.test("conv2dRef() keeps groups' channels apart", () => {
  // two channels, groups 2, 1x1 kernels scaling each channel
  const x = { data: [1, 2, 3, 4, 10, 20, 30, 40], shape: [1, 2, 2, 2] };
  const w = { data: [2, -1], shape: [2, 1, 1, 1] };
  assert.deepEqual([...conv2dRef(x, w, null, { groups: 2 }).data], [
    2,
    4,
    6,
    8,
    -10,
    -20,
    -30,
    -40,
  ]);
});

Deno.test('conv2dRef() with padding "same" pads extra at the bottom and right for even kernels', () => {
  const x = { data: seq(9), shape: [1, 1, 3, 3] };
  const ones = { data: [1, 1, 1, 1], shape: [1, 1, 2, 2] };
  const y = conv2dRef(x, ones, null, { padding: "same" });
  assert.deepEqual(y.shape, [1, 1, 3, 3]);
  // torch.nn.functional.conv2d(x, ones, padding="same")
  assert.deepEqual([...y.data], [12, 16, 9, 24, 28, 15, 15, 17, 9]);
  assert.deepEqual(conv2dRef(x, ones, null, { padding: "valid" }).shape, [1, 1, 2, 2]);
});

Deno.test("maxPool2dRef() gives PyTorch's output sizes, ceil mode included", () => {
  const shape = (h: number, options: Parameters<typeof maxPool2dRef>[1]) =>
    maxPool2dRef({ data: new Array(h * h).fill(1), shape: [1, 1, h, h] }, options).shape[2];
  assert.equal(shape(5, { kernelSize: 2 }), 2);
  assert.equal(shape(5, { kernelSize: 2, ceilMode: true }), 3);
  // The last window would start in the right padding: dropped.
  assert.equal(shape(3, { kernelSize: 2, stride: 2, padding: 1, ceilMode: true }), 2);
  assert.equal(shape(3, { kernelSize: 2, stride: 2, padding: 1 }), 2);
  assert.equal(shape(7, { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }), 4);
  assert.equal(shape(10, { kernelSize: 3, stride: 1, dilation: 2 }), 6);
});

Deno.test("maxPool2dRef() and avgPool2dRef() compute hand-checked windows", () => {
  const x = { data: seq(16), shape: [1, 1, 4, 4] };
  assert.deepEqual([...maxPool2dRef(x, { kernelSize: 2 }).data], [6, 8, 14, 16]);
  assert.deepEqual([...avgPool2dRef(x, { kernelSize: 2 }).data], [3.5, 5.5, 11.5, 13.5]);
  // 5x5 input, ceil mode: the last window holds only the last row/column.
  const y = { data: seq(25), shape: [1, 1, 5, 5] };
  const ceil = avgPool2dRef(y, { kernelSize: 2, ceilMode: true });
  assert.deepEqual(ceil.shape, [1, 1, 3, 3]);
  assert.equal(ceil.data[2], (5 + 10) / 2);
  assert.equal(ceil.data[8], 25);
  assert.equal(avgPool2dRef(y, { kernelSize: 2, divisorOverride: 1 }).data[0], 1 + 2 + 6 + 7);
});

Deno.test("reluRef() and pipelineRef() compute known values", () => {
  assert.deepEqual([...reluRef({ data: [-1, 0, 2], shape: [3] }).data], [0, 0, 2]);
  assert.equal(PIPELINE_STAGES.length, 3);
  const conv = (cin: number, cout: number) => ({
    weight: { data: new Array(cout * cin * 9).fill(1 / (cin * 9)), shape: [cout, cin, 3, 3] },
    bias: { data: new Array(cout).fill(0), shape: [cout] },
  });
  // A constant image stays constant inside, and is smaller at padded borders.
  const y = pipelineRef({ data: new Array(2 * 16 * 16).fill(1), shape: [1, 2, 16, 16] }, [
    conv(2, 3),
    conv(3, 3),
    conv(3, 3),
  ]);
  assert.deepEqual(y.shape, [1, 3, 2, 2]);
  for (const v of y.data) assert.ok(v > 0.5 && v <= 1, `${v}`);
});

Deno.test("conv2dRef(), maxPool2dRef(), avgPool2dRef() reject what the ops reject", () => {
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

Deno.test("conv2dRef() rejects an output too large to hold with our RangeError", () => {
  const x = { data: [1, 2, 3, 4], shape: [1, 1, 2, 2] };
  // The padding fits the geometry's checks; the output it makes fits no array.
  for (const padding of [2 ** 20, 2 ** 40, [2 ** 31, 2 ** 31] as [number, number]]) {
    assert.throws(
      () => conv2dRef(x, x, null, { padding }),
      (e: Error) => {
        assert.ok(e instanceof RangeError, `padding ${padding}: ${e?.name}`);
        assert.match(e.message, /^Cannot conv2d: /, `padding ${padding}: not our message`);
        return true;
      },
    );
  }
});

Deno.test("relativeError() is the relative L2 error, absolute for a zero reference", () => {
  assert.equal(relativeError([1, 2, 2], [1, 2, 2]), 0);
  assert.equal(relativeError([1, 2, 4], [1, 2, 2]), 2 / 3);
  assert.equal(relativeError([0, 0], [3, 4]), 1);
  assert.equal(relativeError([3, 4], [0, 0]), 5);
  assert.ok(Number.isNaN(relativeError([1, NaN], [1, 2])));
  assert.ok(Number.isNaN(relativeError([1, 2], [1, 2, 3])));
});
