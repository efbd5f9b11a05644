/**
 * The stress command, the package's main job: Workers each run the
 * three-stage pipeline (conv+ReLU+max pool, conv+ReLU+max pool,
 * conv+ReLU+avg pool) on seeded inputs, several iterations in flight, every
 * output checked against the float64 reference, all under one shared memory
 * budget. Prints progress on stderr, then the result line, per-Worker
 * throughput and the memory table; exits 1 on any error, 2 on bad flags.
 * With `--plan`, each group of iterations is a planned iteration of its
 * Worker's allocator, and each Worker's plans are listed.
 *
 * ```sh
 * deno run -A jsr:@gpuheap/gpuheap/stress [flags]
 * deno task stress [flags]          # from a clone
 * ```
 *
 * @example
 * ```ts
 * import { parseStressFlags } from "@gpuheap/gpuheap/stress";
 * import assert from "node:assert/strict";
 *
 * const options = parseStressFlags(["--workers", "2", "--iterations", "10"]);
 * assert.equal(options.workers, 2);
 * assert.equal(options.job.iterations, 10);
 * ```
 *
 * @module
 */
import { SharedBudget } from "../../kernels/workers/shared_budget.ts";
import { formatBytes } from "../../allocator/format.ts";
import {
  DEFAULT_PIPELINE_SHAPE,
  PIPELINE_LIMITS,
  pipelineData,
  type PipelineJob,
  pipelineJob,
  type PipelineJobReport,
  runPipelineOn,
  type WorkerReport,
} from "../../kernels/workers/pipeline_job.ts";
import { WorkerPool } from "../../kernels/workers/worker_pool.ts";
import {
  bytes,
  type Command,
  failure,
  type Flag,
  FlagError,
  flagName,
  integer,
  parseArgs,
  toggle,
  usage,
  type ValueFlag,
} from "../../allocator/tools/flags.ts";

/**
 * Default Workers: half the logical cores, 2 to 8. Each Worker keeps one
 * core busy recording and checking, its device's threads want the rest;
 * past 8, iterations per second stop growing on a 16-core machine with an
 * H200 (8: 13,900/s, 16: 14,600/s), and a 2-core machine with a software
 * adapter runs 2 as fast as 4.
 */
const DEFAULT_WORKERS: number = Math.min(
  8,
  Math.max(2, Math.floor((navigator.hardwareConcurrency ?? 4) / 2)),
);
/** Default iterations per Worker: enough that start and end of the run weigh little. */
const DEFAULT_ITERATIONS = 1000;

const L = PIPELINE_LIMITS;

/** The stress command's flags, by name. */
export type StressFlags = {
  workers: ValueFlag<number>;
  iterations: ValueFlag<number>;
  batch: ValueFlag<number>;
  channels: ValueFlag<number>;
  size: ValueFlag<number>;
  outChannels: ValueFlag<number>;
  inFlight: ValueFlag<number>;
  warmup: ValueFlag<number>;
  budget: ValueFlag<number>;
  inputs: ValueFlag<number>;
  seed: ValueFlag<number>;
  naive: Flag<boolean>;
  plan: Flag<boolean>;
  json: Flag<boolean>;
};

/** The stress command's flags. */
export const STRESS_COMMAND: Command<StressFlags> = {
  name: "stress",
  synopsis: "deno task stress [flags]",
  about: "Runs the three-stage pipeline Conv->ReLU->MaxPool, Conv->ReLU->MaxPool,\n" +
    "Conv->ReLU->AvgPool on Workers, each output checked against a float64\n" +
    "reference, all Workers under one memory budget.",
  flags: {
    workers: integer(
      `Workers (default: half the logical cores, 2 to 8; ${DEFAULT_WORKERS} here)`,
      { min: 1, max: 64 },
    ),
    iterations: integer(`iterations per Worker (default ${DEFAULT_ITERATIONS})`),
    batch: integer(`images per input (default ${DEFAULT_PIPELINE_SHAPE.batch})`, {
      min: 1,
      max: L.batch,
    }),
    channels: integer(`input channels (default ${DEFAULT_PIPELINE_SHAPE.channels})`, {
      min: 1,
      max: L.channels,
    }),
    size: integer(`input height and width (default ${DEFAULT_PIPELINE_SHAPE.size})`, {
      min: 8,
      max: L.size,
    }),
    outChannels: integer(
      `output channels of each conv (default ${DEFAULT_PIPELINE_SHAPE.outChannels})`,
      { min: 1, max: L.outChannels },
    ),
    inFlight: integer("iterations in flight per Worker (default 32)", {
      min: 1,
      max: L.inFlight,
    }),
    warmup: integer("untimed warm-up iterations per Worker (default: as many as in flight)"),
    budget: bytes("memory budget for all Workers together, e.g. 512MiB (default: none)"),
    inputs: integer("distinct seeded inputs, cycled (default 8)", { min: 1, max: L.inputs }),
    seed: integer("seed of inputs and weights (default 1)", { min: -Number.MAX_SAFE_INTEGER }),
    naive: toggle("a GPUBuffer per block and one readback per iteration, for comparison"),
    plan: toggle(
      "planned memory: each group of iterations takes its blocks at offsets planned\n" +
        "from the first group of its size",
    ),
    json: toggle("print one JSON object instead of the text report"),
  },
  notes: "Exit status: 0 when every iteration ran and matched the reference, 1 otherwise,\n" +
    "2 for bad flags.",
};

