/**
 * gpuheap: a caching GPU memory allocator for WebGPU, with the semantics of
 * PyTorch's MPS allocator — size-class heaps sub-allocated in O(1) by TLSF,
 * cached reuse, a scalar pool, staging buffers, watermarks, garbage
 * collection and exact statistics.
 *
 * @example
 * ```ts
 * import { HeapAllocator, requestDevice } from "@gpuheap/gpuheap";
 *
 * const device = await requestDevice();
 * const heap = new HeapAllocator(device);
 * const a = heap.alloc(1 << 20);
 * const s = heap.scalar(0.5, "f32");
 * heap.free(a);
 * heap.free(s);
 * console.log(heap.memoryStats().reservedBytes.current);
 * heap.destroy();
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
  POOL_NAMES,
  type PoolName,
  type ScalarType,
  type Usage,
} from "./allocator/allocator.ts";
export { requestDevice, type RequestDeviceOptions } from "./allocator/request_device.ts";
export { AllocatorError, type OutOfMemoryDetails, OutOfMemoryError } from "./allocator/errors.ts";
export type { MemoryStats, PoolStats, Stat } from "./allocator/stats.ts";
export {
  type AllocatorDevice,
  type AllocatorLimits,
  FakeBuffer,
  FakeDevice,
  type FakeDeviceOptions,
} from "./allocator/device.ts";
export type { MemoryBudget } from "./allocator/budget_types.ts";
export { formatBytes } from "./allocator/format.ts";
export { parseBytes } from "./allocator/config.ts";
export * as constants from "./allocator/constants.ts";
export type {
  BlockStateName,
  Snapshot,
  SnapshotBlock,
  SnapshotHeap,
} from "./allocator/snapshot.ts";
export {
  type AllocEvent,
  type EmptyCacheEvent,
  type FreeEvent,
  type HeapEvent,
  type OomEvent,
  readTrace,
  type ReleaseEvent,
  type ResetPeakEvent,
  type ScalarEvent,
  type SplitEvent,
  type SubmitEvent,
  type Trace,
  TraceError,
  type TraceEvent,
} from "./allocator/trace.ts";
export { replay, type ReplayOptions, type ReplayResult } from "./allocator/replay.ts";
export { memvizHtml, type MemvizOptions, POOL_COLORS } from "./allocator/memviz.ts";
export type { AllocatorSettings } from "./allocator/config.ts";
export * from "./kernels/mod.ts";
export { type BudgetShare, SharedBudget, type SharedBudgetOptions } from "./allocator/budget.ts";
export {
  PipelinePool,
  type PipelinePoolOptions,
  type PoolProgress,
  type WorkerReport,
} from "./kernels/worker_pool.ts";
export {
  DEFAULT_PIPELINE_SHAPE,
  type PipelineData,
  pipelineData,
  type PipelineJob,
  pipelineJob,
  type PipelineJobOptions,
  type PipelineJobReport,
  type PipelineMode,
  type PipelineShape,
  runPipelineJob,
  type RunPipelineJobOptions,
  UncachedAllocator,
} from "./kernels/pipeline_job.ts";
export type { WorkerHeapOptions } from "./kernels/pipeline_worker.ts";
