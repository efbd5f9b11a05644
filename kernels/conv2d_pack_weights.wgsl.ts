/**
 * WGSL of the kernel that reorders conv2d weights for the tiled kernel.
 *
 * @module
 */

import {
  makeShader,
  type ShaderProgram,
  shaderProgram,
  type WorkgroupProgram,
} from "./_prelude.ts";

/**
 * What one compiled weight-packing shader is specialised for. `dtype` is that of the weights.
 */
export type Conv2dPackWeightsProgram = WorkgroupProgram;

/** Field order of the weight-packing parameters (i32 each). */
export const CONV2D_PACK_WEIGHTS_PARAMS = ["total", "cInG", "cOutG", "kHW"] as const;

/**
 * Builds the weight-packing shader. It rewrites `[Cout, Cin/g, kH, kW]` as
 * `[groups, kH*kW, Cin/g, Cout/g]`, the tiled kernel's K-by-N operand:
 * a tile row (one tap, one input channel) is then contiguous across output
 * channels, so the tile loads coalesce. Bindings: 0 parameters, 1 weight,
 * 2 packed output.
 *
 * @example
 * ```ts
 * import { conv2dPackWeightsWgsl } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * assert.match(conv2dPackWeightsWgsl({ dtype: "f32", workgroupSize: 256 }), /packed/);
 * ```
 *
 * @param program element type and workgroup size
 * @returns the WGSL source
 */
export function conv2dPackWeightsWgsl(program: Conv2dPackWeightsProgram): string {
  return makeShader({
    kernel: "conv2d weight packing",
    dtype: program.dtype,
    params: program.params,
    fields: CONV2D_PACK_WEIGHTS_PARAMS,
    tensors: ["wt", "packed"],
    workgroupSize: program.workgroupSize,
    index: "thread",
    bound: "p.total",
    body: `  let tap = i % p.kHW;
  var rest = i / p.kHW;
  let ci = rest % p.cInG;
  let co = rest / p.cInG;
  let g = co / p.cOutG;
  let col = co - g * p.cOutG;
  packed[((g * p.kHW + tap) * p.cInG + ci) * p.cOutG + col] = wt[i];`,
  });
}

/** The weight-packing program of a description: its shader key and WGSL. */
export const conv2dPackWeightsShader: (program: Conv2dPackWeightsProgram) => ShaderProgram =
  shaderProgram(
    "conv2d_pack_weights",
    conv2dPackWeightsWgsl,
  );
