/**
 * A pool of Workers that run the stress job concurrently, each with its own
 * device and allocator, all reserving from one shared budget.
 *
 * @module
 */

import { SharedBudget } from "./shared_budget.ts";
import {
  type PipelineData,
  pipelineData,
  type PipelineJob,
  type PipelineJobReport,
} from "./pipeline_job.ts";
import type { FromPipelineWorker, ToPipelineWorker, WorkerHeapOptions } from "./worker.ts";

/**
 * A Worker's thread tears its device down after its last message, and Deno
 * gives no event when the thread has ended. Workers that tore down at once
 * have deadlocked in NVIDIA's driver (4 runs in 30), and a process that
 * exited meanwhile has crashed (heap corruption in glibc, 1 to 4 runs in
 * 100), so Workers close one at a time, each once the last one's thread has
 * ended. On Linux with access to /proc/self/task (it takes --allow-all) the
 * thread is watched; otherwise the pool waits this long per Worker (one
 * teardown took up to ~100 ms on an H100).
 */
const EXIT_GRACE_MS = 250;
/** The same for a CPU (fallback) adapter, whose teardown took ~10 ms here: 0 of 100 runs crashed at 100 ms. */
const EXIT_GRACE_CPU_MS = 100;
/** How often the threads are looked at while waiting for them to end. */
const THREAD_POLL_MS = 5;
/** How long a Worker may take to close before it is terminated. */
const CLOSE_TIMEOUT_MS = 10_000;
/** Int32s per Worker in the progress buffer: iterations checked, failed, closed (0 or 1). */
const PROGRESS_INTS = 3;

/** Options of {@linkcode WorkerPool.start}. */
export interface WorkerPoolOptions {
  /** Number of Workers (default 4). */
  workers?: number;
  /** The budget every Worker reserves from (default: a new one without a limit). */
  budget?: SharedBudget;
  /** Options of each Worker's `HeapAllocator` (watermarks, alloc conf, debug). */
  heapOptions?: WorkerHeapOptions;
}

/** What one Worker's job did, with the Worker's index. */
export interface WorkerReport extends PipelineJobReport {
  /** The Worker's index in the pool (0-based). */
  worker: number;
}

/** Iterations each Worker has checked so far in the current job, read without a message. */
export interface PoolProgress {
  /** Iterations checked, per Worker. */
  iterations: number[];
  /** Iterations over the tolerance, per Worker. */
  failed: number[];
}

type Reply = FromPipelineWorker | { type: "died"; message: string };

interface Member {
  worker: Worker;
  slot: number;
  alive: boolean;
  /** Whether the Worker gave its budget slot back itself. */
  detached: boolean;
  waiting: ((reply: Reply) => void) | null;
  /** The Worker's thread: its id and name (worker-N), where threads can be seen. */
  thread: { tid: string; name: string } | null;
  /** When the Worker closed or was terminated (0: not yet). */
  endedAt: number;
  /** Whether its adapter is a CPU (fallback) one: its teardown is quick. */
  fallback: boolean;
}

/**
 * Workers running the three-stage pipeline job concurrently: each requests
 * its own device (a GPUDevice cannot cross threads) and makes its own
 * `HeapAllocator`, and all reserve heap memory from one
 * {@linkcode SharedBudget}. {@linkcode WorkerPool.run} hands every Worker
 * a job and collects the reports (errors included); {@linkcode WorkerPool.close}
 * makes every Worker destroy its allocator and device and close itself.
 * Always close a pool before the process exits.
 *
 * Not run by `deno test --doc`: Worker devices in the test runner's process,
 * beside the main-thread devices of other examples and tests, have crashed it
 * at exit (tests/testdata/workers_scenarios.ts runs pools in processes of their own).
 *
 * @example
 * ```ts ignore
 * import { WorkerPool } from "./worker_pool.ts";
 * import { pipelineJob } from "./pipeline_job.ts";
 * import assert from "node:assert/strict";
 *
 * const pool = await WorkerPool.start({ workers: 2 });
 * try {
 *   const job = pipelineJob({ iterations: 4, shape: { channels: 2, size: 8, outChannels: 4 } });
 *   const reports = await pool.run(job);
 *   assert.deepEqual(reports.map((r) => [r.iterations, r.failed, r.error]), [[4, 0, null], [4, 0, null]]);
 * } finally {
 *   await pool.close();
 * }
 * ```
 */
