/**
 * WGSL of the Winograd F(2x2, 3x3) conv2d kernel (3x3 filters, stride 1,
 * dilation 1): each 2x2 block of outputs comes from a 4x4 block of inputs
 * with 16 multiplies per input channel instead of 36.
 *
 * With `d` a 4x4 input block, `g` a 3x3 filter and the transforms
 * `V = Bᵀ d B`, `U = G g Gᵀ`, the 2x2 outputs are `Aᵀ (Σ_ci U ⊙ V) A`.
 * For each of the 16 positions ξ of the 4x4 transformed block, the sum over
 * input channels is a matrix product `M_ξ[tile, co] = Σ_ci V_ξ[tile, ci] ·
 * U_ξ[ci, co]`: the kernel computes the 16 products of a block of `tiles`
 * 2x2 tiles by `tileN` output channels together, 16 threads per product,
 * each a register micro-tile as in the tiled kernel. Input blocks are
 * transformed on their way into workgroup memory; `U` is transformed once
 * per call by the weight-transform kernel, in f32 whatever the dtype. At the
 * end the 16 products meet in workgroup memory, and each thread turns one
 * tile's 16 values into its 2x2 outputs, adds the bias, applies ReLU, and
 * either stores the 2x2 block or pools it (max or average) to the one value
 * a 2x2 stride-2 pool makes of it.
 *
 * The transforms' coefficients are 0, ±1 and ±1/2, so the products and sums
 * in f32 stay within a few roundings of the direct convolution's.
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

/** What to do with each 2x2 output block. */
export type WinogradPool = "none" | "max" | "avg";

/** What one compiled Winograd conv2d shader is specialised for. */
export interface Conv2dWinogradProgram {
  /** Element type of input, bias and output (all arithmetic in f32). */
  dtype: DType;
  /** Where the parameters live (default uniform). */
  params?: ParamsSpace;
  /** 2x2 output tiles per workgroup (rows of each product). */
  tiles: number;
  /** Output channels per workgroup. */
  tileN: number;
  /** Input channels per step of the reduction. */
  tileK: number;
  /** Tiles per thread, a multiple of 4. */
  threadM: number;
  /** Output channels per thread, a multiple of 4. */
  threadN: number;
  /** Adds a bias (binding 3, output moves to 4). */
  bias: boolean;
  /** Applies ReLU to the result. */
  relu: boolean;
  /** Stores each 2x2 block, or its max or average (a fused 2x2 stride-2 pool). */
  pool: WinogradPool;
}

/** Threads per workgroup of every Winograd program: 16 per transformed position. */
export const WINOGRAD_THREADS = 256;

/** Field order of the Winograd conv2d uniform (i32 each). */
export const CONV2D_WINOGRAD_PARAMS = [
  "cIn",
  "h",
  "w",
  "cInG",
  "cOutG",
  "cOut",
  "padH",
  "padW",
  "hOut",
  "wOut",
  "tilesH",
  "tilesW",
  "tiles",
  "mTiles",
  "nTiles",
  "steps",
] as const;

/** Field order of the weight-transform uniform (i32 each). */
export const CONV2D_WINOGRAD_WEIGHTS_PARAMS = ["total", "cInG", "cOutG"] as const;

/** Floats of workgroup memory a program uses. */
function sharedFloats(p: Conv2dWinogradProgram): number {
  const step = 16 * p.tileK * (p.tiles + p.tileN);
  const exchange = 16 * p.tiles * 4 * (p.tileN / p.threadN);
  return Math.max(step, exchange);
}

/** Bytes of workgroup memory a Winograd program uses. */
export function conv2dWinogradWorkgroupBytes(program: Conv2dWinogradProgram): number {
  return sharedFloats(program) * 4;
}

/**
 * Checks that the tile sizes fit together; returns an error message, or null
 * when they do.
 */
