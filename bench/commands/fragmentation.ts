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
 * The corpus (every trace of facts.json) is also reported one row per trace,
 * with the trace's half (Note [the split]), the createBuffer calls of the
 * replay and their estimated time on an H100 (Note [createBuffer cost])
 * beside the trace's own recorded duration.
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

// Note [the split]
// The corpus is split once, by a rule that reads names only, written down before any policy
// was measured on the traces it splits:
// - the traces the policy was tuned on before the corpus grew (TUNED_BEFORE) are "tune";
// - every other trace is ranked by the FNV-1a 32-bit hash of its name (ties by name); ranks
//   0, 2, 4, … are "tune", ranks 1, 3, 5, … are "held-out".
// Policies are tuned on the tune half only; the held-out half is what the README claims.
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
  "max_split_size:20MiB",
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

/** The traces the policy was tuned on before the corpus grew: all in the tune half. */
export const TUNED_BEFORE: readonly string[] = [
  "resnet50_infer_varbatch",
  "bert_train_varseq",
  "fcn_train_largeact",
];

/** A half of the corpus (Note [the split]). */
export type Half = "tune" | "held-out";

/**
 * FNV-1a, 32 bits, of a string's UTF-16 code units.
 *
 * @example
 * ```ts
 * import { fnv1a } from "@gpuheap/gpuheap/fragmentation";
 * import assert from "node:assert/strict";
 *
 * assert.equal(fnv1a("a"), 0xe40c292c);
 * ```
 */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * The half of each trace, by Note [the split]: the ones tuned on before are
 * "tune"; the others, ranked by the hash of their name, alternate.
 *
 * @example
 * ```ts
 * import { splitCorpus } from "@gpuheap/gpuheap/fragmentation";
 * import assert from "node:assert/strict";
 *
 * const halves = splitCorpus(["a", "b", "c", "d", "bert_train_varseq"]);
 * assert.equal(halves.get("bert_train_varseq"), "tune");
 * assert.deepEqual([...halves.values()].filter((h) => h === "held-out").length, 2);
 * ```
 */
