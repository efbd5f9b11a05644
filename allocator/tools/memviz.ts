/**
 * A picture of memory: one self-contained HTML file (inline SVG and CSS, no
 * script, nothing loaded from elsewhere) drawn from a trace or a snapshot.
 *
 * From a trace: allocated and reserved bytes over the events, stacked by pool
 * on one byte scale, and a map of every heap's blocks at the peak. A trace
 * without placement (a plain list of `["a", id, size]` events) is first
 * replayed on the fake device under default settings. From a snapshot: the
 * bytes of each pool and the map of every heap's blocks.
 *
 * The input is read by {@linkcode readTrace} or {@linkcode readSnapshot},
 * followed by a {@linkcode HeapModel}, drawn by the pieces of `charts.ts`,
 * and written with the `markup` tag of `markup.ts`, which escapes every string.
 *
 * @module
 */

import { POOL_NAMES } from "../allocator.ts";
import { formatBytes } from "../format.ts";
import { replay } from "./replay.ts";
import type { Snapshot } from "../snapshot.ts";
import type { Trace, TraceEvent } from "../trace.ts";
import { parseJson, readTrace } from "./read_trace.ts";
import { readSnapshot } from "./read_snapshot.ts";
import { HeapModel, type PoolBytes, total } from "./heap_model.ts";
import {
  areaChart,
  barChart,
  emptySeries,
  factTable,
  heapMap,
  legend,
  niceMax,
  pushPoint,
  WIDTH,
} from "./charts.ts";
import { type Markup, markup } from "./markup.ts";

export { POOL_COLORS } from "./charts.ts";

/** Options of {@linkcode memvizHtml}. */
export interface MemvizOptions {
  /** Title of the page (default: "gpuheap memory"). */
  title?: string;
  /** Which peak of a trace the heap map shows (default `"allocated"`). */
  at?: "allocated" | "reserved";
}

/** Points per series: about one per pixel column. */
const BUCKETS = 1000;

/**
 * Draws a trace or a snapshot (an object, or its JSON text) as one
 * self-contained HTML page.
 *
 * @throws {TraceError} the input is neither a readable snapshot (then a
 *   `SnapshotError`) nor a readable trace
 * @throws {TypeError} an option of the wrong type
 *
 * @example
 * ```ts
 * import { FakeDevice, HeapAllocator } from "../../mod.ts";
 * import { memvizHtml } from "./memviz.ts";
 * import assert from "node:assert/strict";
 *
 * const heap = new HeapAllocator(new FakeDevice());
 * heap.startRecording();
 * const a = heap.alloc(3 << 20);
 * heap.free(heap.alloc(1 << 20));
 * heap.free(a);
 * const html = memvizHtml(heap.stopRecording());
 * assert.match(html, /<svg/);
 * assert.doesNotMatch(html, /https?:/);
 * heap.destroy();
 * ```
 */
export function memvizHtml(
  input: Trace | Snapshot | readonly unknown[] | string | unknown,
  options: MemvizOptions = {},
): string {
  const title = options.title ?? "gpuheap memory";
  const at = options.at ?? "allocated";
  if (typeof title !== "string") {
    throw new TypeError(`Cannot draw: title must be a string, got ${typeof title}`);
  }
  if (at !== "allocated" && at !== "reserved") {
    throw new TypeError(`Cannot draw: at must be "allocated" or "reserved"`);
  }
  const value = typeof input === "string" ? parseJson(input) : input;
  if (isSnapshot(value)) return page(title, snapshotBody(readSnapshot(value))).toString();
  let trace = readTrace(value);
  let replayed = false;
  if (!hasPlacement(trace.events)) {
    trace = replay(trace, { record: true }).trace!;
    replayed = true;
  }
  return page(title, traceBody(trace, at, replayed)).toString();
}

function isSnapshot(value: unknown): boolean {
  return !!value && typeof value === "object" && !Array.isArray(value) &&
    (value as { format?: unknown }).format === "gpuheap-snapshot";
}

/** True when every block event says where the block lies and heap events are present. */
function hasPlacement(events: readonly TraceEvent[]): boolean {
  let heaps = false;
  for (const e of events) {
    if (e[0] === "a" && e.length < 9) return false;
    if (e[0] === "s" && e.length < 6) return false;
    if (e[0] === "heap") heaps = true;
  }
  return heaps || events.length === 0;
}

