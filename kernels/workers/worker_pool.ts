/**
 * A pool of Web Workers that run a job module concurrently, each with its
 * own device and allocator, all reserving from one shared budget.
 *
 * @module
 */

import { FakeDevice } from "../../allocator/device.ts";
import { HeapAllocator } from "../../allocator/allocator.ts";
import { SharedBudget } from "./shared_budget.ts";
import type { PipelineJobReport, PipelineRun } from "./pipeline_job.ts";
import type { ErrorInfo, JobReport, WorkerHeapOptions } from "./job.ts";
import { WorkerControl, WorkerState } from "./_control.ts";
import { errorInfo, type FromWorker, readReply, type ToWorker } from "./_messages.ts";
import {
  newThreads,
  THREAD_POLL_MS,
  threadRuns,
  type WorkerThread,
  workerThreads,
} from "./_threads.ts";
import { WorkerError } from "./worker_error.ts";

export { WorkerError };

/** How long a Worker may take to close before it is terminated. */
const CLOSE_TIMEOUT_MS = 10_000;
/** How long a Worker may take to load its modules and get its device. */
const START_TIMEOUT_MS = 120_000;
/** Default {@linkcode WorkerPoolOptions.stallTimeout}. */
const STALL_TIMEOUT_MS = 60_000;
/** How often the pool looks at its Workers' state words and heartbeats. */
const WATCH_MS = 20;
/** The Worker script. */
const WORKER_SCRIPT = new URL("./worker.ts", import.meta.url);
/** The stress job (kernels/workers/pipeline_job.ts), the default job. */
const PIPELINE_JOB = new URL("./pipeline_job.ts", import.meta.url);

/** Options of {@linkcode WorkerPool.start}. */
export interface WorkerPoolOptions {
  /** Number of Workers (default 4). */
  workers?: number;
  /** The budget every Worker reserves from (default: a new one without a limit). */
  budget?: SharedBudget;
  /** Options of each Worker's `HeapAllocator` (watermarks, alloc conf, debug): plain data, sent to each Worker. */
  heapOptions?: WorkerHeapOptions;
  /**
   * The job module each Worker loads: its default export is the job
   * function (`Job` (job.ts)), called for each `run()`. Resolve it from
   * your own module (`new URL("./my_job.ts", import.meta.url)`) so it loads
   * wherever your code is served from. Default: the stress job
   * (`pipeline_job.ts`), whose input is a {@linkcode PipelineRun}.
   */
  job?: string | URL;
  /**
   * The Worker script (default: this package's `worker.ts`). A module of
   * your own must import `worker.ts`, which answers the pool; it may add
   * code of its own around it (instrumentation, or faults injected by a test).
   */
  script?: string | URL;
  /**
   * Milliseconds a Worker's event loop may stay blocked before the pool
   * takes the Worker as hung, terminates it and reports a
   * {@linkcode WorkerError} (default 60,000). A job that computes on the
   * CPU for longer between awaits needs more.
   */
  stallTimeout?: number;
}

/** Options of {@linkcode WorkerPool.run}. */
export interface RunOptions {
  /**
   * Milliseconds each Worker's job may take; a Worker past it is
   * terminated and its report's error is a {@linkcode WorkerError}
   * (default: no limit).
   */
  timeout?: number;
  /** Aborts the jobs' own signals (a job that honours it ends early). */
  signal?: AbortSignal;
}

/** Steps each Worker's job has counted so far, read without a message. */
export interface PoolProgress {
  /** Steps counted, per Worker (the stress job counts iterations checked). */
  steps: number[];
  /** Failed steps, per Worker. */
  failed: number[];
}

type Reply = FromWorker | { type: "died"; error: WorkerError };

interface Pending {
  kind: "init" | "run" | "close";
  resolve: (reply: Reply) => void;
  /** When the pool stops waiting (performance.now()), and the wait in ms. */
  deadline: number;
  timeout: number;
}

