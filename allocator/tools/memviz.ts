/**
 * A picture of memory: one self-contained HTML file (inline SVG, CSS and a
 * small script, nothing loaded from elsewhere) drawn from a trace or a
 * snapshot.
 *
 * From a trace, on one time axis (or, for a trace without times, over its
 * events): the block timeline (every block a band from its alloc to its
 * free, stacked, so the top is the bytes allocated), reserved and allocated
 * bytes stacked by pool, the largest blocks at the peak with their call
 * sites, and a map of every heap's blocks on one byte scale. A trace without
 * placement (a plain list of `["a", id, size]` events, a PyTorch snapshot)
 * is first replayed on the fake device under its settings. From a snapshot:
 * the bytes of each pool, the largest blocks and the heap map.
 *
 * The page's script shows the details of what is under the pointer (click
 * pins them), zooms the charts over time to a range dragged across them,
 * and moves the heap map to any moment (a slider, or a click on a chart).
 * Without the script the page shows the same pictures, at the peak.
 *
 * The input is read by {@linkcode readTrace} or {@linkcode readSnapshot},
 * followed by a {@linkcode HeapModel}, laid out by `block_timeline.ts`,
 * drawn by the pieces of `charts.ts`, and written with the `markup` tag of
 * `markup.ts`, which escapes every string.
 *
 * @module
 */

import { POOL_NAMES } from "../allocator.ts";
import { formatBytes } from "../format.ts";
import { replayTrace } from "./replay.ts";
import type { Snapshot, SnapshotBlock } from "../snapshot.ts";
import { TIME_ITEM, type Trace, type TraceEvent } from "../trace.ts";
import { parseJson, readTrace } from "./read_trace.ts";
import { readSnapshot } from "./read_snapshot.ts";
import { pytorchFacts } from "./pytorch_snapshot.ts";
import { HeapModel, type History, NEVER, type PoolBytes, total } from "./heap_model.ts";
import { layoutBands } from "./block_timeline.ts";
import {
  areaChart,
  bandColor,
  barChart,
  columnOf,
  emptySeries,
  factTable,
  heapMap,
  legend,
  LISTED_COLORS,
  type Mark,
  MAX_HEAPS,
  MIN_BAND_PX,
  niceMax,
  POOL_COLORS,
  pushPoint,
  REST_COLOR,
  type Series,
  swatch,
  table,
  timelineChart,
  WIDTH,
  type XAxis,
  xWhen,
} from "./charts.ts";
import { concat, cutLabel, type Markup, markup } from "./markup.ts";
import { PAGE_SCRIPT, PAGE_STYLE } from "./memviz_script.ts";

export { POOL_COLORS } from "./charts.ts";

/** Options of {@linkcode memvizHtml}. */
export interface MemvizOptions {
  /** Title of the page (default: "gpuheap memory"). */
  title?: string;
  /** Which peak of a trace the heap map shows (default `"allocated"`). */
  at?: "allocated" | "reserved";
  /** The x axis: `"time"` (the default where the trace has times) or `"events"`. */
  x?: "time" | "events";
  /** Blocks the timeline draws one by one at most (default 1,500); the others are summed. */
  maxBands?: number;
}

