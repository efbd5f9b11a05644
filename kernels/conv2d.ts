/**
 * 2-D convolution on NCHW tensors, with bias and ReLU fused into the
 * kernel's epilogue.
 *
 * @module
 */

import { type ConvGeometry, convGeometry, flag, type Pair, show } from "./_geometry.ts";
import { checkTensors, i32Params, recordInto } from "./_op.ts";
import {
  grid2d,
  MAX_WORKGROUPS_PER_DIMENSION,
  type ShaderProgram,
  type WorkgroupProgram,
} from "./_prelude.ts";
import { type CommandBatch, commandBatchOf } from "./command_batch.ts";
import { CONV2D_NAIVE_PARAMS, conv2dNaiveShader } from "./conv2d_naive.wgsl.ts";
import { CONV2D_PACK_WEIGHTS_PARAMS, conv2dPackWeightsShader } from "./conv2d_pack_weights.wgsl.ts";
import {
  CONV2D_TILED_PARAMS,
  conv2dTiledProblem,
  type Conv2dTiledProgram,
  conv2dTiledShader,
  conv2dTiledThreads,
  conv2dTiledWorkgroupBytes,
} from "./conv2d_tiled.wgsl.ts";
import {
  CONV2D_WINOGRAD_PARAMS,
  CONV2D_WINOGRAD_WEIGHTS_PARAMS,
  conv2dWinogradProblem,
  type Conv2dWinogradProgram,
  conv2dWinogradShader,
  conv2dWinogradWeightsShader,
  conv2dWinogradWorkgroupBytes,
  WINOGRAD_PASS_CHANNELS,
} from "./conv2d_winograd.wgsl.ts";
import { avgPool2d } from "./avg_pool2d.ts";
import { maxPool2d } from "./max_pool2d.ts";
import { getShader } from "./shader_cache.ts";
import { derivedTensors, empty, type Tensor } from "./tensor.ts";
import { keep } from "./scope.ts";
import {
  conv2dDefaultTiles,
  type Conv2dTiles,
  conv2dWinogradDefaultTiles,
  type Conv2dWinogradTiles,
} from "./conv2d_tiles.ts";

const NAIVE_WORKGROUP = 64;
const PACK_WORKGROUP = 256;

/** Which conv2d kernel runs. */
export type Conv2dAlgorithm = "auto" | "naive" | "tiled" | "winograd";

/** Options of {@linkcode conv2d}, as `torch.nn.functional.conv2d` takes them. */
export interface Conv2dOptions {
  /** Step of the kernel over the input (default 1). */
  stride?: Pair;
  /**
   * Implicit zero padding on both sides (default 0); `"valid"` is 0,
   * `"same"` keeps the input size (stride 1 only).
   */
  padding?: Pair | "same" | "valid";
  /** Spacing between kernel elements (default 1). */
  dilation?: Pair;
  /** Blocked connections from input to output channels (default 1). */
  groups?: number;
  /**
   * The kernel: `"naive"` one thread per output (the reference path),
   * `"tiled"` an implicit GEMM through workgroup memory, `"winograd"`
   * Winograd F(2x2, 3x3) (3x3 filters, stride 1, dilation 1 only), `"auto"`
   * (default) Winograd where it applies and the group has at least 8 input
   * channels, unless `tiles` are given or the adapter is a software one;
   * else tiled, and naive for depthwise-like convolutions (one input
   * channel per group).
   */
  algorithm?: Conv2dAlgorithm;
  /** Applies ReLU in the kernel's epilogue (as {@linkcode conv2dRelu}). */
  relu?: boolean;
  /**
   * Follows the convolution (and ReLU) with a 2x2 stride-2 pool, max or
   * average, as `maxPool2d` / `avgPool2d` with `kernelSize: 2` would: the
   * result is `[N, Cout, floor(Hout/2), floor(Wout/2)]`. The Winograd kernel
   * pools in its epilogue; the others run the pooling op after.
   */
  pool?: "max" | "avg";
  /** Tile sizes for the tiled kernel, for tuning; chosen from the shape when absent. */
  tiles?: Conv2dTiles;
  /** Tile sizes for the Winograd kernel, for tuning; chosen from the shape when absent. */
  winogradTiles?: Conv2dWinogradTiles;
}

