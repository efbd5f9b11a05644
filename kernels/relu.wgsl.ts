/**
 * WGSL of the elementwise ReLU kernel.
 *
 * @module
 */

import {
  makeShader,
  type ShaderProgram,
  shaderProgram,
  type WorkgroupProgram,
} from "./_prelude.ts";

/** What one compiled ReLU shader is specialised for. */
export interface ReluProgram extends WorkgroupProgram {
  /** Elements per thread: 4 loads and stores whole vectors (the count must be a multiple of 4). */
  width: 1 | 4;
}

/** Field order of the ReLU parameters (i32 each): `total` in units of `width` elements. */
export const RELU_PARAMS = ["total"] as const;

/**
 * Builds the ReLU shader. Bindings: 0 parameters, 1 input, 2 output. One
 * thread per unit of `width` elements.
 *
 * @example
 * ```ts
 * import { reluWgsl } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const code = reluWgsl({ dtype: "f32", width: 4, workgroupSize: 256 });
 * assert.match(code, /vec4<f32>/);
 * ```
 *
 * @param program element type, vector width and workgroup size
 * @returns the WGSL source
 */
export function reluWgsl(program: ReluProgram): string {
  const t = program.width === 4 ? `vec4<${program.dtype}>` : program.dtype;
  return makeShader({
    kernel: "relu",
    dtype: program.dtype,
    params: program.params,
    fields: RELU_PARAMS,
    tensors: [{ name: "x", type: t }, { name: "y", type: t }],
    workgroupSize: program.workgroupSize,
    index: "thread",
    bound: "p.total",
    body: `  y[i] = max(x[i], ${t}(0));`,
  });
}

/** The ReLU program of a description: its shader key and WGSL. */
export const reluShader: (program: ReluProgram) => ShaderProgram = shaderProgram("relu", reluWgsl);