/** Blocks the timeline draws one by one, by default. */
const MAX_BANDS = 1500;
/** Steps of the bands' outlines at most: about 1 MB of page. */
const MAX_STEPS = 25_000;
/** Blocks the page's script can move the heap map through: past it, the map stays at the peak. */
const MAX_SCRIPT_BLOCKS = 20_000;
/** Events of a trace whose heap map the page's script can move (it carries a moment per time). */
const MAX_SCRIPT_EVENTS = 60_000;
/** Rows of the table of the largest blocks at the peak. */
const TOP_BLOCKS = LISTED_COLORS.length;
/** Rows of the table of call sites at the peak. */
const TOP_SITES = 10;
/** Distinct stacks a call site's tip lists at most. */
const TIP_STACKS = 4;

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
 * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import { memvizHtml } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const allocator = new HeapAllocator(new FakeDevice());
 * allocator.startRecording();
 * const a = allocator.alloc(3 << 20, { label: "weights" });
 * allocator.free(allocator.alloc(1 << 20));
 * allocator.free(a);
 * const html = memvizHtml(allocator.stopRecording());
 * assert.equal(html.match(/<polygon class="band"/g)?.length, 2); // one band per block
 * assert.match(html, /weights/);
 * assert.doesNotMatch(html, /https?:/);
 * allocator.destroy();
 * ```
 */
export function memvizHtml(
  input: Trace | Snapshot | readonly unknown[] | string | unknown,
  options: MemvizOptions = {},
): string {
  const title = options.title ?? "gpuheap memory";
  const at = options.at ?? "allocated";
  const maxBands = options.maxBands ?? MAX_BANDS;
  if (typeof title !== "string") {
    throw new TypeError(`Cannot draw: title must be a string, got ${typeof title}`);
  }
  if (at !== "allocated" && at !== "reserved") {
    throw new TypeError(`Cannot draw: at must be "allocated" or "reserved"`);
  }
  if (options.x !== undefined && options.x !== "time" && options.x !== "events") {
    throw new TypeError(`Cannot draw: x must be "time" or "events"`);
  }
  if (!Number.isSafeInteger(maxBands) || maxBands < 0) {
    throw new TypeError(`Cannot draw: maxBands must be an integer >= 0, got ${maxBands}`);
  }
  const value = typeof input === "string" ? parseJson(input) : input;
  if (isSnapshot(value)) return page(title, snapshotBody(readSnapshot(value))).toString();
  // Read once: a trace without placement is replayed as read.
  const trace = readTrace(value);
  let drawn = trace;
  let source: Int32Array | null = null;
  if (!hasPlacement(trace.events)) {
    const replayed = replayTrace(trace, { record: true });
    drawn = replayed.trace!;
    source = replayed.source!;
  }
  const pytorch = pytorchFacts(value);
  const body = traceBody(trace, drawn, source, { at, x: options.x, maxBands, pytorch });
  return page(title, body).toString();
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

/**
 * The x of each event of `trace` and the axis: times (never running
 * backwards; an event without one takes the one before) where the trace
 * has any, else the count of events done.
 */
function eventXs(
  trace: Trace,
  wanted: "time" | "events" | undefined,
): { xs: Float64Array; axis: XAxis } {
  const events = trace.events;
  const n = events.length;
  const xs = new Float64Array(n);
  let t = 0;
  for (let i = 0; i < n; i++) {
    const v = events[i][TIME_ITEM[events[i][0]]];
    if (typeof v === "number" && v > t) t = v;
    xs[i] = t;
  }
  const end = Math.max(t, trace.durationMs);
  // From the first event: a recording may begin long before anything is allocated.
  const start = n > 0 ? xs[0] : 0;
  if (wanted !== "events" && end > start) return { xs, axis: { from: start, to: end, unit: "ms" } };
  for (let i = 0; i < n; i++) xs[i] = i + 1;
  return { xs, axis: { from: 0, to: Math.max(1, n), unit: "events" } };
}

/**
 * The points of a series, one pixel column at a time: each column's highest
 * point, then its last if that is lower. Copies bytes into arrays of its
 * own (no object per event).
 */
class Column {
  #best = -1;
  #bestX = 0;
  readonly #bestBytes = new Float64Array(POOL_NAMES.length);
  readonly series: Series = emptySeries();

  /** Sees the bytes after an event at `x`, whose sum over pools is `sum`. */
  see(x: number, bytes: PoolBytes, sum: number): void {
    if (sum <= this.#best) return;
    this.#best = sum;
    this.#bestX = x;
    for (let p = 0; p < POOL_NAMES.length; p++) this.#bestBytes[p] = bytes[POOL_NAMES[p]];
  }

  /** Ends the column, whose last event left `bytes` (summing to `sum`) at `x`. */
  flush(x: number, bytes: PoolBytes, sum: number): void {
    if (this.#best < 0) return;
    const s = this.series;
    s.x.push(this.#bestX);
    for (let p = 0; p < POOL_NAMES.length; p++) {
      s.pools[POOL_NAMES[p]].push(this.#bestBytes[p]);
    }
    if (sum < this.#best) pushPoint(s, x, bytes);
    this.#best = -1;
  }
}

interface TraceDrawing {
  at: "allocated" | "reserved";
  x: "time" | "events" | undefined;
  maxBands: number;
  pytorch: ReturnType<typeof pytorchFacts>;
}

/** What one pass over a trace's events finds: the model after it, peaks, series by pool. */
interface Walk {
  model: HeapModel;
  allocated: Series;
  reserved: Series;
  peakAllocated: number;
  peakAllocatedAt: number;
  peakReserved: number;
  peakReservedAt: number;
  peakRequested: number;
  heapsMade: number;
  /** Heap, release and split events. */
  heapEvents: number;
}

/** Follows the events with a model keeping every block's life; a point per pixel column. */
function walk(events: readonly TraceEvent[], xs: Float64Array, axis: XAxis): Walk {
  const n = events.length;
  let placings = 0;
  for (const e of events) if (e[0] === "a" || e[0] === "s") placings++;
  const model = new HeapModel({ history: true, blocks: placings });
  const alloc = new Column();
  const reserv = new Column();
  const w = {
    peakAllocated: 0,
    peakAllocatedAt: -1,
    peakReserved: 0,
    peakReservedAt: -1,
    peakRequested: 0,
    heapsMade: 0,
    heapEvents: 0,
  };
  let allocatedAtPeakReserved = -1;
  for (let i = 0; i < n; i++) {
    const e = events[i];
    model.apply(e, i);
    if (e[0] === "heap") w.heapsMade++;
    if (e[0] === "heap" || e[0] === "release" || e[0] === "split") w.heapEvents++;
    const a = model.allocatedTotal;
    const r = model.reservedTotal;
    if (a > w.peakAllocated) [w.peakAllocated, w.peakAllocatedAt] = [a, i];
    // Of the moments at peak reserved, the fullest: not the instant a heap is made
    // before its first block is placed.
    if (r > w.peakReserved || (r === w.peakReserved && a > allocatedAtPeakReserved)) {
      [w.peakReserved, w.peakReservedAt, allocatedAtPeakReserved] = [r, i, a];
    }
    w.peakRequested = Math.max(w.peakRequested, model.requested);
    // Each pixel column keeps its highest point, so no peak is lost however long the trace.
    const x = xs[i];
    const column = Math.floor(columnOf(axis, x));
    const next = i + 1 < n ? Math.floor(columnOf(axis, xs[i + 1])) : NaN;
    alloc.see(x, model.allocated, a);
    reserv.see(x, model.reserved, r);
    if (next !== column) {
      alloc.flush(x, model.allocated, a);
      reserv.flush(x, model.reserved, r);
    }
  }
  return { model, allocated: alloc.series, reserved: reserv.series, ...w };
}

function traceBody(
  trace: Trace,
  drawn: Trace,
  source: Int32Array | null,
  options: TraceDrawing,
): Markup {
  const events = drawn.events;
  const n = events.length;
  const input = eventXs(trace, options.x);
  const axis = input.axis;
  const xs = source ? Float64Array.from(source, (s) => input.xs[s] ?? 0) : input.xs;
  // Before the first event (a peak never reached): the axis's start.
  const xOf = (i: number) => i < 0 ? axis.from : i < n ? xs[i] : axis.to;
  const when = (i: number) => i < 0 ? "–" : xWhen(xOf(i), axis.unit);
  const w = walk(events, xs, axis);
  const history = w.model.history!;
  const blocks = history.blocks;
  const peakIndex = options.at === "allocated" ? w.peakAllocatedAt : w.peakReservedAt;
  const map = new HeapModel();
  for (let i = 0; i <= peakIndex; i++) map.apply(events[i], i);
  const marks: Mark[] = [
    {
      x: xOf(w.peakAllocatedAt),
      label: `peak allocated ${formatBytes(w.peakAllocated)}`,
      kind: "allocated" as const,
    },
    {
      x: xOf(w.peakReservedAt),
      label: `peak reserved ${formatBytes(w.peakReserved)}`,
      kind: "reserved" as const,
    },
  ].filter((_, k) => (k === 0 ? w.peakAllocatedAt : w.peakReservedAt) >= 0);
  const layout = layoutBands(
    {
      size: history.size.subarray(0, blocks),
      placedAt: history.placedAt.subarray(0, blocks),
      freedAt: history.freedAt.subarray(0, blocks),
      events: n,
      peakAt: w.peakAllocatedAt,
    },
    {
      maxBands: options.maxBands,
      maxSteps: MAX_STEPS,
      px: (i) => Math.round(columnOf(axis, xOf(i)) * 2) / 2,
    },
  );
  const drawnAlone = new Set(layout.bands.map((b) => b.block));
  const peakLive = liveAt(history, w.peakAllocatedAt);
  const listed = largestFirst(history, peakLive);
  // The blocks the table lists each have a colour of their own, so a row matches its band.
  const rowOf = new Map(listed.map((k, row) => [k, row]));
  const colorOf = (k: number) => drawnAlone.has(k) ? bandColor(k, rowOf.get(k) ?? -1) : REST_COLOR;
  const timelineNote = layout.hidden > 0
    ? `The ${count(layout.bands.length)} blocks live at the peak or largest are drawn one by ` +
      `one; the other ${count(layout.hidden)} are summed in the grey band on top.`
    : `Every block is drawn: ${count(blocks)} bands.`;
  const peakWhen = options.at === "allocated" ? "peak allocated" : "peak reserved";
  const heapScale = history.heapSize.reduce((m, s) => Math.max(m, s), 1);
  const scale = niceMax(Math.max(w.peakReserved, w.peakAllocated, 1));
  const scripted = blocks <= MAX_SCRIPT_BLOCKS && n <= MAX_SCRIPT_EVENTS;
  const note = "The trace gives no placement, so it was replayed on the fake device under its " +
    "settings.";
  const facts = traceFacts(trace, drawn, w, { axis, when, pytorch: options.pytorch });
  return markup`${source ? markup`<p class="note">${note}</p>` : null}
