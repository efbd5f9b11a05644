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
 * @module
 */

import { POOL_NAMES } from "../allocator.ts";
import { formatBytes } from "../format.ts";
import { replay } from "./replay.ts";
import type { BlockStateName, Snapshot, SnapshotBlock, SnapshotHeap } from "../snapshot.ts";
import type { Trace, TraceEvent } from "../trace.ts";
import { readTrace, TraceError } from "./read_trace.ts";

/** Options of {@linkcode memvizHtml}. */
export interface MemvizOptions {
  /** Title of the page (default: "gpuheap memory"). */
  title?: string;
  /** Which peak of a trace the heap map shows (default `"allocated"`). */
  at?: "allocated" | "reserved";
}

/**
 * Each pool's colour, the same on every chart and map.
 *
 * @example
 * ```ts
 * import { POOL_COLORS } from "./memviz.ts";
 *
 * console.log(POOL_COLORS.small); // "#4e79a7"
 * ```
 */
export const POOL_COLORS: Readonly<Record<string, string>> = {
  small: "#4e79a7",
  large: "#f28e2b",
  uniform: "#59a14f",
  scalar: "#b07aa1",
  readback: "#e15759",
  upload: "#76b7b2",
};

const WIDTH = 1160;
const LEFT = 88;
const RIGHT = 24;
const PLOT = WIDTH - LEFT - RIGHT;
/** Points per series: about one per pixel column. */
const BUCKETS = 1000;
/** Heaps drawn in the map; the rest are summed up in one line. */
const MAX_HEAPS = 400;
/** Past this many heaps, rows are drawn compact. */
const COMPACT_HEAPS = 60;

/**
 * Draws a trace or a snapshot (an object, or its JSON text) as one
 * self-contained HTML page.
 *
 * @throws {TraceError} the input is neither a snapshot nor a readable trace
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
  const value = typeof input === "string" ? parseJson(input) : input;
  const title = options.title ?? "gpuheap memory";
  if (isSnapshot(value)) return page(title, snapshotBody(value));
  let trace = readTrace(value);
  let note = "";
  if (!hasPlacement(trace.events)) {
    trace = replay(trace, { record: true }).trace!;
    note = "The trace gives no placement, so it was replayed on the fake device with " +
      "default settings.";
  }
  return page(title, traceBody(trace, options.at ?? "allocated", note, note !== ""));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TraceError(`malformed JSON (${(error as Error).message})`);
  }
}

function isSnapshot(value: unknown): value is Snapshot {
  return !!value && typeof value === "object" &&
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

// ---- trace ----

interface MapBlock {
  id: number;
  offset: number;
  size: number;
  requestedSize: number;
  state: BlockStateName;
  usage: string;
  label: string | null;
}

interface MapHeap {
  id: number;
  pool: string;
  size: number;
  isSplit: boolean;
  blocks: Map<number, MapBlock>;
}

/** The heaps and blocks a trace describes, event by event. */
class HeapState {
  heaps = new Map<number, MapHeap>();
  heapOf = new Map<number, MapHeap>();
  pending = new Set<number>();
  allocated: Record<string, number> = Object.fromEntries(POOL_NAMES.map((p) => [p, 0]));
  reserved: Record<string, number> = Object.fromEntries(POOL_NAMES.map((p) => [p, 0]));
  requested = 0;

