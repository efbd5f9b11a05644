/**
 * A job of your own for {@linkcode WorkerPool}: a module whose default
 * export each Worker calls with its {@linkcode JobContext} (its own device,
 * an allocator drawing from the pool's shared budget, its index, an abort
 * signal, a progress counter and the input given to `run()`), and whose
 * result (structured-clonable data) `run()` returns.
 *
 * ```ts ignore
 * // double_job.ts
 * import type { JobContext } from "@gpuheap/gpuheap/workers";
 * import { relu, scope, tensor } from "@gpuheap/gpuheap/kernels";
 *
 * export default async function job({ allocator, input, progress }: JobContext<number[]>) {
 *   using y = scope(() => relu(tensor(allocator, input, [input.length])));
 *   const out = [...await y.read()];
 *   progress.step();
 *   return out;
 * }
 *
 * // main.ts
 * const pool = await WorkerPool.start<number[], number[]>({
 *   workers: 4,
 *   job: new URL("./double_job.ts", import.meta.url),
 * });
 * const reports = await pool.run([-1, 2]); // reports[i].result: [0, 2]
 * await pool.close();
 * ```
 *
 * @module
 */

import type { HeapAllocator, HeapAllocatorOptions } from "../../allocator/allocator.ts";

/** Allocator options a Worker can be sent (no functions, no budget: it has its own). */
export type WorkerHeapOptions = Omit<HeapAllocatorOptions, "log" | "budget">;

/** Counts a job's steps, readable by the pool without a message ({@linkcode WorkerPool.progress}). */
export interface JobProgress {
  /**
   * Counts steps done, and whether they passed.
   *
   * @param count steps done (default 1)
   * @param failed how many of them failed (default 0)
   */
  step(count?: number, failed?: number): void;
  /** Steps counted in this job so far. */
  readonly steps: number;
  /** Failed steps counted in this job so far. */
  readonly failed: number;
}

/** What a job function gets on its Worker. */
export interface JobContext<In = unknown> {
  /** What `run()` was given for this Worker (a structured clone). */
  input: In;
  /** This Worker's device (a GPUDevice cannot cross threads: each Worker has its own). */
  device: GPUDevice;
  /** This Worker's allocator: its heaps draw from the pool's shared budget. It outlives the job. */
  allocator: HeapAllocator;
  /** This Worker's index in the pool (0-based). */
  index: number;
  /** Workers in the pool. */
  workers: number;
  /** Aborted when the pool asks the job to stop (`close()`, or `run()`'s own signal). */
  signal: AbortSignal;
  /** The job's step counter. */
  progress: JobProgress;
}

/**
 * A job function: the default export of a job module. It returns (or
 * resolves to) structured-clonable data; what it throws is the run's error,
 * and the Worker goes on.
 *
 * @example
 * ```ts
 * import type { Job } from "@gpuheap/gpuheap/workers";
 *
 * const count: Job<number, number> = ({ input, progress }) => {
 *   progress.step(input);
 *   return input * 2;
 * };
 * ```
 */
export type Job<In = unknown, Out = unknown> = (context: JobContext<In>) => Out | Promise<Out>;

/** An error as it crosses threads: its name and message. */
export interface ErrorInfo {
  /** The error's name (`OutOfMemoryError`, `AbortError`…). */
  name: string;
  /** Its message. */
  message: string;
}

/** What one Worker's run of a job gave: its result, or why there is none. */
export interface JobReport<Out = unknown> {
  /** The Worker's index in the pool (0-based). */
  worker: number;
  /** What the job function returned, or null if it threw or its Worker ended. */
  result: Out | null;
  /**
   * Null if the job ran clean; what it threw; `GPUValidationError` if its
   * device reported errors (the result is then kept); or a `WorkerError`
   * (its `name`) if its Worker ended, sent a malformed message or ran past
   * the run's timeout.
   */
  error: ErrorInfo | null;
  /** The job's step count when it ended ({@linkcode JobProgress}). */
  steps: number;
  /** Its failed steps. */
  failed: number;
}