${factTable(facts)}
${
    controls(axis, [[w.peakAllocatedAt, xOf(w.peakAllocatedAt)], [
      w.peakReservedAt,
      xOf(w.peakReservedAt),
    ]], scripted)
  }
<h2>Live blocks over time: each block a band from its alloc to its free</h2>
<p class="about">${timelineNote} Bands are stacked in the order blocks were placed; when a block
is freed, those above slide down, so the top is the bytes allocated. The blocks listed below have
colours of their own, the others pale ones. A block that lives less than ${MIN_BAND_PX} pixel
columns is drawn that wide, on top of the others${
    axis.unit === "ms" ? "; to see every event apart, draw over events (--x events)" : ""
  }. Point at a band for its details; drag across a chart to zoom.</p>
${
    timelineChart(
      layout,
      { axis, max: niceMax(Math.max(w.peakAllocated, 1)), marks },
      (k) => ({ color: colorOf(k), tip: bandTip(history, k, when) }),
      w.allocated,
    )
  }
<h2>Largest blocks at the peak allocated (${when(w.peakAllocatedAt)})</h2>
${topBlocks(history, listed, peakLive.length, colorOf, when)}
${topSites(history, peakLive)}
${legend()}
<h2>Reserved bytes (GPUBuffers held), by pool</h2>
${areaChart("reserved", w.reserved, { axis, max: scale, marks })}
<h2>Allocated bytes (live blocks), by pool; dashed: reserved bytes, all pools</h2>
${areaChart("allocated", w.allocated, { axis, max: scale, marks }, w.reserved)}
<h2>Heaps <span id="memviz-map-when">at the ${peakWhen} (${when(peakIndex)}): ${
    formatBytes(total(map.allocated))
  } allocated in ${formatBytes(total(map.reserved))} reserved</span></h2>