  apply(e: TraceEvent): void {
    switch (e[0]) {
      case "heap":
        this.heaps.set(e[1], {
          id: e[1],
          pool: e[3],
          size: e[2],
          isSplit: e[4],
          blocks: new Map(),
        });
        this.reserved[e[3]] += e[2];
        break;
      case "release": {
        const heap = this.heaps.get(e[1]);
        if (!heap) break;
        this.reserved[heap.pool] -= heap.size;
        for (const id of heap.blocks.keys()) this.heapOf.delete(id);
        this.heaps.delete(e[1]);
        break;
      }
      case "split": {
        const heap = this.heaps.get(e[1]);
        if (!heap) break;
        for (const id of heap.blocks.keys()) this.heapOf.delete(id);
        heap.blocks.clear();
        heap.isSplit = true;
        break;
      }
      case "a":
      case "s": {
        const scalar = e[0] === "s";
        const heapId = scalar ? e[3]! : e[6]!;
        const heap = this.heaps.get(heapId);
        if (!heap) break;
        if (!heap.isSplit) {
          // An unsplit heap holds one block: a new one replaces the cached one.
          for (const old of heap.blocks.keys()) this.heapOf.delete(old);
          heap.blocks.clear();
        }
        const block: MapBlock = scalar
          ? {
            id: e[1],
            offset: e[4]!,
            size: e[5]!,
            requestedSize: 4,
            state: "live",
            usage: "uniform",
            label: "scalar",
          }
          : {
            id: e[1],
            offset: e[7]!,
            size: e[8]!,
            requestedSize: e[2],
            state: "live",
            usage: e[3] ?? "storage",
            label: e[9] ?? null,
          };
        heap.blocks.set(block.id, block);
        this.heapOf.set(block.id, heap);
        this.allocated[heap.pool] += block.size;
        this.requested += block.requestedSize;
        break;
      }
      case "f": {
        const heap = this.heapOf.get(e[1]);
        const block = heap?.blocks.get(e[1]);
        if (!heap || !block) break;
        this.allocated[heap.pool] -= block.size;
        this.requested -= block.requestedSize;
        if (e[2] === true || e[2] === 1) {
          block.state = "pending";
          this.pending.add(block.id);
        } else {
          this.#recycle(heap, block);
        }
        break;
      }
      case "submit":
        for (const id of this.pending) {
          const heap = this.heapOf.get(id);
          const block = heap?.blocks.get(id);
          if (heap && block) this.#recycle(heap, block);
        }
        this.pending.clear();
        break;
    }
  }

  #recycle(heap: MapHeap, block: MapBlock): void {
    if (heap.isSplit) {
      heap.blocks.delete(block.id);
      this.heapOf.delete(block.id);
    } else {
      block.state = "cached";
    }
  }

  /** The heaps now, as a snapshot lists them (free ranges filled in). */
  snapshotHeaps(): SnapshotHeap[] {
    const order = (h: MapHeap) => POOL_NAMES.indexOf(h.pool as typeof POOL_NAMES[number]);
    const heaps = [...this.heaps.values()].sort((a, b) => order(a) - order(b) || a.id - b.id);
    return heaps.map((h) => {
      const blocks: SnapshotBlock[] = [];
      let at = 0;
      for (const b of [...h.blocks.values()].sort((x, y) => x.offset - y.offset)) {
        if (b.offset > at) blocks.push(freeBlock(at, b.offset - at));
        blocks.push({ ...b, ageOps: null });
        at = b.offset + b.size;
      }
      if (at < h.size) blocks.push(freeBlock(at, h.size - at));
      return {
        id: h.id,
        pool: h.pool,
        size: h.size,
        isSplit: h.isSplit,
        lost: false,
        ageMs: 0,
        blocks,
      };
    });
  }
}

function freeBlock(offset: number, size: number): SnapshotBlock {
  return {
    id: null,
    offset,
    size,
    requestedSize: 0,
    state: "free",
    usage: null,
    label: null,
    ageOps: null,
  };
}

function sum(r: Record<string, number>): number {
  let s = 0;
  for (const k in r) s += r[k];
  return s;
}

interface Series {
  /** Event index of each point. */
  x: number[];
  /** Bytes per pool at each point. */
  pools: Record<string, number[]>;
}

