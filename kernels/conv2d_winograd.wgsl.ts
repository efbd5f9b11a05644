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
 * each a register micro-tile as in the tiled kernel (a thread's tiles are 4
 * contiguous at a time, read as one vector). The next step's input blocks
 * and weights are loaded into registers while the current step multiplies;
 * input blocks are transformed on their way into workgroup memory; `U` is
 * transformed once per weight by the weight-transform kernel, in f32
 * whatever the dtype, rows padded to whole vec4s of channels. At the
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
  type KernelProgram,
  makeShader,
  type ShaderProgram,
  shaderProgram,
  type WorkgroupProgram,
} from "./_prelude.ts";

/** What to do with each 2x2 output block. */
export type WinogradPool = "none" | "max" | "avg";

/**
 * What one compiled Winograd conv2d shader is specialised for. `dtype` is that of input, bias and
 * output (all arithmetic in f32).
 */
export interface Conv2dWinogradProgram extends KernelProgram {
  /** 2x2 output tiles per workgroup (rows of each product). */
  tiles: number;
  /** Output channels per workgroup. */
  tileN: number;
  /** Input channels per step of the reduction. */
  tileK: number;
  /** Tiles per thread, a multiple of 4 (read 4 at a time as one vector). */
  threadM: number;
  /** Output channels per thread, a multiple of 4. */
  threadN: number;
  /** Adds a bias (binding 3, output moves to 4). */
  bias: boolean;
  /** Applies ReLU to the result. */
  relu: boolean;
  /** Stores each 2x2 block, or its max or average (a fused 2x2 stride-2 pool). */
  pool: WinogradPool;
  /**
   * f16 products and sums (f16 tensors only): the transformed inputs and
   * weights are kept as f16 and the whole reduction over input channels is
   * summed in f16, turned to f32 for the epilogue. Half the registers and
   * workgroup bytes of f32 sums, so larger tiles fit: on an H100 the target
   * pipeline ran in 0.63 ms against 0.87 with f32 sums, for 1.1e-3 relative
   * error against 2.4e-4. The rounding error grows with the channels summed;
   * {@linkcode conv2dWinogradDefaultTiles} picks it for at most 256 input
   * channels per group.
   */
  half?: boolean;
  /**
   * Output channels per epilogue pass, where the 16 products meet in
   * workgroup memory (default {@linkcode WINOGRAD_PASS_CHANNELS}): a multiple of 4; fewer, larger passes
   * mean fewer barriers for more workgroup bytes (on an H100, 8 ran the
   * pipeline 5% faster than 4).
   */
  passChannels?: number;
}

/** Output channels per epilogue pass of a program that does not name `passChannels`. */
export const WINOGRAD_PASS_CHANNELS = 4;

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

/**
 * Floats of the scalar workgroup array: one step's V, and one epilogue
 * pass's M of `passChannels` channels. With f16 products V is kept apart, as
 * f16, and this array holds M alone.
 */
function scalarFloats(p: Conv2dWinogradProgram): number {
  const pass = p.passChannels ?? WINOGRAD_PASS_CHANNELS;
  return 16 * (p.half ? pass : Math.max(p.tileK, pass)) * p.tiles;
}

/**
 * Output channels per epilogue pass: as many as the scalar array holds, a
 * multiple of 4 (a thread's channels come 4 at a time) dividing the 4*wgN
 * channels of one column block.
 */
function passChannels(p: Conv2dWinogradProgram): number {
  const column = 4 * (p.tileN / p.threadN);
  for (let c = column; c > 4; c -= 4) {
    if (column % c === 0 && 16 * p.tiles * c <= scalarFloats(p)) return c;
  }
  return 4;
}