export type { Command, Flag, Positional, ValueFlag } from "../../allocator/tools/flags.ts";
export type {
  PipelineJob,
  PipelineMode,
  PipelineShape,
} from "../../kernels/workers/pipeline_job.ts";

/** The stress command's settings, from its flags. */
export interface StressOptions {
  /** Workers to start. */
  workers: number;
  /** What each Worker runs: shape, iterations, inputs, seed. */
  job: PipelineJob;
  /** Iterations per Worker run (and checked) before the measured job. */
  warmup: number;
  /** The shared budget's limit in bytes (0: none). */
  budget: number;
  /** Print one JSON object instead of the text report. */
  json: boolean;
  /** `--help` was given. */
  help: boolean;
}

/**
 * Reads the command's flags.
 *
 * @throws {FlagError} an unknown flag, a missing or bad value (the message says which)
 */
export function parseStressFlags(args: readonly string[]): StressOptions {
  const parsed = parseArgs(STRESS_COMMAND, args);
  if (parsed.help) return { ...parseStressFlags([]), help: true };
  const { flags } = parsed;
  if (flags.plan && flags.naive) {
    throw new FlagError(
      "Flag --plan cannot go with --naive: --naive makes a GPUBuffer per block, with nothing to plan",
      "--plan",
    );
  }
  let job: PipelineJob;
  try {
    job = pipelineJob({
      shape: {
        batch: flags.batch,
        channels: flags.channels,
        size: flags.size,
        outChannels: flags.outChannels,
      },
      iterations: flags.iterations ?? DEFAULT_ITERATIONS,
      inFlight: flags.inFlight,
      inputs: flags.inputs,
      seed: flags.seed,
      mode: flags.naive ? "naive" : "gpuheap",
      plan: flags.plan,
    });
  } catch (error) {
    // The job names fields as the API does; say it with the flags' names.
    const m = /^Invalid pipeline job: (.*)$/s.exec((error as Error).message);
    if (!m) throw error;
    const named: string[] = [];
    const text = m[1].replace(
      /\b(?:shape\.)?(batch|channels|size|outChannels|inputs)\b/g,
      (_, key) => {
        named.push(flagName(key));
        return flagName(key);
      },
    );
    throw new FlagError(`Flags ${text}`, named[0] ?? "--size");
  }
  return {
    workers: flags.workers ?? DEFAULT_WORKERS,
    job,
    warmup: flags.warmup ?? job.inFlight,
    budget: flags.budget ?? 0,
    json: flags.json,
    help: false,
  };
}

interface Figures {
  peakAllocated: number;
  peakReserved: number;
  /** Peak reserved ÷ peak allocated. */
  reservedPerAllocated: number;
  /** Submits inside groups besides each group's own (see PipelineJobReport). */
  submitsInGroups: number;
  /** The same, in groups that recorded a plan. */
  submitsInRecordings: number;
  allocations: number;
  cacheHits: number;
  cacheHitRate: number;
  heaps: number;
  createBufferCalls: number;
}

function workerFigures(r: WorkerReport): Figures {
  const m = r.memory;
  const allocations = m?.allocations ?? 0;
  const cacheHits = m?.cacheHits ?? 0;
  // The steady state's peaks: planned groups, not the one run that recorded each plan.
  const peakAllocated = r.peaks?.allocated ?? m?.allocatedBytes.peak ?? 0;
  const peakReserved = r.peaks?.reserved ?? m?.reservedBytes.peak ?? 0;
  return {
    peakAllocated,
    peakReserved,
    reservedPerAllocated: ratio(peakReserved, peakAllocated),
    submitsInGroups: r.submitsInGroups,
    submitsInRecordings: r.submitsInRecordings,
    allocations,
    cacheHits,
    cacheHitRate: allocations > 0 ? cacheHits / allocations : 0,
    heaps: m?.heaps ?? 0,
    createBufferCalls: r.createBufferCalls,
  };
}