function traceBody(
  trace: Trace,
  at: "allocated" | "reserved",
  note: string,
  replayed: boolean,
): string {
  const events = trace.events;
  const n = events.length;
  const width = Math.max(1, Math.ceil(n / BUCKETS));
  const alloc: Series = { x: [], pools: Object.fromEntries(POOL_NAMES.map((p) => [p, []])) };
  const reserv: Series = { x: [], pools: Object.fromEntries(POOL_NAMES.map((p) => [p, []])) };
  const state = new HeapState();
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
  let snapA: [number, Record<string, number>] | null = null;
  let snapR: [number, Record<string, number>] | null = null;
  const flush = () => {
    if (snapA) push(alloc, snapA);
    if (snapR) push(reserv, snapR);
    bestA = bestR = -1;
    snapA = snapR = null;
  };
  for (let i = 0; i < n; i++) {
    const e = events[i];
    state.apply(e);
    if (e[0] === "heap") heapsMade++;
    const a = sum(state.allocated);
    const r = sum(state.reserved);
    if (a > peakA) [peakA, peakAi] = [a, i];
    // Of the moments at peak reserved, the fullest: not the instant a heap is made
    // before its first block is placed.
    if (r > peakR || (r === peakR && a > allocAtPeakR)) [peakR, peakRi, allocAtPeakR] = [r, i, a];
    peakQ = Math.max(peakQ, state.requested);
    if (a > bestA) [bestA, snapA] = [a, [i + 1, { ...state.allocated }]];
    if (r > bestR) [bestR, snapR] = [r, [i + 1, { ...state.reserved }]];
    if ((i + 1) % width === 0 || i === n - 1) flush();
  }
  const peakIndex = at === "allocated" ? peakAi : peakRi;
  const map = new HeapState();
  for (let i = 0; i <= peakIndex; i++) map.apply(events[i]);
  const heaps = map.snapshotHeaps();
  const mapAllocated = sum(map.allocated);
  const mapReserved = sum(map.reserved);
  const scale = niceMax(Math.max(peakR, peakA, 1));
  const marks = [
    { x: peakAi + 1, label: `peak allocated ${formatBytes(peakA)}` },
    { x: peakRi + 1, label: `peak reserved ${formatBytes(peakR)}` },
  ].filter((m) => m.x > 0);
  const conf = trace.settings?.allocConf;
  const facts: [string, string][] = [
    ["peak allocated (live blocks)", `${formatBytes(peakA)} (${peakA} B)`],
    ["peak requested", `${formatBytes(peakQ)} (${peakQ} B)`],
    ["peak reserved (GPUBuffers)", `${formatBytes(peakR)} (${peakR} B)`],
    ["reserved ÷ allocated", peakA > 0 ? (peakR / peakA).toFixed(3) : "–"],
    ["reserved ÷ requested", peakQ > 0 ? (peakR / peakQ).toFixed(3) : "–"],
    ["GPUBuffers made", String(heapsMade)],
    ["events", String(n)],
    ["recorded for", trace.durationMs > 0 && !replayed ? `${trace.durationMs.toFixed(1)} ms` : "–"],
    ["alloc conf", conf ?? "–"],
  ];
  const when = at === "allocated" ? "peak allocated" : "peak reserved";
  return [
    note ? `<p class="note">${esc(note)}</p>` : "",
    factTable(facts),
    legend(),
    `<h2>Reserved bytes (GPUBuffers held), by pool</h2>`,
    areaChart("reserved", reserv, n, scale, marks),
    `<h2>Allocated bytes (live blocks), by pool; dashed: reserved bytes, all pools</h2>`,
    areaChart("allocated", alloc, n, scale, marks, reserv),
    `<h2>Heaps at the ${when} (after event ${peakIndex}): ${formatBytes(mapAllocated)} ` +
    `allocated in ${formatBytes(mapReserved)} reserved</h2>`,
    heapMap(heaps),
  ].join("\n");
}

function push(series: Series, [x, pools]: [number, Record<string, number>]): void {
  series.x.push(x);
  for (const p of POOL_NAMES) series.pools[p].push(pools[p]);
}

// ---- snapshot ----

function snapshotBody(snap: Snapshot): string {
  const s = snap.stats;
  const facts: [string, string][] = [
    ["allocated (live blocks)", `${formatBytes(s.allocatedBytes.current)}`],
    ["reserved (GPUBuffers)", `${formatBytes(s.reservedBytes.current)}`],
    ["pending a submit", formatBytes(s.pendingFreeBytes)],
    ["cached", formatBytes(s.cachedBytes)],
    ["peak allocated", formatBytes(s.allocatedBytes.peak)],
    ["peak reserved", formatBytes(s.reservedBytes.peak)],
    ["heaps held", String(s.heaps)],
    ["live blocks", String(s.blocks)],
    ["alloc conf", snap.settings?.allocConf ?? "–"],
  ];
  const rows: [string, Record<string, number>][] = [
    ["reserved", Object.fromEntries(POOL_NAMES.map((p) => [p, s.pools[p].reservedBytes.current]))],
    [
      "allocated",
      Object.fromEntries(POOL_NAMES.map((p) => [p, s.pools[p].allocatedBytes.current])),
    ],
  ];
  return [
    factTable(facts),
    legend(),
    `<h2>Bytes by pool</h2>`,
    barChart(rows, niceMax(Math.max(1, s.reservedBytes.current))),
    `<h2>Heaps</h2>`,
    heapMap(snap.heaps),
  ].join("\n");
}

