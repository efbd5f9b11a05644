/**
 * WGSL of the kernel that reorders conv2d weights for the tiled kernel.
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

/** What one compiled weight-packing shader is specialised for. */
export interface Conv2dPackWeightsProgram {
  /** Element type of the weights. */
  dtype: DType;
  /** Where the parameters live (default uniform). */
  params?: ParamsSpace;
  /** Threads per workgroup. */
  workgroupSize: number;
}

/** Field order of the weight-packing uniform (i32 each). */
export const CONV2D_PACK_WEIGHTS_PARAMS = ["total", "cInG", "cOutG", "kHW"] as const;

/**
 * Builds the weight-packing shader. It rewrites `[Cout, Cin/g, kH, kW]` as
 * `[groups, kH*kW, Cin/g, Cout/g]`, the tiled kernel's K-by-N operand:
 * a tile row (one tap, one input channel) is then contiguous across output
 * channels, so the tile loads coalesce. Bindings: 0 uniform, 1 weight,
 * 2 packed output.
 *
 * @example
 * ```ts
 * import { conv2dPackWeightsWgsl } from "./conv2d_pack_weights.wgsl.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(conv2dPackWeightsWgsl({ dtype: "f32", workgroupSize: 256 }), /packed/);
 * ```
 *
 * @param program element type and workgroup size
 * @returns the WGSL source
 */
export function conv2dPackWeightsWgsl(program: Conv2dPackWeightsProgram): string {
  checkWorkgroupSize("conv2d weight packing", program.workgroupSize);
  const t = program.dtype;
  return `${enableLine(t)}
struct Params {
${CONV2D_PACK_WEIGHTS_PARAMS.map((f) => `  ${f}: i32,`).join("\n")}
}

${paramsDeclaration(program.params)}
@group(0) @binding(1) var<storage, ${TENSOR_ACCESS}> wt: array<${t}>;
@group(0) @binding(2) var<storage, ${TENSOR_ACCESS}> packed: array<${t}>;

@compute @workgroup_size(${program.workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = i32(gid.y * nwg.x * ${program.workgroupSize}u + gid.x);
  if (i >= p.total) { return; }
  let tap = i % p.kHW;
  var rest = i / p.kHW;
  let ci = rest % p.cInG;
  let co = rest / p.cInG;
  let g = co / p.cOutG;
  let col = co - g * p.cOutG;
  packed[((g * p.kHW + tap) * p.cInG + ci) * p.cOutG + col] = wt[i];
}
`;
}