export function splitCorpus(names: readonly string[]): Map<string, Half> {
  const halves = new Map<string, Half>();
  const rest = names.filter((n) => !TUNED_BEFORE.includes(n));
  rest.sort((a, b) => fnv1a(a) - fnv1a(b) || (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) if (TUNED_BEFORE.includes(name)) halves.set(name, "tune");
  rest.forEach((name, rank) => halves.set(name, rank % 2 === 0 ? "tune" : "held-out"));
  return halves;
}

// Note [createBuffer cost]
// What one GPUBuffer costs a run, per size: measured on an NVIDIA H100 80GB HBM3 with Deno 2.9.6
// WebGPU over Vulkan, 2026-12-06 (STORAGE | COPY_SRC | COPY_DST buffers). Below 128 MiB the cost
// is that of a buffer made while three others of its size stay live (new device memory is
// needed, as for a new heap) plus its destroy: ~30-45 us up to 24 MiB, where wgpu sub-allocates
// from memory blocks of its own, and ~1.2-3 ms from 32 to 96 MiB, where each buffer takes a new
// memory block from the driver. From 128 MiB on every buffer is a dedicated driver allocation:
// its create and destroy, ~8.6 ms at 128 MiB up to ~107 ms at 2 GiB. (A 64 MiB buffer made and
// destroyed in a loop costs ~20 us: the driver hands the block just freed back.) Between two
// sizes of the table the cost is interpolated on a log-log scale; below the smallest it is the
// smallest's, past the largest it grows in proportion to the size.
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
/**{@linkcode} `[bytes, milliseconds]` per createBuffer + destroy, by size (Note [createBuffer cost]). */
export const CREATE_BUFFER_COST: readonly (readonly [number, number])[] = [
  [256, 0.03119],
  [4 * KiB, 0.03146],
  [64 * KiB, 0.04267],
  [1 * MiB, 0.03301],
  [4 * MiB, 0.0477],
  [8 * MiB, 0.04059],
  [16 * MiB, 0.03825],
  [24 * MiB, 0.0457],
  [32 * MiB, 1.374],
  [40 * MiB, 1.196],
  [48 * MiB, 1.191],
  [56 * MiB, 1.236],
  [64 * MiB, 1.201],
  [96 * MiB, 2.97],
  [128 * MiB, 8.566],
  [256 * MiB, 9.675],
  [512 * MiB, 21.25],
  [1 * GiB, 49.72],
  [2 * GiB, 107.4],
];

/**
 * The estimated milliseconds of one createBuffer + destroy of `bytes` (Note [createBuffer cost]).
 *
 * @example
 * ```ts
 * import { createBufferMs } from "@gpuheap/gpuheap/fragmentation";
 * import assert from "node:assert/strict";
 *
 * assert.ok(createBufferMs(16 << 20) < 0.1); // sub-allocated by wgpu
 * assert.ok(createBufferMs(256 << 20) > 5); // a dedicated driver allocation
 * ```
 */
export function createBufferMs(bytes: number): number {
  const table = CREATE_BUFFER_COST;
  if (bytes <= table[0][0]) return table[0][1];
  for (let i = 1; i < table.length; i++) {
    const [b1, t1] = table[i];
    if (bytes <= b1) {
      const [b0, t0] = table[i - 1];
      const f = Math.log(bytes / b0) / Math.log(b1 / b0);
      return Math.exp(Math.log(t0) + f * (Math.log(t1) - Math.log(t0)));
    }
  }
  const [bn, tn] = table[table.length - 1];
  return tn * bytes / bn;
}

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

/** One corpus trace replayed under one policy. */
export interface CorpusRow {
  /** The trace's name (its file, without `.pickle.gz`). */
  trace: string;
  /** Its half of the corpus (Note [the split]). */
  half: Half;
  /** The alloc conf ("" for the default). */
  policy: string;
  /** Peak reserved ÷ peak live (rounded block bytes). */
  ratio: number;
  /** Peak of live bytes in the replay (rounded block sizes). */
  peakAllocated: number;
  /** Peak of requested bytes in the replay. */
  peakRequested: number;
  /** Peak reserved bytes in the replay. */
  peakReserved: number;
  /** GPUBuffers the replay made. */
  createBufferCalls: number;
  /** Their estimated time on an H100 in milliseconds (Note [createBuffer cost]). */
  createBufferMs: number;
  /** How long the recorded run took, in milliseconds (PyTorch's `time_us`). */
  durationMs: number;
  /** PyTorch's own figures for the run. */
  pytorch: PytorchFigures;
}

/** The facts.json of a corpus: PyTorch's peaks per trace. */
async function readFacts(
  dir: URL,
): Promise<Record<string, { peak_allocated: number; peak_reserved: number }>> {
  return JSON.parse(await Deno.readTextFile(new URL("facts.json", dir))).workloads;
}

/**
 * Replays every trace of the corpus in `dir` (those facts.json lists) under
 * each policy, with the limits of an H100, one row per trace and policy.
 */
export async function measureCorpus(
  policies: readonly string[] = [""],
  dir: URL = REAL_TRACES_DIR,
): Promise<CorpusRow[]> {
  const facts = await readFacts(dir);
  const halves = splitCorpus(Object.keys(facts));
  const rows: CorpusRow[] = [];
  for (const [name, f] of Object.entries(facts)) {
    const trace = readTrace(await loadTraceFile(new URL(`${name}.pickle.gz`, dir)));
    for (const policy of policies) {
      const r = replay(trace, { allocConf: policy, limits: BIG_GPU_LIMITS, record: true });
      let ms = 0;
      for (const e of r.trace!.events) if (e[0] === "heap") ms += createBufferMs(e[2]);
      rows.push({
        trace: name,
        half: halves.get(name)!,
        policy,
        ratio: r.ratio,
        peakAllocated: r.peakAllocated,
        peakRequested: r.peakRequested,
        peakReserved: r.peakReserved,
        createBufferCalls: r.createBufferCalls,
        createBufferMs: ms,
        durationMs: trace.durationMs,
        pytorch: {
          peakAllocated: f.peak_allocated,
          peakReserved: f.peak_reserved,
          ratio: f.peak_reserved / f.peak_allocated,
        },
      });
    }
  }
  return rows;
}

/**
 * The corpus rows of each policy as a table, tune half first, then the worst
 * trace of each half and of all.
 */
export function formatCorpus(rows: readonly CorpusRow[]): string {
  const out: string[] = [];
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  for (const policy of new Set(rows.map((r) => r.policy))) {
    const mine = rows.filter((r) => r.policy === policy);
    const sorted = [...mine].sort((a, b) =>
      a.half === b.half ? (a.trace < b.trace ? -1 : 1) : a.half === "tune" ? -1 : 1
    );
    out.push(`\npolicy: ${policy || "default"}\n`);
    out.push(
      "| trace | half | peak live MiB (PyTorch's) | reserved/live | PyTorch's | createBuffer | est. ms | run ms |",
    );
    out.push("|---|---|---:|---:|---:|---:|---:|---:|");
    for (const r of sorted) {
      out.push(
        `| ${r.trace} | ${r.half} | ${mib(r.peakAllocated)} (${mib(r.pytorch.peakAllocated)}) | ${
          r.ratio.toFixed(3)
        } | ${r.pytorch.ratio.toFixed(3)} | ${r.createBufferCalls} | ${
          r.createBufferMs.toFixed(1)
        } | ${r.durationMs.toFixed(0)} |`,
      );
    }
    out.push("");
    for (
      const [label, group] of [
        ["tune half", mine.filter((r) => r.half === "tune")],
        ["held-out half", mine.filter((r) => r.half === "held-out")],
        ["all", mine],
      ] as const
    ) {
      if (group.length === 0) continue;
      const worst = group.reduce((a, b) => (b.ratio > a.ratio ? b : a));
      const mean = group.reduce((a, r) => a + r.ratio, 0) / group.length;
      out.push(
        `${label}: ${group.length} traces, mean ${mean.toFixed(3)}, worst ${
          worst.ratio.toFixed(3)
        } (${worst.trace})`,
      );
    }
  }
  return out.join("\n");
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
    const corpus = fromClone ? await measureCorpus(policies) : [];
    if (flags.json) console.log(JSON.stringify([...rows, ...real, ...corpus], null, 2));
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
        console.log(
          "\nThe corpus, one row per trace, by half (tune, held-out), with createBuffer calls and" +
            " their estimated time on an H100 beside the recorded run's duration:",
        );
        console.log(formatCorpus(corpus));
      } else console.log("\n(The real PyTorch traces replay only from a clone of the repository.)");
    }
  });
}