// ---- drawing ----

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
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
<h1>${esc(title)}</h1>
${body}
</body>
</html>
`;
}

function factTable(facts: [string, string][]): string {
  const rows = facts.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`);
  return `<table class="facts">${rows.join("")}</table>`;
}

function legend(): string {
  const pools = POOL_NAMES.map((p) =>
    `<span><i style="background:${POOL_COLORS[p]}"></i>${p}</span>`
  );
  const states = [
    `<span><i style="background:${POOL_COLORS.large}"></i>live block</span>`,
    `<span><i style="background:repeating-linear-gradient(45deg,${POOL_COLORS.large} 0 3px,#fff 3px 5px)"></i>pending a submit</span>`,
    `<span><i style="background:${POOL_COLORS.large};opacity:0.35"></i>cached (unsplit heap)</span>`,
    `<span><i style="background:#ececec"></i>free</span>`,
  ];
  return `<div class="legend"><b>Pools:</b> ${pools.join("")}</div>` +
    `<div class="legend"><b>Heap map:</b> ${states.join("")}</div>`;
}

/** A round top for a byte axis: 1, 2 or 5 times a power of ten of a binary unit. */
function niceMax(bytes: number): number {
  return niceStep(bytes / 5) * Math.ceil(bytes / niceStep(bytes / 5));
}

function niceStep(bytes: number): number {
  let unit = 1;
  while (unit * 1024 <= bytes && unit < 2 ** 40) unit *= 1024;
  const v = bytes / unit;
  for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]) {
    if (m >= v) return m * unit;
  }
  return 1024 * unit;
}

function niceCount(n: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(1, n)));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

