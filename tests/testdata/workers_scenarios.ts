// The GPU scenarios of tests/workers_test.ts, each run by it in a process of
// its own (`deno run ... tests/testdata/workers_scenarios.ts NAME`): it exits 0, or 1
// after printing the failure. In the test runner's process, Worker devices
// beside the main-thread devices of other test modules have crashed it at
// exit (heap corruption, 2 runs in 40 on the software adapter; 0 in 40
// without them, and 0 in 200 runs of the stress command).
import assert from "node:assert/strict";
import { HeapAllocator } from "../../allocator/allocator.ts";
import { SharedBudget } from "../../kernels/workers/shared_budget.ts";
import { requestDevice } from "../../allocator/request_device.ts";
import {
  pipelineData,
  pipelineJob,
  type PipelineJobReport,
  type PipelineRun,
  runPipelineJob,
  runPipelineOn,
} from "../../kernels/workers/pipeline_job.ts";
import { WorkerError, WorkerPool } from "../../kernels/workers/worker_pool.ts";
import { AllocatorError } from "../../allocator/errors.ts";
import type { SaxpyInput, SaxpyResult } from "./jobs/saxpy_job.ts";
import type { HostileInput } from "./jobs/hostile_job.ts";
import { arbitraryMessages } from "./_arbitrary.ts";

const SAXPY_JOB = new URL("./jobs/saxpy_job.ts", import.meta.url);
const HOSTILE_JOB = new URL("./jobs/hostile_job.ts", import.meta.url);

const SMALL = { channels: 4, size: 16, outChannels: 8 };
/**
 * How long a run whose Worker ends may take to settle. The faulty Worker's
 * job alone would take far longer (minutes), so a run that waits for it
 * instead of noticing its end fails this bound.
 */
const SETTLE_MS = 15_000;

/** The pool's Worker with a fault for Worker 2 (tests/testdata/faulty_worker.ts says which). */
function faulty(fault: string, after = 3): URL {
  return new URL(`./faulty_worker.ts?fault=${fault}&worker=1&after=${after}`, import.meta.url);
}

