/**
 * A pool of Workers that run the stress job concurrently, each with its own
 * device and allocator, all reserving from one shared budget.
 *
 * @module
 */

import { Worker } from "node:worker_threads";
import { FakeDevice } from "../../allocator/device.ts";
import { HeapAllocator } from "../../allocator/allocator.ts";
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
/** The Worker script. */
const WORKER_SCRIPT = new URL("./worker.ts", import.meta.url);

/** Options of {@linkcode WorkerPool.start}. */
export interface WorkerPoolOptions {
  /** Number of Workers (default 4). */
  workers?: number;
  /** The budget every Worker reserves from (default: a new one without a limit). */
  budget?: SharedBudget;
  /** Options of each Worker's `HeapAllocator` (watermarks, alloc conf, debug): plain data, sent to each Worker. */
  heapOptions?: WorkerHeapOptions;
  /**
   * The module each Worker runs (default: this package's `worker.ts`). A module
   * of your own must import `worker.ts`, which answers the pool; it may add
   * code of its own around it (instrumentation, or faults injected by a test).
   */
  script?: string | URL;
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

/**
 * A Worker of a {@linkcode WorkerPool} ended, or could not start: it crashed,
 * closed itself or exited (`self.close()`, `Deno.exit()`), lost its device,
 * was terminated, or did not answer. The message names the Worker (counted
 * from 1) and says how it ended. {@linkcode WorkerPool.run} reports it as
 * the `error` of that Worker's report (the other Workers' jobs go on);
 * {@linkcode WorkerPool.start} throws it.
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

type Reply = FromPipelineWorker | { type: "died"; error: WorkerError };

interface Member {
  index: number;
  worker: Worker;
  /**
   * The pool's view of the Worker's budget slot. Its detach() gives the slot
   * back unless the Worker's own view already did (they share the claim), so
   * every way a Worker ends can call it.
   */
  share: SharedBudget;
  /** Bytes its slot still reserved when the pool gave it back (0: the Worker detached it). */
  reclaimed: number;
  alive: boolean;
  waiting: ((reply: Reply) => void) | null;
  /** Why the Worker is ending, as it said (its device was lost) or as its error event said. */
  cause: string | null;
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
 * Always close a pool before the process exits: running Workers keep it alive.
 *
 * The Workers are `node:worker_threads` Workers, whose `exit` event says
 * when a Worker's script ended, however it ended: an uncaught error or
 * rejection, `self.close()`, `Deno.exit()`, `terminate()`, a lost device
 * (the Worker then ends itself). Each end settles the Worker's job at once
 * with a {@linkcode WorkerError} that names the Worker and how it ended, and
 * gives its budget slot back, reservation and all, while the others go on.
 *
 * Not run by `deno test --doc`: Worker devices in the test runner's process,
 * beside the main-thread devices of other examples and tests, have crashed it
 * at exit (tests/testdata/workers_scenarios.ts runs pools in processes of their own).
 *
 * @example
 * ```ts ignore
 * import { pipelineJob, WorkerPool } from "@gpuheap/gpuheap/workers";
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
   * Checks the options, then starts the Workers and waits until each has its
   * device. Whatever fails, nothing is left behind: no Worker runs and no
   * budget slot stays claimed once it throws.
   *
   * @param options Worker count, budget, allocator options, Worker script
   * @returns the pool
   * @throws {RangeError} a bad Worker count, or allocator options the allocator refuses
   * @throws {TypeError} a budget that is not a SharedBudget, allocator options
   *   that are not plain data (a function, say), or a bad script
   * @throws {AllocatorError} the budget has fewer free slots than Workers
   * @throws {WorkerError} a Worker could not start (no adapter, say); the others are closed
   */
  static async start(options: WorkerPoolOptions = {}): Promise<WorkerPool> {
    const count = options.workers ?? 4;
    if (!Number.isInteger(count) || count < 1) {
      throw new RangeError(
        `Cannot start WorkerPool: workers must be a positive integer, got ${count}`,
      );
    }
    if (options.budget !== undefined && !(options.budget instanceof SharedBudget)) {
      throw new TypeError(
        `Cannot start WorkerPool: budget must be a SharedBudget, got ${options.budget}`,
      );
    }
    const heapOptions = checkHeapOptions(options.heapOptions);
    const script = checkScript(options.script);
    const budget = options.budget ?? new SharedBudget();
    const shares = claimAll(budget, count);
    const members: Member[] = [];
    const before = workerThreads();
    try {
      for (const [index, share] of shares.entries()) {
        members.push({
          index,
          worker: new Worker(script),
          share,
          reclaimed: 0,
          alive: true,
          waiting: null,
          cause: null,
          thread: null,
          endedAt: 0,
          fallback: false,
        });
      }
    } catch (error) {
      for (const m of members) m.worker.terminate().catch(() => {});
      for (const share of shares) share.detach();
      throw error;
    }
    const progress = new Int32Array(new SharedArrayBuffer(count * PROGRESS_INTS * 4));
    const pool = new WorkerPool(members, budget, progress);
    for (const m of members) pool.#listen(m);
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
    const replies = await Promise.all(members.map((m) =>
      pool.#request(m, {
        type: "init",
        index: m.index,
        budget: budget.buffer,
        slot: m.share.slot,
        progress: progress.buffer,
        heapOptions,
      })
    ));
    const failed = replies.findIndex((r) => r.type !== "ready");
    if (failed >= 0) {
      await pool.close();
      throw new WorkerError(
        failed,
        `Cannot start WorkerPool: Worker ${failed + 1} failed to start: ${
          replyMessage(replies[failed])
        }`,
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
   * Whether Worker `index` still runs (not ended in any way: closed, crashed,
   * exited, terminated, or ended by a lost device).
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
   * measurement. A Worker that ends meanwhile, or had ended, reports a
   * {@linkcode WorkerError} naming it (its report's `error`), with the
   * iterations it had checked; the others go on.
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
   * any, reports a {@linkcode WorkerError}.
   *
   * @param index the Worker's index
   * @returns the bytes its slot still reserved
   */
  terminate(index: number): number {
    const m = this.#members[index];
    if (!m || !m.alive) return 0;
    this.#kill(m, `Worker ${index + 1} was terminated`);
    return m.reclaimed;
  }

  /**
   * Asks every live Worker to destroy its allocator and device and close
   * itself, one at a time, each once the last one's thread has ended:
   * Workers tearing their devices down at once have deadlocked in NVIDIA's
   * driver, and a process that exits while one still tears down can crash.
   * Every budget slot of the pool is given back. Calling it again does nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of this.#members) {
      if (m.alive) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<Reply>((resolve) => {
          timer = setTimeout(
            () => resolve({ type: "died", error: new WorkerError(m.index, "timed out") }),
            CLOSE_TIMEOUT_MS,
          );
        });
        const reply = await Promise.race([this.#request(m, { type: "close" }), timeout]);
        clearTimeout(timer);
        this.#closed1(m, reply.type === "closed");
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
    for (const m of this.#members) {
      if (m.alive) {
        m.worker.postMessage({ type: "close" });
        const at = PROGRESS_INTS * m.index + 2;
        const until = performance.now() + CLOSE_TIMEOUT_MS;
        // The Worker sets its flag once its device is destroyed, then closes itself.
        while (Atomics.load(p, at) === 0 && performance.now() < until) {
          Atomics.wait(p, at, 0, Math.max(1, until - performance.now()));
        }
        this.#closed1(m, Atomics.load(p, at) === 1);
      }
      while (this.#threadRuns(m)) Atomics.wait(sleep, 0, 0, THREAD_POLL_MS);
    }
  }

  /** Records that a Worker closed itself, or terminates it if it did not. */
  #closed1(m: Member, closed: boolean): void {
    if (!m.alive) return; // it ended meanwhile, and was buried then
    if (closed) {
      m.alive = false;
      m.endedAt = performance.now();
      m.share.detach(); // the Worker detached its own view: this does nothing then
    } else {
      this.#kill(m, `Worker ${m.index + 1} did not close`);
    }
  }

  /** Terminates a Worker, and buries it with `cause` (Node's Worker may say "exit" before terminate() returns). */
  #kill(m: Member, cause: string): void {
    m.cause = cause;
    m.worker.terminate().catch(() => {});
    this.#bury(m, cause);
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
    const reply = await this.#request(this.#members[index], { type: "run", job, data });
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
        : reply.type === "died"
        ? reply.error
        : new WorkerError(index, `Worker ${index + 1} ${replyMessage(reply)}`),
      memory: null,
      createBufferCalls: 0,
    };
  }

  /** Sends a message and waits for the answer, or for the Worker's end: it never waits forever on a Worker that ended. */
  #request(m: Member, message: ToPipelineWorker): Promise<Reply> {
    if (!m.alive) {
      return Promise.resolve({
        type: "died",
        error: new WorkerError(m.index, `Worker ${m.index + 1} is not running`),
      });
    }
    return new Promise((resolve) => {
      m.waiting = resolve;
      try {
        m.worker.postMessage(message);
      } catch (error) {
        // Not plain data: start() checks its options, so a job the Worker cannot be sent.
        m.waiting = null;
        resolve({ type: "failed", error: describeError(error) });
      }
    });
  }

  /**
   * Listens for everything a Worker can do: answer, fail to send, crash,
   * say why it is ending, and end. Node's Worker says when the thread's
   * script ended however it ended (`self.close()`, `Deno.exit()`, an
   * uncaught error, `terminate()`), where a Web Worker says nothing.
   */
  #listen(m: Member): void {
    const name = `Worker ${m.index + 1}`;
    m.worker.on("message", (data: FromPipelineWorker) => {
      if (data.type === "ending") {
        m.cause = `${name} ${data.reason}`;
        return;
      }
      const waiting = m.waiting;
      m.waiting = null;
      waiting?.(data);
    });
    m.worker.on("messageerror", () => {
      const waiting = m.waiting;
      m.waiting = null;
      waiting?.({
        type: "died",
        error: new WorkerError(m.index, `${name} sent a message that cannot be read`),
      });
    });
    // Handled here, and always followed by "exit".
    m.worker.on("error", (error: Error) => {
      m.cause ??= `${name} crashed: ${error?.message ?? error}`;
    });
    m.worker.on("exit", (code: number) => {
      this.#bury(
        m,
        m.cause ??
          `${name} ended without a reply (exit code ${code}: self.close() or Deno.exit())`,
      );
    });
  }

  /** Marks a Worker ended, gives its slot back and answers whatever waited for it. */
  #bury(m: Member, message: string): void {
    if (m.alive) {
      m.alive = false;
      m.endedAt = performance.now();
    }
    m.reclaimed += m.share.detach();
    const waiting = m.waiting;
    m.waiting = null;
    waiting?.({ type: "died", error: new WorkerError(m.index, message) });
  }
}

/** Claims a slot per Worker, all or none. */
function claimAll(budget: SharedBudget, count: number): SharedBudget[] {
  const shares: SharedBudget[] = [];
  try {
    for (let i = 0; i < count; i++) shares.push(budget.claim(`worker ${i + 1}`));
  } catch (error) {
    for (const share of shares) share.detach();
    throw error;
  }
  return shares;
}

/**
 * Checks allocator options before any Worker starts: plain data (they are
 * copied to each Worker, which a function or a class instance does not
 * survive) that the allocator accepts (tried on a fake device).
 */
function checkHeapOptions(options: WorkerHeapOptions | undefined): WorkerHeapOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(
      `Cannot start WorkerPool: heapOptions must be an object, got ${options}`,
    );
  }
  const { log, budget } = options as { log?: unknown; budget?: unknown };
  if (log !== undefined || budget !== undefined) {
    throw new TypeError(
      `Cannot start WorkerPool: heapOptions cannot carry ${
        log !== undefined ? "log" : "budget"
      }: each Worker has its own (the pool's budget is options.budget)`,
    );
  }
  let copy: WorkerHeapOptions;
  try {
    copy = structuredClone(options);
  } catch (error) {
    throw new TypeError(
      `Cannot start WorkerPool: heapOptions must be plain data, sent to each Worker: ${
        (error as Error).message
      }`,
    );
  }
  new HeapAllocator(new FakeDevice(), copy).destroy();
  return copy;
}

function checkScript(script: string | URL | undefined): string | URL {
  if (script === undefined) return WORKER_SCRIPT;
  if (script instanceof URL) return script;
  if (typeof script === "string" && URL.canParse(script)) return new URL(script);
  throw new TypeError(
    `Cannot start WorkerPool: script must be a URL of a module, got ${
      typeof script === "string" ? JSON.stringify(script) : script
    }`,
  );
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
  if (reply.type === "died") return reply.error.message;
  return `sent an unexpected reply (${reply.type})`;
}

function describeError(error: unknown): { name: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: "Error", message: String(error) };
}
