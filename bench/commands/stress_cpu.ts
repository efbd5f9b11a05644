// Where one thread's CPU time goes in the stress job: runs the job on the
// main thread (one allocator, the stress command's shape and in-flight depth),
// wraps the WebGPU methods it calls to count and time them, and prints per
// iteration of the steady state: wall time, process CPU time, and for each
// WebGPU method its calls and microseconds; "script" is the rest of the wall
// time, the job's own JavaScript (recording ops, the allocator, checking).
//
// --profile adds V8's sampling profile of the measured run: the functions
// with the most self time (needs --allow-sys).
//
//   deno run --allow-env --allow-read [--allow-sys] bench/commands/stress_cpu.ts [--iterations N]
//     [--in-flight N] [--json] [--profile]
import { Session } from "node:inspector";
import process from "node:process";
import { HeapAllocator } from "../../allocator/allocator.ts";
import { requestDevice } from "../../allocator/request_device.ts";
import { SharedBudget } from "../../kernels/workers/shared_budget.ts";
import { pipelineData, pipelineJob, runPipelineJob } from "../../kernels/workers/pipeline_job.ts";

const args = Deno.args;
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isSafeInteger(v) || v < 1) {
    console.error(`stress_cpu: ${name} needs a positive integer, got ${args[i + 1]}`);
    Deno.exit(2);
  }
  return v;
};
const iterations = flag("--iterations", 2000);
const inFlight = flag("--in-flight", 32);

interface Counter {
  calls: number;
  ms: number;
}
const counters = new Map<string, Counter>();
let counting = false;

/** Wraps `proto[name]` to count its calls and time them while `counting`. */
function wrap(proto: object, owner: string, name: string): void {
  const target = proto as Record<string, unknown>;
  const original = target[name];
  if (typeof original !== "function") return;
  const key = `${owner}.${name}`;
  const counter = { calls: 0, ms: 0 };
  counters.set(key, counter);
  target[name] = function (this: unknown, ...rest: unknown[]) {
    if (!counting) return original.apply(this, rest);
    const t0 = performance.now();
    try {
      return original.apply(this, rest);
    } finally {
      counter.ms += performance.now() - t0;
      counter.calls++;
    }
  };
}

const WRAPPED: [object, string, string[]][] = [
  [GPUDevice.prototype, "device", ["createBindGroup", "createBuffer", "createCommandEncoder"]],
  [GPUQueue.prototype, "queue", ["writeBuffer", "submit"]],
  [GPUCommandEncoder.prototype, "encoder", ["beginComputePass", "copyBufferToBuffer", "finish"]],
  [GPUComputePassEncoder.prototype, "pass", [
    "setPipeline",
    "setBindGroup",
    "dispatchWorkgroups",
    "end",
  ]],
  [GPUBuffer.prototype, "buffer", ["mapAsync", "getMappedRange", "unmap"]],
  [GPUComputePipeline.prototype, "pipeline", ["getBindGroupLayout"]],
];
for (const [proto, owner, names] of WRAPPED) for (const n of names) wrap(proto, owner, n);

const device = await requestDevice();
const info = device.adapterInfo;
const adapter = info.description || info.device || info.vendor || "unknown";
// As a stress Worker makes its allocator: submitting to reuse, publishing to a shared budget.
const allocator = new HeapAllocator(device, {
  submitWhenShort: true,
  budget: new SharedBudget().claim("stress_cpu"),
});
const job = pipelineJob({ iterations, inFlight });
const data = pipelineData(job);

// Warm up: shaders compiled, heaps made, bind groups cached.
const warm = await runPipelineJob(allocator, { ...job, iterations: 4 * inFlight }, data);
if (warm.error) throw new Error(`warm-up failed: ${warm.error.message}`);

const profiling = args.includes("--profile");
const session = profiling ? new Session() : null;
const post = (method: string, params: object = {}) =>
  new Promise<unknown>((resolve, reject) =>
    session!.post(method, params, (error, result) => error ? reject(error) : resolve(result))
  );
if (session) {
  session.connect();
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 50 });
  await post("Profiler.start");
}

for (const c of counters.values()) c.calls = c.ms = 0;
const allocations0 = allocator.memoryStats().allocations;
const cpu0 = process.cpuUsage();
counting = true;
const t0 = performance.now();
const report = await runPipelineJob(allocator, job, data);
const wall = performance.now() - t0;
counting = false;
const cpu = process.cpuUsage(cpu0);
const allocations = allocator.memoryStats().allocations - allocations0;
const profile = session ? topFunctions(await post("Profiler.stop"), 25) : [];
allocator.destroy();
device.destroy();
if (report.error || report.iterations !== iterations) {
  throw new Error(`stress job failed: ${report.error?.message}`);
}

const per = (v: number) => v / iterations;
const rows = [...counters.entries()].filter(([, c]) => c.calls > 0);
const inCalls = rows.reduce((a, [, c]) => a + c.ms, 0);
const result = {
  adapter,
  shape: job.shape,
  iterations,
  inFlight,
  iterationsPerSecond: iterations / (wall / 1000),
  wallUsPerIteration: per(wall) * 1000,
  processCpuUsPerIteration: per((cpu.user + cpu.system) / 1000) * 1000,
  scriptUsPerIteration: per(wall - inCalls) * 1000,
  allocationsPerIteration: per(allocations),
  maxError: report.maxError,
  calls: Object.fromEntries(
    rows.map(([k, c]) => [k, { perIteration: per(c.calls), usPerIteration: per(c.ms) * 1000 }]),
  ),
};
if (args.includes("--json")) {
  console.log(JSON.stringify(result));
} else {
  console.log(
    `stress job on one thread, ${adapter}: ${iterations} iterations, ${inFlight} in flight, ` +
      `${result.iterationsPerSecond.toFixed(0)} it/s`,
  );
  console.log(
    `per iteration: wall ${result.wallUsPerIteration.toFixed(1)} us, process CPU ${
      result.processCpuUsPerIteration.toFixed(1)
    } us, script (outside WebGPU calls) ${result.scriptUsPerIteration.toFixed(1)} us, ${
      result.allocationsPerIteration.toFixed(1)
    } allocations`,
  );
  console.log("| WebGPU call | calls / iteration | us / iteration |");
  console.log("| --- | --- | --- |");
  for (const [k, c] of rows.sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(`| ${k} | ${per(c.calls).toFixed(2)} | ${(per(c.ms) * 1000).toFixed(1)} |`);
  }
  if (profile.length > 0) {
    console.log("| function (self time) | where | us / iteration |");
    console.log("| --- | --- | --- |");
    for (const f of profile) {
      console.log(`| ${f.name} | ${f.where} | ${per(f.ms * 1000).toFixed(1)} |`);
    }
  }
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** The functions with the most self time in a V8 CPU profile. */
function topFunctions(
  result: unknown,
  count: number,
): { name: string; where: string; ms: number }[] {
  const p = (result as {
    profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  }).profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { name: string; where: string; ms: number }>();
  p.samples.forEach((id, i) => {
    const f = byId.get(id)!.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(?=[^/]+\/[^/]+$)/, "")}:${f.lineNumber + 1}` : "";
    const key = `${f.functionName}@${where}`;
    const entry = self.get(key) ?? { name: f.functionName || "(anonymous)", where, ms: 0 };
    entry.ms += (p.timeDeltas[i] ?? 0) / 1000;
    self.set(key, entry);
  });
  return [...self.values()].sort((a, b) => b.ms - a.ms).slice(0, count);
}