/** Whether the Winograd kernel computes this convolution. */
function winogradApplies(g: ConvGeometry): boolean {
  return g.kH === 3 && g.kW === 3 && g.strideH === 1 && g.strideW === 1 && g.dilH === 1 &&
    g.dilW === 1;
}

/**
 * 2-D convolution, as `torch.nn.functional.conv2d`: input `[N, Cin, H, W]`,
 * weight `[Cout, Cin/groups, kH, kW]`, bias `[Cout]`. Every check runs
 * before anything is recorded; the dispatches go into the allocator's batch.
 *
 * @example
 * ```ts
 * import { conv2d, HeapAllocator, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const x = tensor(allocator, [1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
 * const w = tensor(allocator, [1, 1, 1, 1], [1, 1, 2, 2]);
 * const b = tensor(allocator, [0.5], [1]);
 * const y = conv2d(x, w, b);
 * assert.deepEqual(y.shape, [1, 1, 2, 2]);
 * assert.deepEqual([...await y.read()], [12.5, 16.5, 24.5, 28.5]);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param x input `[N, Cin, H, W]`
 * @param weight `[Cout, Cin/groups, kH, kW]`
 * @param bias `[Cout]`, or null / undefined for none
 * @param options stride, padding, dilation, groups, algorithm, relu, tiles
 * @returns a new tensor `[N, Cout, Hout, Wout]`
 * @throws {RangeError} the shapes or options do not fit together
 * @throws {TypeError} a dtype mismatch, or an argument that is not a tensor
 * @throws {Error} a disposed tensor, or tensors of different allocators
 */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv2dOptions = {},
): Tensor {
  options ??= {};
  const op = options.relu === true ? "conv2dRelu" : "conv2d";
  checkTensors(op, { input: x, weight, bias });
  const g = convGeometry(op, x.shape, weight.shape, bias ? bias.shape : null, options);
  const algorithm = options.algorithm ?? "auto";
  if (
    algorithm !== "auto" && algorithm !== "naive" && algorithm !== "tiled" &&
    algorithm !== "winograd"
  ) {
    throw new RangeError(
      `Cannot ${op}: algorithm must be "auto", "naive", "tiled" or "winograd", got ${
        show(algorithm)
      }`,
    );
  }
  const pool = options.pool;
  if (pool !== undefined && pool !== "max" && pool !== "avg") {
    throw new RangeError(`Cannot ${op}: pool must be "max" or "avg", got ${show(pool)}`);
  }
  if (pool !== undefined && (g.hOut < 2 || g.wOut < 2)) {
    throw new RangeError(
      `Cannot ${op}: a 2x2 pool needs an output of at least 2x2, got ${g.hOut}x${g.wOut}`,
    );
  }
  if (algorithm === "winograd" && !winogradApplies(g)) {
    throw new RangeError(
      `Cannot ${op}: the Winograd kernel takes 3x3 filters with stride 1 and dilation 1, got ${g.kH}x${g.kW} stride ${g.strideH}x${g.strideW} dilation ${g.dilH}x${g.dilW}`,
    );
  }
  const batch = commandBatchOf(x.allocator);
  const relu = flag(op, "relu", options.relu, false);
  // Software adapters run the Winograd kernel's small tiles slower than the tiled kernel.
  const winograd = algorithm === "winograd" ||
    (algorithm === "auto" && options.tiles === undefined && winogradApplies(g) && g.cInG >= 8 &&
      !isSoftware(batch));
  const call: ConvCall = { op, batch, g, x, weight, bias, relu };
  if (winograd) return recordWinograd(call, pool, options.winogradTiles);
  const tiled = algorithm === "tiled" || (algorithm === "auto" && g.cInG > 1);
  const y = tiled ? recordTiled(call, options.tiles) : recordNaive(call);
  if (pool === undefined) return y;
  try {
    return pool === "max" ? maxPool2d(y, { kernelSize: 2 }) : avgPool2d(y, { kernelSize: 2 });
  } finally {
    y.dispose();
  }
}