/** Bytes of workgroup memory a Winograd program uses. */
export function conv2dWinogradWorkgroupBytes(program: Conv2dWinogradProgram): number {
  const step = 16 * program.tileK * (program.tileN + (program.half ? program.tiles : 0));
  return scalarFloats(program) * 4 + step * (program.half ? 2 : 4);
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
  if (WINOGRAD_THREADS % (p.tileN / 4) !== 0) {
    return `tileN/4 (${p.tileN / 4}) must divide ${WINOGRAD_THREADS}`;
  }
  if (p.half && p.dtype !== "f16") return `f16 products need dtype f16, got ${p.dtype}`;
  const pass = p.passChannels ?? WINOGRAD_PASS_CHANNELS;
  if (!Number.isInteger(pass) || pass < 4 || pass % 4 !== 0) {
    return `passChannels must be a positive multiple of 4, got ${p.passChannels}`;
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
 * f32 `[groups, 16, Cin/g, C]` with `C` = Cout/g rounded up to a multiple of
 * 4 and zeros past Cout/g (output channels contiguous, so the conv kernel
 * loads 4 channels as one aligned vec4). One thread per (group, input
 * channel, column), `total` = groups * Cin/g * C of them. Bindings:
 * 0 uniform, 1 weight `[Cout, Cin/g, 3, 3]`, 2 transformed output.
 *
 * @example
 * ```ts
 * import { conv2dWinogradWeightsWgsl } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * assert.match(conv2dWinogradWeightsWgsl({ dtype: "f32", workgroupSize: 256 }), /array<f32>/);
 * ```
 *
 * @param program element type of the weights and workgroup size
 * @returns the WGSL source
 */
export function conv2dWinogradWeightsWgsl(
  program: WorkgroupProgram,
): string {
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
  return makeShader({
    kernel: "conv2d Winograd weight transform",
    dtype: t,
    params: program.params,
    fields: CONV2D_WINOGRAD_WEIGHTS_PARAMS,
    tensors: ["wt", { name: "u", type: "f32" }],
    workgroupSize: program.workgroupSize,
    index: "thread",
    bound: "p.total",
    body: `  // i = (g * cInG + ci) * cols + col: consecutive threads write consecutive channels.
  let cols = (p.cOutG + 3) / 4 * 4;
  let col = i % cols;
  let rest = i / cols;
  let ci = rest % p.cInG;
  let g = rest / p.cInG;
  let ok = col < p.cOutG;
  let src = select(0, ((g * p.cOutG + col) * p.cInG + ci) * 9, ok);
${
      range(3).map((k) =>
        `  let g${k} = select(vec3<f32>(0.0), vec3<f32>(${
          range(3).map((c) => `f32(wt[src + ${k * 3 + c}])`).join(", ")
        }), ok);`
      ).join("\n")
    }
${tmp.map((e, i) => `  let t${i} = ${e};`).join("\n")}
  let stride = p.cInG * cols;
  let dst = (g * 16 * p.cInG + ci) * cols + col;
${u.map((e, xi) => `  u[dst + ${xi} * stride] = ${e};`).join("\n")}`,
  });
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
 * import { conv2dWinogradWgsl } from "@gpuheap/gpuheap/kernels";
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
  const { dtype: t, tiles: TT, tileN: TN, tileK: TK, threadM: TM } = program;
  const THREADS = WINOGRAD_THREADS;
  const wgM = TT / TM;
  const wgN = TN / program.threadN;
  const rn = program.threadN / 4;
  const cP = passChannels(program);
  const subPasses = (4 * wgN) / cP;
  const SV = scalarFloats(program);
  const SU = (16 * TK * TN) / 4;
  const rounds = (count: number) => Math.ceil(count / THREADS);
  const guard = (count: number, round: number) =>
    (round + 1) * THREADS > count ? `if (lid + ${round * THREADS} < ${count}) ` : "";
  const accs = range(TM).flatMap((i) => range(rn).map((qn) => `acc_${i}_${qn}`));
  // The products' element type, and where V lives.
  const half = program.half === true;
  const pt = half ? "f16" : "f32";
  const vArray = half ? "sh" : "sv";

  // Bᵀ d B of the 4x4 block d{r}{c}: first down the columns, then along the rows.
  const inputTransform = [
    ...range(4).flatMap((c) => [
      `let r0${c} = d0${c} - d2${c};`,
      `let r1${c} = d1${c} + d2${c};`,
      `let r2${c} = d2${c} - d1${c};`,
      `let r3${c} = d1${c} - d3${c};`,
    ]),
    ...range(4).flatMap((r) =>
      [`r${r}0 - r${r}2`, `r${r}1 + r${r}2`, `r${r}2 - r${r}1`, `r${r}1 - r${r}3`].map((e, c) =>
        `${vArray}[(${r * 4 + c} * ${TK} + k) * ${TT / 4} + tv][tc] = ${pt}(${e});`
      )
    ),
  ];

  const patchCount = TT * TK;
  const patchSetup = range(rounds(patchCount)).map((round) =>
    `  let tile${round} = m0 + (lid + ${round * THREADS}) % ${TT};
  let img${round} = tile${round} / tilesHW;
  let rest${round} = tile${round} - img${round} * tilesHW;
  let tr${round} = rest${round} / p.tilesW;
  let ih${round} = 2 * tr${round} - p.padH;
  let iw${round} = 2 * (rest${round} - tr${round} * p.tilesW) - p.padW;
  let ok${round} = tile${round} < p.tiles;
  let base${round} = (img${round} * p.cIn + g * p.cInG) * hw + ih${round} * p.w + iw${round};
${
      range(4).map((r) =>
        `  let row${round}_${r} = ih${round} + ${r} >= 0 && ih${round} + ${r} < p.h;
  let col${round}_${r} = iw${round} + ${r} >= 0 && iw${round} + ${r} < p.w;`
      ).join("\n")
    }`
  ).join("\n");

  // The next step's input blocks and weights are loaded into registers
  // while the current step multiplies, then transformed into workgroup memory.
  const patchRounds = range(rounds(patchCount));
  const patchLoad = patchRounds.map((round) =>
    `${guard(patchCount, round)}{
      let k = (lid + ${round * THREADS}) / ${TT};
      let ok = ok${round} && ci0 + k < p.cInG;
      let base = base${round} + (ci0 + k) * hw;
${
      range(4).flatMap((r) =>
        range(4).map((c) =>
          `      let o${r}${c} = ok && row${round}_${r} && col${round}_${c};
      pd${round}_${r}${c} = select(0.0, f32(x[select(0, base + ${r} * p.w + ${c}, o${r}${c})]), o${r}${c});`
        )
      ).join("\n")
    }
    }`
  ).join("\n    ");
  const patchStore = patchRounds.map((round) =>
    `${guard(patchCount, round)}{
      let pid = lid + ${round * THREADS};
      let tl = pid % ${TT};
      let tv = tl / 4;
      let tc = tl % 4;
      let k = pid / ${TT};
${
      range(4).flatMap((r) => range(4).map((c) => `      let d${r}${c} = pd${round}_${r}${c};`))
        .join("\n")
    }
      ${inputTransform.join("\n      ")}
    }`
  ).join("\n    ");
  const patchRegisters = patchRounds.flatMap((round) =>
    range(16).map((i) => `  var pd${round}_${Math.floor(i / 4)}${i % 4} = 0.0;`)
  ).join("\n");

  // U rows (ξ, k) of tileN channels, loaded 4 channels per thread as one vec4.
  const uCount = SU;
  const uRounds = range(rounds(uCount));
  const uLoad = uRounds.map((round) =>
    `${guard(uCount, round)}{
      let row = uRow + ${(round * THREADS) / (TN / 4)};
      let ci = ci0 + row % ${TK};
      let ok = ci < p.cInG && uCo < p.cOutG;
      let src = uBase0 + ((row / ${TK}) * p.cInG + ci) * uRow4;
      pu${round} = select(vec4<f32>(0.0), u[select(0, src, ok)], ok);
    }`
  ).join("\n    ");
  const uStore = uRounds.map((round) =>
    `${guard(uCount, round)}{
      su[(uRow + ${(round * THREADS) / (TN / 4)}) * ${TN / 4} + uC4] = vec4<${pt}>(pu${round});
    }`
  ).join("\n    ");
  const uRegisters = uRounds.map((round) => `  var pu${round} = vec4<f32>(0.0);`).join("\n");

  const multiplyOne = (k: string, s: string) =>
    [
      ...range(TM / 4).map((j) =>
        `let a${s}_${j} = ${vArray}[(xi * ${TK} + ${k}) * ${TT / 4} + ${j * wgM} + tx];`
      ),
      ...range(rn).map((qn) =>
        `let b${s}_${qn} = su[(xi * ${TK} + ${k}) * ${TN / 4} + ${qn * wgN} + ty];`
      ),
      ...range(TM).flatMap((i) =>
        range(rn).map((qn) =>
          `${half ? "h" : ""}acc_${i}_${qn} = fma(vec4<${pt}>(a${s}_${i >> 2}[${
            i & 3
          }]), b${s}_${qn}, ${half ? "h" : ""}acc_${i}_${qn});`
        )
      ),
    ].join("\n      ");
  const multiply = range(TK).map((k) => multiplyOne(String(k), String(k))).join("\n      ");
  // With f16 products the sums are f16 too, turned to f32 for the epilogue.
  const toF32 = half ? accs.map((a) => `  let ${a} = vec4<f32>(h${a});`).join("\n") : "";

  // Aᵀ M A of the 16 values m{r}{c}: the 2x2 block o{r}{c}.
  const outputTransform = [
    ...range(4).map((c) => `let s0${c} = m0${c} + m1${c} + m2${c};`),
    ...range(4).map((c) => `let s1${c} = m1${c} - m2${c} - m3${c};`),
    ...range(2).flatMap((r) => [
      `let o${r}0 = s${r}0 + s${r}1 + s${r}2;`,
      `let o${r}1 = s${r}1 - s${r}2 - s${r}3;`,
    ]),
  ];
  const finish = (v: string) => {
    let e = program.bias ? `${v} + b` : v;
    if (program.relu) e = `max(${e}, 0.0)`;
    return e;
  };
  const store = program.pool === "none"
    ? `let yBase = ((img * p.cOut + g * p.cOutG + co) * p.hOut + oh) * p.wOut + ow;
        let right = ow + 1 < p.wOut;
        y[yBase] = ${t}(${finish("o00")});
        if (right) { y[yBase + 1] = ${t}(${finish("o01")}); }
        if (oh + 1 < p.hOut) {
          y[yBase + p.wOut] = ${t}(${finish("o10")});
          if (right) { y[yBase + p.wOut + 1] = ${t}(${finish("o11")}); }
        }`
    : `y[((img * p.cOut + g * p.cOutG + co) * p.tilesH + tr) * p.tilesW + tc] = ${t}(${
      program.pool === "max"
        ? `max(max(${finish("o00")}, ${finish("o01")}), max(${finish("o10")}, ${finish("o11")}))`
        : `0.25 * ((${finish("o00")} + ${finish("o01")}) + (${finish("o10")} + ${finish("o11")}))`
    });`;

  // One epilogue pass: the products of cP output channels meet in sv as
  // M[ξ][channel][tile], then each thread finishes (tile, channel) pairs.
  const pass = (qn: number, sub: number) => {
    const lo = sub * cP;
    const exchange = `if (ty * 4 >= ${lo} && ty * 4 < ${lo + cP}) {
${
      range(TM / 4).flatMap((j) =>
        range(4).map((e) =>
          `    sv[(xi * ${cP} + ty * 4 + ${e - lo}) * ${TT / 4} + ${j * wgM} + tx] = vec4<f32>(${
            range(4).map((c) => `acc_${4 * j + c}_${qn}[${e}]`).join(", ")
          });`
        )
      ).join("\n")
    }
  }`;
    const pairs = TT * cP;
    const finishPairs = range(rounds(pairs)).map((round) =>
      `${guard(pairs, round)}{
    let pid = lid + ${round * THREADS};
    let tl = pid % ${TT};
    let tv = tl / 4;
    let tc = tl % 4;
    let cl = pid / ${TT};
    let tile = m0 + tl;
    let co = n0 + ${qn * 4 * wgN + lo} + cl;
    if (tile < p.tiles && co < p.cOutG) {
${
        range(16).map((xi) =>
          `      let m${Math.floor(xi / 4)}${xi % 4} = sv[(${xi * cP} + cl) * ${TT / 4} + tv][tc];`
        ).join("\n")
      }
      ${outputTransform.join("\n      ")}
      let img = tile / tilesHW;
      let rest = tile - img * tilesHW;
      let tr = rest / p.tilesW;
      let tc = rest - tr * p.tilesW;
      let oh = 2 * tr;
      let ow = 2 * tc;
      ${program.bias ? "let b = f32(bias[g * p.cOutG + co]);" : ""}
      ${store}
    }
  }`
    ).join("\n  ");
    return `  ${exchange}
  workgroupBarrier();
  ${finishPairs}
  workgroupBarrier();`;
  };

  return makeShader({
    kernel: "conv2d Winograd",
    dtype: t,
    params: program.params,
    fields: CONV2D_WINOGRAD_PARAMS,
    tensors: [
      "x",
      { name: "u", type: "vec4<f32>" },
      ...(program.bias ? ["bias"] : []),
      "y",
    ],
    workgroupSize: THREADS,
    index: "workgroup",
    bound: "p.mTiles * p.nTiles",
    declarations: `// One step's transformed inputs V[ξ][k][tile]; in the epilogue, the products
// M[ξ][channel][tile] of one pass's channels.
var<workgroup> sv: array<vec4<f32>, ${SV / 4}>;
${
      half
        ? `// With f16 products, one step's V[ξ][k][tile] as f16.
var<workgroup> sh: array<vec4<f16>, ${4 * TK * TT}>;
`
        : ""
    }// One step's transformed weights U[ξ][k][channel], 4 channels a vec4.
var<workgroup> su: array<vec4<${pt}>, ${SU}>;
`,
    body: `  let wgIndex = tile;
  let lid = tid;
  let g = i32(wid.z);
  let m0 = (wgIndex / p.nTiles) * ${TT};
  let n0 = (wgIndex % p.nTiles) * ${TN};
  let hw = p.h * p.w;
  let tilesHW = p.tilesH * p.tilesW;

  // The 4x4 input blocks this thread transforms: where each starts, and
  // which of its rows and columns lie inside the image.
${patchSetup}

  // The transformed weights this thread loads: 4 channels from uCo, rows from uRow.
  let uC4 = lid % ${TN / 4};
  let uRow = lid / ${TN / 4};
  let uCo = n0 + 4 * uC4;
  // U rows are padded to whole vec4s of channels.
  let uRow4 = (p.cOutG + 3) / 4;
  let uBase0 = g * 16 * p.cInG * uRow4 + n0 / 4 + uC4;

  // This thread's product ξ, and its tiles (4 * (tx + j*${wgM}) + c: four
  // contiguous, read as one vector without bank conflicts) and channels
  // (4 * (ty + qn*${wgN}) + e) in it.
  let xi = lid / 16;
  let tx = (lid % 16) % ${wgM};
  let ty = (lid % 16) / ${wgM};

${accs.map((a) => `  var ${half ? "h" : ""}${a} = vec4<${pt}>(0.0);`).join("\n")}
${patchRegisters}
${uRegisters}

  {
    let ci0 = 0;
    ${patchLoad}
    ${uLoad}
  }
  ${patchStore}
  ${uStore}
  workgroupBarrier();
  for (var step = 1; step <= p.steps; step++) {
    let more = step < p.steps;
    if (more) {
      let ci0 = step * ${TK};
      ${patchLoad}
      ${uLoad}
    }
    {
      ${multiply}
    }
    workgroupBarrier();
    if (more) {
      ${patchStore}
      ${uStore}
    }
    workgroupBarrier();
  }

${toF32}
${range(rn).flatMap((qn) => range(subPasses).map((sub) => pass(qn, sub))).join("\n")}`,
  });
}

/** The Winograd conv2d program of a description: its shader key and WGSL. */
export const conv2dWinogradShader: (program: Conv2dWinogradProgram) => ShaderProgram =
  shaderProgram("conv2d_winograd", conv2dWinogradWgsl);

/** The Winograd weight-transform program of a description: its shader key and WGSL. */
export const conv2dWinogradWeightsShader: (
  program: WorkgroupProgram,
) => ShaderProgram = shaderProgram("conv2d_winograd_weights", conv2dWinogradWeightsWgsl);