interface Member {
  index: number;
  name: string;
  worker: Worker;
  control: WorkerControl;
  /**
   * The pool's view of the Worker's budget slot. Its detach() gives the slot
   * back unless the Worker's own view already did (they share the claim), so
   * every way a Worker ends can call it.
   */
  share: SharedBudget;
  /** Bytes its slot still reserved when the pool gave it back (0: the Worker detached it). */
  reclaimed: number;
  alive: boolean;
  pending: Map<number, Pending>;
  /** Why the Worker is ending, as it said (a crash, a lost device) or as its error event said. */
  cause: string | null;
  thread: WorkerThread;
  /** The last heartbeat seen, and when it was seen to change. */
  beat: number;
  beatAt: number;
  /** When its state word was first seen ended (0: not yet): its last message may be on its way. */
  endSeenAt: number;
}

/**
 * Web Workers running a job module concurrently: each requests its own
 * device (a GPUDevice cannot cross threads) and makes its own
 * `HeapAllocator`, and all reserve heap memory from one
 * {@linkcode SharedBudget}. A job is a module you write (`Job` (job.ts)):
 * {@linkcode WorkerPool.run} calls its default export on every Worker and
 * collects the reports (errors included); {@linkcode WorkerPool.close}
 * makes every Worker destroy its allocator and device and close itself.
 * Always close a pool before the process exits: running Workers keep it alive.
 * The default job is the stress job (`runPipelineOn` runs it).
 *
 * Every way a Worker ends settles its job at once with a
 * {@linkcode WorkerError} that names the Worker and how it ended, and gives
 * its budget slot back, reservation and all, while the others go on: an
 * uncaught error or rejection, `self.close()`, `Deno.exit()`,
 * `terminate()`, a lost device, a failed start, a malformed message, an
 * event loop blocked past `stallTimeout`, a job past `run()`'s `timeout`.
 * A Web Worker's end fires no event, so each Worker says how it ends in a
 * state word of shared memory, and beats a heartbeat there; the pool
 * watches both (see kernels/workers/_control.ts).
 *
 * Permissions: the Workers load `worker.ts` and the job module from where
 * they are served, so a local copy needs `--allow-read` (for those files)
 * and one served over http(s) needs `--allow-import` for its host (JSR's
 * is allowed by default); `--allow-env` lets the allocators read
 * `GPUHEAP_*` settings (optional). A missing permission is a
 * {@linkcode WorkerError} from `start()` naming the flag to add.
 *
 * Not run by `deno test --doc`: Worker devices in the test runner's process,
 * beside the main-thread devices of other examples and tests, have crashed it
 * at exit (tests/testdata/workers_scenarios.ts runs pools in processes of their own).
 *
 * @example
 * ```ts ignore
 * import { WorkerPool } from "@gpuheap/gpuheap/workers";
 *
 * // my_job.ts:  export default ({ index, input }: JobContext<number>) => input * index;
 * const pool = await WorkerPool.start<number, number>({
 *   workers: 4,
 *   job: new URL("./my_job.ts", import.meta.url),
 * });
 * try {
 *   const reports = await pool.run(10);
 *   console.log(reports.map((r) => r.result)); // [0, 10, 20, 30]
 * } finally {
 *   await pool.close();
 * }
 * ```
 */
export class WorkerPool<In = PipelineRun, Out = PipelineJobReport> {
  #members: Member[];
  #budget: SharedBudget;
  #stallMs: number;
  #adapters: string[] = [];
  #running = false;
  #closed = false;
  #ids = 0;
  #watch: ReturnType<typeof setInterval> | null = null;

  private constructor(members: Member[], budget: SharedBudget, stallMs: number) {
    this.#members = members;
    this.#budget = budget;
    this.#stallMs = stallMs;
  }