function byteLabel(bytes: number): string {
  if (bytes === 0) return "0";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let v = bytes;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

function yAxis(height: number, top: number, max: number): string {
  const step = niceStep(max / 5);
  const out: string[] = [];
  for (let v = 0; v <= max + step / 2; v += step) {
    const y = top + height - (v / max) * height;
    out.push(
      `<line class="grid" x1="${LEFT}" x2="${LEFT + PLOT}" y1="${f(y)}" y2="${f(y)}"/>`,
      `<text x="${LEFT - 8}" y="${f(y + 4)}" text-anchor="end">${byteLabel(v)}</text>`,
    );
  }
  return out.join("");
}

function areaChart(
  id: string,
  s: Series,
  n: number,
  max: number,
  marks: { x: number; label: string }[],
  outline?: Series,
): string {
  const height = 240;
  const top = 10;
  const svgH = top + height + 44;
  const xOf = (x: number) => LEFT + (n > 0 ? (x / n) * PLOT : 0);
  const yOf = (v: number) => top + height - (v / max) * height;
  const parts: string[] = [yAxis(height, top, max)];
  // Stacked areas, first pool at the bottom.
  const base = s.x.map(() => 0);
  for (const p of POOL_NAMES) {
    const vals = s.pools[p];
    if (!vals.some((v) => v > 0)) continue;
    const upper = s.x.map((x, i) => `${f(xOf(x))},${f(yOf(base[i] + vals[i]))}`);
    const lower = s.x.map((x, i) => `${f(xOf(x))},${f(yOf(base[i]))}`).reverse();
    parts.push(
      `<polygon class="series" data-series="${id}:${p}" fill="${POOL_COLORS[p]}" ` +
        `fill-opacity="0.85" points="${
          [...upper, ...lower].join(" ")
        }"><title>${p}</title></polygon>`,
    );
    for (let i = 0; i < base.length; i++) base[i] += vals[i];
  }
  if (outline) {
    const pts = outline.x.map((x, i) => {
      let t = 0;
      for (const p of POOL_NAMES) t += outline.pools[p][i];
      return `${f(xOf(x))},${f(yOf(t))}`;
    });
    parts.push(
      `<polyline class="series" data-series="${id}:reserved-total" fill="none" stroke="#222" ` +
        `stroke-width="1.2" stroke-dasharray="5 3" points="${pts.join(" ")}">` +
        `<title>reserved, all pools</title></polyline>`,
    );
  }
  for (const [k, m] of marks.entries()) {
    const x = xOf(m.x);
    parts.push(
      `<line x1="${f(x)}" x2="${f(x)}" y1="${top}" y2="${top + height}" stroke="#c00" ` +
        `stroke-dasharray="2 3"/>`,
      // Right of its line, or left of it near the right edge.
      `<text class="mark" x="${f(x > LEFT + PLOT - 200 ? x - 4 : x + 4)}" y="${
        top + 14 + 16 * k
      }" ` +
        `text-anchor="${x > LEFT + PLOT - 200 ? "end" : "start"}" fill="#c00">${
          esc(m.label)
        }</text>`,
    );
  }
  // X axis: event counts.
  const step = niceCount(Math.max(1, n) / 8);
  for (let v = 0; v <= n; v += step) {
    const x = xOf(v);
    parts.push(
      `<line class="axis" x1="${f(x)}" x2="${f(x)}" y1="${top + height}" ` +
        `y2="${top + height + 5}" stroke="#999"/>`,
      `<text x="${f(x)}" y="${top + height + 18}" text-anchor="middle">${v}</text>`,
    );
  }
  parts.push(
    `<line x1="${LEFT}" x2="${LEFT + PLOT}" y1="${top + height}" y2="${top + height}" ` +
      `stroke="#999"/>`,
    `<line x1="${LEFT}" x2="${LEFT}" y1="${top}" y2="${top + height}" stroke="#999"/>`,
    `<text x="${LEFT + PLOT / 2}" y="${top + height + 38}" text-anchor="middle">` +
      `events (alloc, free, submit, …) in the order they happened</text>`,
  );
  return `<svg class="chart" id="chart-${id}" width="${WIDTH}" height="${svgH}" ` +
    `viewBox="0 0 ${WIDTH} ${svgH}" role="img" aria-label="${id} bytes over events">` +
    parts.join("") + `</svg>`;
}

function barChart(rows: [string, Record<string, number>][], max: number): string {
  const barH = 26;
  const top = 10;
  const svgH = top + rows.length * (barH + 12) + 30;
  const parts: string[] = [];
  const step = niceStep(max / 5);
  for (let v = 0; v <= max + step / 2; v += step) {
    const x = LEFT + (v / max) * PLOT;
    parts.push(
      `<line class="grid" x1="${f(x)}" x2="${f(x)}" y1="${top}" y2="${svgH - 24}"/>`,
      `<text x="${f(x)}" y="${svgH - 8}" text-anchor="middle">${byteLabel(v)}</text>`,
    );
  }
  rows.forEach(([name, pools], r) => {
    const y = top + r * (barH + 12);
    parts.push(`<text x="${LEFT - 8}" y="${y + 17}" text-anchor="end">${name}</text>`);
    let x = LEFT;
    for (const p of POOL_NAMES) {
      const w = (pools[p] / max) * PLOT;
      if (w <= 0) continue;
      parts.push(
        `<rect class="series" data-series="${name}:${p}" x="${f(x)}" y="${y}" width="${f(w)}" ` +
          `height="${barH}" fill="${POOL_COLORS[p]}"><title>${p}: ${
            formatBytes(pools[p])
          }</title></rect>`,
      );
      x += w;
    }
  });
  return `<svg class="chart" width="${WIDTH}" height="${svgH}" viewBox="0 0 ${WIDTH} ${svgH}" ` +
    `role="img" aria-label="bytes by pool">${parts.join("")}</svg>`;
}

/** One row per heap: its blocks at their offsets, scaled to the row's width. */
function heapMap(heaps: readonly SnapshotHeap[]): string {
  if (heaps.length === 0) return `<p>No heaps held.</p>`;
  const shown = heaps.slice(0, MAX_HEAPS);
  const compact = shown.length > COMPACT_HEAPS;
  const rowH = compact ? 9 : 18;
  const gap = compact ? 2 : 6;
  const top = 4;
  const svgH = top + shown.length * (rowH + gap) + 4;
  const labelW = 230;
  const barW = WIDTH - labelW - RIGHT;
  const parts: string[] = [
    `<defs>${
      POOL_NAMES.map((p) =>
        `<pattern id="pending-${p}" width="6" height="6" patternUnits="userSpaceOnUse" ` +
        `patternTransform="rotate(45)"><rect width="3" height="6" fill="${POOL_COLORS[p]}"/>` +
        `<rect x="3" width="3" height="6" fill="#fff"/></pattern>`
      ).join("")
    }</defs>`,
  ];
  shown.forEach((h, r) => {
    const y = top + r * (rowH + gap);
    const kind = h.isSplit ? "heap" : "unsplit";
    parts.push(
      `<g class="heap" data-heap="${h.id}" data-pool="${h.pool}" data-size="${h.size}">`,
      `<text x="${labelW - 8}" y="${y + (compact ? 8 : 13)}" text-anchor="end"` +
        `${compact ? ` style="font-size:9px"` : ""}>#${h.id} ${h.pool} ${kind} ` +
        `${byteLabel(h.size)}</text>`,
      `<rect x="${labelW}" y="${y}" width="${barW}" height="${rowH}" fill="#ececec" ` +
        `stroke="#bbb" stroke-width="0.5"/>`,
    );
    const scale = barW / h.size;
    // Neighbours of one state narrower than 2 px merge into one run, so a heap of
    // thousands of small blocks stays a readable (and small) picture.
    let run: { x: number; end: number; state: BlockStateName; count: number } | null = null;
    const flush = () => {
      if (run && run.state !== "free") {
        parts.push(
          blockRect(
            labelW + run.x * scale,
            y,
            (run.end - run.x) * scale,
            rowH,
            h.pool,
            run.state,
            `${run.count} ${run.state} blocks, ${formatBytes(run.end - run.x)}`,
          ),
        );
      }
      run = null;
    };
    for (const b of h.blocks) {
      const w = b.size * scale;
      if (w < 2) {
        if (run && (run as { state: string }).state === b.state && run.end === b.offset) {
          run.end = b.offset + b.size;
          run.count++;
        } else {
          flush();
          run = { x: b.offset, end: b.offset + b.size, state: b.state, count: 1 };
        }
        continue;
      }
      flush();
      if (b.state === "free") continue;
      parts.push(blockRect(labelW + b.offset * scale, y, w, rowH, h.pool, b.state, blockTitle(b)));
    }
    flush();
    parts.push(`</g>`);
  });
  const rest = heaps.slice(MAX_HEAPS);
  const more = rest.length > 0
    ? `<p>${rest.length} more heaps not drawn (${
      formatBytes(rest.reduce((s, h) => s + h.size, 0))
    }).</p>`
    : "";
  return `<svg class="heapmap" width="${WIDTH}" height="${svgH}" viewBox="0 0 ${WIDTH} ${svgH}" ` +
    `role="img" aria-label="heap map">${parts.join("")}</svg>${more}`;
}

function blockRect(
  x: number,
  y: number,
  w: number,
  h: number,
  pool: string,
  state: BlockStateName,
  title: string,
): string {
  const fill = state === "pending" ? `url(#pending-${pool})` : POOL_COLORS[pool] ?? "#888";
  const opacity = state === "cached" ? ` fill-opacity="0.35"` : "";
  // A hairline between neighbours keeps adjacent blocks apart; the tiniest stay visible.
  const stroke = w >= 3 ? ` stroke="#fff" stroke-width="0.6"` : "";
  return `<rect class="block ${state}" x="${f(x)}" y="${y}" width="${f(Math.max(w, 1.5))}" ` +
    `height="${h}" fill="${fill}"${opacity}${stroke}><title>${esc(title)}</title></rect>`;
}

function blockTitle(b: SnapshotBlock): string {
  return `block #${b.id} ${b.state}: ${formatBytes(b.size)} at offset ${b.offset}` +
    ` (requested ${b.requestedSize} B${b.label ? `, ${b.label}` : ""})`;
}

function f(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}
