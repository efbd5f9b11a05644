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
import { WorkerPool } from "../../kernels/workers/worker_pool.ts";

const SMALL = { channels: 4, size: 16, outChannels: 8 };

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
