/**
 * WGSL of the 2-D max pooling kernel.
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

/** What one compiled max-pooling shader is specialised for. */
export interface MaxPool2dProgram {
  /** Element type of input and output. */
  dtype: DType;
  /** Where the parameters live (default uniform). */
  params?: ParamsSpace;
  /** Threads per workgroup. */
  workgroupSize: number;
}

/** Field order of the max-pooling uniform (i32 each, then `negInf` as f32). */
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
 * counts as minus infinity (passed in the uniform, since WGSL has no infinite
 * literal), NaN wins as in PyTorch. Bindings: 0 uniform, 1 input, 2 output.
 *
 * @example
 * ```ts
 * import { maxPool2dWgsl } from "./max_pool2d.wgsl.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(maxPool2dWgsl({ dtype: "f32", workgroupSize: 256 }), /@workgroup_size\(256\)/);
 * ```
 *
 * @param program element type and workgroup size
 * @returns the WGSL source
 */
export function maxPool2dWgsl(program: MaxPool2dProgram): string {
  checkWorkgroupSize("maxPool2d", program.workgroupSize);
  const t = program.dtype;
  return `${enableLine(t)}
struct Params {
${MAX_POOL2D_PARAMS.map((f) => `  ${f}: i32,`).join("\n")}
  negInf: f32,
}

${paramsDeclaration(program.params)}
@group(0) @binding(1) var<storage, ${TENSOR_ACCESS}> x: array<${t}>;
@group(0) @binding(2) var<storage, ${TENSOR_ACCESS}> y: array<${t}>;

@compute @workgroup_size(${program.workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = i32(gid.y * nwg.x * ${program.workgroupSize}u + gid.x);
  if (i >= p.total) { return; }
  let ow = i % p.wOut;
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
  y[i] = ${t}(best);
}
`;
}
