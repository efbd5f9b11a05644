// Run by tests/url_load_test.ts as a module served over http: every import
// below resolves to an http URL, as the package's modules do from JSR. Starts
// a pool with the stress job, then one with a user's job module (resolved from
// this module's URL), and prints what they did as one JSON line.
import { pipelineJob, runPipelineOn, SharedBudget, WorkerPool } from "../../kernels/workers/mod.ts";
import type { SaxpyInput, SaxpyResult } from "./jobs/saxpy_job.ts";

const SMALL = { channels: 4, size: 16, outChannels: 8 };
const budget = new SharedBudget({ limit: "64MiB" });

const stress = await WorkerPool.start({ workers: 2, budget });
let stressReports;
try {
  stressReports = await runPipelineOn(
    stress,
    pipelineJob({ iterations: 6, inFlight: 2, inputs: 2, shape: SMALL }),
  );
} finally {
  await stress.close();
}

const user = await WorkerPool.start<SaxpyInput, SaxpyResult>({
  workers: 2,
  budget,
  job: new URL("./jobs/saxpy_job.ts", import.meta.url),
});
let userReports;
try {
  userReports = await user.run({ length: 257, rounds: 3, seed: 5 });
} finally {
  await user.close();
}

console.log(JSON.stringify({
  module: import.meta.url,
  stress: stressReports.map((r) => ({
    iterations: r.iterations,
    failed: r.failed,
    error: r.error,
  })),
  user: userReports.map((r) => ({
    steps: r.steps,
    failed: r.failed,
    error: r.error,
    result: r.result,
  })),
  reservedAtEnd: budget.reserved,
  sharesAtEnd: budget.shares().length,
}));