export class WorkerPool {
  #members: Member[];
  #budget: SharedBudget;
  #progress: Int32Array<SharedArrayBuffer>;
  #adapters: string[] = [];
  #running = false;
  #closed = false;

  private constructor(
    members: Member[],
    budget: SharedBudget,
    progress: Int32Array<SharedArrayBuffer>,
  ) {
    this.#members = members;
    this.#budget = budget;
    this.#progress = progress;
  }

  /**
   * Starts the Workers and waits until each has its device.
   *
   * @param options Worker count, budget, allocator options
   * @returns the pool
   * @throws {RangeError} a bad Worker count
   * @throws {Error} a Worker could not start (no adapter, say); the others are closed
   */
  static async start(options: WorkerPoolOptions = {}): Promise<WorkerPool> {
    const count = options.workers ?? 4;
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(
        `Cannot start WorkerPool: workers must be a positive integer, got ${count}`,
      );
    }
    const budget = options.budget ?? new SharedBudget();
    const progress = new Int32Array(new SharedArrayBuffer(count * PROGRESS_INTS * 4));
    const before = workerThreads();
    const members: Member[] = [];
    for (let i = 0; i < count; i++) {
      const slot = budget.claim(`worker ${i + 1}`).slot;
      const worker = new Worker(new URL("./worker.ts", import.meta.url), {
        type: "module",
      });
      members.push({
        worker,
        slot,
        alive: true,
        detached: false,
        waiting: null,
        thread: null,
        endedAt: 0,
        fallback: false,
      });
    }
    const pool = new WorkerPool(members, budget, progress);
    members.forEach((m, i) => pool.#listen(m, i));
    // `new Worker` returns once the Worker's thread runs, named worker-N with N
    // counting up and never reused: the new names, in order, are the pool's.
    const after = workerThreads();
    if (before && after) {
      const fresh = [...after].filter(([tid]) => !before.has(tid));
      fresh.sort((a, b) => Number(a[1].slice(7)) - Number(b[1].slice(7)));
      if (fresh.length === count) {
        members.forEach((m, i) => (m.thread = { tid: fresh[i][0], name: fresh[i][1] }));
      }
    }
    const replies = await Promise.all(members.map((m, index) =>
      pool.#request(index, {
        type: "init",
        index,
        budget: budget.buffer,
        slot: m.slot,
        progress: progress.buffer,
        heapOptions: options.heapOptions ?? {},
      })
    ));
    const failed = replies.find((r) => r.type !== "ready");
    if (failed) {
      await pool.close();
      throw new Error(
        `Cannot start WorkerPool: a Worker failed to start: ${replyMessage(failed)}`,
      );
    }
    pool.#adapters = replies.map((r) => (r.type === "ready" ? r.adapter : ""));
    replies.forEach((r, i) => (members[i].fallback = r.type === "ready" && r.fallback));
    return pool;
  }

  /** Number of Workers the pool started. */
  get size(): number {
    return this.#members.length;
  }

  /** The budget the Workers share. */
  get budget(): SharedBudget {
    return this.#budget;
  }

  /** Each Worker's adapter, as it described it. */
  get adapters(): readonly string[] {
    return this.#adapters;
  }

  /**
   * Whether Worker `index` still runs (not terminated, crashed or closed).
   *
   * @param index the Worker's index
   */
  alive(index: number): boolean {
    return this.#members[index]?.alive ?? false;
  }

  /** Iterations each Worker has checked in the current (or last) job. */
  progress(): PoolProgress {
    const p = this.#progress;
    return {
      iterations: this.#members.map((_, i) => Atomics.load(p, PROGRESS_INTS * i)),
      failed: this.#members.map((_, i) => Atomics.load(p, PROGRESS_INTS * i + 1)),
    };
  }

  /**
   * Runs a job on every live Worker (one job for all, or one per Worker,
   * `null` to leave a Worker idle) and waits for every report. The inputs
   * and references are made here by {@linkcode pipelineData}, once per
   * shape, seed and input count: call it first to keep that time out of a
   * measurement. A Worker that dies meanwhile reports an error; the others
   * go on.
   *
   * @param jobs the job, or a job per Worker
   * @returns a report per Worker that was given a job, by Worker
   * @throws {Error} the pool is closed, or already running a job
   */
  async run(jobs: PipelineJob | readonly (PipelineJob | null)[]): Promise<WorkerReport[]> {
    if (this.#closed) throw new Error("Cannot run a job: the pool was closed");
    if (this.#running) throw new Error("Cannot run a job: the pool is already running one");
    const list = Array.isArray(jobs) ? jobs : this.#members.map(() => jobs as PipelineJob);
    if (list.length !== this.#members.length) {
      throw new RangeError(
        `Cannot run jobs: expected one per Worker (${this.#members.length}), got ${list.length}`,
      );
    }
    this.#running = true;
    try {
      this.#members.forEach((_, i) =>
        this.#progress.fill(0, PROGRESS_INTS * i, PROGRESS_INTS * i + 2)
      );
      const runs: Promise<WorkerReport>[] = [];
      list.forEach((job, index) => {
        if (job !== null) runs.push(this.#runOn(index, job, pipelineData(job)));
      });
      return await Promise.all(runs);
    } finally {
      this.#running = false;
    }
  }

  /**
   * Kills Worker `index` at once (`worker.terminate()`), and gives its
   * budget slot back: its reservation returns to the budget. Its job, if
   * any, reports an error.
   *
   * @param index the Worker's index
   * @returns the bytes its slot still reserved
   */
  terminate(index: number): number {
    const m = this.#members[index];
    if (!m || !m.alive) return 0;
    m.worker.terminate();
    return this.#bury(m, `Worker ${index + 1} was terminated`);
  }

  /**
   * Asks every live Worker to destroy its allocator and device and close
   * itself, one at a time, each once the last one's thread has ended:
   * Workers tearing their devices down at once have deadlocked in NVIDIA's
   * driver, and a process that exits while one still tears down can crash.
   * Calling it again does nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const [index, m] of this.#members.entries()) {
      if (m.alive) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<Reply>((resolve) => {
          timer = setTimeout(
            () => resolve({ type: "died", message: "timed out" }),
            CLOSE_TIMEOUT_MS,
          );
        });
        const reply = await Promise.race([this.#request(index, { type: "close" }), timeout]);
        clearTimeout(timer);
        this.#closed1(m, index, reply.type === "closed");
      }
      while (this.#threadRuns(m)) {
        await new Promise((resolve) => setTimeout(resolve, THREAD_POLL_MS));
      }
    }
  }

  /**
   * {@linkcode WorkerPool.close} for where nothing can be awaited (an
   * `unload` listener): blocks this thread while the Workers close, one at
   * a time, each until its thread has ended. Calling it again, or after
   * `close()`, does nothing.
   */
  closeSync(): void {
    if (this.#closed) return;
    this.#closed = true;
    const p = this.#progress;
    const sleep = new Int32Array(new SharedArrayBuffer(4));
    for (const [index, m] of this.#members.entries()) {
      if (m.alive) {
        m.worker.postMessage({ type: "close" });
        const at = PROGRESS_INTS * index + 2;
        const until = performance.now() + CLOSE_TIMEOUT_MS;
        // The Worker sets its flag once its device is destroyed, then closes itself.
        while (Atomics.load(p, at) === 0 && performance.now() < until) {
          Atomics.wait(p, at, 0, Math.max(1, until - performance.now()));
        }
        this.#closed1(m, index, Atomics.load(p, at) === 1);
      }
      while (this.#threadRuns(m)) Atomics.wait(sleep, 0, 0, THREAD_POLL_MS);
    }
  }

  /** Records that a Worker closed itself, or terminates it if it did not. */
  #closed1(m: Member, index: number, closed: boolean): void {
    if (closed) {
      m.detached = true;
      m.alive = false;
      m.endedAt = performance.now();
    } else {
      m.worker.terminate();
      this.#bury(m, `Worker ${index + 1} did not close`);
    }
  }

  /**
   * Whether an ended Worker's thread may still be tearing down its device:
   * its named thread is still listed, or, where threads cannot be seen,
   * the grace period since it ended has not passed. Gives up after
   * {@linkcode CLOSE_TIMEOUT_MS}.
   */
  #threadRuns(m: Member): boolean {
    if (m.endedAt === 0) return false;
    const since = performance.now() - m.endedAt;
    if (since > CLOSE_TIMEOUT_MS) return false;
    const now = m.thread === null ? null : workerThreads();
    if (now === null) return since < (m.fallback ? EXIT_GRACE_CPU_MS : EXIT_GRACE_MS);
    // Threads the driver starts from the Worker's thread take its name and may
    // outlive it (a shared pool): only the Worker's own thread counts.
    return now.get(m.thread!.tid) === m.thread!.name;
  }

  async #runOn(index: number, job: PipelineJob, data: PipelineData): Promise<WorkerReport> {
    const reply = this.#members[index].alive
      ? await this.#request(index, { type: "run", job, data })
      : { type: "died" as const, message: `Worker ${index + 1} is not running` };
    if (reply.type === "result") return { ...reply.report, worker: index };
    const p = this.#progress;
    return {
      worker: index,
      iterations: Atomics.load(p, PROGRESS_INTS * index),
      failed: Atomics.load(p, PROGRESS_INTS * index + 1),
      maxError: NaN,
      seconds: NaN,
      checksums: [],
      error: reply.type === "failed"
        ? reply.error
        : { name: "WorkerError", message: replyMessage(reply) },
      memory: null,
      createBufferCalls: 0,
    };
  }

  #request(index: number, message: ToPipelineWorker): Promise<Reply> {
    const m = this.#members[index];
    if (!m.alive) {
      return Promise.resolve({ type: "died", message: `Worker ${index + 1} is not running` });
    }
    return new Promise((resolve) => {
      m.waiting = resolve;
      m.worker.postMessage(message);
    });
  }

  #listen(m: Member, index: number): void {
    m.worker.onmessage = (event: MessageEvent<FromPipelineWorker>) => {
      const waiting = m.waiting;
      m.waiting = null;
      waiting?.(event.data);
    };
    m.worker.onerror = (event: ErrorEvent) => {
      // Handled here: otherwise an error in a Worker ends the whole process.
      event.preventDefault();
      m.worker.terminate();
      this.#bury(m, `Worker ${index + 1} crashed: ${event.message}`);
    };
    m.worker.onmessageerror = () => {
      m.waiting?.({
        type: "died",
        message: `Worker ${index + 1} sent a message that cannot be read`,
      });
      m.waiting = null;
    };
  }

  /** Marks a Worker dead, gives its slot back and answers whatever waited for it. */
  #bury(m: Member, message: string): number {
    m.alive = false;
    m.endedAt = performance.now();
    const bytes = m.detached ? 0 : this.#budget.reclaim(m.slot);
    m.detached = true;
    const waiting = m.waiting;
    m.waiting = null;
    waiting?.({ type: "died", message });
    return bytes;
  }
}

/**
 * The live threads of this process named as Deno names Worker threads
 * (worker-N), by thread id, or null where they cannot be seen (not Linux,
 * or no access to /proc/self/task: it takes --allow-all; never prompts).
 */
function workerThreads(): Map<string, string> | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const state = Deno.permissions.querySync({ name: "read", path: "/proc/self/task" }).state;
    if (state !== "granted") return null;
    const names = new Map<string, string>();
    for (const entry of Deno.readDirSync("/proc/self/task")) {
      try {
        const name = Deno.readTextFileSync(`/proc/self/task/${entry.name}/comm`).trim();
        if (name.startsWith("worker-")) names.set(entry.name, name);
      } catch {
        // The thread ended between the listing and the read.
      }
    }
    return names;
  } catch {
    return null;
  }
}

function replyMessage(reply: Reply): string {
  if (reply.type === "failed") return `${reply.error.name}: ${reply.error.message}`;
  if (reply.type === "died") return reply.message;
  return `unexpected reply ${reply.type}`;
}
