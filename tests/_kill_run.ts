// Run by tests/workers_test.ts in a process of its own: 4 Workers share a
// budget, Worker 2 is killed (terminate()) mid-run, the others finish. Prints
// one JSON object with what the test checks. A Worker killed while it holds a
// device tears it down at an unpredictable point; in the test runner's process,
// shared with every other test, that has corrupted the heap (2 runs in 25).
import { SharedBudget } from "../allocator/budget.ts";
import { pipelineJob } from "../kernels/pipeline_job.ts";
import { PipelinePool } from "../kernels/worker_pool.ts";

const budget = new SharedBudget({ limit: "512MiB" });
const pool = await PipelinePool.start({ workers: 4, budget });
const out: Record<string, unknown> = {};
try {
  const job = pipelineJob({
    iterations: 120,
    inFlight: 4,
    inputs: 2,
    shape: { channels: 4, size: 16, outChannels: 8 },
  });
  const running = pool.run(job);
  while (pool.progress().iterations[1] < 4) await new Promise((r) => setTimeout(r, 5));
  out.before = budget.reserved;
  out.reclaimed = pool.terminate(1);
  out.after = budget.reserved;
  out.labels = budget.shares().map((s) => s.label);
  out.alive = [0, 1, 2, 3].map((i) => pool.alive(i));
  out.reports = (await running).map((r) => ({
    iterations: r.iterations,
    failed: r.failed,
    maxError: r.maxError,
    error: r.error,
  }));
} finally {
  await pool.close();
}
out.reservedAtEnd = budget.reserved;
out.sharesAtEnd = budget.shares().length;
console.log(JSON.stringify(out));