function ratio(a: number, b: number): number {
  return b > 0 ? a / b : 0;
}

/** A plan in a line: its key, size ÷ peak live, runs and departures. */
function planLine(p: PipelineJobReport["plans"][number]): string {
  return `${p.key}: ${formatBytes(p.size)} for ${formatBytes(p.peakLive)} peak live (${
    p.ratio.toFixed(3)
  }), ${p.runs} runs, ${p.departures} departures, ${p.safetySubmits} safety submits` +
    (p.unplannable === null ? "" : `, not planned: ${p.unplannable}`);
}

function pad(s: string, n: number, left = false): string {
  return left ? s.padEnd(n) : s.padStart(n);
}

function table(rows: [string, Figures][]): string {
  const head = [
    pad("memory", 10, true),
    pad("peak allocated", 15),
    pad("peak reserved", 14),
    pad("ratio", 6),
    pad("cache hits", 11),
    pad("heaps", 6),
    pad("createBuffer", 13),
    pad("submits in groups", 18),
  ].join(" ");
  const lines = rows.map(([name, f]) =>
    [
      pad(name, 10, true),
      pad(formatBytes(f.peakAllocated), 15),
      pad(formatBytes(f.peakReserved), 14),
      pad(f.reservedPerAllocated.toFixed(2), 6),
      pad(`${(f.cacheHitRate * 100).toFixed(1)}%`, 11),
      pad(String(f.heaps), 6),
      pad(String(f.createBufferCalls), 13),
      pad(String(f.submitsInGroups), 18),
    ].join(" ")
  );
  return [head, ...lines].join("\n");
}

