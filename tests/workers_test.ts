// Pipelines on Workers sharing one budget, on the real adapter: results
// equal to a single-thread run, caches given back under pressure, OOM in
// every Worker when nothing fits, a Worker killed mid-run, and the stress
// command end to end. Small shapes: the software adapter runs on 2 cores.
import assert from "node:assert/strict";
import { HeapAllocator } from "../allocator/allocator.ts";
import { SharedBudget } from "../allocator/budget.ts";
import { requestDevice } from "../allocator/request_device.ts";
import {
  pipelineData,
  pipelineJob,
  type PipelineJobReport,
  runPipelineJob,
} from "../kernels/pipeline_job.ts";
import { PipelinePool } from "../kernels/worker_pool.ts";

const SMALL = { channels: 4, size: 16, outChannels: 8 };

function assertClean(reports: PipelineJobReport[], iterations: number[]): void {
  reports.forEach((r, i) => {
    assert.equal(r.error, null, `worker ${i + 1}: ${r.error?.name}: ${r.error?.message}`);
    assert.equal(r.failed, 0, `worker ${i + 1} failed checks`);
    assert.equal(r.iterations, iterations[i], `worker ${i + 1} iterations`);
    assert.ok(r.maxError <= 1e-4, `worker ${i + 1} max error ${r.maxError}`);
  });
}

Deno.test("workers: every Worker's results equal the single-thread run and the float64 reference", async () => {
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
  const pool = await PipelinePool.start({ workers: 4 });
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
});

Deno.test("workers: 4 Workers under a budget that fits only if caches are given back all succeed", async () => {
  // A large-pool shape (conv outputs over 1 MiB: a 32 MiB large heap) and a small one.
  // Each Worker runs one, then the other: the two that ran big keep a 32 MiB heap
  // cached (max_reserved_ratio:0 keeps every cached heap) that the other two need.
  const big = pipelineJob({
    iterations: 3,
    inFlight: 2,
    inputs: 1,
    shape: { channels: 4, size: 192, outChannels: 8 },
  });
  const small = pipelineJob({ iterations: 8, inFlight: 2, inputs: 2, shape: SMALL });
  const limit = 120 * 2 ** 20;
  const budget = new SharedBudget({ limit });
  const pool = await PipelinePool.start({
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
});

Deno.test("workers: an idle Worker empties its cache when another sharer needs the room", async () => {
  const budget = new SharedBudget({ limit: "64MiB" });
  const pool = await PipelinePool.start({
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
});

Deno.test("workers: a budget too small for one iteration gives each Worker an OutOfMemoryError", async () => {
  const budget = new SharedBudget({ limit: "32KiB" });
  const pool = await PipelinePool.start({ workers: 4, budget });
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
});

Deno.test("workers: a Worker killed mid-run gives its reservation back and the others finish", async () => {
  // In a process of its own: see tests/_kill_run.ts.
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      new URL("./_kill_run.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.ok(r.reclaimed > 0, "the killed Worker held a reservation");
  // The others keep running (and may make a heap meanwhile): a bound, not an equality.
  assert.ok(r.after <= r.before - r.reclaimed + 64 * 2 ** 20, "its reservation came back at once");
  assert.deepEqual(r.labels, ["worker 1", "worker 3", "worker 4"]);
  assert.deepEqual(r.alive, [true, false, true, true]);
  assert.match(r.reports[1].error?.message ?? "", /Worker 2 was terminated/);
  assert.ok(r.reports[1].iterations < 120);
  assertClean([r.reports[0], r.reports[2], r.reports[3]], [120, 120, 120]);
  assert.equal(r.reservedAtEnd, 0);
  assert.equal(r.sharesAtEnd, 0);
});

const STRESS = new URL("../bench/stress.ts", import.meta.url).pathname;

async function stress(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", STRESS, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("workers: the stress command reports every figure, and exits 2 on bad flags", async () => {
  const run = await stress(
    "--workers=2",
    "--iterations",
    "6",
    "--channels",
    "2",
    "--size",
    "8",
    "--out-channels",
    "4",
    "--in-flight",
    "4",
    "--budget",
    "256MiB",
    "--json",
  );
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.name, "ConvPipeline");
  assert.equal(report.ok, true);
  assert.equal(report.iterations, 12);
  assert.equal(report.errors, 0);
  assert.equal(report.perWorker.length, 2);
  assert.ok(report.process.peakReserved > 0);
  assert.equal(report.process.reservedAtEnd, 0);
  assert.ok(report.perWorker[0].memory.cacheHitRate > 0.5);

  const text = await stress(
    "--workers",
    "1",
    "--iterations",
    "2",
    "--size",
    "8",
    "--channels",
    "2",
  );
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^ConvPipeline: 2\/2 in \d+\.\d+ s, errors=0$/m);
  assert.match(text.stdout, /^process\s/m);

  for (
    const [args, message] of [
      [["--workers", "0"], /--workers needs 1 to 64, got 0/],
      [["--bogus"], /Unknown flag "--bogus"/],
      [["--budget", "lots"], /--budget needs a size such as 512MiB, got "lots"/],
      [["--size", "4"], /--size must be an integer >= 8/],
      [["--iterations"], /--iterations needs a value/],
      [["--in-flight", "x"], /--in-flight needs an integer, got "x"/],
    ] as const
  ) {
    const bad = await stress(...args);
    assert.equal(bad.code, 2, `${args.join(" ")}: exit ${bad.code}`);
    assert.match(bad.stderr, message);
  }
});
