/**
 * Float64 CPU references of every op, with the same arguments, defaults and
 * argument checks as the GPU ops, for checking GPU results.
 *
 * @module
 */

import { checkShape, checkValues, convGeometry, flag, poolGeometry, show } from "./_geometry.ts";

/** A tensor on the CPU: values in NCHW order and a shape. */
export interface RefTensor {
  /** The values, row-major (NCHW for 4-D tensors). */
  readonly data: ArrayLike<number>;
  /** The sizes of each dimension. */
  readonly shape: readonly number[];
}

/** A float64 result of a reference op. */
export interface RefResult extends RefTensor {
  /** The values, row-major. */
  readonly data: Float64Array;
  /** The sizes of each dimension. */
  readonly shape: number[];
}

/** Options of {@linkcode conv2dRef}, as {@linkcode conv2d} takes them. */
export interface RefConv2dOptions {
  /** Step of the kernel over the input (default 1). */
  stride?: number | readonly [number, number];
  /** Zero padding on both sides (default 0); `"same"` keeps the size (stride 1 only). */
  padding?: number | readonly [number, number] | "same" | "valid";
  /** Spacing between kernel elements (default 1). */
  dilation?: number | readonly [number, number];
  /** Blocked connections from input to output channels (default 1). */
  groups?: number;
  /** Apply ReLU to the result, as {@linkcode conv2dRelu}. */
  relu?: boolean;
}

/** Options of {@linkcode maxPool2dRef}, as {@linkcode maxPool2d} takes them. */
export interface RefMaxPool2dOptions {
  /** Window size. */
  kernelSize: number | readonly [number, number];
  /** Step between windows (default: kernelSize). */
  stride?: number | readonly [number, number];
  /** Minus-infinity padding on both sides, at most half the kernel size. */
  padding?: number | readonly [number, number];
  /** Spacing between window elements (default 1). */
  dilation?: number | readonly [number, number];
  /** Round the output size up rather than down. */
  ceilMode?: boolean;
}

/** Weight and optional bias of one convolution, on the CPU. */
export interface RefConvWeights {
  /** `[Cout, Cin/groups, kH, kW]`. */
  weight: RefTensor;
  /** `[Cout]`, or absent for no bias. */
  bias?: RefTensor | null;
}

function checkData(op: string, t: RefTensor, what: string): void {
  if (typeof t !== "object" || t === null) {
    throw new TypeError(`Cannot ${op}: ${what} must be { data, shape }, got ${show(t)}`);
  }
  checkValues(op, what, t.data, t.shape, checkShape(op, t.shape, `${what} shape`));
}

/**
 * Float64 reference of {@linkcode conv2d}: a direct loop over every output,
 * input channel and kernel tap.
 *
 * @example
 * ```ts
 * import { conv2dRef } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const x = { data: [1, 2, 3, 4], shape: [1, 1, 2, 2] };
 * const w = { data: [1, 1, 1, 1], shape: [1, 1, 2, 2] };
 * const y = conv2dRef(x, w, { data: [0.5], shape: [1] });
 * assert.deepEqual(y.shape, [1, 1, 1, 1]);
 * assert.equal(y.data[0], 10.5);
 * ```
 *
 * @param x input `[N, Cin, H, W]`
 * @param weight `[Cout, Cin/groups, kH, kW]`
 * @param bias `[Cout]`, or null
 * @param options stride, padding, dilation, groups, and `relu` to apply ReLU
 * @returns the output `[N, Cout, Hout, Wout]`
 */
export function conv2dRef(
  x: RefTensor,
  weight: RefTensor,
  bias: RefTensor | null = null,
  options: RefConv2dOptions = {},
): RefResult {
  const op = "conv2d";
  options ??= {};
  const relu = flag(op, "relu", options.relu, false);
  checkData(op, x, "input");
  checkData(op, weight, "weight");
  if (bias) checkData(op, bias, "bias");
  const g = convGeometry(op, x.shape, weight.shape, bias ? bias.shape : null, options);
  const out = new Float64Array(outputLength(op, [g.n, g.cOut, g.hOut, g.wOut]));
  const xd = x.data, wd = weight.data, bd = bias?.data;
  let o = 0;
  for (let n = 0; n < g.n; n++) {
    for (let co = 0; co < g.cOut; co++) {
      const group = Math.floor(co / g.cOutG);
      for (let oh = 0; oh < g.hOut; oh++) {
        for (let ow = 0; ow < g.wOut; ow++) {
          let sum = bd ? bd[co] : 0;
          for (let ci = 0; ci < g.cInG; ci++) {
            const xc = ((n * g.cIn + group * g.cInG + ci) * g.h) * g.w;
            const wc = ((co * g.cInG + ci) * g.kH) * g.kW;
            for (let ky = 0; ky < g.kH; ky++) {
              const ih = oh * g.strideH - g.padH + ky * g.dilH;
              if (ih < 0 || ih >= g.h) continue;
              for (let kx = 0; kx < g.kW; kx++) {
                const iw = ow * g.strideW - g.padW + kx * g.dilW;
                if (iw < 0 || iw >= g.w) continue;
                sum += xd[xc + ih * g.w + iw] * wd[wc + ky * g.kW + kx];
              }
            }
          }
          out[o++] = relu && sum < 0 ? 0 : sum;
        }
      }
    }
  }
  return { data: out, shape: [g.n, g.cOut, g.hOut, g.wOut] };
}

