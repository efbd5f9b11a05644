/**
 * 2-D max pooling on NCHW tensors.
 *
 * @module
 */

import { poolGeometry } from "./_geometry.ts";
import { checkTensors, i32Params, recordInto } from "./_op.ts";
import { grid2d } from "./_prelude.ts";
import { commandBatchOf } from "./command_batch.ts";
import { MAX_POOL2D_PARAMS, maxPool2dShader } from "./max_pool2d.wgsl.ts";
import { getShader } from "./shader_cache.ts";
import { empty, type Tensor } from "./tensor.ts";

const WORKGROUP = 256;

/** Options of {@linkcode maxPool2d}, as `torch.nn.functional.max_pool2d` takes them. */
export interface MaxPool2dOptions {
  /** Window size. */
  kernelSize: number | readonly [number, number];
  /** Step between windows (default: kernelSize). */
  stride?: number | readonly [number, number];
  /** Implicit minus-infinity padding on both sides, at most half the kernel size (default 0). */
  padding?: number | readonly [number, number];
  /** Spacing between window elements (default 1). */
  dilation?: number | readonly [number, number];
  /** Round the output size up rather than down (default false). */
  ceilMode?: boolean;
}

/**
 * Max pooling over `[N, C, H, W]`, as `torch.nn.functional.max_pool2d`.
 *
 * @example
 * ```ts
 * import { HeapAllocator, maxPool2d, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const x = tensor(allocator, [1, 2, 5, 3, 4, 0, 9, 8, 7, 6, 2, 1, 0, 3, 4, 5], [1, 1, 4, 4]);
 * const y = maxPool2d(x, { kernelSize: 2 });
 * assert.deepEqual(y.shape, [1, 1, 2, 2]);
 * assert.deepEqual([...await y.read()], [4, 9, 7, 5]);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param x input `[N, C, H, W]`
 * @param options kernelSize, stride, padding, dilation, ceilMode
 * @returns a new tensor `[N, C, Hout, Wout]`
 * @throws {RangeError} bad sizes, padding over half the kernel, or an empty output
 */
export function maxPool2d(x: Tensor, options: MaxPool2dOptions): Tensor {
  const op = "maxPool2d";
  checkTensors(op, { input: x });
  const g = poolGeometry(op, x.shape, options);
  const batch = commandBatchOf(x.allocator);
  const program = { dtype: x.dtype, params: batch.paramsSpace, workgroupSize: WORKGROUP } as const;
  const shader = getShader(batch.device, maxPool2dShader(program));
  const total = g.n * g.c * g.hOut * g.wOut;
  const params = i32Params(op, MAX_POOL2D_PARAMS, { ...g, total }, [-Infinity]);
  const grid = grid2d(Math.ceil(total / WORKGROUP));
  const y = empty(x.allocator, [g.n, g.c, g.hOut, g.wOut], { dtype: x.dtype, label: op });
  return recordInto(batch, y, [{ shader, params, storage: [x.block, y.block], grid }]);
}
