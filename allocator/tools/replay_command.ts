// Replays a trace on the fake device and prints what the allocator did: peak
// allocated, peak reserved, their ratio, heaps made, createBuffer calls,
// retries and OOMs — for one policy, or several side by side.
//
//   deno task replay trace.json
//   deno task replay trace.json --conf "" --conf roundup_power2_divisions:4 --conf caching:0
//   deno task replay trace.json --compare            # the standard set of policies
//   deno task replay trace.json --json               # one JSON object, for scripts
//   deno task replay - < trace.json                  # the trace from stdin
//   deno task replay snapshot.pickle.gz              # a PyTorch memory snapshot
//
// Flags: --conf S (alloc conf applied on top of the trace's; repeat for more
// columns), --compare, --high-watermark B, --low-watermark B, --max-buffer-size B,
// --max-binding-size B, --memory B (fake device memory), --fallback, --json.
// Bytes may be written "512MiB". With --json and one policy the object holds
// the figures; with several, { "trace": …, "policies": [ … ] }. A PyTorch
// snapshot adds its own figures ("pytorch": reserved bytes and more) beside them.
import { parseBytes } from "../config.ts";
import { formatBytes } from "../format.ts";
import { replay, type ReplayOptions, type ReplayResult } from "./replay.ts";
import type { Trace } from "../trace.ts";
import { readTrace } from "./read_trace.ts";
import { loadTraceFile } from "./load_trace.ts";
import { formatPytorchFacts, pytorchFacts } from "./pytorch_snapshot.ts";

/** The policies `--compare` lays side by side. */
export const STANDARD_POLICIES: readonly string[] = [
  "",
  "roundup_power2_divisions:4",
  "caching:0",
  "large_heap:64MiB",
  "xlarge_heap:256MiB",
];

const USAGE = `usage: deno task replay TRACE.json [--conf S]... [--compare] [--json]
  [--high-watermark B] [--low-watermark B] [--max-buffer-size B] [--max-binding-size B]
  [--memory B] [--fallback]`;

/** A replay of one policy, named by its alloc conf. */
export interface PolicyResult extends ReplayResult {
  /** The alloc conf given (empty: the trace's own). */
  policy: string;
}

/** Replays `trace` once per alloc conf in `policies`, sharing the other options. */
export function comparePolicies(
  trace: Trace,
  policies: readonly string[],
  options: Omit<ReplayOptions, "allocConf"> = {},
): PolicyResult[] {
  return policies.map((policy) => ({
    policy,
    ...replay(trace, { ...options, allocConf: policy }),
  }));
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
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ");
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

async function main(args: string[]): Promise<number> {
  const confs: string[] = [];
  const options: Omit<ReplayOptions, "allocConf"> = {};
  const limits: { -readonly [K in keyof NonNullable<ReplayOptions["limits"]>]: number } = {};
  let json = false;
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new RangeError(`Cannot read ${a}: it needs a value`);
      return v;
    };
    if (a === "--conf") confs.push(value());
    else if (a === "--compare") confs.push(...STANDARD_POLICIES);
    else if (a === "--json") json = true;
    else if (a === "--fallback") options.fallbackAdapter = true;
    else if (a === "--high-watermark") options.highWatermark = parseBytes(value(), a);
    else if (a === "--low-watermark") options.lowWatermark = parseBytes(value(), a);
    else if (a === "--memory") options.memory = parseBytes(value(), a);
    else if (a === "--max-buffer-size") limits.maxBufferSize = parseBytes(value(), a);
    else if (a === "--max-binding-size") {
      limits.maxStorageBufferBindingSize = parseBytes(value(), a);
    } else if (a === "-h" || a === "--help") {
      console.log(USAGE);
      return 0;
    } else if ((a.startsWith("-") && a !== "-") || file !== undefined) {
      throw new RangeError(`Cannot replay: unknown argument ${JSON.stringify(a)}\n${USAGE}`);
    } else file = a;
  }
  if (file === undefined) throw new RangeError(`Cannot replay: no trace file given\n${USAGE}`);
  if (Object.keys(limits).length > 0) options.limits = limits;
  const loaded = await loadTraceFile(file);
  const trace = readTrace(loaded);
  const pytorch = pytorchFacts(loaded);
  const results = comparePolicies(trace, confs.length > 0 ? confs : [""], options);
  if (json) {
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
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
