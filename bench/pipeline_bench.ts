// Throughput of the three-stage pipeline on 1, 2 and 4 Workers, each through
// gpuheap (iterations in flight, readbacks batched) and through the naive
// path (a GPUBuffer created and destroyed per block, one readback per
// iteration), measured in the same run; then the shared budget's reserve +
// release cost, alone and with 4 Workers reserving at once. Iterations per
// second: Workers × ITERATIONS over a row's time; nanoseconds per pair: a
// row's time over PAIRS. (Nothing else is printed: a line of our own would
// land inside the bench table.)
//
//   deno bench --allow-env --allow-read bench/pipeline_bench.ts
import { SharedBudget } from "../kernels/workers/shared_budget.ts";
import { pipelineData, pipelineJob, runPipelineOn } from "../kernels/workers/pipeline_job.ts";
import { WorkerPool } from "../kernels/workers/worker_pool.ts";

/** Iterations per Worker per measured run: long enough to cover Deno's ~11 ms readback wait many times. */
const ITERATIONS = 32;
const IN_FLIGHT = 16;
const WORKERS = [1, 2, 4];
/** Reserve + release pairs per Worker per measured run. */
const PAIRS = 20_000;

const pool = await WorkerPool.start({ workers: Math.max(...WORKERS) });
const shape = pipelineJob().shape;
const jobs = {
  gpuheap: pipelineJob({ iterations: ITERATIONS, inFlight: IN_FLIGHT }),
  naive: pipelineJob({ iterations: ITERATIONS, mode: "naive" }),
};
pipelineData(jobs.gpuheap);
pipelineData(jobs.naive);

// ---- budget contention: Workers that reserve and release on command ----
const budget = new SharedBudget({ limit: "1024GiB" });
const control = new Int32Array(new SharedArrayBuffer(16));
const hammers = [0, 1, 2, 3].map((index) => {
  const worker = new Worker(new URL("./_budget_worker.ts", import.meta.url), { type: "module" });
  worker.postMessage({
    index,
    budget: budget.buffer,
    slot: budget.claim(`bench ${index + 1}`).slot,
    control: control.buffer,
    pairs: PAIRS,
    bytes: 8 << 20,
  });
  return worker;
});
// Loaded before any measurement: loading a Worker's module takes CPU the pipeline cases would lose.
while (Atomics.load(control, 3) < hammers.length) {
  await Atomics.waitAsync(control, 3, Atomics.load(control, 3), 1000).value;
}

for (const workers of WORKERS) {
  for (const mode of ["gpuheap", "naive"] as const) {
    const list = pool.adapters.map((_, i) => (i < workers ? jobs[mode] : null));
    Deno.bench({
      name: `pipeline, ${workers} Worker${
        workers > 1 ? "s" : ""
      } x ${ITERATIONS} iterations (${mode})`,
      group:
        `pipeline [${shape.batch},${shape.channels},${shape.size},${shape.size}] -> ${shape.outChannels}` +
        ` on ${workers} Worker${workers > 1 ? "s" : ""}, ${pool.adapters[0]}`,
      baseline: mode === "gpuheap",
      n: 3,
      warmup: 1,
      async fn() {
        const reports = await runPipelineOn(pool, list);
        for (const r of reports) {
          if (r.error || r.failed > 0 || r.iterations !== ITERATIONS) {
            throw new Error(`worker ${r.worker + 1}: ${r.error?.message ?? "wrong results"}`);
          }
        }
      },
    });
  }
}

const main = budget.claim("bench main");
Deno.bench({
  name: "budget reserve + release, main thread alone",
  fn() {
    main.reserve(8 << 20);
    main.release(8 << 20);
  },
});

for (const active of [1, 4]) {
  Deno.bench({
    name: `budget ${PAIRS} reserve + release pairs on each of ${active} Worker${
      active > 1 ? "s" : ""
    } at once`,
    group: "shared budget, Workers",
    baseline: active === 1,
    n: 5,
    warmup: 1,
    async fn() {
      Atomics.store(control, 1, 0);
      Atomics.store(control, 2, active);
      Atomics.add(control, 0, 1);
      Atomics.notify(control, 0);
      while (Atomics.load(control, 1) < active) {
        const seen = Atomics.load(control, 1);
        if (seen < active) await Atomics.waitAsync(control, 1, seen, 1000).value;
      }
    },
  });
}

globalThis.addEventListener("unload", () => {
  Atomics.store(control, 0, -1);
  Atomics.notify(control, 0);
  main.detach();
  pool.closeSync();
  for (const worker of hammers) worker.terminate();
});
