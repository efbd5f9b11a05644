/**
 * The error of a pool Worker that ended, failed to start or misbehaved.
 *
 * @module
 */

/**
 * A Worker of a `WorkerPool` ended, or could not start: it crashed,
 * closed itself or exited (`self.close()`, `Deno.exit()`), lost its device,
 * was terminated, or did not answer. The message names the Worker (counted
 * from 1) and says how it ended. `WorkerPool.run()` reports it as
 * the `error` of that Worker's report (the other Workers' jobs go on);
 * `WorkerPool.start()` throws it.
 *
 * @example
 * ```ts
 * import { WorkerError } from "@gpuheap/gpuheap/workers";
 * import assert from "node:assert/strict";
 *
 * const error = new WorkerError(1, "Worker 2 was terminated");
 * assert.equal(error.name, "WorkerError");
 * assert.deepEqual(JSON.parse(JSON.stringify(error)), {
 *   name: "WorkerError",
 *   message: "Worker 2 was terminated",
 *   worker: 1,
 * });
 * ```
 */
export class WorkerError extends Error {
  /** The Worker's index in the pool (0-based). */
  readonly worker: number;

  /**
   * Creates the error.
   *
   * @param worker the Worker's index in the pool (0-based)
   * @param message what happened, naming the Worker
   */
  constructor(worker: number, message: string) {
    super(message);
    this.name = "WorkerError";
    this.worker = worker;
  }

  /** Name, message and Worker, for reports printed as JSON. */
  toJSON(): { name: string; message: string; worker: number } {
    return { name: this.name, message: this.message, worker: this.worker };
  }
}