async function main(): Promise<number> {
  let options: StressOptions;
  try {
    options = parseStressFlags(Deno.args);
  } catch (error) {
    const [line, status] = failure("stress", error);
    console.error(line);
    return status;
  }
  if (options.help) {
    console.log(usage(STRESS_COMMAND));
    return 0;
  }
  const { workers, job } = options;
  const expected = workers * job.iterations;
  const shape = job.shape;
  const shapeText =
    `[${shape.batch},${shape.channels},${shape.size},${shape.size}] -> ${shape.outChannels} channels`;
  const encoder = new TextEncoder();
  const terminal = Deno.stderr.isTerminal();
  const say = (line: string, final = false) => {
    if (terminal) {
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${line}${final ? "\n" : ""}`));
    } else {
      Deno.stderr.writeSync(encoder.encode(`${line}\n`));
    }
  };

  const started = performance.now();
  pipelineData(job); // the references, made once, before the clock starts
  const budget = new SharedBudget({ limit: options.budget });
  // A run that stops before the clock starts still answers --json: ok false, and why.
  const stopEarly = (message: string): number => {
    console.error(`stress: ${message}`);
    if (options.json) {
      console.log(JSON.stringify({
        name: "ConvPipeline",
        ok: false,
        iterations: 0,
        expected,
        errors: 1,
        error: message,
        mode: job.mode,
        plan: job.plan,
        shape,
        workers,
        inFlight: job.inFlight,
        budget: budget.limit,
      }));
    }
    return 1;
  };
  let pool: WorkerPool;
  try {
    pool = await WorkerPool.start({ workers, budget });
  } catch (error) {
    return stopEarly((error as Error).message);
  }
  if (options.warmup > 0) {
    // Compiles every kernel and makes the heaps, so the clock measures the steady state.
    const warm = await runPipelineOn(pool, { ...job, iterations: options.warmup });
    const bad = warm.find((r) => r.error !== null || r.failed > 0);
    if (bad) {
      await pool.close();
      return stopEarly(`warm-up failed on worker ${bad.worker + 1}: ${bad.error?.message}`);
    }
  }
  const startup = (performance.now() - started) / 1000;

  const t0 = performance.now();
  const progress = () => {
    const p = pool.progress();
    const done = p.steps.reduce((a, b) => a + b, 0);
    const failed = p.failed.reduce((a, b) => a + b, 0);
    const s = (performance.now() - t0) / 1000;
    // Read from the shared budget: every Worker's memory, without a message.
    return `ConvPipeline: ${done}/${expected}, ${(done / Math.max(s, 1e-3)).toFixed(0)} it/s, ` +
      `reserved ${formatBytes(budget.reserved)} (peak ${formatBytes(budget.peakReserved)}), ` +
      `errors=${failed}`;
  };
  const timer = setInterval(() => say(progress()), terminal ? 200 : 1000);
  let reports: WorkerReport[];
  try {
    reports = await runPipelineOn(pool, job);
  } finally {
    clearInterval(timer);
  }
  const seconds = (performance.now() - t0) / 1000;
  say(progress(), true);
  const adapter = pool.adapters[0] ?? "unknown";
  await pool.close();

  const done = reports.reduce((a, r) => a + r.iterations, 0);
  const failures = reports.reduce((a, r) => a + r.failed, 0);
  const stopped = reports.filter((r) => r.error !== null && r.error.name !== "VerificationError");
  const errors = failures + stopped.length;
  const ok = errors === 0 && done === expected;
  const figures = reports.map(workerFigures);
  const sum = (f: (x: Figures) => number) => figures.reduce((a, x) => a + f(x), 0);
  const allocations = sum((f) => f.allocations);
  const processFigures: Figures = {
    peakAllocated: budget.peakAllocated,
    peakReserved: budget.peakReserved,
    reservedPerAllocated: ratio(budget.peakReserved, budget.peakAllocated),
    submitsInGroups: sum((f) => f.submitsInGroups),
    submitsInRecordings: sum((f) => f.submitsInRecordings),
    allocations,
    cacheHits: sum((f) => f.cacheHits),
    cacheHitRate: allocations > 0 ? sum((f) => f.cacheHits) / allocations : 0,
    heaps: sum((f) => f.heaps),
    createBufferCalls: sum((f) => f.createBufferCalls),
  };

  if (options.json) {
    console.log(JSON.stringify({
      name: "ConvPipeline",
      ok,
      iterations: done,
      expected,
      seconds,
      errors,
      iterationsPerSecond: done / seconds,
      startupSeconds: startup,
      adapter,
      mode: job.mode,
      plan: job.plan,
      shape,
      workers: workers,
      inFlight: job.inFlight,
      budget: budget.limit,
      perWorker: reports.map((r, i) => ({
        worker: r.worker + 1,
        iterations: r.iterations,
        failed: r.failed,
        seconds: r.seconds,
        iterationsPerSecond: r.iterations / r.seconds,
        maxError: r.maxError,
        error: r.error,
        memory: figures[i],
        plans: r.plans,
      })),
      process: {
        ...processFigures,
        pressureEvents: budget.pressureEvents,
        refusals: budget.refusals,
        reservedAtEnd: budget.reserved,
      },
    }));
    return ok ? 0 : 1;
  }

  const out: string[] = [];
  out.push(`ConvPipeline: ${done}/${expected} in ${seconds.toFixed(2)} s, errors=${errors}`);
  out.push(
    `  ${shapeText}, ${workers} Worker${workers > 1 ? "s" : ""} x ${job.iterations} iterations ` +
      `(after ${options.warmup} warm-up), ${job.inFlight} in flight, ${job.mode}` +
      `${job.plan ? " planned" : ""}, ` +
      `budget ${budget.limit > 0 ? formatBytes(budget.limit) : "none"}`,
  );
  out.push(
    `  ${(done / seconds).toFixed(1)} iterations/s in all; startup and warm-up ${
      startup.toFixed(2)
    } s; ${adapter}`,
  );
  for (const r of reports) {
    out.push(
      `  worker ${r.worker + 1}: ${r.iterations} iterations in ${r.seconds.toFixed(2)} s, ` +
        `${(r.iterations / r.seconds).toFixed(1)} it/s, max rel. error ${
          r.maxError.toExponential(1)
        }` +
        (r.error ? ` — ${r.error.name}: ${r.error.message}` : ""),
    );
    for (const p of r.plans) out.push(`    plan ${planLine(p)}`);
    if (r.submitsInRecordings > 0) {
      out.push(
        `    ${r.submitsInRecordings} submits inside the groups that recorded plans (online)`,
      );
    }
  }
  out.push("");
  out.push(table([
    ...reports.map((r, i): [string, Figures] => [`worker ${r.worker + 1}`, figures[i]]),
    ["process", processFigures],
  ]));
  out.push(
    job.plan
      ? "worker rows: the steady state (each plan's recording and the group after it left out); process: the whole run, warm-up and recordings in"
      : "worker rows: the job's run; process: the whole run, warm-up in",
  );
  if (budget.pressureEvents > 0 || budget.refusals > 0) {
    out.push(
      `budget: ${budget.refusals} reservations refused, ${budget.pressureEvents} requests to release caches`,
    );
  }
  console.log(out.join("\n"));
  return ok ? 0 : 1;
}

if (import.meta.main) {
  Deno.exitCode = await main().catch((error) => {
    const [line, status] = failure("stress", error);
    console.error(line);
    return status;
  });
}