/**
 * Convolution + bias + ReLU in one kernel: `relu(conv2d(x, weight, bias))`
 * without the intermediate tensor.
 *
 * @example
 * ```ts
 * import { conv2dRelu, HeapAllocator, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const x = tensor(allocator, [1, -2, 3, -4], [1, 1, 2, 2]);
 * const w = tensor(allocator, [1, -1], [2, 1, 1, 1]);
 * const y = conv2dRelu(x, w, null);
 * assert.deepEqual([...await y.read()], [1, 0, 3, 0, 0, 2, 0, 4]);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param x input `[N, Cin, H, W]`
 * @param weight `[Cout, Cin/groups, kH, kW]`
 * @param bias `[Cout]`, or null / undefined for none
 * @param options as {@linkcode conv2d}
 * @returns a new tensor `[N, Cout, Hout, Wout]`
 */
export function conv2dRelu(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Omit<Conv2dOptions, "relu"> = {},
): Tensor {
  return conv2d(x, weight, bias, { ...options, relu: true });
}

/** One checked conv2d call, as the record helpers take it. */
interface ConvCall {
  /** The op's name for messages: `conv2d` or `conv2dRelu`. */
  op: string;
  batch: CommandBatch;
  g: ConvGeometry;
  x: Tensor;
  weight: Tensor;
  bias: Tensor | null;
  relu: boolean;
}

/**
 * Throws our RangeError when a kernel's workgroups need more than the device
 * allows: threads, workgroup memory, or groups (one grid row each).
 */
function checkFits(
  { op, batch, g }: ConvCall,
  kernel: string,
  need: { threads?: number; bytes: number; groupsHint?: string },
): void {
  const limits = batch.device.limits;
  if (need.threads !== undefined && need.threads > limits.maxComputeInvocationsPerWorkgroup) {
    throw new RangeError(
      `Cannot ${op}: ${kernel} tiles need ${need.threads} threads per workgroup, the device allows ${limits.maxComputeInvocationsPerWorkgroup}`,
    );
  }
  if (need.bytes > limits.maxComputeWorkgroupStorageSize) {
    throw new RangeError(
      `Cannot ${op}: ${kernel} tiles need ${need.bytes} bytes of workgroup memory, the device allows ${limits.maxComputeWorkgroupStorageSize}`,
    );
  }
  if (g.groups > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new RangeError(
      `Cannot ${op}: the ${kernel} kernel takes at most ${MAX_WORKGROUPS_PER_DIMENSION} groups, got ${g.groups}${
        need.groupsHint ?? ""
      }`,
    );
  }
}

/** The shader that prepares the weights (packs or transforms them) for a conv's kernel. */
function weightsShader(
  { batch, x }: ConvCall,
  shader: (program: WorkgroupProgram) => ShaderProgram,
  workgroupSize: number,
): GPUComputePipeline {
  return getShader(
    batch.device,
    shader({ dtype: x.dtype, params: batch.paramsSpace, workgroupSize }),
  );
}

/** Whether the adapter is a software one, whose compiler wants small tiles. */
function isSoftware(batch: CommandBatch): boolean {
  return batch.device.adapterInfo?.isFallbackAdapter ?? false;
}

function recordNaive({ op, batch, g, x, weight, bias, relu }: ConvCall): Tensor {
  const program = {
    dtype: x.dtype,
    params: batch.paramsSpace,
    workgroupSize: NAIVE_WORKGROUP,
    bias: bias !== null,
    relu,
  } as const;
  const shader = getShader(batch.device, conv2dNaiveShader(program));
  const total = g.n * g.cOut * g.hOut * g.wOut;
  const params = i32Params(op, CONV2D_NAIVE_PARAMS, { ...g, total });
  const grid = grid2d(Math.ceil(total / NAIVE_WORKGROUP));
  const y = empty(x.allocator, [g.n, g.cOut, g.hOut, g.wOut], { dtype: x.dtype, label: "conv2d" });
  const storage = bias
    ? [x.block, weight.block, bias.block, y.block]
    : [x.block, weight.block, y.block];
  return recordInto(batch, y, [{ shader, params, storage, grid }]);
}

