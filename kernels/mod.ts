/**
 * Tensors over allocator blocks, WGSL kernels (conv2d naive, tiled and Winograd,
 * ReLU, max and average pooling) recorded into a per-allocator command
 * batch, the three-stage pipeline, and float64 CPU references of each.
 *
 * @example
 * ```ts
 * import { conv2dRef, relativeError } from "@gpuheap/gpuheap/kernels";
 * import { conv2dRelu, HeapAllocator, readAll, requestDevice, tensor } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const values = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1));
 * const x = { data: values(3 * 8 * 8), shape: [1, 3, 8, 8] };
 * const w = { data: values(4 * 3 * 3 * 3), shape: [4, 3, 3, 3] };
 * const y = conv2dRelu(
 *   tensor(allocator, x.data, x.shape),
 *   tensor(allocator, w.data, w.shape),
 *   null,
 *   { padding: 1 },
 * );
 * const [out] = await readAll([y]);
 * // The GPU's result against the float64 reference of the same op.
 * const ref = conv2dRef(x, w, null, { padding: 1, relu: true });
 * assert.ok(relativeError(out, ref.data) < 1e-5);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @module
 */

export {
  empty,
  readAll,
  reportTensorLeaks,
  Tensor,
  tensor,
  type TensorData,
  type TensorOptions,
} from "./tensor.ts";
export { keep, type Owned, scope } from "./scope.ts";
export {
  type DType,
  type KernelProgram,
  type KernelShader,
  makeShader,
  type ParamsSpace,
  shaderKey,
  type ShaderProgram,
  shaderProgram,
  type TensorBinding,
  type WorkgroupProgram,
} from "./_prelude.ts";
export type { Pair } from "./_geometry.ts";
export {
  AUTO_SUBMIT_DISPATCHES,
  CommandBatch,
  commandBatchOf,
  type KernelDispatch,
  submit,
  type TensorAllocator,
  type TensorAllocOptions,
  type TensorBlock,
} from "./command_batch.ts";
export { conv2d, type Conv2dAlgorithm, type Conv2dOptions, conv2dRelu } from "./conv2d.ts";
export {
  conv2dDefaultTiles,
  type Conv2dTiles,
  conv2dWinogradDefaultTiles,
  type Conv2dWinogradTiles,
  WINOGRAD_HALF_MAX_CHANNELS,
} from "./conv2d_tiles.ts";
export { relu } from "./relu.ts";
export { maxPool2d, type MaxPool2dOptions } from "./max_pool2d.ts";
export { avgPool2d, type AvgPool2dOptions } from "./avg_pool2d.ts";
export { type ConvWeights, pipeline, type PipelineOptions } from "./pipeline.ts";
export {
  getShader,
  type ShaderCacheStats,
  shaderCacheStats,
  shaderCompilations,
} from "./shader_cache.ts";
export {
  avgPool2dRef,
  conv2dRef,
  maxPool2dRef,
  PIPELINE_STAGES,
  pipelineRef,
  type RefAvgPool2dOptions,
  type RefConv2dOptions,
  type RefConvWeights,
  type RefMaxPool2dOptions,
  type RefResult,
  type RefTensor,
  relativeError,
  reluRef,
} from "./reference.ts";
export {
  type Conv2dTiledProgram,
  conv2dTiledShader,
  conv2dTiledWgsl,
} from "./conv2d_tiled.wgsl.ts";
export {
  type Conv2dNaiveProgram,
  conv2dNaiveShader,
  conv2dNaiveWgsl,
} from "./conv2d_naive.wgsl.ts";
export {
  type Conv2dPackWeightsProgram,
  conv2dPackWeightsShader,
  conv2dPackWeightsWgsl,
} from "./conv2d_pack_weights.wgsl.ts";
export {
  type Conv2dWinogradProgram,
  conv2dWinogradShader,
  conv2dWinogradWeightsShader,
  conv2dWinogradWeightsWgsl,
  conv2dWinogradWgsl,
  type WinogradPool,
} from "./conv2d_winograd.wgsl.ts";
export { type ReluProgram, reluShader, reluWgsl } from "./relu.wgsl.ts";
export { type MaxPool2dProgram, maxPool2dShader, maxPool2dWgsl } from "./max_pool2d.wgsl.ts";
export { type AvgPool2dProgram, avgPool2dShader, avgPool2dWgsl } from "./avg_pool2d.wgsl.ts";
