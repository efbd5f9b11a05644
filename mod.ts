/**
 * gpuheap: a caching GPU memory allocator for WebGPU, with the semantics of
 * PyTorch's MPS allocator — size-class heaps sub-allocated in O(1) by TLSF,
 * cached reuse, a scalar pool, staging buffers, watermarks, garbage
 * collection and exact statistics — and tensors with WGSL kernels
 * (conv2d, ReLU, pooling) whose memory comes from it.
 *
 * This entry is the runtime most programs need. The others:
 * `@gpuheap/gpuheap/kernels` (WGSL builders, float64 references, the shader
 * cache), `@gpuheap/gpuheap/workers` (a budget shared across Web Workers and
 * a pool of Workers running pipelines), `@gpuheap/gpuheap/tools` (trace
 * reading, replay, the memory picture).
 *
 * @example
 * ```ts
 * import { HeapAllocator, requestDevice } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const device = await requestDevice();
 * const allocator = new HeapAllocator(device);
 * const a = allocator.alloc(1 << 20);
 * const s = allocator.scalar(0.5, "f32");
 * assert.ok(allocator.currentAllocatedMemory() >= 1 << 20);
 * allocator.free(a);
 * allocator.free(s);
 * // Nothing live; the heaps stay reserved, cached for the next alloc.
 * assert.equal(allocator.currentAllocatedMemory(), 0);
 * assert.ok(allocator.memoryStats().reservedBytes.current >= 1 << 20);
 * allocator.destroy();
 * device.destroy();
 * ```
 *
 * @module
 */

export {
  type AllocOptions,
  Block,
  HeapAllocator,
  type HeapAllocatorOptions,
  type PlanInfo,
  POOL_NAMES,
  type PoolName,
  type ScalarType,
  type Usage,
} from "./allocator/allocator.ts";
export { requestDevice, type RequestDeviceOptions } from "./allocator/request_device.ts";
export {
  AllocatorError,
  DeviceLostError,
  type OutOfMemoryDetails,
  OutOfMemoryError,
} from "./allocator/errors.ts";
export type { MemoryStats, PoolStats, Stat } from "./allocator/stats.ts";
export {
  type AllocatorDevice,
  type AllocatorLimits,
  FakeBuffer,
  FakeDevice,
  type FakeDeviceOptions,
} from "./allocator/device.ts";
export type { MemoryBudget } from "./allocator/budget.ts";
export { formatBytes } from "./allocator/format.ts";
export { flatMemoryStats, formatMemorySummary } from "./allocator/memory_summary.ts";
export { type AllocatorSettings, parseBytes } from "./allocator/config.ts";
export * as constants from "./allocator/constants.ts";
export type {
  BlockStateName,
  Snapshot,
  SnapshotBlock,
  SnapshotHeap,
} from "./allocator/snapshot.ts";
export type {
  AllocEvent,
  EmptyCacheEvent,
  FreeEvent,
  HeapEvent,
  IterEvent,
  OomEvent,
  ReleaseEvent,
  ResetPeakEvent,
  ScalarEvent,
  SplitEvent,
  SubmitEvent,
  Trace,
  TraceEvent,
} from "./allocator/trace.ts";
export {
  avgPool2d,
  type AvgPool2dOptions,
  conv2d,
  type Conv2dAlgorithm,
  type Conv2dOptions,
  conv2dRelu,
  type Conv2dTiledProgram,
  type Conv2dTiles,
  type Conv2dWinogradProgram,
  type Conv2dWinogradTiles,
  type ConvWeights,
  type DType,
  empty,
  keep,
  type KernelProgram,
  maxPool2d,
  type MaxPool2dOptions,
  type Owned,
  type Pair,
  type ParamsSpace,
  pipeline,
  type PipelineOptions,
  readAll,
  relu,
  reportTensorLeaks,
  scope,
  submit,
  Tensor,
  tensor,
  type TensorAllocator,
  type TensorAllocOptions,
  type TensorBlock,
  type TensorData,
  type TensorOptions,
  type WinogradPool,
} from "./kernels/mod.ts";