${heapMap(map.snapshotHeaps(), heapScale)}
${scripted ? scriptData(history, xs) : null}`;
}

/** The table of a trace's facts: peaks, ratios, counts, duration and settings. */
/**
 * The table of facts over a drawing of `trace` (`drawn`: the trace itself or
 * its replay), with times on `axis`, events named by `when`, and PyTorch's
 * figures if given.
 */
function traceFacts(
  trace: Trace,
  drawn: Trace,
  w: Walk,
  { axis, when, pytorch }: {
    axis: XAxis;
    when: (i: number) => string;
    pytorch: TraceDrawing["pytorch"];
  },
): [string, string][] {
  const ratio = (a: number, b: number) => b > 0 ? (a / b).toFixed(3) : "–";
  const history = w.model.history!;
  // Heap, release and split events of a replay's recording are the replay's own.
  const added = drawn === trace ? 0 : w.heapEvents;
  const facts: [string, string][] = [
    [
      "peak allocated (live blocks)",
      `${formatBytes(w.peakAllocated)} (${w.peakAllocated} B) at ${when(w.peakAllocatedAt)}`,
    ],
    ["peak requested", `${formatBytes(w.peakRequested)} (${w.peakRequested} B)`],
    [
      "peak reserved (GPUBuffers)",
      `${formatBytes(w.peakReserved)} (${w.peakReserved} B) at ${when(w.peakReservedAt)}`,
    ],
    ["reserved ÷ allocated", ratio(w.peakReserved, w.peakAllocated)],
    ["reserved ÷ requested", ratio(w.peakReserved, w.peakRequested)],
    ["GPUBuffers made", String(w.heapsMade)],
    [
      "events",
      count(trace.events.length) +
      (added > 0 ? ` (the replay made ${count(added)} heap events more)` : ""),
    ],
    [
      "blocks placed",
      `${count(history.blocks)}, ${count(history.labels.length)} distinct labels or call sites`,
    ],
    ["recorded for", axis.unit === "ms" ? xWhen(axis.to, "ms") : "– (no times)"],
    ["alloc conf", drawn.settings?.allocConf || "default"],
  ];
  if (pytorch) {
    facts.push([
      "PyTorch reserved",
      `${formatBytes(pytorch.peakReserved)} at peak (${pytorch.segments} segments)`,
    ]);
  }
  return facts;
}

function count(v: number): string {
  return v.toLocaleString("en-US");
}

/** Blocks live after event `i`. */
function liveAt(h: History, i: number): number[] {
  const live: number[] = [];
  if (i < 0) return live;
  for (let k = 0; k < h.blocks; k++) {
    if (h.placedAt[k] <= i && i < h.freedAt[k]) live.push(k);
  }
  return live;
}

function bandTip(h: History, k: number, when: (i: number) => string): string {
  const heap = h.blockHeap[k];
  const freed = h.freedAt[k] === NEVER ? "never freed" : `freed at ${when(h.freedAt[k])}`;
  return `block #${h.id[k]}: ${formatBytes(h.size[k])} (requested ${h.requested[k]} B)` +
    `${h.label(k) !== null ? `\n${stackTip(h.label(k)!)}` : ""}\nplaced at ${
      when(h.placedAt[k])
    }, ${freed}` +
    `\nheap #${h.heapId[heap]} (${h.heapPool[heap]} pool) at offset ${h.offset[k]}`;
}

