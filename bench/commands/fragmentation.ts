/**
 * The fragmentation command: peak reserved bytes over peak live bytes,
 * replayed on the fake device for the workloads of trace:gen (several seeds
 * each) under several policies. Three "live" figures divide peak reserved:
 *
 * - alloc: peak of bytes in live blocks, each block's rounded size
 * - req: peak of bytes live blocks asked for
 * - in use: peak of live blocks plus blocks freed but waiting for a submit
 *   (WebGPU forbids handing them out before it, so no policy can reuse them)
 *
 * Each cell is the mean over seeds, with the worst seed in brackets;
 * "createBuffer" is the mean count of GPUBuffers made.
 *
 * From a clone, the real traces of `tests/testdata/pytorch` (PyTorch CUDA
 * allocator snapshots, listed in its facts.json) replay too, under the same
 * limits, each with PyTorch's own peak reserved ÷ peak allocated
 * (`torch.cuda.max_memory_reserved/allocated`); the package does not ship them.
 *
 * ```sh
 * deno run -A jsr:@gpuheap/gpuheap/fragmentation [--seeds N] [--conf S]... [--json]
 * deno task fragmentation --help
 * ```
 *
 * @example
 * ```ts
 * import { formatRows, measure } from "@gpuheap/gpuheap/fragmentation";
 * import assert from "node:assert/strict";
 *
 * const rows = measure([""], 1);
 * assert.ok(rows.every((r) => r.alloc.mean >= 1));
 * assert.match(formatRows(rows), /\| default \|/);
 * ```
 *
 * @module
 */
import {
  allocConf,
  type Command,
  type Flag,
  integer,
  type ManyFlag,
  runCommand,
  toggle,
  type ValueFlag,
} from "../../allocator/tools/flags.ts";
import { replay, type ReplayResult } from "../../allocator/tools/replay.ts";
import { loadTraceFile } from "../../allocator/tools/load_trace.ts";
import { readTrace } from "../../allocator/tools/read_trace.ts";
import { BIG_GPU_LIMITS, generate, KINDS } from "./trace_gen.ts";

export type {
  Command,
  Flag,
  ManyFlag,
  Positional,
  ValueFlag,
} from "../../allocator/tools/flags.ts";

/** The policies compared when no --conf is given. */
export const POLICIES: readonly string[] = [
  "",
  "roundup_power2_divisions:4",
  "caching:0",
  "large_heap:64MiB",
  "xlarge_heap:64MiB",
  "xlarge_heap:256MiB",
  "max_reserved_ratio:0",
  "xlarge_heap:64MiB,max_reserved_ratio:0",
];

/** Mean and worst of one figure over seeds. */
export interface Spread {
  /** Mean over seeds. */
  mean: number;
  /** Largest over seeds. */
  max: number;
}

/** One policy on one workload, over seeds. */
export interface FragmentationRow {
  /** The workload. */
  workload: string;
  /** The alloc conf ("" for the default). */
  policy: string;
  /** Peak reserved / peak allocated (rounded block bytes). */
  alloc: Spread;
  /** Peak reserved / peak requested bytes. */
  requested: Spread;
  /** Peak reserved / peak in use (live + waiting for a submit). */
  inUse: Spread;
  /** GPUBuffers made. */
  createBufferCalls: Spread;
  /** Mean peak of requested bytes. */
  peakRequested: number;
  /** PyTorch's own figures, for a real trace. */
  pytorch?: PytorchFigures;
}

/** What PyTorch measured on the run a real trace comes from. */
export interface PytorchFigures {
  /** `torch.cuda.max_memory_allocated()` over the recording. */
  peakAllocated: number;
  /** `torch.cuda.max_memory_reserved()` over the recording. */
  peakReserved: number;
  /** `peakReserved / peakAllocated`. */
  ratio: number;
}

/** Where the real traces and their facts.json lie. */
export const REAL_TRACES_DIR: URL = new URL("../../tests/testdata/pytorch/", import.meta.url);

function spread(values: number[]): Spread {
  return { mean: values.reduce((a, b) => a + b, 0) / values.length, max: Math.max(...values) };
}

/** One row: the replays of one workload's traces under one policy. */
function row(workload: string, policy: string, rs: ReplayResult[]): FragmentationRow {
  return {
    workload,
    policy,
    alloc: spread(rs.map((r) => r.ratio)),
    requested: spread(rs.map((r) => r.requestedRatio)),
    inUse: spread(rs.map((r) => r.inUseRatio)),
    createBufferCalls: spread(rs.map((r) => r.createBufferCalls)),
    peakRequested: spread(rs.map((r) => r.peakRequested)).mean,
  };
}

/** Replays every workload under every policy, `seeds` traces each. */
export function measure(policies: readonly string[], seeds: number): FragmentationRow[] {
  const rows: FragmentationRow[] = [];
  for (const workload of KINDS) {
    const traces = Array.from({ length: seeds }, (_, i) => generate(workload, { seed: i + 1 }));
    for (const policy of policies) {
      rows.push(row(workload, policy, traces.map((t) => replay(t, { allocConf: policy }))));
    }
  }
  return rows;
}

