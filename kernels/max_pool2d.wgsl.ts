/**
 * WGSL of the 2-D max pooling kernel.
 *
 * @module
 */

import {
  makeShader,
  type ShaderProgram,
  shaderProgram,
  type WorkgroupProgram,
} from "./_prelude.ts";

/** What one compiled max-pooling shader is specialised for. */
export type MaxPool2dProgram = WorkgroupProgram;

/** Field order of the max-pooling parameters (i32 each, then `negInf` as f32). */
export const MAX_POOL2D_PARAMS = [
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
  "dilH",
  "dilW",
] as const;

/**
 * Builds the max-pooling shader: one thread per output element, padding
 * counts as minus infinity (passed as a parameter, since WGSL has no
 * infinite literal), NaN wins as in PyTorch. Bindings: 0 parameters,
 * 1 input, 2 output.
 *
 * @example
 * ```ts
 * import { maxPool2dWgsl } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * assert.match(maxPool2dWgsl({ dtype: "f32", workgroupSize: 256 }), /@workgroup_size\(256\)/);
 * ```
 *
 * @param program element type and workgroup size
 * @returns the WGSL source
 */
export function maxPool2dWgsl(program: MaxPool2dProgram): string {
  return makeShader({
    kernel: "maxPool2d",
    dtype: program.dtype,
    params: program.params,
    fields: MAX_POOL2D_PARAMS,
    f32Fields: ["negInf"],
    tensors: ["x", "y"],
    workgroupSize: program.workgroupSize,
    index: "thread",
    bound: "p.total",
    body: `  let ow = i % p.wOut;
  let rest = i / p.wOut;
  let oh = rest % p.hOut;
  let nc = rest / p.hOut;
  let base = nc * p.h * p.w;
  let h0 = oh * p.strideH - p.padH;
  let w0 = ow * p.strideW - p.padW;
  var best = p.negInf;
  for (var ky = 0; ky < p.kH; ky++) {
    let ih = h0 + ky * p.dilH;
    if (ih < 0 || ih >= p.h) { continue; }
    for (var kx = 0; kx < p.kW; kx++) {
      let iw = w0 + kx * p.dilW;
      if (iw < 0 || iw >= p.w) { continue; }
      let v = f32(x[base + ih * p.w + iw]);
      if (v > best || v != v) { best = v; }
    }
  }
  y[i] = ${program.dtype}(best);`,
  });
}

/** The max-pooling program of a description: its shader key and WGSL. */
export const maxPool2dShader: (program: MaxPool2dProgram) => ShaderProgram = shaderProgram(
  "max_pool2d",
  maxPool2dWgsl,
);