/** The largest of `live`, largest first (then earliest), as many as the table lists. */
function largestFirst(h: History, live: readonly number[]): number[] {
  return [...live].sort((p, q) => h.size[q] - h.size[p] || p - q).slice(0, TOP_BLOCKS);
}

/** The table of the largest blocks live at the peak (`top` of `live` blocks), with their call sites. */
function topBlocks(
  h: History,
  top: readonly number[],
  live: number,
  colorOf: (k: number) => string,
  when: (i: number) => string,
): Markup {
  if (live === 0) return markup`<p>No block is live at the peak.</p>`;
  const rows = top.map((k) => [
    swatch(colorOf(k)),
    formatBytes(h.size[k]),
    `#${h.id[k]}`,
    labelCell(h.label(k)),
    `${h.heapPool[h.blockHeap[k]]}, heap #${h.heapId[h.blockHeap[k]]} at ${h.offset[k]}`,
    when(h.placedAt[k]),
    h.freedAt[k] === NEVER ? "never" : when(h.freedAt[k]),
  ]);
  const more = live > top.length
    ? markup`<p class="about">${
      count(live - top.length)
    } smaller blocks live at the peak are not listed.</p>`
    : null;
  return concat(
    table(
      ["", "size", "block", "label or call site", "pool, heap, offset", "placed", "freed"],
      rows,
    ),
    more,
  );
}