/**
 * Float64 reference of {@linkcode relu}: `max(x, 0)` elementwise.
 *
 * @example
 * ```ts
 * import { reluRef } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...reluRef({ data: [-1, 2], shape: [2] }).data], [0, 2]);
 * ```
 *
 * @param x any shape
 * @returns a tensor of the same shape
 */
export function reluRef(x: RefTensor): RefResult {
  checkData("relu", x, "input");
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = x.data[i] > 0 ? x.data[i] : 0;
  return { data: out, shape: [...x.shape] };
}

/**
 * Float64 reference of {@linkcode maxPool2d}: PyTorch semantics, padding
 * counts as minus infinity, NaN wins.
 *
 * @example
 * ```ts
 * import { maxPool2dRef } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const y = maxPool2dRef({ data: [1, 5, 3, 2], shape: [1, 1, 2, 2] }, { kernelSize: 2 });
 * assert.deepEqual([...y.data], [5]);
 * ```
 *
 * @param x input `[N, C, H, W]`
 * @param options kernelSize, stride (default kernelSize), padding, dilation, ceilMode
 * @returns the output `[N, C, Hout, Wout]`
 */
export function maxPool2dRef(x: RefTensor, options: RefMaxPool2dOptions): RefResult {
  const op = "maxPool2d";
  checkData(op, x, "input");
  const g = poolGeometry(op, x.shape, options);
  const out = new Float64Array(outputLength(op, [g.n, g.c, g.hOut, g.wOut]));
  let o = 0;
  for (let nc = 0; nc < g.n * g.c; nc++) {
    const base = nc * g.h * g.w;
    for (let oh = 0; oh < g.hOut; oh++) {
      for (let ow = 0; ow < g.wOut; ow++) {
        let best = -Infinity;
        for (let ky = 0; ky < g.kH; ky++) {
          const ih = oh * g.strideH - g.padH + ky * g.dilH;
          if (ih < 0 || ih >= g.h) continue;
          for (let kx = 0; kx < g.kW; kx++) {
            const iw = ow * g.strideW - g.padW + kx * g.dilW;
            if (iw < 0 || iw >= g.w) continue;
            const v = x.data[base + ih * g.w + iw];
            if (v > best || Number.isNaN(v)) best = v;
          }
        }
        out[o++] = best;
      }
    }
  }
  return { data: out, shape: [g.n, g.c, g.hOut, g.wOut] };
}

/** Options of {@linkcode avgPool2dRef}, as {@linkcode avgPool2d} takes them. */
export interface RefAvgPool2dOptions {
  /** Window size. */
  kernelSize: number | readonly [number, number];
  /** Step between windows (default: kernelSize). */
  stride?: number | readonly [number, number];
  /** Implicit zero padding on both sides, at most half the kernel size. */
  padding?: number | readonly [number, number];
  /** Round the output size up rather than down. */
  ceilMode?: boolean;
  /** Count padding in the divisor (default true, as in PyTorch). */
  countIncludePad?: boolean;
  /** Divide by this instead of the window size. */
  divisorOverride?: number;
}

/**
 * Float64 reference of {@linkcode avgPool2d}, with PyTorch's divisor: with
 * `countIncludePad` the window clipped to the padded input, otherwise the
 * window clipped to the input.
 *
 * @example
 * ```ts
 * import { avgPool2dRef } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const y = avgPool2dRef({ data: [1, 5, 3, 3], shape: [1, 1, 2, 2] }, { kernelSize: 2 });
 * assert.deepEqual([...y.data], [3]);
 * ```
 *
 * @param x input `[N, C, H, W]`
 * @param options kernelSize, stride, padding, ceilMode, countIncludePad, divisorOverride
 * @returns the output `[N, C, Hout, Wout]`
 */
