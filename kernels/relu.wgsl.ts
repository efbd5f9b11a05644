/**
 * WGSL of the elementwise ReLU kernel.
 *
 * @module
 */

import {
  checkWorkgroupSize,
  type DType,
  enableLine,
  paramsDeclaration,
  type ParamsSpace,
  TENSOR_ACCESS,
} from "./_prelude.ts";

/** What one compiled ReLU shader is specialised for. */
export interface ReluProgram {
  /** Element type of input and output. */
  dtype: DType;
  /** Where the parameters live (default uniform). */
  params?: ParamsSpace;
  /** Elements per thread: 4 loads and stores whole vectors (the count must be a multiple of 4). */
  width: 1 | 4;
  /** Threads per workgroup. */
  workgroupSize: number;
}

/**
 * Builds the ReLU shader. Bindings: 0 uniform `{ count }` (in units of
 * `width` elements), 1 input, 2 output. One thread per unit; the grid is 2-D
 * (see `grid2d`).
 *
 * @example
 * ```ts
 * import { reluWgsl } from "./relu.wgsl.ts";
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
  checkWorkgroupSize("relu", program.workgroupSize);
  const t = program.width === 4 ? `vec4<${program.dtype}>` : program.dtype;
  return `${enableLine(program.dtype)}
struct Params { count: u32 }

${paramsDeclaration(program.params)}
@group(0) @binding(1) var<storage, ${TENSOR_ACCESS}> x: array<${t}>;
@group(0) @binding(2) var<storage, ${TENSOR_ACCESS}> y: array<${t}>;

@compute @workgroup_size(${program.workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * ${program.workgroupSize}u + gid.x;
  if (i >= p.count) { return; }
  y[i] = max(x[i], ${t}(0));
}
`;
}
