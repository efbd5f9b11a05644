/**
 * WGSL of the tiled conv2d kernel: an implicit GEMM with workgroup-memory
 * tiles and a register micro-tile per thread.
 *
 * The product is `Y[m, n] = sum_k A[m, k] * B[k, n]` with
 * `m = (batch, oh, ow)` (M = N*Hout*Wout), `n` = output channel of the group
 * (N = Cout/groups) and `k = (tap, ci)` (K = kH*kW*Cin/groups). `A` is never
 * built: each thread gathers its column of the input tile straight from the
 * NCHW input. `B` is the weight packed as `[groups, kH*kW, Cin/g, Cout/g]`
 * (see `conv2d_pack_weights.wgsl.ts`).
 *
 * K runs tap by tap, and within a tap over slices of `tileK` input channels:
 * the padding test and the input offset then change once per tap, not once
 * per element. The next slice is loaded into registers while the current
 * one is multiplied out of workgroup memory.
 *
 * @module
 */

import { formatShape } from "./_geometry.ts";
import { type KernelProgram, makeShader, type ShaderProgram, shaderProgram } from "./_prelude.ts";

/**
 * What one compiled tiled conv2d shader is specialised for. `dtype` is that of input, weight, bias
 * and output (products accumulate in f32).
 */
export interface Conv2dTiledProgram extends KernelProgram {
  /** Output pixels (rows of the GEMM) per workgroup. */
  tileM: number;
  /** Output channels (columns of the GEMM) per workgroup. */
  tileN: number;
  /** Input channels of one tap per step of the reduction. */
  tileK: number;
  /** Output pixels per thread, a multiple of 4. */
  threadM: number;
  /** Output channels per thread, a multiple of 4. */
  threadN: number;
  /** Adds a bias (binding 3, output moves to 4). */
  bias: boolean;
  /** Applies ReLU to the result. */
  relu: boolean;
  /** Stores 4 pixels as one vector; needs `Hout*Wout % 4 == 0`. */
  vectorStore: boolean;
  /**
   * f16 products (f16 tensors only): the tiles are kept as f16 and each
   * step's `tileK` products summed in f16, then added to f32 accumulators.
   * Off by default: on an H200 the pipeline gained at most 3% (1.20 ms
   * against 1.24) for 1.5x the error.
   */
  half?: boolean;
  /**
   * Unrolls the multiply over `tileK` in the WGSL (default true). A loop
   * compiles much faster on software adapters, which is all it is for.
   */
  unroll?: boolean;
}

/** Field order of the tiled conv2d parameters (i32 each). */
export const CONV2D_TILED_PARAMS = [
  "m",
  "cIn",
  "h",
  "w",
  "cInG",
  "cOutG",
  "cOut",
  "kW",
  "kHW",
  "strideH",
  "strideW",
  "padH",
  "padW",
  "dilH",
  "dilW",
  "hOut",
  "wOut",
  "numK",
  "mTiles",
  "nTiles",
] as const;

/** Threads per workgroup of a tiled program. */
export function conv2dTiledThreads(program: Conv2dTiledProgram): number {
  return (program.tileM / program.threadM) * (program.tileN / program.threadN);
}

/** Bytes of workgroup memory a tiled program uses. */
export function conv2dTiledWorkgroupBytes(program: Conv2dTiledProgram): number {
  return program.tileK * (program.tileM + program.tileN) * 4;
}

/**
 * Checks that the tile sizes fit together; returns an error message, or null
 * when they do.
 */