/**
 * Replays every real trace under every policy, with the limits of the
 * generated workloads, and gives PyTorch's own figures beside.
 */
export async function measureReal(
  policies: readonly string[],
  dir: URL = REAL_TRACES_DIR,
): Promise<FragmentationRow[]> {
  const facts = JSON.parse(await Deno.readTextFile(new URL("facts.json", dir))) as {
    workloads: Record<string, { peak_allocated: number; peak_reserved: number }>;
  };
  const rows: FragmentationRow[] = [];
  for (const [workload, f] of Object.entries(facts.workloads)) {
    const trace = readTrace(await loadTraceFile(new URL(`${workload}.pickle.gz`, dir)));
    const pytorch = {
      peakAllocated: f.peak_allocated,
      peakReserved: f.peak_reserved,
      ratio: f.peak_reserved / f.peak_allocated,
    };
    for (const policy of policies) {
      const r = replay(trace, { allocConf: policy, limits: BIG_GPU_LIMITS });
      rows.push({ ...row(workload, policy, [r]), pytorch });
    }
  }
  return rows;
}

/** The rows as one markdown table per workload. */
export function formatRows(rows: readonly FragmentationRow[]): string {
  const out: string[] = [];
  // One trace (a real one) has no spread to show.
  const cell = (s: Spread) =>
    s.mean === s.max ? s.mean.toFixed(3) : `${s.mean.toFixed(3)} (${s.max.toFixed(3)})`;
  for (const workload of new Set(rows.map((r) => r.workload))) {
    const mine = rows.filter((r) => r.workload === workload);
    const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
    const pytorch = mine[0].pytorch;
    out.push(`\n${workload} (peak requested ≈ ${gib(mine[0].peakRequested)})`);
    if (pytorch) {
      out.push(
        `PyTorch: peak allocated ${gib(pytorch.peakAllocated)}, peak reserved ${
          gib(pytorch.peakReserved)
        }, reserved/alloc ${pytorch.ratio.toFixed(3)}; our peak requested is ${
          (mine[0].peakRequested / pytorch.peakAllocated).toFixed(4)
        } × its peak allocated`,
      );
    }
    out.push("");
    out.push("| policy | reserved/alloc | reserved/req | reserved/in use | createBuffer |");
    out.push("|---|---:|---:|---:|---:|");
    for (const r of mine) {
      out.push(
        `| ${r.policy || "default"} | ${cell(r.alloc)} | ${cell(r.requested)} | ${
          cell(r.inUse)
        } | ${r.createBufferCalls.mean.toFixed(0)} |`,
      );
    }
  }
  return out.join("\n");
}

/** The fragmentation command's flags, by name. */
export type FragmentationFlags = {
  seeds: ValueFlag<number>;
  conf: ManyFlag<string>;
  json: Flag<boolean>;
};

/** The fragmentation command's flags. */
export const FRAGMENTATION_COMMAND: Command<FragmentationFlags> = {
  name: "fragmentation",
  synopsis: "deno task fragmentation [flags]",
  about: "Peak reserved bytes over peak live bytes, replayed on the fake device for the\n" +
    "workloads of trace:gen (several seeds each) and the real PyTorch traces of\n" +
    "tests/testdata/pytorch under several policies.",
  flags: {
    seeds: integer("seeds per workload (default 5)", { min: 1, max: 1000 }),
    conf: allocConf(`a policy to measure; repeat for more (default: ${POLICIES.length} policies)`),
    json: toggle("the rows as JSON instead of tables"),
  },
  notes: "From JSR: deno run -A jsr:@gpuheap/gpuheap/fragmentation [flags] (the real traces\n" +
    "replay only from a clone). Exit status: 0 on success, 1 on an error, 2 for bad flags.",
};

if (import.meta.main) {
  Deno.exitCode = await runCommand(FRAGMENTATION_COMMAND, Deno.args, async ({ flags }) => {
    const seeds = flags.seeds ?? 5;
    const policies = flags.conf.length > 0 ? flags.conf : POLICIES;
    const rows = measure(policies, seeds);
    // The real traces lie in the repository, not in the package.
    const fromClone = REAL_TRACES_DIR.protocol === "file:";
    const real = fromClone ? await measureReal(policies) : [];
    if (flags.json) console.log(JSON.stringify([...rows, ...real], null, 2));
    else {
      console.log(
        `peak reserved ÷ peak live on the fake device (limits of a big GPU), ${seeds} seeds: ` +
          "mean (worst)",
      );
      console.log(formatRows(rows));
      if (fromClone) {
        console.log(
          "\nReal traces (PyTorch CUDA allocator snapshots, tests/testdata/pytorch), same limits:",
        );
        console.log(formatRows(real));
      } else console.log("\n(The real PyTorch traces replay only from a clone of the repository.)");
    }
  });
}