/** Bytes live at the peak by label or call site (its innermost frame: the user's line). */
function topSites(h: History, live: readonly number[]): Markup | null {
  const sites = new Map<string, { blocks: number; bytes: number; stacks: Set<string> }>();
  for (const k of live) {
    const label = h.label(k) ?? "(no label)";
    const key = innermost(label);
    let s = sites.get(key);
    if (s === undefined) sites.set(key, s = { blocks: 0, bytes: 0, stacks: new Set() });
    s.blocks++;
    s.bytes += h.size[k];
    if (key !== label && s.stacks.size < TIP_STACKS) s.stacks.add(label);
  }
  if (sites.size < 2) return null;
  const rows = [...sites].sort((p, q) => q[1].bytes - p[1].bytes).slice(0, TOP_SITES).map((
    [site, { blocks, bytes, stacks }],
  ) => [
    stacks.size > 0 ? withTip(site, [...stacks].map(stackTip).join("\n\n")) : site,
    count(blocks),
    formatBytes(bytes),
  ]);
  return concat(
    markup`<h3>At the peak, by label or call site</h3>`,
    table(["label or call site", "blocks", "bytes"], rows),
  );
}

/** A label with a call site, cut to the site's innermost frame (frames are joined by " ← "). */
function innermost(label: string): string {
  const cut = label.indexOf(" ← ");
  return cut < 0 ? label : label.slice(0, cut);
}

/** A call site's frames one per line, for a tip. */
function stackTip(label: string): string {
  return label.replaceAll(" ← ", "\n  ← ");
}

/** Text that shows `tip` under the pointer. */
function withTip(text: string, tip: string): Markup {
  return markup`<span class="site" data-tip="${tip}">${text}</span>`;
}

/** A label cell: a call site cut to its innermost frame, the whole kept stack under the pointer. */
function labelCell(label: string | null): string | Markup {
  if (label === null) return "–";
  const site = innermost(label);
  return site === label ? label : withTip(site, stackTip(label));
}

/**
 * The slider that moves the heap map, a button for each peak (its event and
 * moment), and the zoom's reset. Moments are written in full: the markup
 * tag would round a number to a tenth.
 */
