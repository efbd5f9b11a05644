/**
 * WGSL of the 2-D average pooling kernel.
 *
 * @module
 */

import {
  makeShader,
  type ShaderProgram,
  shaderProgram,
  type WorkgroupProgram,
} from "./_prelude.ts";

/** What one compiled average-pooling shader is specialised for. */
export type AvgPool2dProgram = WorkgroupProgram;

/**
 * Field order of the average-pooling parameters (i32 each). `divisor` is 0
 * unless `divisorOverride` was given; `includePad` is 0 or 1.
 */
export const AVG_POOL2D_PARAMS = [
  "total",
  "h",
  "w",
  "hOut",
  "wOut",
  "kH",
  "kW",
  "strideH",
  "strideW",
  "padH",
  "padW",
  "includePad",
  "divisor",
] as const;

/**
 * Builds the average-pooling shader: one thread per output element, summing
 * in f32, with PyTorch's divisor (the window clipped to the padded input
 * when padding counts, else clipped to the input). Bindings: 0 parameters,
 * 1 input, 2 output.
 *
 * @example
 * ```ts
 * import { avgPool2dWgsl } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * assert.match(avgPool2dWgsl({ dtype: "f32", workgroupSize: 64 }), /@workgroup_size\(64\)/);
 * ```
 *
 * @param program element type and workgroup size
 * @returns the WGSL source
 */
export function avgPool2dWgsl(program: AvgPool2dProgram): string {
  return makeShader({
    kernel: "avgPool2d",
    dtype: program.dtype,
    params: program.params,
    fields: AVG_POOL2D_PARAMS,
    tensors: ["x", "y"],
    workgroupSize: program.workgroupSize,
    index: "thread",
    bound: "p.total",
    body: `  let ow = i % p.wOut;
  let rest = i / p.wOut;
  let oh = rest % p.hOut;
  let nc = rest / p.hOut;
  let base = nc * p.h * p.w;
  var h0 = oh * p.strideH - p.padH;
  var w0 = ow * p.strideW - p.padW;
  var h1 = min(h0 + p.kH, p.h + p.padH);
  var w1 = min(w0 + p.kW, p.w + p.padW);
  let padded = (h1 - h0) * (w1 - w0);
  h0 = max(h0, 0);
  w0 = max(w0, 0);
  h1 = min(h1, p.h);
  w1 = min(w1, p.w);
  var sum = 0.0;
  for (var ih = h0; ih < h1; ih++) {
    for (var iw = w0; iw < w1; iw++) {
      sum += f32(x[base + ih * p.w + iw]);
    }
  }
  var count = select((h1 - h0) * (w1 - w0), padded, p.includePad != 0);
  if (p.divisor != 0) { count = p.divisor; }
  y[i] = ${program.dtype}(select(0.0, sum / f32(count), count != 0));`,
  });
}

/** The average-pooling program of a description: its shader key and WGSL. */
export const avgPool2dShader: (program: AvgPool2dProgram) => ShaderProgram = shaderProgram(
  "avg_pool2d",
  avgPool2dWgsl,
);
