/**
 * 2-D average pooling on NCHW tensors.
 *
 * @module
 */

import { flag, poolGeometry } from "./_geometry.ts";
import { checkTensors, i32Params, recordInto } from "./_op.ts";
import { grid2d } from "./_prelude.ts";
import { AVG_POOL2D_PARAMS, avgPool2dShader } from "./avg_pool2d.wgsl.ts";
import { commandBatchOf } from "./command_batch.ts";
import { getShader } from "./shader_cache.ts";
import { checkDivisor } from "./reference.ts";
import { empty, type Tensor } from "./tensor.ts";

const WORKGROUP = 256;

/** Options of {@linkcode avgPool2d}, as `torch.nn.functional.avg_pool2d` takes them. */
export interface AvgPool2dOptions {
  /** Window size. */
  kernelSize: number | readonly [number, number];
  /** Step between windows (default: kernelSize). */
  stride?: number | readonly [number, number];
  /** Implicit zero padding on both sides, at most half the kernel size (default 0). */
  padding?: number | readonly [number, number];
  /** Round the output size up rather than down (default false). */
  ceilMode?: boolean;
  /** Count padding in the divisor (default true). */
  countIncludePad?: boolean;
  /** Divide by this instead of the window size. */
  divisorOverride?: number;
}

/**
 * Average pooling over `[N, C, H, W]`, as `torch.nn.functional.avg_pool2d`.
 *
 * @example
 * ```ts
 * import { avgPool2d, HeapAllocator, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const x = tensor(allocator, [1, 3, 5, 7], [1, 1, 2, 2]);
 * const y = avgPool2d(x, { kernelSize: 2 });
 * assert.deepEqual([...await y.read()], [4]);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param x input `[N, C, H, W]`
 * @param options kernelSize, stride, padding, ceilMode, countIncludePad, divisorOverride
 * @returns a new tensor `[N, C, Hout, Wout]`
 * @throws {RangeError} bad sizes, padding over half the kernel, or an empty output
 */
export function avgPool2d(x: Tensor, options: AvgPool2dOptions): Tensor {
  const op = "avgPool2d";
  checkTensors(op, { input: x });
  const g = poolGeometry(op, x.shape, { ...options, dilation: 1 });
  const divisor = checkDivisor(op, options.divisorOverride) ?? 0;
  const batch = commandBatchOf(x.allocator);
  const program = { dtype: x.dtype, params: batch.paramsSpace, workgroupSize: WORKGROUP } as const;
  const shader = getShader(batch.device, avgPool2dShader(program));
  const total = g.n * g.c * g.hOut * g.wOut;
  const includePad = flag(op, "countIncludePad", options.countIncludePad, true) ? 1 : 0;
  const params = i32Params(op, AVG_POOL2D_PARAMS, { ...g, total, includePad, divisor });
  const grid = grid2d(Math.ceil(total / WORKGROUP));
  const y = empty(x.allocator, [g.n, g.c, g.hOut, g.wOut], { dtype: x.dtype, label: op });
  return recordInto(batch, y, [{ shader, params, storage: [x.block, y.block], grid }]);
}