function controls(axis: XAxis, peaks: [number, number][], scripted: boolean): Markup {
  const step = axis.unit === "events" ? "1" : "any";
  const slider = scripted
    ? markup`<label>Heap map at <input type="range" id="memviz-at" min="${
      String(axis.from)
    }" max="${String(axis.to)}" step="${step}" value="${
      String(peaks[0][1])
    }"> <output id="memviz-at-value"></output></label>`
    : markup`<span class="about">The trace is too large for the heap map to move: it stays at the peak.</span>`;
  const [[a, xa], [r, xr]] = peaks;
  return markup`<div class="controls" id="memviz-controls" hidden>${slider}
<button type="button" data-event="${a}" data-x="${String(xa)}">peak allocated</button>
<button type="button" data-event="${r}" data-x="${String(xr)}">peak reserved</button>
<button type="button" id="memviz-unzoom">whole trace</button></div>`;
}

/**
 * What the page's script needs to draw the heap map after any event: heaps
 * (id, pool, size, made, released, split), blocks (heap, offset, size,
 * placed, freed, recycled, gone, id, requested, label) as event indices
 * (-1: never), and the moments (each distinct x and the last event there),
 * in attributes (escaped like any other text).
 */
function scriptData(h: History, xs: Float64Array): Markup {
  const at = (i: number) => i === NEVER ? -1 : i;
  const heaps: number[] = [];
  for (let k = 0; k < h.heapId.length; k++) {
    heaps.push(
      h.heapId[k],
      POOL_NAMES.indexOf(h.heapPool[k]),
      h.heapSize[k],
      at(h.madeAt[k]),
      at(h.releasedAt[k]),
      at(h.splitAt[k]),
    );
  }
  const blocks: number[] = [];
  for (let k = 0; k < h.blocks; k++) {
    blocks.push(
      h.blockHeap[k],
      h.offset[k],
      h.size[k],
      at(h.placedAt[k]),
      at(h.freedAt[k]),
      at(h.recycledAt[k]),
      at(h.goneAt[k]),
      h.id[k],
      h.requested[k],
      h.labelIndex[k],
    );
  }
  const moments: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    if (i + 1 === xs.length || xs[i + 1] !== xs[i]) moments.push(xs[i], i);
  }
  return markup`<div id="memviz-data" hidden data-pools="${
    JSON.stringify(POOL_NAMES)
  }" data-colors="${
    JSON.stringify(POOL_NAMES.map((p) => POOL_COLORS[p]))
  }" data-max-heaps="${MAX_HEAPS}" data-heaps="${JSON.stringify(heaps)}" data-blocks="${
    JSON.stringify(blocks)
  }" data-labels="${JSON.stringify(h.labels)}" data-moments="${JSON.stringify(moments)}"></div>`;
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
  const live: [SnapshotBlock, number, string][] = snap.heaps.flatMap((h) =>
    h.blocks.filter((b) => b.state === "live").map((b) =>
      [b, h.id, h.pool] as [SnapshotBlock, number, string]
    )
  );
  live.sort((p, q) => q[0].size - p[0].size);
  const top = live.slice(0, TOP_BLOCKS).map(([b, heap, pool]) => [
    swatch(POOL_COLORS[pool] ?? "#888"),
    formatBytes(b.size),
    `#${b.id}`,
    b.label !== null ? cutLabel(b.label) : "–",
    `${pool}, heap #${heap} at ${b.offset}`,
  ]);
  return markup`${factTable(facts)}
${legend()}
<h2>Bytes by pool</h2>
${barChart(rows, niceMax(widest))}
<h2>Largest live blocks</h2>
${
    top.length > 0
      ? table(["", "size", "block", "label", "pool, heap, offset"], top)
      : markup`<p>No live block.</p>`
  }
<h2>Heaps</h2>
${heapMap(snap.heaps)}
<p class="about">Point at a block for its details.</p>`;
}

function page(title: string, body: Markup): Markup {
  return markup`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}</title>
<style>
body { max-width: ${WIDTH}px; }
${PAGE_STYLE}
</style>
</head>
<body>
<h1>${title}</h1>
${body}
<div id="memviz-tip" hidden></div>
${PAGE_SCRIPT}
</body>
</html>
`;
}