export function avgPool2dRef(x: RefTensor, options: RefAvgPool2dOptions): RefResult {
  const op = "avgPool2d";
  checkData(op, x, "input");
  const g = poolGeometry(op, x.shape, { ...options, dilation: 1 });
  const divisor = checkDivisor(op, options.divisorOverride);
  const include = flag(op, "countIncludePad", options.countIncludePad, true);
  const out = new Float64Array(outputLength(op, [g.n, g.c, g.hOut, g.wOut]));
  let o = 0;
  for (let nc = 0; nc < g.n * g.c; nc++) {
    const base = nc * g.h * g.w;
    for (let oh = 0; oh < g.hOut; oh++) {
      for (let ow = 0; ow < g.wOut; ow++) {
        let h0 = oh * g.strideH - g.padH;
        let w0 = ow * g.strideW - g.padW;
        let h1 = Math.min(h0 + g.kH, g.h + g.padH);
        let w1 = Math.min(w0 + g.kW, g.w + g.padW);
        const padded = (h1 - h0) * (w1 - w0);
        h0 = Math.max(h0, 0);
        w0 = Math.max(w0, 0);
        h1 = Math.min(h1, g.h);
        w1 = Math.min(w1, g.w);
        let sum = 0;
        for (let ih = h0; ih < h1; ih++) {
          for (let iw = w0; iw < w1; iw++) sum += x.data[base + ih * g.w + iw];
        }
        const count = divisor ?? (include ? padded : (h1 - h0) * (w1 - w0));
        out[o++] = count > 0 ? sum / count : 0;
      }
    }
  }
  return { data: out, shape: [g.n, g.c, g.hOut, g.wOut] };
}

/** Checks `divisorOverride` (PyTorch: a non-zero integer); returns undefined when unset. */
export function checkDivisor(op: string, d: number | undefined): number | undefined {
  if (d === undefined) return undefined;
  if (!Number.isSafeInteger(d) || d === 0) {
    throw new RangeError(
      `Cannot ${op}: divisorOverride must be a non-zero integer, got ${show(d)}`,
    );
  }
  return d;
}

/** The fixed settings of the three-stage pipeline (see {@linkcode pipeline}). */
export const PIPELINE_STAGES: readonly {
  readonly conv: { readonly stride: 1; readonly padding: 1 };
  readonly pool: "max" | "avg";
  readonly kernelSize: 2;
  readonly stride: 2;
}[] = [
  { conv: { stride: 1, padding: 1 }, pool: "max", kernelSize: 2, stride: 2 },
  { conv: { stride: 1, padding: 1 }, pool: "max", kernelSize: 2, stride: 2 },
  { conv: { stride: 1, padding: 1 }, pool: "avg", kernelSize: 2, stride: 2 },
];

/**
 * Float64 reference of {@linkcode pipeline}: three stages of conv2d
 * (stride 1, padding 1) + bias + ReLU, then a 2x2 stride-2 pool: max, max,
 * average.
 *
 * @example
 * ```ts
 * import { pipelineRef } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const conv = (cin: number, cout: number) => ({
 *   weight: { data: new Array(cout * cin * 9).fill(0.1), shape: [cout, cin, 3, 3] },
 *   bias: { data: new Array(cout).fill(0.5), shape: [cout] },
 * });
 * const x = { data: new Array(2 * 8 * 8).fill(1), shape: [1, 2, 8, 8] };
 * const y = pipelineRef(x, [conv(2, 4), conv(4, 4), conv(4, 4)]);
 * assert.deepEqual(y.shape, [1, 4, 1, 1]);
 * ```
 *
 * @param x input `[N, C, H, W]`
 * @param weights three convolutions' weights and biases
 * @returns the last stage's output
 */
export function pipelineRef(x: RefTensor, weights: readonly RefConvWeights[]): RefResult {
  if (!Array.isArray(weights) || weights.length !== PIPELINE_STAGES.length) {
    throw new RangeError(
      `Cannot run pipeline: expected ${PIPELINE_STAGES.length} convolutions' weights, got ${
        Array.isArray(weights) ? weights.length : show(weights)
      }`,
    );
  }
  let t: RefTensor = x;
  PIPELINE_STAGES.forEach((stage, i) => {
    const y = conv2dRef(t, weights[i].weight, weights[i].bias ?? null, {
      ...stage.conv,
      relu: true,
    });
    const pool = { kernelSize: stage.kernelSize, stride: stage.stride };
    t = stage.pool === "max" ? maxPool2dRef(y, pool) : avgPool2dRef(y, pool);
  });
  return t as RefResult;
}

/**
 * The relative L2 error `||out - ref|| / ||ref||` (the absolute one when
 * `ref` is all zeros): how GPU results are compared with the float64
 * references. NaN when any output is NaN or the lengths differ.
 *
 * @example
 * ```ts
 * import { relativeError } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * assert.equal(relativeError([3, 4], [3, 4]), 0);
 * assert.equal(relativeError([0, 0], [3, 4]), 1);
 * assert.ok(Number.isNaN(relativeError([NaN, 4], [3, 4])));
 * ```
 *
 * @param out the values to check
 * @param ref the reference values
 * @returns the error
 */
export function relativeError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) return NaN;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Elements of a reference output of `shape`, refused past what one array may hold. */
function outputLength(op: string, shape: readonly number[]): number {
  const n = shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(n) || n > MAX_REF_ELEMENTS) {
    throw new RangeError(
      `Cannot ${op}: the float64 reference output [${
        shape.join(", ")
      }] would hold ${n} values, more than ${MAX_REF_ELEMENTS}`,
    );
  }
  return n;
}

/** The largest float64 reference output computed: 2^27 values (1 GiB). */
const MAX_REF_ELEMENTS = 2 ** 27;
