/**
 * The thread layer: one memory budget shared by the allocators of every Web
 * Worker of a process ({@linkcode SharedBudget}), and a pool of Workers that
 * each own a device and an allocator and run verified Conv→ReLU→MaxPool
 * pipelines ({@linkcode WorkerPool}).
 *
 * @example
 * ```ts
 * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import { SharedBudget } from "@gpuheap/gpuheap/workers";
 * import assert from "node:assert/strict";
 *
 * const budget = new SharedBudget({ limit: "64MiB" });
 * // In a Worker: SharedBudget.from(buffer, slot), with both sent by postMessage.
 * const mine = SharedBudget.from(budget.buffer, budget.claim("worker 1").slot);
 * const heap = new HeapAllocator(new FakeDevice(), { budget: mine });
 * heap.alloc(1 << 20);
 * assert.equal(budget.reserved, heap.driverAllocatedMemory());
 * heap.destroy();
 * mine.detach();
 * assert.equal(budget.reserved, 0);
 * ```
 *
 * @module
 */

export { type BudgetShare, SharedBudget, type SharedBudgetOptions } from "./shared_budget.ts";
export {
  type PoolProgress,
  WorkerError,
  WorkerPool,
  type WorkerPoolOptions,
  type WorkerReport,
} from "./worker_pool.ts";
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
} from "./pipeline_job.ts";
export type { WorkerHeapOptions } from "./worker.ts";
export type { HeapAllocatorOptions } from "../../allocator/allocator.ts";
export type { MemoryBudget } from "../../allocator/budget.ts";
export type { MemoryStats, PoolStats, Stat } from "../../allocator/stats.ts";
export type { TensorAllocator, TensorAllocOptions, TensorBlock } from "../command_batch.ts";