function recordTiled(call: ConvCall, tiles: Conv2dTiles | undefined): Tensor {
  const { op, batch, g, x, weight, bias, relu } = call;
  const hwOut = g.hOut * g.wOut;
  const t = tiles ?? conv2dDefaultTiles(g.cInG, g.cOutG, isSoftware(batch));
  // Only the tile fields: a caller's extra fields must not reach the shader key.
  const program: Conv2dTiledProgram = {
    dtype: x.dtype,
    params: batch.paramsSpace,
    tileM: t.tileM,
    tileN: t.tileN,
    tileK: t.tileK,
    threadM: t.threadM,
    threadN: t.threadN,
    bias: bias !== null,
    relu,
    vectorStore: hwOut % 4 === 0,
    ...(t.half ? { half: true } : {}),
  };
  const problem = conv2dTiledProblem(program);
  if (problem) throw new RangeError(`Cannot ${op}: bad tiles: ${problem}`);
  checkFits(call, "tiled", {
    threads: conv2dTiledThreads(program),
    bytes: conv2dTiledWorkgroupBytes(program),
    groupsHint: ' (use algorithm "naive")',
  });
  const conv = getShader(batch.device, conv2dTiledShader(program));
  const pack = weightsShader(call, conv2dPackWeightsShader, PACK_WORKGROUP);

  const m = g.n * hwOut;
  const mTiles = Math.ceil(m / program.tileM);
  const nTiles = Math.ceil(g.cOutG / program.tileN);
  const kHW = g.kH * g.kW;
  const numK = kHW * Math.ceil(g.cInG / program.tileK);
  const values = { ...g, m, kHW, numK, mTiles, nTiles };
  // Every parameter and grid is checked before anything is allocated or recorded.
  const total = weight.numel;
  const packParams = i32Params(op, CONV2D_PACK_WEIGHTS_PARAMS, { total, ...values });
  const packGrid = grid2d(Math.ceil(total / PACK_WORKGROUP));
  const params = i32Params(op, CONV2D_TILED_PARAMS, values);
  const grid = grid2d(mTiles * nTiles, g.groups);
  return recordThroughWeights(call, [g.n, g.cOut, g.hOut, g.wOut], {
    scratch: { shape: [weight.numel], dtype: x.dtype, label: "conv2d packed weight" },
    prepare: { shader: pack, params: packParams, grid: packGrid },
    conv: { shader: conv, params, grid },
  });
}

const WINOGRAD_WEIGHTS_WORKGROUP = 256;