  /**
   * Checks the options, then starts the Workers and waits until each has
   * loaded the job and has its device. Whatever fails, nothing is left
   * behind: no Worker runs and no budget slot stays claimed once it throws.
   *
   * @param options Worker count, budget, allocator options, job module, Worker script
   * @returns the pool
   * @throws {RangeError} a bad Worker count or stall timeout, or allocator options the allocator refuses
   * @throws {TypeError} a budget that is not a SharedBudget, allocator options
   *   that are not plain data (a function, say), or a bad job or script URL
   * @throws {AllocatorError} the budget has fewer free slots than Workers
   * @throws {WorkerError} a permission is missing (the message names the flag), or a
   *   Worker could not start (no adapter, a job module that fails to load…); the others are closed
   */
  static async start<In = PipelineRun, Out = PipelineJobReport>(
    options: WorkerPoolOptions = {},
  ): Promise<WorkerPool<In, Out>> {
    const count = options.workers ?? 4;
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new RangeError(
        `Cannot start WorkerPool: workers must be a positive integer, got ${count}`,
      );
    }
    if (options.budget !== undefined && !(options.budget instanceof SharedBudget)) {
      throw new TypeError(
        `Cannot start WorkerPool: budget must be a SharedBudget, got ${options.budget}`,
      );
    }
    const stallMs = options.stallTimeout ?? STALL_TIMEOUT_MS;
    if (!(typeof stallMs === "number" && stallMs > 0)) {
      throw new RangeError(
        `Cannot start WorkerPool: stallTimeout must be a positive number of ms, got ${stallMs}`,
      );
    }
    const heapOptions = checkHeapOptions(options.heapOptions);
    const script = checkUrl("script", options.script) ?? WORKER_SCRIPT;
    const job = checkUrl("job", options.job) ?? PIPELINE_JOB;
    for (const url of [script, job]) {
      const flag = missingPermission(url);
      if (flag !== null) {
        throw new WorkerError(
          0,
          `Cannot start WorkerPool: its Workers load ${url.href}, which needs ${flag}: run again with it`,
        );
      }
    }
    const budget = options.budget ?? new SharedBudget();
    const shares = claimAll(budget, count);
    const controlBuffer = WorkerControl.buffer(count);
    const workers: Worker[] = [];
    const before = workerThreads();
    try {
      for (let i = 0; i < count; i++) {
        workers.push(new Worker(script, { type: "module", name: `gpuheap worker ${i + 1}` }));
      }
    } catch (error) {
      for (const w of workers) w.terminate();
      for (const share of shares) share.detach();
      throw new WorkerError(
        workers.length,
        `Cannot start WorkerPool: Worker ${workers.length + 1} failed to start: ${
          errorInfo(error).message
        }`,
      );
    }
    const threads = newThreads(before, count);
    const now = performance.now();
    const members = workers.map((worker, index): Member => ({
      index,
      name: `Worker ${index + 1}`,
      worker,
      control: new WorkerControl(controlBuffer, index),
      share: shares[index],
      reclaimed: 0,
      alive: true,
      pending: new Map(),
      cause: null,
      thread: { id: threads[index], endedAt: 0, fallback: false },
      beat: 0,
      beatAt: now,
      endSeenAt: 0,
    }));
    const pool = new WorkerPool<In, Out>(members, budget, stallMs);
    for (const m of members) pool.#listen(m);
    pool.#startWatch();
    const replies = await Promise.all(members.map((m) =>
      pool.#request(m, {
        type: "init",
        index: m.index,
        workers: count,
        budget: budget.buffer,
        slot: m.share.slot,
        control: controlBuffer,
        heapOptions,
        job: job.href,
      }, START_TIMEOUT_MS)
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
    replies.forEach((r, i) => {
      if (r.type !== "ready") return;
      pool.#adapters.push(r.adapter);
      members[i].thread.fallback = r.fallback;
    });
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
   * exited, terminated, hung, or ended by a lost device).
   *
   * @param index the Worker's index
   */
  alive(index: number): boolean {
    return this.#members[index]?.alive ?? false;
  }

  /** Steps each Worker's job has counted in the current (or last) run. */
  progress(): PoolProgress {
    return {
      steps: this.#members.map((m) => m.control.steps),
      failed: this.#members.map((m) => m.control.failed),
    };
  }

  /**
   * Runs the job on every live Worker with the same input, and waits for
   * every report. A Worker that ends meanwhile, or had ended, reports a
   * {@linkcode WorkerError} naming it (its report's `error`), with the
   * steps it had counted; the others go on.
   *
   * @param input the job's input (structured-cloned to each Worker)
   * @param options a timeout, an abort signal
   * @returns a report per Worker, by Worker
   * @throws {Error} the pool is closed, or already running a job
   * @throws {RangeError} a bad timeout
   */
  run(input: In, options: RunOptions = {}): Promise<JobReport<Out>[]> {
    return this.runEach(this.#members.map(() => input), options);
  }

  /**
   * {@linkcode WorkerPool.run} with an input per Worker (`null` leaves a
   * Worker idle).
   *
   * @param inputs an input per Worker
   * @param options a timeout, an abort signal
   * @returns a report per Worker that was given an input, by Worker
   * @throws {Error} the pool is closed, or already running a job
   * @throws {RangeError} not one input per Worker, or a bad timeout
   */
  async runEach(
    inputs: readonly (In | null)[],
    options: RunOptions = {},
  ): Promise<JobReport<Out>[]> {
    if (this.#closed) throw new Error("Cannot run a job: the pool was closed");
    if (this.#running) throw new Error("Cannot run a job: the pool is already running one");
    if (!Array.isArray(inputs) || inputs.length !== this.#members.length) {
      throw new RangeError(
        `Cannot run jobs: expected an input per Worker (${this.#members.length}), got ${
          Array.isArray(inputs) ? inputs.length : typeof inputs
        }`,
      );
    }
    const timeout = options.timeout ?? Infinity;
    if (!(typeof timeout === "number" && timeout > 0)) {
      throw new RangeError(
        `Cannot run jobs: timeout must be a positive number of ms, got ${timeout}`,
      );
    }
    const abort = () => {
      for (const m of this.#members) this.#abortRuns(m);
    };
    this.#running = true;
    options.signal?.addEventListener("abort", abort);
    try {
      const runs: Promise<JobReport<Out>>[] = [];
      inputs.forEach((input, index) => {
        if (input !== null) runs.push(this.#runOn(this.#members[index], input, timeout));
      });
      if (options.signal?.aborted) abort();
      return await Promise.all(runs);
    } finally {
      options.signal?.removeEventListener("abort", abort);
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
    this.#kill(m, `${m.name} was terminated`);
    return m.reclaimed;
  }

  /**
   * Asks every live Worker to stop its job (its signal aborts), destroy its
   * allocator and device and close itself, one at a time, each once the
   * last one's thread has ended (Note [Workers close one at a time] in
   * kernels/workers/_threads.ts). Every pending `run()` settles: with the
   * job's own result if it ends in time, else with a {@linkcode WorkerError}.
   * Every budget slot of the pool is given back. Calling it again does nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of this.#members) {
      if (m.alive) {
        this.#abortRuns(m);
        const reply = await this.#request(m, { type: "close" }, CLOSE_TIMEOUT_MS);
        this.#closed1(m, reply.type === "closed");
      }
      while (threadRuns(m.thread)) {
        await new Promise((resolve) => setTimeout(resolve, THREAD_POLL_MS));
      }
    }
    this.#stopWatch();
  }

  /**
   * {@linkcode WorkerPool.close} for where nothing can be awaited (an
   * `unload` listener): blocks this thread while the Workers close, one at
   * a time, each until its thread has ended. A pending `run()` settles with
   * a {@linkcode WorkerError} (its result cannot be received while this
   * thread blocks). Calling it again, or after `close()`, does nothing.
   */
  closeSync(): void {
    if (this.#closed) return;
    this.#closed = true;
    const sleep = new Int32Array(new SharedArrayBuffer(4));
    for (const m of this.#members) {
      if (m.alive) {
        this.#abortRuns(m);
        m.worker.postMessage({ type: "close", id: ++this.#ids } satisfies ToWorker);
        // The Worker sets its state word once its device is destroyed, then closes itself.
        const state = m.control.waitEnd(CLOSE_TIMEOUT_MS);
        if (state === WorkerState.closed) this.#closed1(m, true);
        else if (state > WorkerState.running) this.#kill(m, m.cause ?? endCause(m));
        else this.#kill(m, `${m.name} did not close within ${CLOSE_TIMEOUT_MS} ms`);
      }
      while (threadRuns(m.thread)) Atomics.wait(sleep, 0, 0, THREAD_POLL_MS);
    }
    this.#stopWatch();
  }

  /** Asks the Worker's running job to stop (its signal aborts). */
  #abortRuns(m: Member): void {
    if (!m.alive) return;
    for (const [id, p] of m.pending) {
      if (p.kind === "run") m.worker.postMessage({ type: "abort", id } satisfies ToWorker);
    }
  }

  /** Records that a Worker closed itself at the pool's request, or terminates it if it did not. */
  #closed1(m: Member, closed: boolean): void {
    if (!m.alive) return; // it ended meanwhile, and was buried then
    if (closed) this.#bury(m, `${m.name} was closed while its job ran`);
    else this.#kill(m, `${m.name} did not close`);
  }

  /** Terminates a Worker, and buries it with `cause`. */
  #kill(m: Member, cause: string): void {
    m.worker.terminate();
    this.#bury(m, cause);
  }

  /** Marks a Worker ended, gives its slot back and settles whatever waited for it. */
  #bury(m: Member, cause: string): void {
    if (m.alive) {
      m.alive = false;
      m.thread.endedAt = performance.now();
    }
    m.reclaimed += m.share.detach();
    const waiting = [...m.pending.values()];
    m.pending.clear();
    for (const p of waiting) p.resolve({ type: "died", error: new WorkerError(m.index, cause) });
    if (this.#members.every((x) => !x.alive)) this.#stopWatch();
  }

  async #runOn(m: Member, input: In, timeout: number): Promise<JobReport<Out>> {
    if (m.alive) m.control.resetSteps();
    const reply = await this.#request(m, { type: "run", input }, timeout);
    return {
      worker: m.index,
      result: reply.type === "result" ? reply.result as Out : null,
      error: replyError(m, reply),
      steps: m.control.steps,
      failed: m.control.failed,
    };
  }

  /** Sends a request and waits for its answer, or for the Worker's end: it never waits forever on a Worker that ended. */
  #request(
    m: Member,
    message: DistributiveOmit<ToWorker, "id">,
    timeout: number,
  ): Promise<Reply> {
    if (!m.alive) {
      return Promise.resolve({
        type: "died",
        error: new WorkerError(m.index, `${m.name} is not running`),
      });
    }
    const id = ++this.#ids;
    const kind = message.type as Pending["kind"];
    return new Promise((resolve) => {
      m.pending.set(id, { kind, resolve, deadline: performance.now() + timeout, timeout });
      try {
        m.worker.postMessage({ ...message, id });
      } catch (error) {
        // Not plain data: start() checks its options, so an input the Worker cannot be sent.
        m.pending.delete(id);
        resolve({ type: "failed", id, error: errorInfo(error) });
      }
    });
  }

  /**
   * Listens for what a Worker sends, checked as untrusted (a malformed
   * message ends it), and for the error events of a Worker that failed to
   * load. How it ends otherwise, the watch sees in its state word.
   */
  #listen(m: Member): void {
    m.worker.onmessage = (event) => {
      if (!m.alive) return;
      const reply = readReply(event.data);
      if (typeof reply === "string") {
        this.#kill(m, `${m.name} sent a malformed message (${reply})`);
        return;
      }
      if (reply.type === "ending") {
        m.cause = `${m.name} ${reply.reason}`;
        return;
      }
      const p = m.pending.get(reply.id);
      const fits = p !== undefined &&
        (p.kind === "init"
          ? reply.type === "ready" || reply.type === "failed"
          : p.kind === "run"
          ? reply.type === "result" || reply.type === "failed"
          : reply.type === "closed");
      if (!fits) {
        this.#kill(
          m,
          `${m.name} sent a malformed message (a "${reply.type}" answering no ${
            p ? `"${p.kind}"` : ""
          } request ${reply.id})`,
        );
        return;
      }
      m.pending.delete(reply.id);
      p!.resolve(reply);
    };
    m.worker.onmessageerror = () => {
      if (m.alive) this.#kill(m, `${m.name} sent a message that cannot be read`);
    };
    // A module that failed to load (a runtime error is caught in the Worker, which then ends).
    m.worker.onerror = (event) => {
      event.preventDefault();
      if (m.alive) this.#kill(m, m.cause ?? `${m.name} failed: ${event.message}`);
    };
  }

  #startWatch(): void {
    const watch = setInterval(() => this.#look(), WATCH_MS);
    Deno.unrefTimer(watch); // the Workers keep the process alive, not the watch
    this.#watch = watch;
  }

  #stopWatch(): void {
    if (this.#watch !== null) clearInterval(this.#watch);
    this.#watch = null;
  }

  /** Looks at every live Worker's state word, heartbeat and deadlines. */
  #look(): void {
    const now = performance.now();
    for (const m of this.#members) {
      if (!m.alive) continue;
      const state = m.control.state;
      const closing = [...m.pending.values()].some((p) => p.kind === "close");
      if (state > WorkerState.running || state < 0) {
        if (state === WorkerState.closed && closing) continue; // its "closed" is on its way
        // Its "ending" may be on its way: one more look before it is buried.
        if (m.endSeenAt === 0) m.endSeenAt = now;
        else this.#kill(m, m.cause ?? endCause(m));
        continue;
      }
      const beat = m.control.beat;
      if (beat !== m.beat) {
        m.beat = beat;
        m.beatAt = now;
      } else if (beat !== 0 && now - m.beatAt > this.#stallMs) {
        this.#kill(
          m,
          `${m.name} stopped answering: its event loop was blocked for ${this.#stallMs} ms`,
        );
        continue;
      }
      for (const p of m.pending.values()) {
        if (now > p.deadline) {
          const what = p.kind === "init" ? "start" : p.kind === "run" ? "finish its job" : "close";
          this.#kill(m, `${m.name} did not ${what} within ${p.timeout} ms`);
          break;
        }
      }
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** How a Worker ended, from its state word, where it sent no reason. */
function endCause(m: Member): string {
  const state = m.control.state;
  if (state === WorkerState.closedItself) return `${m.name} closed itself (self.close())`;
  if (state === WorkerState.exited) return `${m.name} exited (Deno.exit(${m.control.exitCode}))`;
  if (state === WorkerState.crashed) return `${m.name} crashed`;
  if (state === WorkerState.lost) return `${m.name} lost its device`;
  if (state === WorkerState.closed) return `${m.name} closed`;
  return `${m.name} ended (its state word reads ${state})`;
}

function replyError(m: Member, reply: Reply): ErrorInfo | null {
  if (reply.type === "result") return reply.error;
  if (reply.type === "failed" || reply.type === "died") return reply.error;
  return new WorkerError(m.index, `${m.name} ${replyMessage(reply)}`);
}

function replyMessage(reply: Reply): string {
  if (reply.type === "failed") return `${reply.error.name}: ${reply.error.message}`;
  if (reply.type === "died") return reply.error.message;
  return `sent an unexpected reply (${reply.type})`;
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

function checkUrl(name: string, url: string | URL | undefined): URL | undefined {
  if (url === undefined) return undefined;
  if (url instanceof URL) return url;
  if (typeof url === "string" && URL.canParse(url)) return new URL(url);
  throw new TypeError(
    `Cannot start WorkerPool: ${name} must be the URL of a module, got ${
      typeof url === "string" ? JSON.stringify(url) : url
    }`,
  );
}

/**
 * The flag a Worker needs to load `url` and lacks, or null: a local module
 * needs read access, one served over http(s) needs import access to its host.
 * Asked without prompting.
 */
function missingPermission(url: URL): string | null {
  let descriptor: Deno.PermissionDescriptor;
  let flag: string;
  if (url.protocol === "file:") {
    descriptor = { name: "read", path: url };
    flag = "--allow-read";
  } else if (url.protocol === "http:" || url.protocol === "https:") {
    descriptor = { name: "import", host: url.host } as unknown as Deno.PermissionDescriptor;
    flag = `--allow-import (for ${url.host})`;
  } else {
    return null;
  }
  try {
    return Deno.permissions.querySync(descriptor).state === "granted" ? null : flag;
  } catch {
    return null; // a permission this Deno does not know: let the Worker try
  }
}
