/**
 * Tensors over allocator blocks, WGSL kernels (conv2d naive, tiled and Winograd,
 * ReLU, max and average pooling) recorded into a per-allocator command
 * batch, the three-stage pipeline, and float64 CPU references of each.
 *
 * @example
 * ```ts
 * import { conv2dRelu, maxPool2d, readAll, tensor } from "./mod.ts";
 * import { HeapAllocator } from "../allocator/allocator.ts";
 * import { requestDevice } from "../allocator/request_device.ts";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const x = tensor(allocator, new Float32Array(1 * 3 * 8 * 8).fill(1), [1, 3, 8, 8]);
 * const w = tensor(allocator, new Float32Array(4 * 3 * 3 * 3).fill(0.1), [4, 3, 3, 3]);
 * const y = conv2dRelu(x, w, null, { padding: 1 });
 * const z = maxPool2d(y, { kernelSize: 2 });
 * const [a, b] = await readAll([y, z]);
 * console.log(a.length, b.length); // 256 64
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