export function conv2dTiledProblem(p: Conv2dTiledProgram): string | null {
  const sizes = [p.tileM, p.tileN, p.tileK, p.threadM, p.threadN];
  if (!sizes.every((v) => Number.isInteger(v) && v > 0)) {
    return `tile sizes must be positive integers, got ${formatShape(sizes)}`;
  }
  if (p.threadM % 4 !== 0 || p.threadN % 4 !== 0) {
    return `threadM and threadN must be multiples of 4, got ${p.threadM} and ${p.threadN}`;
  }
  if (p.tileM % p.threadM !== 0 || p.tileN % p.threadN !== 0) {
    return `tileM, tileN must be multiples of threadM, threadN, got ${p.tileM}x${p.tileN} and ${p.threadM}x${p.threadN}`;
  }
  const threads = conv2dTiledThreads(p);
  if (threads % p.tileM !== 0 || threads % p.tileN !== 0) {
    // Each thread loads one fixed column of each tile, so the threads must
    // cover whole rows of both.
    return `the ${threads} threads must be a multiple of tileM ${p.tileM} and tileN ${p.tileN}`;
  }
  if ((p.tileK * p.tileM) % threads !== 0 || (p.tileK * p.tileN) % threads !== 0) {
    return `tileK ${p.tileK} times tileM and tileN must be multiples of the ${threads} threads`;
  }
  if (p.half && p.dtype !== "f16") return `f16 products need dtype f16, got ${p.dtype}`;
  return null;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * Builds the tiled conv2d shader. Bindings: 0 parameters, 1 input
 * `[N, Cin, H, W]`, 2 packed weight, then bias `[Cout]` if `bias`, then output
 * `[N, Cout, Hout, Wout]` (as `vec4`s with `vectorStore`). Dispatch
 * `mTiles * nTiles` workgroups over x and y (see `grid2d`) and `groups`
 * along z.
 *
 * @example
 * ```ts
 * import { conv2dTiledWgsl } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const code = conv2dTiledWgsl({
 *   dtype: "f32", tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 4,
 *   bias: true, relu: true, vectorStore: true,
 * });
 * assert.match(code, /@workgroup_size\(256\)/);
 * ```
 *
 * @param program tile sizes, element type and epilogue
 * @returns the WGSL source
 */
export function conv2dTiledWgsl(program: Conv2dTiledProgram): string {
  const problem = conv2dTiledProblem(program);
  if (problem) throw new RangeError(`Cannot build conv2d tiled kernel: ${problem}`);
  const { dtype: t, tileM: TM, tileN: TN, tileK: TK } = program;
  const wgM = TM / program.threadM;
  const wgN = TN / program.threadN;
  const rm = program.threadM / 4;
  const rn = program.threadN / 4;
  const threads = wgM * wgN;
  const loadsA = (TK * TM) / threads;
  const loadsB = (TK * TN) / threads;
  const stepA = threads / TM;
  const stepB = threads / TN;
  const yType = program.vectorStore ? `vec4<${t}>` : t;
  // acc_qm_j holds 4 pixels (vec4 along M) of column j of this thread.
  const accs = range(rm).flatMap((qm) => range(program.threadN).map((j) => `acc_${qm}_${j}`));
  // The products' element type; with f16 products each step's sums go to hacc_qm_j first.
  const half = program.half === true;
  const pt = half ? "f16" : "f32";
  const h = half ? "h" : "";
  const columns = range(rn).flatMap((qn) => range(4).map((e) => ({ qn, e, j: qn * 4 + e })));

  const load = [
    `let rowA = aOff + (ci0 + aR) * hw;`,
    ...range(loadsA).map((i) =>
      `let okA${i} = aOk && ci0 + aR + ${i * stepA} < p.cInG;
      ra${i} = select(${pt}(0.0), ${pt}(x[select(0, rowA + ${i * stepA} * hw, okA${i})]), okA${i});`
    ),
    `let rowB = wBase + (tap * p.cInG + ci0 + bR) * p.cOutG;`,
    ...range(loadsB).map((j) =>
      `let okB${j} = bOk && ci0 + bR + ${j * stepB} < p.cInG;
      rb${j} = select(${pt}(0.0), ${pt}(wt[select(0, rowB + ${
        j * stepB
      } * p.cOutG, okB${j})]), okB${j});`
    ),
  ].join("\n      ");
  const store = [
    ...range(loadsA).map((i) => `tileA[aStore + ${(i * stepA * TM) / 4}][aComp] = ra${i};`),
    ...range(loadsB).map((j) => `tileB[bStore + ${(j * stepB * TN) / 4}][bComp] = rb${j};`),
  ].join("\n      ");
  const multiply = (k: string, s: string) =>
    [
      ...range(rm).map((qm) => `let a${s}_${qm} = tileA[${k} * ${TM / 4} + ${qm * wgM} + tx];`),
      ...range(rn).map((qn) => `let b${s}_${qn} = tileB[${k} * ${TN / 4} + ${qn * wgN} + ty];`),
      ...range(rm).flatMap((qm) =>
        columns.map(({ qn, e, j }) =>
          `${h}acc_${qm}_${j} = fma(a${s}_${qm}, vec4<${pt}>(b${s}_${qn}[${e}]), ${h}acc_${qm}_${j});`
        )
      ),
    ].join("\n      ");
  const compute = program.unroll === false
    ? `for (var k = 0; k < ${TK}; k++) {
      ${multiply("k", "")}
      }`
    : range(TK).map((k) => multiply(String(k), String(k))).join("\n      ");
  const flush = half
    ? accs.map((a) => `${a} += vec4<f32>(h${a});\n      h${a} = vec4<f16>(0.0);`).join(
      "\n      ",
    )
    : "";
  const biasLoad = program.bias
    ? columns.map(({ qn, e, j }) =>
      `let co${j} = n0 + ${4 * qn * wgN + e} + 4 * ty;
  let bias${j} = select(0.0, f32(bias[g * p.cOutG + min(co${j}, p.cOutG - 1)]), co${j} < p.cOutG);`
    ).join("\n  ")
    : columns.map(({ qn, e, j }) => `let co${j} = n0 + ${4 * qn * wgN + e} + 4 * ty;`).join(
      "\n  ",
    );
  const epilogueValue = (acc: string, j: number, zero: string) => {
    let v = acc;
    if (program.bias) v = `${v} + bias${j}`;
    if (program.relu) v = `max(${v}, ${zero})`;
    return v;
  };
  const epilogue = range(rm).map((qm) => {
    const head = `let mb${qm} = m0 + ${4 * qm * wgM} + 4 * tx;`;
    if (program.vectorStore) {
      // Hout*Wout % 4 == 0: the 4 pixels share an image and a 16-byte slot.
      return `${head}
  if (mb${qm} < p.m) {
    let img = mb${qm} / hwOut;
    let yBase = (img * p.cOut + g * p.cOutG) * hwOut + mb${qm} - img * hwOut;
${
        columns.map(({ j }) =>
          `    if (co${j} < p.cOutG) { y[(yBase + co${j} * hwOut) / 4] = ${yType}(${
            epilogueValue(`acc_${qm}_${j}`, j, "vec4<f32>(0.0)")
          }); }`
        ).join("\n")
      }
  }`;
    }
    return `${head}
${
      range(4).map((e) =>
        `  if (mb${qm} + ${e} < p.m) {
    let m = mb${qm} + ${e};
    let img = m / hwOut;
    let yBase = (img * p.cOut + g * p.cOutG) * hwOut + m - img * hwOut;
${
          columns.map(({ j }) =>
            `    if (co${j} < p.cOutG) { y[yBase + co${j} * hwOut] = ${t}(${
              epilogueValue(`acc_${qm}_${j}[${e}]`, j, "0.0")
            }); }`
          ).join("\n")
        }
  }`
      ).join("\n")
    }`;
  }).join("\n  ");

  return makeShader({
    kernel: "conv2d tiled kernel",
    dtype: t,
    params: program.params,
    fields: CONV2D_TILED_PARAMS,
    tensors: ["x", "wt", ...(program.bias ? ["bias"] : []), { name: "y", type: yType }],
    workgroupSize: threads,
    index: "workgroup",
    bound: "p.mTiles * p.nTiles",
    declarations: `// tileA[k][m] and tileB[k][n] as vec4 rows: a thread reads its 4 pixels or
// 4 channels in one load, and neighbouring threads read neighbouring vectors.
var<workgroup> tileA: array<vec4<${pt}>, ${(TK * TM) / 4}>;
var<workgroup> tileB: array<vec4<${pt}>, ${(TK * TN) / 4}>;`,
    body: `  let g = i32(wid.z);
  // Neighbouring workgroups share the input tile (same m0) when nTiles > 1.
  let m0 = (tile / p.nTiles) * ${TM};
  let n0 = (tile % p.nTiles) * ${TN};
  let hw = p.h * p.w;
  let hwOut = p.hOut * p.wOut;

  // The pixel whose column of A this thread loads, for every step.
  let aM = tid % ${TM};
  let aR = tid / ${TM};
  let am = m0 + aM;
  let amOk = am < p.m;
  let aImg = am / hwOut;
  let aPix = am - aImg * hwOut;
  let aOh = aPix / p.wOut;
  let ih0 = aOh * p.strideH - p.padH;
  let iw0 = (aPix - aOh * p.wOut) * p.strideW - p.padW;
  let xBase = (aImg * p.cIn + g * p.cInG) * hw;
  let aStore = aR * ${TM / 4} + aM / 4;
  let aComp = aM % 4;

  // The output channel whose column of B this thread loads.
  let bN = tid % ${TN};
  let bR = tid / ${TN};
  let bOk = n0 + bN < p.cOutG;
  let wBase = g * p.kHW * p.cInG * p.cOutG + n0 + bN;
  let bStore = bR * ${TN / 4} + bN / 4;
  let bComp = bN % 4;

  // The micro-tile this thread computes.
  let tx = tid % ${wgM};
  let ty = tid / ${wgM};

  var ci0 = 0;
  var tap = 0;
  var ky = 0;
  var kx = 0;
  var aOk = amOk && ih0 >= 0 && ih0 < p.h && iw0 >= 0 && iw0 < p.w;
  var aOff = xBase + ih0 * p.w + iw0;
${range(loadsA).map((i) => `  var ra${i}: ${pt};`).join("\n")}
${range(loadsB).map((j) => `  var rb${j}: ${pt};`).join("\n")}
${accs.map((a) => `  var ${a} = vec4<f32>(0.0);`).join("\n")}
${half ? accs.map((a) => `  var h${a} = vec4<f16>(0.0);`).join("\n") : ""}

  {
      ${load}
      ${store}
  }
  workgroupBarrier();
  for (var step = 1; step <= p.numK; step++) {
    let more = step < p.numK;
    if (more) {
      ci0 += ${TK};
      if (ci0 >= p.cInG) {
        ci0 = 0;
        tap += 1;
        kx += 1;
        if (kx == p.kW) {
          kx = 0;
          ky += 1;
        }
        let ih = ih0 + ky * p.dilH;
        let iw = iw0 + kx * p.dilW;
        aOk = amOk && ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
        aOff = xBase + ih * p.w + iw;
      }
      ${load}
    }
    {
      ${compute}
      ${flush}
    }
    workgroupBarrier();
    if (more) {
      ${store}
    }
    workgroupBarrier();
  }

  ${biasLoad}
  ${epilogue}`,
  });
}

/** The tiled conv2d program of a description: its shader key and WGSL. */
export const conv2dTiledShader: (program: Conv2dTiledProgram) => ShaderProgram = shaderProgram(
  "conv2d_tiled",
  conv2dTiledWgsl,
);
