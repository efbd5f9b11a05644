/**
 * ReLU on tensors.
 *
 * @module
 */

import { checkTensors, i32Params, recordInto } from "./_op.ts";
import { grid2d } from "./_prelude.ts";
import { commandBatchOf } from "./command_batch.ts";
import { getShader } from "./shader_cache.ts";
import { RELU_PARAMS, reluShader } from "./relu.wgsl.ts";
import { empty, type Tensor } from "./tensor.ts";

const WORKGROUP = 256;

/**
 * `max(x, 0)` elementwise, as `torch.relu`. Recorded into the allocator's
 * batch; the result is a new tensor of the same shape.
 *
 * @example
 * ```ts
 * import { HeapAllocator, relu, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const y = relu(tensor(allocator, [-2, -1, 0, 1, 2], [5]));
 * assert.deepEqual([...await y.read()], [0, 0, 0, 1, 2]);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @param x any shape
 * @returns a new tensor
 */
export function relu(x: Tensor): Tensor {
  checkTensors("relu", { input: x });
  const batch = commandBatchOf(x.allocator);
  const width = x.numel % 4 === 0 ? 4 : 1;
  const count = x.numel / width;
  const program = {
    dtype: x.dtype,
    params: batch.paramsSpace,
    width,
    workgroupSize: WORKGROUP,
  } as const;
  const shader = getShader(batch.device, reluShader(program));
  const params = i32Params("relu", RELU_PARAMS, { total: count });
  const grid = grid2d(Math.ceil(count / WORKGROUP));
  const y = empty(x.allocator, x.shape, { dtype: x.dtype, label: "relu" });
  return recordInto(batch, y, [{ shader, params, storage: [x.block, y.block], grid }]);
}
