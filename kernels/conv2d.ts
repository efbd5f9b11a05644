/**
 * 2-D convolution on NCHW tensors, with bias and ReLU fused into the
 * kernel's epilogue.
 *
 * @module
 */

import { type ConvGeometry, convGeometry, flag, type Pair, show } from "./_geometry.ts";
import { checkTensors, i32Params, recordInto } from "./_op.ts";
import { grid2d, MAX_WORKGROUPS_PER_DIMENSION } from "./_prelude.ts";
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
import { getShader } from "./shader_cache.ts";
import { empty, type Tensor } from "./tensor.ts";

const NAIVE_WORKGROUP = 64;
const PACK_WORKGROUP = 256;

/** Which conv2d kernel runs. */
export type Conv2dAlgorithm = "auto" | "naive" | "tiled";

/** Tile sizes of the tiled kernel (see {@linkcode Conv2dTiledProgram}). */
export type Conv2dTiles = Pick<
  Conv2dTiledProgram,
  "tileM" | "tileN" | "tileK" | "threadM" | "threadN"
>;

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
   * `"tiled"` an implicit GEMM through workgroup memory, `"auto"` (default)
   * tiled except for depthwise-like convolutions (one input channel per
   * group), which run naive.
   */
  algorithm?: Conv2dAlgorithm;
  /** Applies ReLU in the kernel's epilogue (as {@linkcode conv2dRelu}). */
  relu?: boolean;
  /** Tile sizes for the tiled kernel, for tuning; chosen from the shape when absent. */
  tiles?: Conv2dTiles;
}

/**
 * The tile sizes the tiled kernel uses for a convolution, given input
 * channels per group and output channels per group.
 *
 * @example
 * ```ts
 * import { conv2dDefaultTiles } from "./conv2d.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(conv2dDefaultTiles(32, 64).tileN, 64);
 * ```
 *
 * @param cInG input channels per group
 * @param cOutG output channels per group
 * @returns tile sizes
 */
export function conv2dDefaultTiles(cInG: number, cOutG: number): Conv2dTiles {
  const tileK = cInG >= 8 ? 8 : 4;
  if (cOutG > 32) return { tileM: 128, tileN: 64, tileK, threadM: 8, threadN: 8 };
  if (cOutG > 16) return { tileM: 128, tileN: 32, tileK, threadM: 8, threadN: 4 };
  return { tileM: 64, tileN: 16, tileK, threadM: 4, threadN: 4 };
}