async function until(what: string, done: () => boolean): Promise<void> {
  const t0 = performance.now();
  while (!done()) {
    assert.ok(performance.now() - t0 < SETTLE_MS, `${what} within ${SETTLE_MS} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Worker 2 of 2 is ended mid-job by `fault`; its run settles with a WorkerError matching `reason`. */
async function endsMidJob(fault: string, reason: RegExp): Promise<void> {
  const budget = new SharedBudget({ limit: "256MiB", slots: 2 });
  const pool = await WorkerPool.start({
    workers: 2,
    budget,
    script: faulty(fault === "terminate" ? "" : fault),
  });
  try {
    const short = pipelineJob({ iterations: 6, inFlight: 2, inputs: 2, shape: SMALL });
    const long = pipelineJob({ iterations: 1_000_000, inFlight: 4, inputs: 2, shape: SMALL });
    const t0 = performance.now();
    const running = runPipelineOn(pool, [short, long]);
    if (fault === "terminate") {
      await until("3 iterations", () => pool.progress().steps[1] >= 3);
      assert.ok(pool.terminate(1) > 0, "the terminated Worker held a reservation");
    }
    const reports = await running;
    assert.ok(performance.now() - t0 < SETTLE_MS, `settled in ${performance.now() - t0} ms`);
    assertClean([reports[0]], [6]);
    const error = reports[1].error;
    assert.ok(error instanceof WorkerError, `a WorkerError, got ${error?.name}: ${error?.message}`);
    assert.equal(error.worker, 1);
    assert.match(error.message, /^Worker 2 /);
    assert.match(error.message, reason);
    assert.ok(reports[1].iterations >= 3 && reports[1].iterations < 1_000_000);
    assert.equal(pool.alive(1), false);
    assert.equal(pool.alive(0), true);
    // Its slot is free again, reservation and all, while the pool still runs.
    assert.deepEqual(budget.shares().map((s) => s.label), ["worker 1"]);
    assert.equal(budget.reserved, budget.shares()[0].reserved);
    budget.claim("after").detach();
    const again = await runPipelineOn(pool, [short, short]);
    assertClean([again[0]], [6]);
    assert.match(again[1].error?.message ?? "", /^Worker 2 is not running$/);
  } finally {
    await pool.close();
  }
  assert.equal(budget.reserved, 0);
  assert.deepEqual(budget.shares(), []);
}

/** Worker 2 of 3 fails while the pool starts: start() throws a WorkerError naming it, and leaves nothing. */
async function failsToStart(fault: string, reason: RegExp): Promise<void> {
  // As many slots as Workers: a slot kept by one failed start fails the next.
  const budget = new SharedBudget({ slots: 3 });
  for (let i = 0; i < 4; i++) {
    const error = await startError({ workers: 3, budget, script: faulty(fault) });
    assert.ok(error instanceof WorkerError, `a WorkerError, got ${error}`);
    assert.equal(error.worker, 1);
    assert.match(error.message, /^Cannot start WorkerPool: Worker 2 failed to start: /);
    assert.match(error.message, reason);
    assert.equal(budget.reserved, 0);
    assert.deepEqual(budget.shares(), []);
  }
  // And a pool starts on the same budget afterwards.
  const pool = await WorkerPool.start({ workers: 3, budget });
  await pool.close();
  assert.deepEqual(budget.shares(), []);
}

async function startError(options: Parameters<typeof WorkerPool.start>[0]): Promise<unknown> {
  try {
    const pool = await WorkerPool.start(options);
    await pool.close();
  } catch (error) {
    return error;
  }
  throw new Error("WorkerPool.start() did not throw");
}

function assertClean(reports: PipelineJobReport[], iterations: number[]): void {
  reports.forEach((r, i) => {
    assert.equal(r.error, null, `worker ${i + 1}: ${r.error?.name}: ${r.error?.message}`);
    assert.equal(r.failed, 0, `worker ${i + 1} failed checks`);
    assert.equal(r.iterations, iterations[i], `worker ${i + 1} iterations`);
    assert.ok(r.maxError <= 1e-4, `worker ${i + 1} max error ${r.maxError}`);
  });
}

/** The scenarios, by the name tests/workers_test.ts runs them with. */
export const SCENARIOS: Record<string, () => Promise<void>> = {
  /** Every Worker's results equal a run on the main thread and the float64 reference. */
  async equal() {
    const job = pipelineJob({ iterations: 12, inFlight: 4, inputs: 3, shape: SMALL });
    const naive = pipelineJob({ iterations: 3, inputs: 3, mode: "naive", shape: SMALL });
    const device = await requestDevice();
    const heap = new HeapAllocator(device);
    let single: PipelineJobReport;
    try {
      single = await runPipelineJob(heap, job, pipelineData(job));
    } finally {
      heap.destroy();
      device.destroy();
    }
    assertClean([single], [12]);
    const pool = await WorkerPool.start({ workers: 4 });
    try {
      const reports = await runPipelineOn(pool, job);
      assertClean(reports, [12, 12, 12, 12]);
      // Bit for bit: the same kernels on the same kind of device, whatever the thread.
      for (const r of reports) assert.deepEqual(r.checksums, single.checksums);
      const naiveReports = await runPipelineOn(pool, naive);
      assertClean(naiveReports, [3, 3, 3, 3]);
      for (const r of naiveReports) assert.deepEqual(r.checksums, single.checksums);
      assert.ok(naiveReports[0].createBufferCalls > reports[0].createBufferCalls);
    } finally {
      await pool.close();
    }
  },

  /** 4 Workers under a budget that fits only if caches are given back all succeed. */
  async caches() {
    // A large-pool shape (conv outputs over 1 MiB: ~2.5 MiB of large heaps) and a small one.
    // Each Worker runs one, then the other: the two that ran big keep their large heaps
    // cached (max_reserved_ratio:0 keeps every cached heap) that the other two need.
    const big = pipelineJob({
      iterations: 3,
      inFlight: 2,
      inputs: 1,
      shape: { channels: 4, size: 192, outChannels: 8 },
    });
    const small = pipelineJob({ iterations: 8, inFlight: 2, inputs: 2, shape: SMALL });
    const limit = 6 * 2 ** 20;
    const budget = new SharedBudget({ limit });
    const pool = await WorkerPool.start({
      workers: 4,
      budget,
      heapOptions: { allocConf: "max_reserved_ratio:0" },
    });
    try {
      const first = await runPipelineOn(pool, [big, big, small, small]);
      assertClean(first, [3, 3, 8, 8]);
      const second = await runPipelineOn(pool, [small, small, big, big]);
      assertClean(second, [8, 8, 3, 3]);
      const peaks = second.map((r) => r.memory!.reservedBytes.peak);
      const kept = peaks.reduce((a, b) => a + b, 0);
      assert.ok(kept > limit, `each Worker's peak together (${kept}) exceeds the limit`);
      assert.ok(budget.peakReserved <= limit, `peak ${budget.peakReserved} > limit ${limit}`);
      assert.ok(budget.pressureEvents > 0, "Workers were asked to release their caches");
    } finally {
      await pool.close();
    }
    assert.equal(budget.reserved, 0);
    assert.deepEqual(budget.shares(), []);
  },

  /** An idle Worker empties its cache when another sharer needs the room. */
  async idle() {
    const budget = new SharedBudget({ limit: "64MiB" });
    const pool = await WorkerPool.start({
      workers: 2,
      budget,
      heapOptions: { allocConf: "max_reserved_ratio:0" },
    });
    const main = budget.claim("main thread");
    try {
      const job = pipelineJob({ iterations: 2, inFlight: 2, inputs: 1, shape: SMALL });
      assertClean(await runPipelineOn(pool, [job, null]), [2]);
      const cached = budget.shares()[0].reserved;
      assert.ok(cached > 0, "Worker 1 keeps its heaps cached after the job");
      const want = 64 * 2 ** 20 - cached + 1;
      assert.equal(main.reserve(want), false);
      // This thread blocks; Worker 1, allocating nothing, is woken by the flag and empties its cache.
      assert.equal(main.relieve(want), true);
      assert.ok(main.reserve(want));
      // The Worker releases heap after heap; this thread woke at the first.
      for (let i = 0; i < 100 && budget.shares()[0].reserved > 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(budget.shares()[0].reserved, 0);
      main.release(want);
      // And the Worker still runs jobs afterwards.
      assertClean(await runPipelineOn(pool, [job, job]), [2, 2]);
    } finally {
      main.detach();
      await pool.close();
    }
    assert.equal(budget.reserved, 0);
  },

  /** A budget too small for one iteration gives each Worker an OutOfMemoryError. */
  async small() {
    const budget = new SharedBudget({ limit: "32KiB" });
    const pool = await WorkerPool.start({ workers: 4, budget });
    const t0 = performance.now();
    try {
      const reports = await runPipelineOn(
        pool,
        pipelineJob({ iterations: 4, inFlight: 2, shape: SMALL }),
      );
      for (const r of reports) {
        assert.equal(
          r.error?.name,
          "OutOfMemoryError",
          `worker ${r.worker + 1}: ${r.error?.message}`,
        );
        assert.equal(r.iterations, 0);
        // The message names every Worker's share of the budget.
        for (const w of [1, 2, 3, 4]) assert.match(r.error!.message, new RegExp(`worker ${w}\\b`));
      }
    } finally {
      await pool.close();
    }
    assert.ok(performance.now() - t0 < 30_000, "nothing hung");
    assert.equal(budget.reserved, 0);
    assert.equal(budget.allocated, 0);
    assert.deepEqual(budget.shares(), []);
  },

  /** A Worker killed mid-run gives its reservation back and the others finish. */
  async killed() {
    const budget = new SharedBudget({ limit: "512MiB" });
    const pool = await WorkerPool.start({ workers: 4, budget });
    try {
      const job = pipelineJob({ iterations: 120, inFlight: 4, inputs: 2, shape: SMALL });
      const running = runPipelineOn(pool, job);
      while (pool.progress().steps[1] < 4) await new Promise((r) => setTimeout(r, 5));
      const before = budget.reserved;
      const reclaimed = pool.terminate(1);
      assert.ok(reclaimed > 0, "the killed Worker held a reservation");
      // The others keep running (and may make a heap meanwhile): a bound, not an equality.
      assert.ok(budget.reserved <= before - reclaimed + 64 * 2 ** 20, "its reservation came back");
      assert.deepEqual(budget.shares().map((s) => s.label), ["worker 1", "worker 3", "worker 4"]);
      assert.equal(pool.alive(1), false);
      const reports = await running;
      assert.match(reports[1].error?.message ?? "", /Worker 2 was terminated/);
      assert.ok(reports[1].iterations < 120);
      assertClean([reports[0], reports[2], reports[3]], [120, 120, 120]);
    } finally {
      await pool.close();
    }
    assert.equal(budget.reserved, 0);
    assert.deepEqual(budget.shares(), []);
  },

  /** A Worker that throws an uncaught exception mid-job ends; its run settles with a WorkerError. */
  async throws() {
    await endsMidJob("throw", /crashed: .*injected fault/);
  },

  /** A Worker with an unhandled rejection mid-job ends the same way. */
  async rejects() {
    await endsMidJob("reject", /crashed: .*injected rejection/);
  },

  /** A Worker that calls self.close() mid-job: no error event, and still its run settles. */
  async closes() {
    await endsMidJob("close", /closed itself \(self\.close\(\)\)$/);
  },

  /** A Worker that calls Deno.exit(3) mid-job. */
  async exits() {
    await endsMidJob("exit", /exited \(Deno\.exit\(3\)\)$/);
  },

  /** A Worker terminated by the pool mid-job. */
  async terminated() {
    await endsMidJob("terminate", /was terminated$/);
  },

  /** A Worker whose device is lost mid-job (device.destroy() inside it) ends, saying so. */
  async lost() {
    await endsMidJob("lose", /lost its device \(destroyed\)/);
  },

  /** A Worker that closes itself between jobs: noticed at once, its slot given back. */
  async closesIdle() {
    const budget = new SharedBudget({ slots: 2 });
    const pool = await WorkerPool.start({ workers: 2, budget, script: faulty("idle-close", 200) });
    try {
      await until("Worker 2 ended", () => !pool.alive(1));
      assert.deepEqual(budget.shares().map((s) => s.label), ["worker 1"]);
      const job = pipelineJob({ iterations: 4, inFlight: 2, inputs: 1, shape: SMALL });
      const reports = await runPipelineOn(pool, job);
      assertClean([reports[0]], [4]);
      assert.ok(reports[1].error instanceof WorkerError);
      assert.match(reports[1].error.message, /^Worker 2 is not running$/);
    } finally {
      await pool.close();
    }
    assert.deepEqual(budget.shares(), []);
  },

  /** A Worker that finds no adapter: start() throws, closes the others, keeps no slot. */
  async noAdapter() {
    await failsToStart("no-adapter", /no WebGPU adapter was found/);
  },

  /** A Worker that exits while the pool starts. */
  async exitsAtStart() {
    await failsToStart("start-exit", /Worker 2 exited \(Deno\.exit\(1\)\)$/);
  },

  /** Options the Workers could not use fail before any Worker starts, and keep no slot. */
  async badOptions() {
    const budget = new SharedBudget({ slots: 2 });
    for (let i = 0; i < 5; i++) {
      const conf = await startError({ workers: 2, budget, heapOptions: { allocConf: "bogus:1" } });
      assert.ok(conf instanceof RangeError, `a RangeError, got ${conf}`);
      // A function cannot be sent to a Worker (a DataCloneError once Workers had started).
      const debug = (() => true) as unknown as boolean;
      const data = await startError({ workers: 2, budget, heapOptions: { debug } });
      assert.ok(data instanceof TypeError, `a TypeError, got ${data}`);
      assert.match(data.message, /^Cannot start WorkerPool: heapOptions must be plain data/);
      const slots = await startError({ workers: 3, budget });
      assert.ok(slots instanceof AllocatorError, `an AllocatorError, got ${slots}`);
      assert.deepEqual(budget.shares(), []);
    }
    const script = await startError({ workers: 1, budget, script: "worker.ts" });
    assert.ok(script instanceof TypeError);
    assert.deepEqual(budget.shares(), []);
    // Had a Worker been left running, this process would not exit (the test checks it does).
  },
};

/** A pool of `workers` on the hostile job, one budget; `fn` runs with it, and every slot must come back. */
async function hostile(
  workers: number,
  fn: (
    pool: WorkerPool<HostileInput | PipelineRun, unknown>,
    budget: SharedBudget,
  ) => Promise<void>,
  stallTimeout?: number,
): Promise<void> {
  const budget = new SharedBudget({ limit: "64MiB", slots: workers });
  const pool = await WorkerPool.start<HostileInput | PipelineRun, unknown>({
    workers,
    budget,
    job: HOSTILE_JOB,
    stallTimeout,
  });
  try {
    await fn(pool, budget);
  } finally {
    await pool.close();
  }
  assert.equal(budget.reserved, 0);
  assert.deepEqual(budget.shares(), []);
}

/** Awaits `running`, which must settle within SETTLE_MS. */
async function settles<T>(running: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not settle in ${SETTLE_MS} ms`)),
      SETTLE_MS,
    );
  });
  try {
    return await Promise.race([running, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A WorkerError of Worker `worker`, its message naming it first (a run's) or after start()'s prefix. */
function assertWorkerError(error: unknown, worker: number, reason: RegExp): void {
  assert.ok(error instanceof WorkerError, `a WorkerError, got ${JSON.stringify(error)}`);
  assert.equal(error.worker, worker);
  assert.match(error.message, new RegExp(`^(Cannot start WorkerPool: )?Worker ${worker + 1} `));
  assert.match(error.message, reason);
}

Object.assign(SCENARIOS, {
  /** A user's job module (its own WGSL kernel, scope and using) on 4 Workers under one budget. */
  async userJob() {
    const budget = new SharedBudget({ limit: "64MiB" });
    const pool = await WorkerPool.start<SaxpyInput, SaxpyResult>({
      workers: 4,
      budget,
      job: SAXPY_JOB,
    });
    try {
      const reports = await pool.run({ length: 4099, rounds: 6, seed: 11 });
      assert.equal(reports.length, 4);
      for (const r of reports) {
        assert.equal(
          r.error,
          null,
          `worker ${r.worker + 1}: ${r.error?.name}: ${r.error?.message}`,
        );
        assert.equal(r.steps, 6);
        assert.equal(r.failed, 0);
        assert.equal(r.result!.worker, r.worker);
        assert.equal(r.result!.rounds, 6);
        assert.ok(
          r.result!.maxError > 0 && r.result!.maxError <= 1e-6,
          `error ${r.result!.maxError}`,
        );
        assert.equal(r.result!.allocatedAtEnd, 0, "scope and using freed every tensor");
      }
      assert.ok(budget.peakReserved > 0 && budget.peakReserved <= 64 * 2 ** 20);
      // Per Worker inputs, and one left idle.
      const some = await pool.runEach([null, { length: 8, rounds: 1, seed: 1 }, null, null]);
      assert.deepEqual(some.map((r) => [r.worker, r.error, r.steps]), [[1, null, 1]]);
    } finally {
      await pool.close();
    }
    assert.equal(budget.reserved, 0);
    assert.deepEqual(budget.shares(), []);
  },

  /** A job that posts null: its Worker ends with a WorkerError, the process lives on (issue 19, item 8). */
  async postsNull() {
    await hostile(2, async (pool, budget) => {
      const reports = await settles(
        pool.runEach([null, { act: "post", message: null }]),
        "a run whose Worker posted null",
      );
      assertWorkerError(reports[0].error, 1, /sent a malformed message \(not an object: null\)$/);
      assert.equal(pool.alive(1), false);
      assert.equal(pool.alive(0), true);
      assert.deepEqual(budget.shares().map((s) => s.label), ["worker 1"]);
      const again = await pool.runEach([{
        act: "post",
        message: { type: "ending", reason: "x" },
        wait: 1,
      }, null]);
      assert.equal(again[0].result, "posted");
    });
  },

  /** A malformed reply is never a success (issue 19, item 11). */
  async malformedReply() {
    await hostile(2, async (pool) => {
      // A result that is not a stress report.
      const job = pipelineJob({ iterations: 4, inFlight: 2, inputs: 1, shape: SMALL });
      const reports = await settles(runPipelineOn(pool, job), "a malformed report");
      for (const r of reports) {
        assertWorkerError(
          r.error,
          r.worker,
          /sent a malformed report \(iterations is not a count\)$/,
        );
      }
      // A reply without its request's id.
      const bad = await settles(
        pool.runEach([{ act: "post", message: { type: "result", result: 1, error: null } }, null]),
        "a reply without an id",
      );
      assertWorkerError(
        bad[0].error,
        0,
        /sent a malformed message \("result" with a bad id undefined\)$/,
      );
      assert.equal(bad[0].result, null);
    });
  },

  /** Arbitrary messages from Workers: each run settles, with its result or a WorkerError; nothing leaks. */
  async fuzzMessages() {
    const next = arbitraryMessages(19);
    const t0 = performance.now();
    let errors = 0;
    for (let round = 0; round < 3; round++) {
      await hostile(4, async (pool) => {
        const messages = [0, 1, 2, 3].map(() => next());
        const reports = await settles(
          pool.runEach(messages.map((message) => ({ act: "post", message, wait: 300 }))),
          "runs of Workers posting arbitrary messages",
        );
        reports.forEach((r, i) => {
          const what = `message ${
            String(JSON.stringify(messages[i], (_, v) => typeof v === "bigint" ? `${v}n` : v))
              .slice(0, 200)
          }`;
          if (r.error === null) {
            assert.equal(r.result, "posted", what);
          } else {
            errors++;
            assertWorkerError(
              r.error,
              i,
              /sent a malformed message|sent a message that cannot be read/,
            );
            assert.equal(pool.alive(i), false, what);
          }
        });
      });
    }
    assert.ok(errors > 0, "some messages were malformed");
    assert.ok(performance.now() - t0 < 60_000, "the fuzzer stays within its time");
  },

  /** A job past run()'s timeout: its Worker is terminated, its slot given back. */
  async runTimeout() {
    await hostile(2, async (pool, budget) => {
      const reports = await settles(
        pool.runEach([{ act: "hang" }, null], { timeout: 500 }),
        "a hung job",
      );
      assertWorkerError(reports[0].error, 0, /did not finish its job within 500 ms$/);
      assert.deepEqual(budget.shares().map((s) => s.label), ["worker 2"]);
    });
  },

  /** A job that blocks its Worker's event loop: the heartbeat stops, the pool ends it. */
  async stalled() {
    await hostile(2, async (pool) => {
      const reports = await settles(pool.runEach([null, { act: "block" }]), "a blocked Worker");
      assertWorkerError(
        reports[0].error,
        1,
        /stopped answering: its event loop was blocked for 1000 ms$/,
      );
    }, 1000);
    // Deno's terminate() cannot stop a thread that never yields: it would keep
    // this process alive, so the process ends itself.
    Deno.exit(0);
  },

  /** close() while run() is in flight settles the run: the job's own aborted report (issue 19, item 10). */
  async closeWhileRunning() {
    const pool = await WorkerPool.start({ workers: 2 });
    const long = pipelineJob({ iterations: 1_000_000, inFlight: 4, inputs: 2, shape: SMALL });
    const running = runPipelineOn(pool, long);
    await until("3 iterations", () => pool.progress().steps[1] >= 3);
    await settles(pool.close(), "close()");
    const reports = await settles(running, "a run the pool was closed under");
    for (const r of reports) {
      assert.equal(r.error?.name, "AbortError", `worker ${r.worker + 1}: ${r.error?.message}`);
      assert.ok(r.iterations >= 1 && r.iterations < 1_000_000);
    }
    // A job that ignores its signal: the Worker is terminated, and its run settles too.
    await hostile(1, async (pool) => {
      const hung = pool.run({ act: "hang" });
      await new Promise((r) => setTimeout(r, 50));
      await pool.close();
      const [report] = await settles(hung, "a hung run the pool was closed under");
      assertWorkerError(report.error, 0, /did not close within 10000 ms$/);
    });
  },

  /** closeSync() while run() is in flight settles the run with a WorkerError (issue 19, item 10). */
  async closeSyncWhileRunning() {
    const budget = new SharedBudget();
    const pool = await WorkerPool.start({ workers: 2, budget });
    const long = pipelineJob({ iterations: 1_000_000, inFlight: 4, inputs: 2, shape: SMALL });
    const running = runPipelineOn(pool, long);
    await until("3 iterations", () => pool.progress().steps[0] >= 3);
    pool.closeSync();
    const reports = await settles(running, "a run the pool was closed under (closeSync)");
    for (const r of reports) assertWorkerError(r.error, r.worker, /was closed while its job ran$/);
    assert.deepEqual(budget.shares(), []);
    assert.equal(budget.reserved, 0);
  },

  /** A job module without a default export function, or one that cannot be loaded. */
  async badJob() {
    const budget = new SharedBudget({ slots: 2 });
    const noDefault = await startError({
      workers: 2,
      budget,
      job: new URL("./_arbitrary.ts", import.meta.url),
    });
    assertWorkerError(noDefault, 0, /has no default export function \(got undefined\)$/);
    assert.match(
      (noDefault as Error).message,
      /^Cannot start WorkerPool: Worker 1 failed to start: /,
    );
    const missing = await startError({
      workers: 2,
      budget,
      job: new URL("./jobs/none.ts", import.meta.url),
    });
    assert.ok(missing instanceof WorkerError, `a WorkerError, got ${missing}`);
    assert.match(missing.message, /Module not found/);
    assert.deepEqual(budget.shares(), []);
  },

  /** Run without --allow-read: start() says which flag to add (no stack trace, no Worker). */
  async noRead() {
    const budget = new SharedBudget({ slots: 2 });
    const error = await startError({ workers: 2, budget });
    assert.ok(error instanceof WorkerError, `a WorkerError, got ${error}`);
    assert.match(error.message, /needs --allow-read: run again with it$/);
    assert.match(
      (error as Error).message,
      /^Cannot start WorkerPool: its Workers load file:.*worker\.ts/,
    );
    assert.deepEqual(budget.shares(), []);
  },
});

if (import.meta.main) {
  const name = Deno.args[0];
  const scenario = SCENARIOS[name];
  if (!scenario) {
    console.error(
      `Unknown scenario ${JSON.stringify(name)} (${Object.keys(SCENARIOS).join(", ")})`,
    );
    Deno.exit(2);
  }
  try {
    await scenario();
  } catch (error) {
    console.error(error instanceof Error ? error.stack ?? error.message : String(error));
    Deno.exitCode = 1;
  }
}
