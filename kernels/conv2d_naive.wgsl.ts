/**
 * WGSL of the direct conv2d kernel: one thread per output element. It is
 * the reference GPU path and the one depthwise convolutions take.
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
 * What one compiled direct conv2d shader is specialised for. `dtype` is that of input, weight,
 * bias and output.
 */
export interface Conv2dNaiveProgram extends WorkgroupProgram {
  /** Adds a bias (binding 3, output moves to 4). */
  bias: boolean;
  /** Applies ReLU to the result. */
  relu: boolean;
}

/** Field order of the direct conv2d parameters (i32 each). */
export const CONV2D_NAIVE_PARAMS = [
  "total",
  "cIn",
  "h",
  "w",
  "cOut",
  "cInG",
  "cOutG",
  "kH",
  "kW",
  "strideH",
  "strideW",
  "padH",
  "padW",
  "dilH",
  "dilW",
  "hOut",
  "wOut",
] as const;

/**
 * Builds the direct conv2d shader. Bindings: 0 parameters, 1 input
 * `[N, Cin, H, W]`, 2 weight `[Cout, Cin/groups, kH, kW]`, then bias `[Cout]`
 * if `bias`, then output `[N, Cout, Hout, Wout]`. Accumulates in f32.
 *
 * @example
 * ```ts
 * import { conv2dNaiveWgsl } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const code = conv2dNaiveWgsl({ dtype: "f32", workgroupSize: 64, bias: true, relu: true });
 * assert.match(code, /max\(acc, 0\.0\)/);
 * ```
 *
 * @param program element type, workgroup size and epilogue
 * @returns the WGSL source
 */
export function conv2dNaiveWgsl(program: Conv2dNaiveProgram): string {
  const t = program.dtype;
  return makeShader({
    kernel: "conv2d",
    dtype: t,
    params: program.params,
    fields: CONV2D_NAIVE_PARAMS,
    tensors: program.bias ? ["x", "wt", "bias", "y"] : ["x", "wt", "y"],
    workgroupSize: program.workgroupSize,
    index: "thread",
    bound: "p.total",
    body: `  let ow = i % p.wOut;
  var rest = i / p.wOut;
  let oh = rest % p.hOut;
  rest = rest / p.hOut;
  let co = rest % p.cOut;
  let n = rest / p.cOut;
  let g = co / p.cOutG;
  let h0 = oh * p.strideH - p.padH;
  let w0 = ow * p.strideW - p.padW;
  var acc = 0.0;
  for (var ci = 0; ci < p.cInG; ci++) {
    let xc = (n * p.cIn + g * p.cInG + ci) * p.h;
    let wc = (co * p.cInG + ci) * p.kH;
    for (var ky = 0; ky < p.kH; ky++) {
      let ih = h0 + ky * p.dilH;
      if (ih < 0 || ih >= p.h) { continue; }
      let xr = (xc + ih) * p.w;
      let wr = (wc + ky) * p.kW;
      for (var kx = 0; kx < p.kW; kx++) {
        let iw = w0 + kx * p.dilW;
        if (iw < 0 || iw >= p.w) { continue; }
        acc += f32(x[xr + iw]) * f32(wt[wr + kx]);
      }
    }
  }
${program.bias ? "  acc += f32(bias[co]);\n" : ""}${
      program.relu ? "  acc = max(acc, 0.0);\n" : ""
    }  y[i] = ${t}(acc);`,
  });
}

/** The direct conv2d program of a description: its shader key and WGSL. */
export const conv2dNaiveShader: (program: Conv2dNaiveProgram) => ShaderProgram = shaderProgram(
  "conv2d_naive",
  conv2dNaiveWgsl,
);