function recordWinograd(
  call: ConvCall,
  pool: "max" | "avg" | undefined,
  tiles: Conv2dWinogradTiles | undefined,
): Tensor {
  const { op, batch, g, x, bias, relu } = call;
  // With a pool, only the 2x2 blocks a floor-mode pool covers are computed.
  const tilesH = pool ? Math.floor(g.hOut / 2) : Math.ceil(g.hOut / 2);
  const tilesW = pool ? Math.floor(g.wOut / 2) : Math.ceil(g.wOut / 2);
  const tileCount = g.n * tilesH * tilesW;
  const t = tiles ?? conv2dWinogradDefaultTiles(
    g.cOutG,
    tileCount * g.groups,
    batch.device.limits.maxComputeWorkgroupStorageSize,
    isSoftware(batch),
    x.dtype === "f16" ? { cInG: g.cInG } : undefined,
  );
  // Only the tile fields: a caller's extra fields must not reach the shader key.
  const program: Conv2dWinogradProgram = {
    dtype: x.dtype,
    params: batch.paramsSpace,
    tiles: t.tiles,
    tileN: t.tileN,
    tileK: t.tileK,
    threadM: t.threadM,
    threadN: t.threadN,
    bias: bias !== null,
    relu,
    pool: pool ?? "none",
    ...(t.half ? { half: true } : {}),
    // The default width named or not is one shader.
    ...(t.passChannels !== undefined && t.passChannels !== WINOGRAD_PASS_CHANNELS
      ? { passChannels: t.passChannels }
      : {}),
  };
  const problem = conv2dWinogradProblem(program);
  if (problem) throw new RangeError(`Cannot ${op}: bad Winograd tiles: ${problem}`);
  checkFits(call, "Winograd", { bytes: conv2dWinogradWorkgroupBytes(program) });
  const conv = getShader(batch.device, conv2dWinogradShader(program));
  const transform = weightsShader(call, conv2dWinogradWeightsShader, WINOGRAD_WEIGHTS_WORKGROUP);
  const mTiles = Math.ceil(tileCount / program.tiles);
  const nTiles = Math.ceil(g.cOutG / program.tileN);
  const values = {
    ...g,
    tilesH,
    tilesW,
    tiles: tileCount,
    mTiles,
    nTiles,
    steps: Math.ceil(g.cInG / program.tileK),
  };
  // Every parameter and grid is checked before anything is allocated or recorded.
  // Transformed rows hold whole vec4s of output channels.
  const total = g.groups * g.cInG * Math.ceil(g.cOutG / 4) * 4;
  const weightParams = i32Params(op, CONV2D_WINOGRAD_WEIGHTS_PARAMS, { total, ...g });
  const weightGrid = grid2d(Math.ceil(total / WINOGRAD_WEIGHTS_WORKGROUP));
  const params = i32Params(op, CONV2D_WINOGRAD_PARAMS, values);
  const grid = grid2d(mTiles * nTiles, g.groups);
  const outShape = pool ? [g.n, g.cOut, tilesH, tilesW] : [g.n, g.cOut, g.hOut, g.wOut];
  return recordThroughWeights(call, outShape, {
    // The transformed weights are f32 whatever the dtype: 16 per 3x3 filter.
    scratch: { shape: [16 * total], dtype: "f32", label: "conv2d Winograd weights" },
    prepare: { shader: transform, params: weightParams, grid: weightGrid },
    conv: { shader: conv, params, grid },
  });
}

/** One dispatch of {@linkcode recordThroughWeights}: its shader, parameters and grid. */
interface Step {
  shader: GPUComputePipeline;
  params: ArrayBuffer;
  grid: readonly [number, number, number];
}

/**
 * Records a convolution: `prepare` turns the weights into a scratch tensor
 * (packed or transformed), then `conv` reads the input, the scratch and the
 * bias into a new output of `outShape`. The scratch is made by the first call
 * and kept with the weight (a tensor's contents never change), so a loop
 * records `prepare` once and later calls one dispatch each; disposing the
 * weight disposes it.
 */
function recordThroughWeights(
  { batch, x, weight, bias }: ConvCall,
  outShape: number[],
  steps: {
    scratch: { shape: number[]; dtype: Tensor["dtype"]; label: string };
    prepare: Step;
    conv: Step;
  },
): Tensor {
  const { scratch: s, prepare, conv } = steps;
  const kept = derivedTensors(weight);
  const key = `${s.label}|${s.dtype}|${new Int32Array(prepare.params).join(",")}`;
  const cached = kept.get(key);
  // Kept past any scope: the weight owns it.
  const scratch = cached ??
    keep(empty(x.allocator, s.shape, { dtype: s.dtype, label: s.label, longLived: true }));
  try {
    const y = empty(x.allocator, outShape, { dtype: x.dtype, label: "conv2d" });
    const storage = bias
      ? [x.block, scratch.block, bias.block, y.block]
      : [x.block, scratch.block, y.block];
    const dispatches = [{ ...conv, storage }];
    if (!cached) dispatches.unshift({ ...prepare, storage: [weight.block, scratch.block] });
    recordInto(batch, y, dispatches);
    if (!cached) kept.set(key, scratch);
    return y;
  } catch (error) {
    if (!cached) scratch.dispose();
    throw error;
  }
}
