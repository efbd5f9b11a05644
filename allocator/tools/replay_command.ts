/**
 * The replay command: replays a trace (gpuheap's, a plain list of
 * `["a", id, size]` / `["f", id]` events, or a PyTorch memory snapshot
 * pickle) on the fake device and prints what the allocator did: peak
 * allocated, peak reserved, their ratio, heaps made, createBuffer calls,
 * retries and OOMs — for one policy, or several side by side.
 *
 * ```sh
 * deno run -A jsr:@gpuheap/gpuheap/replay trace.json
 * deno task replay trace.json --conf "" --conf roundup_power2_divisions:4 --conf caching:0
 * deno task replay trace.json --compare            # the standard set of policies
 * deno task replay trace.json --json               # one JSON object, for scripts
 * deno task replay trace.json --plan               # planned iterations beside online
 * deno task replay - < trace.json                  # the trace from stdin
 * deno task replay snapshot.pickle.gz              # a PyTorch memory snapshot
 * deno task replay --help                          # every flag
 * ```
 *
 * @example
 * ```ts
 * import { comparePolicies } from "@gpuheap/gpuheap/replay";
 * import { readTrace } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const trace = readTrace('[["a", 1, 3000000], ["f", 1], ["a", 2, 3000000], ["f", 2]]');
 * const [plain, uncached] = comparePolicies(trace, ["", "caching:0"]);
 * assert.equal(plain.peakAllocated, uncached.peakAllocated);
 * assert.ok(uncached.createBufferCalls >= plain.createBufferCalls);
 * ```
 *
 * @module
 */
import {
  allocConf,
  bytes,
  type Command,
  type Flag,
  type ManyFlag,
  maxFileSize,
  type ParsedArgs,
  type Positional,
  runCommand,
  toggle,
  type ValueFlag,
} from "./flags.ts";
import { formatBytes } from "../format.ts";
import { replay, type ReplayOptions, type ReplayResult } from "./replay.ts";
import type { Trace } from "../trace.ts";
import { readTrace } from "./read_trace.ts";
import { loadTraceFile } from "./load_trace.ts";
import { formatPytorchFacts, pytorchFacts } from "./pytorch_snapshot.ts";

export type { Command, Flag, ManyFlag, Positional, ReplayOptions, ReplayResult, ValueFlag };
export type * from "../trace.ts";
export type { AllocatorSettings } from "../config.ts";
export type { PlanInfo } from "../planned_arena.ts";
export type { AllocatorLimits } from "../device.ts";

/** The policies `--compare` lays side by side. */
export const STANDARD_POLICIES: readonly string[] = [
  "",
  "roundup_power2_divisions:4",
  "caching:0",
  "large_heap:64MiB",
  "xlarge_heap:256MiB",
  "max_split_size:20MiB",
];

/** The replay command's flags. */
export type ReplayFlags = {
  conf: ManyFlag<string>;
  compare: Flag<boolean>;
  json: Flag<boolean>;
  fallback: Flag<boolean>;
  highWatermark: ValueFlag<number>;
  lowWatermark: ValueFlag<number>;
  maxBufferSize: ValueFlag<number>;
  maxBindingSize: ValueFlag<number>;
  memory: ValueFlag<number>;
  plan: Flag<boolean>;
  maxFileSize: ValueFlag<number>;
};

/** The replay command's arguments and flags. */
export const REPLAY_COMMAND: Command<ReplayFlags> = {
  name: "replay",
  synopsis: "deno task replay TRACE [flags]",
  about: "Replays a trace on the fake device and prints what the allocator did: peak\n" +
    "allocated, peak reserved, their ratio, heaps made, createBuffer calls, retries\n" +
    "and OOMs, for one policy or several side by side. Reads gpuheap traces, plain\n" +
    'lists of ["a", id, size] and ["f", id] events, and PyTorch memory snapshots\n' +
    "(torch.cuda.memory._dump_snapshot pickles, gzipped or not) without Python.",
  positionals: [{
    name: "TRACE",
    help: "a trace (JSON) or a PyTorch memory snapshot (pickle), gzipped or not; - reads stdin",
  }],
  flags: {
    conf: allocConf("alloc conf on top of the trace's; repeat for more columns"),
    compare: toggle(`the standard policies side by side (${STANDARD_POLICIES.length} columns)`),
    json: toggle("one JSON object instead of the table"),
    fallback: toggle("replay as on a fallback (CPU) adapter"),
    highWatermark: bytes("hard limit on reserved bytes"),
    lowWatermark: bytes("soft limit on reserved bytes"),
    maxBufferSize: bytes("the device's maxBufferSize"),
    maxBindingSize: bytes("the device's maxStorageBufferBindingSize"),
    memory: bytes("the fake device's memory: heaps past it are refused"),
    plan: toggle("also replay each policy with its iter marks planned, row beside row"),
    maxFileSize: maxFileSize(),
  },
  notes: "From JSR: deno run -A jsr:@gpuheap/gpuheap/replay TRACE [flags]\n" +
    "Sizes may be written 512MiB. With --json and one policy the object holds the\n" +
    'figures; with several, { "trace": ..., "policies": [ ... ] }. Exit status: 0 on\n' +
    "success, 1 if the trace cannot be read or replayed, 2 for bad flags.",
};