export function conv2dWinogradProblem(p: Conv2dWinogradProgram): string | null {
  const sizes = [p.tiles, p.tileN, p.tileK, p.threadM, p.threadN];
  if (!sizes.every((v) => Number.isInteger(v) && v > 0)) {
    return `tile sizes must be positive integers, got ${JSON.stringify(sizes)}`;
  }
  if (p.threadM % 4 !== 0 || p.threadN % 4 !== 0) {
    return `threadM and threadN must be multiples of 4, got ${p.threadM} and ${p.threadN}`;
  }
  if (p.tiles % p.threadM !== 0 || p.tileN % p.threadN !== 0) {
    return `tiles, tileN must be multiples of threadM, threadN, got ${p.tiles}x${p.tileN} and ${p.threadM}x${p.threadN}`;
  }
  if ((p.tiles / p.threadM) * (p.tileN / p.threadN) !== 16) {
    return `each of the 16 products takes 16 threads: (tiles/threadM)*(tileN/threadN) must be 16, got ${
      (p.tiles / p.threadM) * (p.tileN / p.threadN)
    }`;
  }
  const T = WINOGRAD_THREADS;
  if ((p.tiles * p.tileK) % T !== 0 && T % (p.tiles * p.tileK) !== 0) {
    return `tiles*tileK (${p.tiles * p.tileK}) must divide or be a multiple of ${T}`;
  }
  if ((16 * p.tileK * p.tileN) % T !== 0 || T % p.tileN !== 0) {
    return `tileN ${p.tileN} must divide ${T}, and 16*tileK*tileN be a multiple of it`;
  }
  const pairs = p.tiles * 4 * (p.tileN / p.threadN);
  if (pairs % T !== 0 && T % pairs !== 0) {
    return `tiles*4*(tileN/threadN) (${pairs}) must divide or be a multiple of ${T}`;
  }
  if (p.pool !== "none" && p.pool !== "max" && p.pool !== "avg") {
    return `pool must be "none", "max" or "avg", got ${JSON.stringify(p.pool)}`;
  }
  return null;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * Builds the weight-transform shader: `U = G g Gᵀ` of every 3x3 filter, as
 * f32 `[groups, 16, Cin/g, Cout/g]` (output channels contiguous, so the
 * conv kernel's loads coalesce). One thread per (group, input channel,
 * output channel). Bindings: 0 uniform, 1 weight `[Cout, Cin/g, 3, 3]`,
 * 2 transformed output.
 *
 * @example
 * ```ts
 * import { conv2dWinogradWeightsWgsl } from "./conv2d_winograd.wgsl.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(conv2dWinogradWeightsWgsl({ dtype: "f32", workgroupSize: 256 }), /array<f32>/);
 * ```
 *
 * @param program element type of the weights and workgroup size
 * @returns the WGSL source
 */
export function conv2dWinogradWeightsWgsl(
  program: { dtype: DType; params?: ParamsSpace; workgroupSize: number },
): string {
  checkWorkgroupSize("conv2d Winograd weight transform", program.workgroupSize);
  const t = program.dtype;
  // tmp = G g (4x3), then U = tmp Gᵀ (4x4).
  const rowsOfG = (r: (k: number) => string) => [
    r(0),
    `0.5 * (${r(0)} + ${r(1)} + ${r(2)})`,
    `0.5 * (${r(0)} - ${r(1)} + ${r(2)})`,
    r(2),
  ];
  const tmp = rowsOfG((k) => `g${k}`);
  const u = tmp.flatMap((_, i) => rowsOfG((k) => `t${i}[${k}]`));
  return `${enableLine(t)}
struct Params {
${CONV2D_WINOGRAD_WEIGHTS_PARAMS.map((f) => `  ${f}: i32,`).join("\n")}
}

${paramsDeclaration(program.params)}
@group(0) @binding(1) var<storage, ${TENSOR_ACCESS}> wt: array<${t}>;
@group(0) @binding(2) var<storage, ${TENSOR_ACCESS}> u: array<f32>;

@compute @workgroup_size(${program.workgroupSize})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = i32(gid.y * nwg.x * ${program.workgroupSize}u + gid.x);
  if (i >= p.total) { return; }
  // i = (g * cInG + ci) * cOutG + col: consecutive threads write consecutive channels.
  let col = i % p.cOutG;
  let rest = i / p.cOutG;
  let ci = rest % p.cInG;
  let g = rest / p.cInG;
  let src = ((g * p.cOutG + col) * p.cInG + ci) * 9;
${range(3).map((k) => `  let g${k} = vec3<f32>(${range(3).map((c) => `f32(wt[src + ${k * 3 + c}])`).join(", ")});`).join("\n")}
${tmp.map((e, i) => `  let t${i} = ${e};`).join("\n")}
  let stride = p.cInG * p.cOutG;
  let dst = (g * 16 * p.cInG + ci) * p.cOutG + col;
${u.map((e, xi) => `  u[dst + ${xi} * stride] = ${e};`).join("\n")}
}
`;
}

/**
 * Builds the Winograd conv2d shader. Bindings: 0 uniform, 1 input
 * `[N, Cin, H, W]`, 2 transformed weights (from
 * {@linkcode conv2dWinogradWeightsWgsl}), then bias `[Cout]` if `bias`, then
 * output `[N, Cout, Hout, Wout]`, or `[N, Cout, tilesH, tilesW]` when
 * pooling. Dispatch `mTiles * nTiles` workgroups over x and y (see `grid2d`)
 * and `groups` along z.
 *
 * @example
 * ```ts
 * import { conv2dWinogradWgsl } from "./conv2d_winograd.wgsl.ts";
 * import assert from "node:assert/strict";
 *
 * const code = conv2dWinogradWgsl({
 *   dtype: "f32", tiles: 32, tileN: 32, tileK: 8, threadM: 8, threadN: 8,
 *   bias: true, relu: true, pool: "max",
 * });
 * assert.match(code, /@workgroup_size\(256\)/);
 * ```
 *
 * @param program tile sizes, element type and epilogue
 * @returns the WGSL source
 */
export function conv2dWinogradWgsl(program: Conv2dWinogradProgram): string {
  const problem = conv2dWinogradProblem(program);
  if (problem) throw new RangeError(`Cannot build conv2d Winograd kernel: ${problem}`);
  const { dtype: t, tiles: TT, tileN: TN, tileK: TK } = program;
  const THREADS = WINOGRAD_THREADS;
  const wgM = TT / program.threadM;
  const wgN = TN / program.threadN;
  const rm = program.threadM / 4;
  const rn = program.threadN / 4;
  const out = program.bias ? 4 : 3;
  const patches = TT * TK;
  const patchRounds = Math.max(1, patches / THREADS);
  const uLoads = (16 * TK * TN) / THREADS;
  const uStep = THREADS / TN;
  const pairs = TT * 4 * wgN;
  const pairRounds = Math.max(1, pairs / THREADS);
  const vBase = 0;
  const uBase = (16 * TK * TT) / 4;
  const columns = (qn: number) => range(4).map((e) => qn * 4 + e);
  const accs = range(rm).flatMap((qm) => range(program.threadN).map((j) => `acc_${qm}_${j}`));

  // Bᵀ d B of the 4x4 block d{r}{c}, written to the 16 positions.
  const dd = (r: number, c: number) => `d${r}${c}`;
  const colT = (c: number) => [
    `${dd(0, c)} - ${dd(2, c)}`,
    `${dd(1, c)} + ${dd(2, c)}`,
    `${dd(2, c)} - ${dd(1, c)}`,
    `${dd(1, c)} - ${dd(3, c)}`,
  ];
  const inputTransform = [
    ...range(4).flatMap((c) => colT(c).map((e, r) => `let r${r}${c} = ${e};`)),
    ...range(4).flatMap((r) => {
      const v = [
        `r${r}0 - r${r}2`,
        `r${r}1 + r${r}2`,
        `r${r}2 - r${r}1`,
        `r${r}1 - r${r}3`,
      ];
      return v.map((e, c) =>
        `shv[${vBase} + (${r * 4 + c} * ${TK} + k) * ${TT / 4} + tl / 4][tl % 4] = ${e};`
      );
    }),
  ];

  const patchLoad = range(patchRounds).map((round) => {
    const guard = patches < THREADS ? `if (lid < ${patches}) ` : "";
    return `${guard}{
      let pid = lid + ${round * THREADS};
      let tl = pid % ${TT};
      let k = pid / ${TT};
      let ci = ci0 + k;
      let ok = pOk[${round}] && ci < p.cInG;
      let base = pBase[${round}] + ci * hw;
${
      range(4).flatMap((r) =>
        range(4).map((c) =>
          `      let o${r}${c} = ok && pRow[${round}][${r}] && pCol[${round}][${c}];
      let d${r}${c} = select(0.0, f32(x[select(0, base + ${r} * p.w + ${c}, o${r}${c})]), o${r}${c});`
        )
      ).join("\n")
    }
      ${inputTransform.join("\n      ")}
    }`;
  }).join("\n    ");

  const uLoad = range(uLoads).map((i) =>
    `{
      let pair = uRow + ${i * uStep};
      let xi = pair / ${TK};
      let k = pair % ${TK};
      let ci = ci0 + k;
      let ok = uOk && ci < p.cInG;
      shv[${uBase} + pair * ${TN / 4} + uCol / 4][uCol % 4] =
        select(0.0, u[select(0, uBase0 + (xi * p.cInG + ci) * p.cOutG, ok)], ok);
    }`
  ).join("\n    ");

  const multiply = range(TK).map((k) =>
    [
      ...range(rm).map((qm) =>
        `let a${k}_${qm} = shv[${vBase} + (xi * ${TK} + ${k}) * ${TT / 4} + ${qm * wgM} + tx];`
      ),
      ...range(rn).map((qn) =>
        `let b${k}_${qn} = shv[${uBase} + (xi * ${TK} + ${k}) * ${TN / 4} + ${qn * wgN} + ty];`
      ),
      ...range(rm).flatMap((qm) =>
        range(rn).flatMap((qn) =>
          columns(qn).map((j, e) =>
            `acc_${qm}_${j} = fma(a${k}_${qm}, vec4<f32>(b${k}_${qn}[${e}]), acc_${qm}_${j});`
          )
        )
      ),
    ].join("\n      ")
  ).join("\n      ");

  // Aᵀ M A of the 16 values m{r}{c}: the 2x2 block o{r}{c}.
  const outputTransform = [
    ...range(4).map((c) => `let s0${c} = m0${c} + m1${c} + m2${c};`),
    ...range(4).map((c) => `let s1${c} = m1${c} - m2${c} - m3${c};`),
    ...range(2).flatMap((r) => [
      `var o${r}0 = s${r}0 + s${r}1 + s${r}2;`,
      `var o${r}1 = s${r}1 - s${r}2 - s${r}3;`,
    ]),
  ];
  const finish = (v: string) => {
    let e = program.bias ? `${v} + b` : v;
    if (program.relu) e = `max(${e}, 0.0)`;
    return e;
  };
  const epilogueStore = program.pool === "none"
    ? `let yBase = ((img * p.cOut + g * p.cOutG + co) * p.hOut + oh) * p.wOut + ow;
        let right = ow + 1 < p.wOut;
        y[yBase] = ${t}(${finish("o00")});
        if (right) { y[yBase + 1] = ${t}(${finish("o01")}); }
        if (oh + 1 < p.hOut) {
          y[yBase + p.wOut] = ${t}(${finish("o10")});
          if (right) { y[yBase + p.wOut + 1] = ${t}(${finish("o11")}); }
        }`
    : `let yIndex = ((img * p.cOut + g * p.cOutG + co) * p.tilesH + tr) * p.tilesW + tc;
        y[yIndex] = ${t}(${
      program.pool === "max"
        ? `max(max(${finish("o00")}, ${finish("o01")}), max(${finish("o10")}, ${finish("o11")}))`
        : `0.25 * ((${finish("o00")} + ${finish("o01")}) + (${finish("o10")} + ${finish("o11")}))`
    });`;

  const exchange = (qn: number) =>
    range(rm).flatMap((qm) =>
      columns(qn).map((j, e) =>
        `shv[(xi * ${4 * wgN} + ${e} + 4 * ty) * ${TT / 4} + ${qm * wgM} + tx] = acc_${qm}_${j};`
      )
    ).join("\n    ");

  const outputPass = (qn: number) =>
    range(pairRounds).map((round) => {
      const guard = pairs < THREADS ? `if (lid < ${pairs}) ` : "";
      return `${guard}{
      let pid = lid + ${round * THREADS};
      let tl = pid % ${TT};
      let cl = pid / ${TT};
      let tile = m0 + tl;
      let co = n0 + ${4 * qn * wgN} + cl;
      if (tile < p.tiles && co < p.cOutG) {
${
        range(4).flatMap((r) =>
          range(4).map((c) =>
            `        let m${r}${c} = shv[(${r * 4 + c} * ${4 * wgN} + cl) * ${TT / 4} + tl / 4][tl % 4];`
          )
        ).join("\n")
      }
        ${outputTransform.join("\n        ")}
        let img = tile / tilesHW;
        let rest = tile - img * tilesHW;
        let tr = rest / p.tilesW;
        let tc = rest - tr * p.tilesW;
        let oh = 2 * tr;
        let ow = 2 * tc;
        ${program.bias ? "let b = f32(bias[g * p.cOutG + co]);" : ""}
        ${epilogueStore}
      }
    }`;
    }).join("\n    ");

  return `${enableLine(t)}
struct Params {
${CONV2D_WINOGRAD_PARAMS.map((f) => `  ${f}: i32,`).join("\n")}
}

${paramsDeclaration(program.params)}
@group(0) @binding(1) var<storage, ${TENSOR_ACCESS}> x: array<${t}>;
@group(0) @binding(2) var<storage, ${TENSOR_ACCESS}> u: array<f32>;
${program.bias ? `@group(0) @binding(3) var<storage, ${TENSOR_ACCESS}> bias: array<${t}>;` : ""}
@group(0) @binding(${out}) var<storage, ${TENSOR_ACCESS}> y: array<${t}>;

// One step's transformed inputs V[ξ][k][tile] and weights U[ξ][k][n], both as
// rows of vec4 for the multiply; at the end, the products M[ξ][n][tile] of
// one group of output channels at a time.
var<workgroup> shv: array<vec4<f32>, ${sharedFloats(program) / 4}>;

@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_index) lidx: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let wgIndex = i32(wid.y * nwg.x + wid.x);
  if (wgIndex >= p.mTiles * p.nTiles) { return; }
  let lid = i32(lidx);
  let g = i32(wid.z);
  let m0 = (wgIndex / p.nTiles) * ${TT};
  let n0 = (wgIndex % p.nTiles) * ${TN};
  let hw = p.h * p.w;
  let tilesHW = p.tilesH * p.tilesW;

  // The 4x4 input blocks this thread transforms: where each starts, and
  // which of its rows and columns lie inside the image.
  var pBase: array<i32, ${patchRounds}>;
  var pOk: array<bool, ${patchRounds}>;
  var pRow: array<array<bool, 4>, ${patchRounds}>;
  var pCol: array<array<bool, 4>, ${patchRounds}>;
  for (var round = 0; round < ${patchRounds}; round++) {
    let tile = m0 + (lid + round * ${THREADS}) % ${TT};
    let img = tile / tilesHW;
    let rest = tile - img * tilesHW;
    let tr = rest / p.tilesW;
    let ih = 2 * tr - p.padH;
    let iw = 2 * (rest - tr * p.tilesW) - p.padW;
    pOk[round] = tile < p.tiles;
    pBase[round] = (img * p.cIn + g * p.cInG) * hw + ih * p.w + iw;
    for (var r = 0; r < 4; r++) {
      pRow[round][r] = ih + r >= 0 && ih + r < p.h;
      pCol[round][r] = iw + r >= 0 && iw + r < p.w;
    }
  }

  // The transformed weights this thread loads: column uCol, rows (ξ, k) from uRow.
  let uCol = lid % ${TN};
  let uRow = lid / ${TN};
  let uOk = n0 + uCol < p.cOutG;
  let uBase0 = g * 16 * p.cInG * p.cOutG + n0 + uCol;

  // This thread's product ξ and its micro-tile in it.
  let xi = lid / 16;
  let tx = (lid % 16) % ${wgM};
  let ty = (lid % 16) / ${wgM};

${accs.map((a) => `  var ${a} = vec4<f32>(0.0);`).join("\n")}

  for (var step = 0; step < p.steps; step++) {
    let ci0 = step * ${TK};
    ${patchLoad}
    ${uLoad}
    workgroupBarrier();
    {
      ${multiply}
    }
    workgroupBarrier();
  }

${
    range(rn).map((qn) =>
      `  ${exchange(qn)}
  workgroupBarrier();
  ${outputPass(qn)}
  workgroupBarrier();`
    ).join("\n")
  }
}
`;
}
