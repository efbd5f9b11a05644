/**
 * The thread layer: one memory budget shared by the allocators of every Web
 * Worker of a process ({@linkcode SharedBudget}), and a pool of Web Workers
 * that each own a device and an allocator and run a job module of your own
 * ({@linkcode WorkerPool}, {@linkcode Job}) or the stress job: verified
 * Conv→ReLU→MaxPool pipelines ({@linkcode runPipelineOn}).
 *
 * Permissions the pool needs: `--allow-read` for a local copy of the package
 * and of your job module, or `--allow-import` for the host serving them;
 * `--allow-env` (optional) for the `GPUHEAP_*` settings.
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

export {
  type BudgetShare,
  SharedBudget,
  SharedBudgetError,
  type SharedBudgetOptions,
} from "./shared_budget.ts";
export {
  type PoolProgress,
  type RunOptions,
  WorkerError,
  WorkerPool,
  type WorkerPoolOptions,
} from "./worker_pool.ts";
export type {
  ErrorInfo,
  Job,
  JobContext,
  JobProgress,
  JobReport,
  WorkerHeapOptions,
} from "./job.ts";
export {
  DEFAULT_PIPELINE_SHAPE,
  PIPELINE_DATA_KEPT,
  PIPELINE_LIMITS,
  type PipelineData,
  pipelineData,
  type PipelineJob,
  pipelineJob,
  type PipelineJobOptions,
  type PipelineJobReport,
  type PipelineMode,
  type PipelinePool,
  type PipelineRun,
  type PipelineShape,
  runPipelineJob,
  type RunPipelineJobOptions,
  runPipelineOn,
  UncachedAllocator,
  type WorkerReport,
} from "./pipeline_job.ts";
// A job's context names the allocator and its types: the root entry's types, for the docs.
export type * from "../../mod.ts";