function traceBody(trace: Trace, at: "allocated" | "reserved", replayed: boolean): Markup {
  const events = trace.events;
  const n = events.length;
  const width = Math.max(1, Math.ceil(n / BUCKETS));
  const alloc = emptySeries();
  const reserv = emptySeries();
  const model = new HeapModel();
  let peakA = 0;
  let peakR = 0;
  let peakQ = 0;
  let peakAi = -1;
  let peakRi = -1;
  let allocAtPeakR = -1;
  let heapsMade = 0;
  // Each bucket keeps its highest point, so no peak is lost however long the trace.
  let bestA = -1;
  let bestR = -1;
  let snapA: [number, PoolBytes] | null = null;
  let snapR: [number, PoolBytes] | null = null;
  for (let i = 0; i < n; i++) {
    const e = events[i];
    model.apply(e, i);
    if (e[0] === "heap") heapsMade++;
    const a = total(model.allocated);
    const r = total(model.reserved);
    if (a > peakA) [peakA, peakAi] = [a, i];
    // Of the moments at peak reserved, the fullest: not the instant a heap is made
    // before its first block is placed.
    if (r > peakR || (r === peakR && a > allocAtPeakR)) [peakR, peakRi, allocAtPeakR] = [r, i, a];
    peakQ = Math.max(peakQ, model.requested);
    if (a > bestA) [bestA, snapA] = [a, [i + 1, { ...model.allocated }]];
    if (r > bestR) [bestR, snapR] = [r, [i + 1, { ...model.reserved }]];
    if ((i + 1) % width === 0 || i === n - 1) {
      if (snapA) pushPoint(alloc, ...snapA);
      if (snapR) pushPoint(reserv, ...snapR);
      bestA = bestR = -1;
      snapA = snapR = null;
    }
  }
  const peakIndex = at === "allocated" ? peakAi : peakRi;
  const map = new HeapModel();
  for (let i = 0; i <= peakIndex; i++) map.apply(events[i], i);
  const scale = niceMax(Math.max(peakR, peakA, 1));
  const marks = [
    { x: peakAi + 1, label: `peak allocated ${formatBytes(peakA)}` },
    { x: peakRi + 1, label: `peak reserved ${formatBytes(peakR)}` },
  ].filter((m) => m.x > 0);
  const ratio = (a: number, b: number) => b > 0 ? (a / b).toFixed(3) : "–";
  const facts: [string, string][] = [
    ["peak allocated (live blocks)", `${formatBytes(peakA)} (${peakA} B)`],
    ["peak requested", `${formatBytes(peakQ)} (${peakQ} B)`],
    ["peak reserved (GPUBuffers)", `${formatBytes(peakR)} (${peakR} B)`],
    ["reserved ÷ allocated", ratio(peakR, peakA)],
    ["reserved ÷ requested", ratio(peakR, peakQ)],
    ["GPUBuffers made", String(heapsMade)],
    ["events", String(n)],
    ["recorded for", trace.durationMs > 0 && !replayed ? `${trace.durationMs.toFixed(1)} ms` : "–"],
    ["alloc conf", trace.settings?.allocConf ?? "–"],
  ];
  const when = at === "allocated" ? "peak allocated" : "peak reserved";
  const note = "The trace gives no placement, so it was replayed on the fake device with " +
    "default settings.";
  return markup`${replayed ? markup`<p class="note">${note}</p>` : null}
${factTable(facts)}
${legend()}
<h2>Reserved bytes (GPUBuffers held), by pool</h2>
${areaChart("reserved", reserv, n, scale, marks)}
<h2>Allocated bytes (live blocks), by pool; dashed: reserved bytes, all pools</h2>
${areaChart("allocated", alloc, n, scale, marks, reserv)}
<h2>Heaps at the ${when} (after event ${peakIndex}): ${
    formatBytes(total(map.allocated))
  } allocated in ${formatBytes(total(map.reserved))} reserved</h2>
${heapMap(map.snapshotHeaps())}`;
}

function snapshotBody(snap: Snapshot): Markup {
  const s = snap.stats;
  const facts: [string, string][] = [
    ["allocated (live blocks)", formatBytes(s.allocatedBytes.current)],
    ["reserved (GPUBuffers)", formatBytes(s.reservedBytes.current)],
    ["pending a submit", formatBytes(s.pendingFreeBytes)],
    ["cached", formatBytes(s.cachedBytes)],
    ["peak allocated", formatBytes(s.allocatedBytes.peak)],
    ["peak reserved", formatBytes(s.reservedBytes.peak)],
    ["heaps held", String(s.heaps)],
    ["live blocks", String(s.blocks)],
    ["alloc conf", snap.settings.allocConf ?? "–"],
  ];
  const byPool = (f: (p: typeof POOL_NAMES[number]) => number) =>
    Object.fromEntries(POOL_NAMES.map((p) => [p, f(p)])) as PoolBytes;
  const rows: [string, PoolBytes][] = [
    ["reserved", byPool((p) => s.pools[p].reservedBytes.current)],
    ["allocated", byPool((p) => s.pools[p].allocatedBytes.current)],
  ];
  // The axis spans the largest bar, whatever the totals say.
  const widest = Math.max(1, s.reservedBytes.current, ...rows.map(([, r]) => total(r)));
  return markup`${factTable(facts)}
${legend()}
<h2>Bytes by pool</h2>
${barChart(rows, niceMax(widest))}
<h2>Heaps</h2>
${heapMap(snap.heaps)}`;
}

function page(title: string, body: Markup): Markup {
  return markup`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; color: #222; margin: 24px; max-width: ${WIDTH}px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 16px; margin: 22px 0 6px; }
table.facts { border-collapse: collapse; margin: 8px 0; }
table.facts td { padding: 2px 14px 2px 0; }
table.facts td:first-child { color: #555; }
.note { background: #fff6d5; padding: 6px 10px; border-radius: 4px; }
.legend span { display: inline-block; margin-right: 16px; white-space: nowrap; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 5px;
  vertical-align: -1px; border: 1px solid #0003; }
svg text { font: 12px system-ui, sans-serif; fill: #333; }
svg .axis line, svg .axis path { stroke: #999; }
svg .grid { stroke: #e4e4e4; }
svg text.mark { paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
</style>
</head>
<body>
<h1>${title}</h1>
${body}
</body>
</html>
`;
}
