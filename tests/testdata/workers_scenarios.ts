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
  runPipelineJob,
} from "../../kernels/workers/pipeline_job.ts";
import { WorkerError, WorkerPool } from "../../kernels/workers/worker_pool.ts";
import { AllocatorError } from "../../allocator/errors.ts";

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
    const running = pool.run([short, long]);
    if (fault === "terminate") {
      await until("3 iterations", () => pool.progress().iterations[1] >= 3);
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
    const again = await pool.run([short, short]);
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
      const reports = await pool.run(job);
      assertClean(reports, [12, 12, 12, 12]);
      // Bit for bit: the same kernels on the same kind of device, whatever the thread.
      for (const r of reports) assert.deepEqual(r.checksums, single.checksums);
      const naiveReports = await pool.run(naive);
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
      const first = await pool.run([big, big, small, small]);
      assertClean(first, [3, 3, 8, 8]);
      const second = await pool.run([small, small, big, big]);
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
      assertClean(await pool.run([job, null]), [2]);
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
      assertClean(await pool.run([job, job]), [2, 2]);
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
      const reports = await pool.run(pipelineJob({ iterations: 4, inFlight: 2, shape: SMALL }));
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
      const running = pool.run(job);
      while (pool.progress().iterations[1] < 4) await new Promise((r) => setTimeout(r, 5));
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
    await endsMidJob("close", /ended without a reply \(exit code 0/);
  },

  /** A Worker that calls Deno.exit(3) mid-job. */
  async exits() {
    await endsMidJob("exit", /ended without a reply \(exit code 3/);
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
      const reports = await pool.run(job);
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
    await failsToStart("start-exit", /Worker 2 ended without a reply \(exit code 1/);
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