/**
 * 2-D convolution, as `torch.nn.functional.conv2d`: input `[N, Cin, H, W]`,
 * weight `[Cout, Cin/groups, kH, kW]`, bias `[Cout]`. Every check runs
 * before anything is recorded; the dispatches go into the allocator's batch.
 *
 * @example
 * ```ts
 * import { conv2d } from "./conv2d.ts";
 * import { tensor } from "./tensor.ts";
 * import { HeapAllocator } from "../allocator/allocator.ts";
 * import { requestDevice } from "../allocator/request_device.ts";
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
  if (algorithm !== "auto" && algorithm !== "naive" && algorithm !== "tiled") {
    throw new RangeError(
      `Cannot ${op}: algorithm must be "auto", "naive" or "tiled", got ${show(algorithm)}`,
    );
  }
  const batch = commandBatchOf(x.allocator);
  const tiled = algorithm === "tiled" || (algorithm === "auto" && g.cInG > 1);
  const relu = flag(op, "relu", options.relu, false);
  return tiled
    ? recordTiled(op, batch, g, x, weight, bias, relu, options.tiles)
    : recordNaive(op, batch, g, x, weight, bias, relu);
}

/**
 * Convolution + bias + ReLU in one kernel: `relu(conv2d(x, weight, bias))`
 * without the intermediate tensor.
 *
 * @example
 * ```ts
 * import { conv2dRelu } from "./conv2d.ts";
 * import { tensor } from "./tensor.ts";
 * import { HeapAllocator } from "../allocator/allocator.ts";
 * import { requestDevice } from "../allocator/request_device.ts";
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

function recordNaive(
  op: string,
  batch: CommandBatch,
  g: ConvGeometry,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  relu: boolean,
): Tensor {
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

function recordTiled(
  op: string,
  batch: CommandBatch,
  g: ConvGeometry,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  relu: boolean,
  tiles: Conv2dTiles | undefined,
): Tensor {
  const hwOut = g.hOut * g.wOut;
  const program: Conv2dTiledProgram = {
    dtype: x.dtype,
    params: batch.paramsSpace,
    ...(tiles ?? conv2dDefaultTiles(g.cInG, g.cOutG)),
    bias: bias !== null,
    relu,
    vectorStore: hwOut % 4 === 0,
  };
  // Key order must not depend on the caller's tiles object.
  const ordered: Conv2dTiledProgram = {
    dtype: program.dtype,
    params: program.params,
    tileM: program.tileM,
    tileN: program.tileN,
    tileK: program.tileK,
    threadM: program.threadM,
    threadN: program.threadN,
    bias: program.bias,
    relu: program.relu,
    vectorStore: program.vectorStore,
  };
  const problem = conv2dTiledProblem(ordered);
  if (problem) throw new RangeError(`Cannot ${op}: bad tiles: ${problem}`);
  const limits = batch.device.limits;
  const threads = conv2dTiledThreads(ordered);
  if (threads > limits.maxComputeInvocationsPerWorkgroup) {
    throw new RangeError(
      `Cannot ${op}: tiles need ${threads} threads per workgroup, the device allows ${limits.maxComputeInvocationsPerWorkgroup}`,
    );
  }
  const shared = conv2dTiledWorkgroupBytes(ordered);
  if (shared > limits.maxComputeWorkgroupStorageSize) {
    throw new RangeError(
      `Cannot ${op}: tiles need ${shared} bytes of workgroup memory, the device allows ${limits.maxComputeWorkgroupStorageSize}`,
    );
  }
  if (g.groups > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new RangeError(
      `Cannot ${op}: the tiled kernel takes at most ${MAX_WORKGROUPS_PER_DIMENSION} groups, got ${g.groups} (use algorithm "naive")`,
    );
  }
  const pipeline = getShader(batch.device, conv2dTiledShader(ordered));
  const packProgram = {
    dtype: x.dtype,
    params: batch.paramsSpace,
    workgroupSize: PACK_WORKGROUP,
  } as const;
  const pack = getShader(batch.device, conv2dPackWeightsShader(packProgram));

  const m = g.n * hwOut;
  const mTiles = Math.ceil(m / ordered.tileM);
  const nTiles = Math.ceil(g.cOutG / ordered.tileN);
  const kHW = g.kH * g.kW;
  const numK = kHW * Math.ceil(g.cInG / ordered.tileK);
  const values = { ...g, m, kHW, numK, mTiles, nTiles };
  // Every parameter and grid is checked before anything is allocated or recorded.
  const total = weight.numel;
  const packParams = i32Params(op, CONV2D_PACK_WEIGHTS_PARAMS, { total, ...values });
  const packGrid = grid2d(Math.ceil(total / PACK_WORKGROUP));
  const params = i32Params(op, CONV2D_TILED_PARAMS, values);
  const grid = grid2d(mTiles * nTiles, g.groups);
  const packedWeight = empty(x.allocator, [weight.numel], {
    dtype: x.dtype,
    label: "conv2d packed weight",
  });
  try {
    const y = empty(x.allocator, [g.n, g.cOut, g.hOut, g.wOut], {
      dtype: x.dtype,
      label: "conv2d",
    });
    const storage = bias
      ? [x.block, packedWeight.block, bias.block, y.block]
      : [x.block, packedWeight.block, y.block];
    return recordInto(batch, y, [
      {
        shader: pack,
        params: packParams,
        storage: [weight.block, packedWeight.block],
        grid: packGrid,
      },
      { shader: pipeline, params, storage, grid },
    ]);
  } finally {
    // Recorded work still reads it: the allocator reuses it after the submit.
    packedWeight.dispose();
  }
}