/** A replay of one policy, named by its alloc conf. */
export interface PolicyResult extends ReplayResult {
  /** The alloc conf given (empty: the trace's own). */
  policy: string;
}

/**
 * Replays `trace` once per alloc conf in `policies`, sharing the other
 * options; with `plan`, each policy twice: online, then with its `iter` marks
 * planned (named `"<policy> + plan"`).
 */
export function comparePolicies(
  trace: Trace,
  policies: readonly string[],
  options: Omit<ReplayOptions, "allocConf"> = {},
): PolicyResult[] {
  return policies.flatMap((policy) => {
    const online = { policy, ...replay(trace, { ...options, plan: false, allocConf: policy }) };
    if (!options.plan) return [online];
    const planned = replay(trace, { ...options, allocConf: policy });
    return [online, { ...planned, policy: `${policy || "default"} + plan` }];
  });
}

/** What each plan of a planned replay did, one line each. */
export function formatPlans(result: ReplayResult): string {
  if (result.plans.length === 0) return "no iteration marks: nothing planned";
  return result.plans.map((p) =>
    `plan ${JSON.stringify(p.key)}: ${p.blocks} blocks in ${formatBytes(p.size)} for ${
      formatBytes(p.peakLive)
    } peak live (${p.ratio.toFixed(3)}), ${p.runs} runs, ${p.departures} departed` +
    (p.unplannable ? ` (not planned: ${p.unplannable})` : "")
  ).join("\n");
}

/** The results as an aligned text table, one row per policy. */
export function formatTable(results: readonly PolicyResult[]): string {
  const head = [
    "policy",
    "peak allocated",
    "peak requested",
    "peak reserved",
    "reserved/alloc",
    "reserved/req",
    "heaps",
    "createBuffer",
    "cache hits",
    "retries",
    "OOMs",
  ];
  const rows = results.map((r) => [
    r.policy || "default",
    formatBytes(r.peakAllocated),
    formatBytes(r.peakRequested),
    formatBytes(r.peakReserved),
    r.ratio.toFixed(3),
    r.requestedRatio.toFixed(3),
    String(r.heapsCreated),
    String(r.createBufferCalls),
    String(r.cacheHits),
    String(r.retries),
    String(r.ooms),
  ]);
  // With iteration marks: the peaks after every key's first run, the runs a plan serves.
  if (results.some((r) => r.steadyPeakAllocated > 0)) {
    head.push("steady reserved", "steady res/alloc");
    results.forEach((r, i) =>
      rows[i].push(
        formatBytes(r.steadyPeakReserved),
        r.steadyPeakAllocated > 0 ? (r.steadyPeakReserved / r.steadyPeakAllocated).toFixed(3) : "-",
      )
    );
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ");
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

async function main(
  { flags, positionals: [file] }: ParsedArgs<ReplayFlags>,
): Promise<void> {
  const confs = [...flags.conf, ...(flags.compare ? STANDARD_POLICIES : [])];
  const options: Omit<ReplayOptions, "allocConf"> = {};
  if (flags.fallback) options.fallbackAdapter = true;
  if (flags.highWatermark !== undefined) options.highWatermark = flags.highWatermark;
  if (flags.lowWatermark !== undefined) options.lowWatermark = flags.lowWatermark;
  if (flags.memory !== undefined) options.memory = flags.memory;
  if (flags.plan) options.plan = true;
  const limits: { -readonly [K in keyof NonNullable<ReplayOptions["limits"]>]: number } = {};
  if (flags.maxBufferSize !== undefined) limits.maxBufferSize = flags.maxBufferSize;
  if (flags.maxBindingSize !== undefined) {
    limits.maxStorageBufferBindingSize = flags.maxBindingSize;
  }
  if (Object.keys(limits).length > 0) options.limits = limits;
  const loaded = await loadTraceFile(file, { maxBytes: flags.maxFileSize });
  const trace = readTrace(loaded);
  // A PyTorch snapshot adds its own figures ("pytorch": reserved bytes and more).
  const pytorch = pytorchFacts(loaded);
  const results = comparePolicies(trace, confs.length > 0 ? confs : [""], options);
  if (flags.json) {
    const [only] = results;
    console.log(
      JSON.stringify(
        results.length === 1 ? { ...only, pytorch } : { trace: file, pytorch, policies: results },
        null,
        2,
      ),
    );
  } else {
    const counts = new Map<string, number>();
    for (const e of trace.events) counts.set(e[0], (counts.get(e[0]) ?? 0) + 1);
    const kinds = [...counts].map(([k, n]) => `${n} ${k}`).join(", ");
    console.log(`trace: ${file} (${trace.events.length} events: ${kinds})`);
    if (trace.settings && !pytorch) {
      console.log(`recorded with alloc conf: ${trace.settings.allocConf || "default"}`);
    }
    if (pytorch) console.log(formatPytorchFacts(pytorch, results[0].peakRequested));
    console.log(formatTable(results));
    if (flags.plan) {
      console.log(
        "planned: writes are not in traces, so plans treat no block as filled by writeBuffer",
      );
      console.log(formatPlans(results[1]));
    }
  }
}

if (import.meta.main) Deno.exitCode = await runCommand(REPLAY_COMMAND, Deno.args, main);
