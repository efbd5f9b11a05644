/**
 * The SVG pieces of the memory picture: charts over time (stacked areas of
 * bytes by pool, the block timeline) on one time axis, bars of bytes by pool,
 * the map of every heap's blocks on one byte scale, axes, the legend and
 * tables. All of it is written with {@linkcode markup}, so every string is
 * escaped; every loop is bounded whatever the numbers drawn.
 *
 * Details of what is under the pointer are in `data-tip` attributes, which
 * the page's script shows (see `memviz_script.ts`); a chart over time draws
 * its data in a nested `<svg class="plot">` whose view box the script
 * narrows to zoom.
 *
 * @module
 */

import { POOL_NAMES } from "../allocator.ts";
import { BYTE_UNITS, byteLabel, formatBytes } from "../format.ts";
import type { BlockStateName, SnapshotBlock, SnapshotHeap } from "../snapshot.ts";
import type { Band, TimelineLayout } from "./block_timeline.ts";
import type { PoolBytes } from "./heap_model.ts";
import { concat, cutLabel, type Markup, markup } from "./markup.ts";

/**
 * Each pool's colour, the same on every chart and map.
 *
 * @example
 * ```ts
 * import { POOL_COLORS } from "@gpuheap/gpuheap/tools";
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

/**
 * Colours of the blocks the table at the peak lists, one each so that a row
 * matches its band: ten hues 36° apart, dark, then ten between them, light.
 */
export const LISTED_COLORS: readonly string[] = Array.from(
  { length: 20 },
  (_, k) => k < 10 ? `hsl(${k * 36} 65% 45%)` : `hsl(${(k - 10) * 36 + 18} 70% 70%)`,
);
/** Colours of the other bands drawn one by one: pale and greyish, apart from the listed ones. */
const OTHER_COLORS = Array.from(
  { length: 6 },
  (_, k) => `hsl(${k * 60 + 20} 14% ${k % 2 === 0 ? 80 : 87}%)`,
);
/** Colour of the band that sums the blocks not drawn one by one. */
export const REST_COLOR = "#b9b9b9";
/** Opacity of a cached block in the heap map (and the legend). */
const CACHED_OPACITY = 0.35;

/**
 * Narrowest band of the block timeline, in plot columns: a block that lives
 * less (between two clock readings, say) is still seen at its moment.
 */
export const MIN_BAND_PX = 2;
/** Width of every chart, in pixels. */
export const WIDTH = 1160;
const LEFT = 88;
const RIGHT = 24;
/** Width of the plot area of a chart over time, in pixels: the block timeline's columns. */
export const PLOT = WIDTH - LEFT - RIGHT;
/** Heaps drawn in the map; the rest are summed up in one line. */
export const MAX_HEAPS = 400;
/** Past this many heaps, rows are drawn compact. */
const COMPACT_HEAPS = 60;
/** Width of the heap map's row labels. */
const LABEL_W = 230;
/** Ticks on an axis at most: a bound on the tick loops whatever the axis's range. */
const MAX_TICKS = 12;

/** Bytes per pool at each point of a series. */
export interface Series {
  /** Where each point is, in the axis's unit. */
  x: number[];
  /** Bytes per pool at each point. */
  pools: Record<string, number[]>;
}

/** A series with no points. */
export function emptySeries(): Series {
  return { x: [], pools: Object.fromEntries(POOL_NAMES.map((p) => [p, []])) };
}

/** Appends one point. */
export function pushPoint(series: Series, x: number, pools: PoolBytes): void {
  series.x.push(x);
  for (const p of POOL_NAMES) series.pools[p].push(pools[p]);
}

/**
 * The x axis of the charts over time: milliseconds since the recording
 * began, or, for a trace without times, events done.
 */
export interface XAxis {
  /** The left end. */
  from: number;
  /** The right end (above `from`). */
  to: number;
  /** What x counts. */
  unit: "ms" | "events";
}

/** The plot column of `x` on `axis`: 0 at `from`, {@linkcode PLOT} at `to`. */
export function columnOf(axis: XAxis, x: number): number {
  return ((x - axis.from) / (axis.to - axis.from)) * PLOT;
}

/** A round top for a byte axis: a few steps of 1, 2 or 5 times a power of ten of a binary unit. */
export function niceMax(bytes: number): number {
  const step = niceStep(bytes / 5);
  return step * Math.max(1, Math.ceil(bytes / step));
}

/**
 * A round step of at least `bytes` (at least 1): 1, 2, 5, 10 … 500 of a
 * binary unit, then 1 of the next (1 GiB rather than 1000 MiB).
 */
export function niceStep(bytes: number): number {
  const b = Math.max(1, bytes);
  const power = Math.min(BYTE_UNITS.length - 1, Math.floor(Math.log2(b) / 10));
  const unit = 1024 ** power;
  const v = b / unit;
  for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1024]) {
    if (m >= v) return m * unit;
  }
  // Past the largest unit: a power of two.
  return 2 ** Math.ceil(Math.log2(b));
}

/** A round number of at least `v` (> 0): 1, 2 or 5 times a power of ten. */
export function niceNumber(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5]) if (m * p >= v * (1 - 1e-9)) return m * p;
  return 10 * p;
}

/** The values of ticks from 0 to `max`, `step` apart, at most {@linkcode MAX_TICKS} + 1. */
function ticks(max: number, step: number): number[] {
  const n = Math.min(MAX_TICKS, Math.floor(max / step + 0.5));
  return Array.from({ length: n + 1 }, (_, k) => k * step);
}

/** Ticks of an x axis: round values inside it, at most {@linkcode MAX_TICKS} + 1, and their step. */
export function xTicks(axis: XAxis): { values: number[]; step: number } {
  const span = axis.to - axis.from;
  let step = niceNumber(span / 8);
  if (axis.unit === "events") step = Math.max(1, step);
  const first = Math.ceil(axis.from / step);
  const n = Math.min(MAX_TICKS, Math.floor(axis.to / step) - first);
  return { values: Array.from({ length: n + 1 }, (_, k) => (first + k) * step), step };
}

/**
 * A value of an x axis in words: `12,000` events; `250 ms`, `1.5 s` or
 * `40 µs`, in the unit that suits the ticks' `step`.
 */
export function xLabel(v: number, unit: XAxis["unit"], step: number): string {
  if (unit === "events") return Math.round(v).toLocaleString("en-US");
  // Seconds from steps of 100 ms, microseconds below steps of 10 µs.
  const [scale, name] = step >= 100 ? [1e-3, "s"] : step >= 0.01 ? [1, "ms"] : [1e3, "µs"];
  const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step * scale) + 1e-9)));
  return `${+(v * scale).toFixed(digits)} ${name}`;
}

/** A moment in words, to the microsecond: `12.345 ms`, or `event 1,234`. */
export function xWhen(v: number, unit: XAxis["unit"]): string {
  if (unit === "events") return `event ${Math.round(v).toLocaleString("en-US")}`;
  return v >= 1000 ? `${+(v / 1000).toFixed(4)} s` : `${+v.toFixed(3)} ms`;
}

/**
 * The colour of the band of the `k`-th block placed: its own if the table
 * at the peak lists it (`listed`: its row, else -1), else a pale one.
 */
export function bandColor(k: number, listed: number): string {
  return listed >= 0 && listed < LISTED_COLORS.length
    ? LISTED_COLORS[listed]
    : OTHER_COLORS[k % OTHER_COLORS.length];
}

/** A two-column table of facts. */
export function factTable(facts: readonly [string, string][]): Markup {
  const rows = facts.map(([k, v]) => markup`<tr><td>${k}</td><td>${v}</td></tr>`);
  return markup`<table class="facts">${rows}</table>`;
}

/** A table with a head row; a cell is text or markup (a colour swatch). */
export function table(head: readonly string[], rows: readonly (string | Markup)[][]): Markup {
  const th = head.map((h) => markup`<th>${h}</th>`);
  const tr = rows.map((r) => markup`<tr>${r.map((c) => markup`<td>${c}</td>`)}</tr>`);
  return markup`<table class="list"><tr>${th}</tr>${tr}</table>`;
}

/** A square of colour, as the legend and tables show one. */
export function swatch(color: string): Markup {
  return markup`<i class="swatch" style="background:${color}"></i>`;
}

/**
 * The pools' colours and the heap map's states, drawn as the map draws them
 * (here in the small pool's colour; every block is in its pool's).
 */
export function legend(): Markup {
  const pools = POOL_NAMES.map((p) => markup`<span>${swatch(POOL_COLORS[p])}${p}</span>`);
  const color = POOL_COLORS.small;
  const stripes = `repeating-linear-gradient(45deg,${color} 0 3px,#fff 3px 5px)`;
  return concat(
    markup`<div class="legend"><b>Pools:</b> ${pools}</div>`,
    markup`<div class="legend"><b>Heap map</b> (each block in its pool's colour, here the small `,
    markup`pool's): <span>${swatch(color)}live block</span>`,
    markup`<span>${swatch(stripes)}pending a submit</span>`,
    markup`<span><i class="swatch" style="background:${color};opacity:${CACHED_OPACITY}"></i>`,
    markup`cached (front cache, or a freed block keeping its unsplit heap)</span>`,
    markup`<span>${swatch("#ececec")}free</span></div>`,
  );
}

function yAxis(height: number, top: number, max: number): Markup[] {
  return ticks(max, niceStep(max / 5)).map((v) => {
    const y = top + height - (v / max) * height;
    return concat(
      markup`<line class="grid" x1="${LEFT}" x2="${LEFT + PLOT}" y1="${y}" y2="${y}"/>`,
      markup`<text x="${LEFT - 8}" y="${y + 4}" text-anchor="end">${byteLabel(v)}</text>`,
    );
  });
}

/** A peak marked on a chart over time. */
export interface Mark {
  /** Where, in the axis's unit. */
  x: number;
  /** What it says. */
  label: string;
  /** Which peak: each kind has a style of its own (default `"allocated"`). */
  kind?: "allocated" | "reserved";
}

/** What a chart over time is drawn against: its x axis, the top of its y axis and its marks. */
export interface TimeView {
  /** The x axis. */
  axis: XAxis;
  /** Bytes at the top of the y axis. */
  max: number;
  /** Peaks marked over the plot. */
  marks: readonly Mark[];
}

/** Height of a row of mark labels above a plot. */
const MARK_ROW = 16;
/** Width of a character of a mark label, about: to keep labels of one row apart. */
const CHAR_W = 6.6;
/** Room kept between a mark's line and another mark's label. */
const MARK_GAP = 4;

/**
 * Rows of mark labels: each label in the first row where it overlaps no
 * other label, no other mark's line crosses it (a line runs from its label
 * down to the plot), and its own line crosses no label below it. A label
 * runs right of its line (left near the right edge); labels near the edge
 * are placed first, right to left, then the others left to right, so each
 * runs away from the lines placed above it.
 */
function markRows(axis: XAxis, marks: readonly Mark[]): number[] {
  const spans = marks.map((m) => {
    const x = LEFT + columnOf(axis, m.x);
    const w = m.label.length * CHAR_W + 8;
    const [a, b] = x + w > WIDTH ? [x - w, x] : [x, x + w];
    return { x, a, b, end: a < x };
  });
  const rows: number[] = marks.map(() => -1);
  // A line crosses a label when it runs through the label's inside (its own line runs at its edge).
  const crosses = (x: number, label: { a: number; b: number }) => label.a < x && x < label.b;
  const clash = (k: number, row: number) =>
    rows.some((r, j) =>
      r >= 0 && (
        (r === row && spans[j].a < spans[k].b + MARK_GAP && spans[k].a < spans[j].b + MARK_GAP) ||
        (r < row && crosses(spans[j].x, spans[k])) ||
        (row < r && crosses(spans[k].x, spans[j]))
      )
    );
  const order = marks.map((_, k) => k).sort((p, q) => {
    const [s, t] = [spans[p], spans[q]];
    return Number(t.end) - Number(s.end) || (s.end ? t.x - s.x : s.x - t.x) || p - q;
  });
  for (const k of order) {
    // Past as many rows as marks, none is free of crossings: the last is taken.
    let row = 0;
    while (row < marks.length && clash(k, row)) row++;
    rows[k] = row;
  }
  return rows;
}

/** The frame of a chart over time: axes, marks, cursor and the plot's content. */
function timeFrame(
  id: string,
  view: TimeView,
  height: number,
  content: readonly Markup[],
  aria: string,
): Markup {
  const { axis, max, marks } = view;
  const rows = markRows(axis, marks);
  const top = 6 + MARK_ROW * (Math.max(-1, ...rows) + 1);
  const bottom = top + height;
  const svgH = bottom + 44;
  const parts: Markup[] = yAxis(height, top, max);
  const lines: Markup[] = [];
  for (const [k, m] of marks.entries()) {
    const x = columnOf(axis, m.x);
    const nearEdge = LEFT + x + m.label.length * CHAR_W + 8 > WIDTH;
    const y = 6 + MARK_ROW * rows[k] + 11;
    const kind = `mark ${m.kind ?? "allocated"}`;
    parts.push(concat(
      markup`<text class="${kind}" x="${LEFT + x + (nearEdge ? -4 : 4)}" y="${y}" `,
      markup`text-anchor="${nearEdge ? "end" : "start"}">${m.label}</text>`,
      markup`<line class="${kind}" x1="${LEFT + x}" x2="${LEFT + x}" y1="${y - 11}" y2="${top}"/>`,
    ));
    lines.push(
      markup`<line class="${kind}" x1="${x}" x2="${x}" y1="0" y2="${height}"/>`,
    );
  }
  const { values, step } = xTicks(axis);
  const xticks = values.map((v) => {
    const x = LEFT + columnOf(axis, v);
    return concat(
      markup`<line x1="${x}" x2="${x}" y1="${bottom}" y2="${bottom + 5}"/>`,
      markup`<text x="${x}" y="${bottom + 18}" text-anchor="middle">${
        xLabel(v, axis.unit, step)
      }</text>`,
    );
  });
  const title = axis.unit === "ms"
    ? "time since the recording began"
    : "events (alloc, free, submit, …) in the order they happened: the trace has no times";
  parts.push(concat(
    markup`<svg class="plot" x="${LEFT}" y="${top}" width="${PLOT}" height="${height}" `,
    markup`viewBox="0 0 ${PLOT} ${height}" preserveAspectRatio="none">`,
    content,
    lines,
    markup`<line class="cursor" x1="0" x2="0" y1="0" y2="${height}" visibility="hidden"/>`,
    markup`<rect class="select" x="0" y="0" width="0" height="${height}" visibility="hidden"/>`,
    markup`</svg>`,
    markup`<g class="xaxis">${xticks}</g>`,
    markup`<line class="axis" x1="${LEFT}" x2="${LEFT + PLOT}" y1="${bottom}" y2="${bottom}"/>`,
    markup`<line class="axis" x1="${LEFT}" x2="${LEFT}" y1="${top}" y2="${bottom}"/>`,
    markup`<text x="${LEFT + PLOT / 2}" y="${bottom + 38}" text-anchor="middle">${title}</text>`,
  ));
  return concat(
    markup`<svg class="chart time" id="chart-${id}" width="${WIDTH}" height="${svgH}" `,
    markup`viewBox="0 0 ${WIDTH} ${svgH}" data-from="${axis.from}" data-to="${axis.to}" `,
    markup`data-unit="${axis.unit}" role="img" aria-label="${aria}">`,
    parts,
    markup`</svg>`,
  );
}

/** Points of a series drawn as steps: each point's value holds until the next point. */
function stepPoints(
  series: Series,
  axis: XAxis,
  yOf: (v: number) => number,
  value: (i: number) => number,
): string[] {
  const pts: string[] = [];
  const n = series.x.length;
  for (let i = 0; i < n; i++) {
    const x = coordinate(columnOf(axis, series.x[i]));
    if (i > 0) pts.push(`${x},${coordinate(yOf(value(i - 1)))}`);
    pts.push(`${x},${coordinate(yOf(value(i)))}`);
  }
  if (n > 0) pts.push(`${PLOT},${coordinate(yOf(value(n - 1)))}`);
  return pts;
}

/** The outline of a series' total over all pools, with its tip and style (default `"outline"`). */
function totalOutline(
  id: string,
  s: Series,
  axis: XAxis,
  yOf: (v: number) => number,
  { tip, style = "outline" }: { tip: string; style?: string },
): Markup {
  const points = stepPoints(s, axis, yOf, (i) => {
    let t = 0;
    for (const p of POOL_NAMES) t += s.pools[p][i];
    return t;
  }).join(" ");
  return concat(
    markup`<polyline class="series ${style}" data-series="${id}" fill="none" `,
    markup`data-tip="${tip}" points="${points}"/>`,
  );
}

/**
 * Stacked areas of bytes per pool over time (first pool at the bottom), as
 * steps: each point's bytes hold until the next point. With marks and, if
 * given, the outline of another series' total.
 */
export function areaChart(id: string, s: Series, view: TimeView, outline?: Series): Markup {
  const { axis, max } = view;
  const height = 240;
  const yOf = (v: number) => height - (v / max) * height;
  const parts: Markup[] = [];
  const base = s.x.map(() => 0);
  for (const p of POOL_NAMES) {
    const vals = s.pools[p];
    if (!vals.some((v) => v > 0)) continue;
    const upper = stepPoints(s, axis, yOf, (i) => base[i] + vals[i]);
    const lower = stepPoints(s, axis, yOf, (i) => base[i]).reverse();
    parts.push(concat(
      markup`<polygon class="series" data-series="${id}:${p}" fill="${POOL_COLORS[p]}" `,
      markup`fill-opacity="0.85" data-tip="${p} pool, ${id} bytes" `,
      markup`points="${[...upper, ...lower].join(" ")}"/>`,
    ));
    for (let i = 0; i < base.length; i++) base[i] += vals[i];
  }
  if (outline) {
    parts.push(
      totalOutline(`${id}:reserved-total`, outline, axis, yOf, {
        tip: "reserved bytes, all pools",
      }),
    );
  }
  return timeFrame(id, view, height, parts, `${id} bytes over time`);
}

/** What the block timeline says of each block it draws one by one. */
export interface BandInfo {
  /** The block's colour. */
  color: string;
  /** Details shown under the pointer. */
  tip: string;
}

/**
 * The block timeline: a band per block laid out by `layoutBands`, the
 * others summed in one grey band on top, under the outline of `allocated`
 * (each pixel column's highest total). A band narrower than
 * {@linkcode MIN_BAND_PX} is drawn that wide, after the others: a block
 * that lives less than a column is seen at its moment.
 */
export function timelineChart(
  layout: TimelineLayout,
  view: TimeView,
  info: (block: number) => BandInfo,
  allocated: Series,
): Markup {
  const { axis, max } = view;
  const height = 300;
  const yOf = (v: number) => coordinate(height - (v / max) * height);
  // Blocks shorter than a few columns are drawn that wide, after (so above) the others.
  const narrow = (band: Band) => band.end - band.x[0] < MIN_BAND_PX;
  const ordered = [...layout.bands.filter((b) => !narrow(b)), ...layout.bands.filter(narrow)];
  const parts = ordered.map((band) => {
    const lower: string[] = [];
    const upper: string[] = [];
    for (let j = 0; j < band.x.length; j++) {
      const x = coordinate(band.x[j]);
      if (j > 0) {
        lower.push(`${x},${yOf(band.base[j - 1])}`);
        upper.push(`${x},${yOf(band.base[j - 1] + band.size)}`);
      }
      lower.push(`${x},${yOf(band.base[j])}`);
      upper.push(`${x},${yOf(band.base[j] + band.size)}`);
    }
    const last = band.base[band.base.length - 1];
    const end = coordinate(
      Math.max(band.end, band.x[band.x.length - 1], band.x[0] + MIN_BAND_PX),
    );
    lower.push(`${end},${yOf(last)}`);
    upper.push(`${end},${yOf(last + band.size)}`);
    const { color, tip } = info(band.block);
    return concat(
      markup`<polygon class="band" data-block="${band.block}" fill="${color}" `,
      markup`data-tip="${tip}" points="${[...lower, ...upper.reverse()].join(" ")}"/>`,
    );
  });
  const r = layout.rest;
  if (r.x.length > 0) {
    const lower: string[] = [];
    const upper: string[] = [];
    for (let j = 0; j < r.x.length; j++) {
      const x = coordinate(r.x[j]);
      if (j > 0) {
        lower.push(`${x},${yOf(r.under[j - 1])}`);
        upper.push(`${x},${yOf(r.under[j - 1] + r.bytes[j - 1])}`);
      }
      lower.push(`${x},${yOf(r.under[j])}`);
      upper.push(`${x},${yOf(r.under[j] + r.bytes[j])}`);
    }
    const tip = `${layout.hidden.toLocaleString("en-US")} smaller blocks, summed`;
    parts.push(concat(
      markup`<polygon class="band-rest" fill="${REST_COLOR}" data-tip="${tip}" `,
      markup`points="${[...lower, ...upper.reverse()].join(" ")}"/>`,
    ));
  }
  const yBytes = (v: number) => height - (v / max) * height;
  parts.push(
    totalOutline("timeline:allocated", allocated, axis, yBytes, {
      tip: "allocated bytes",
      style: "top",
    }),
  );
  return timeFrame("timeline", view, height, parts, "live blocks over time");
}

/** One bar per row, stacked by pool, on an axis up to `max` bytes. */
export function barChart(rows: readonly [string, PoolBytes][], max: number): Markup {
  const barH = 26;
  const top = 10;
  const svgH = top + rows.length * (barH + 12) + 30;
  const parts: Markup[] = ticks(max, niceStep(max / 5)).map((v) => {
    const x = LEFT + (v / max) * PLOT;
    return concat(
      markup`<line class="grid" x1="${x}" x2="${x}" y1="${top}" y2="${svgH - 24}"/>`,
      markup`<text x="${x}" y="${svgH - 8}" text-anchor="middle">${byteLabel(v)}</text>`,
    );
  });
  rows.forEach(([name, pools], r) => {
    const y = top + r * (barH + 12);
    parts.push(markup`<text x="${LEFT - 8}" y="${y + 17}" text-anchor="end">${name}</text>`);
    let x = LEFT;
    for (const p of POOL_NAMES) {
      const w = (pools[p] / max) * PLOT;
      if (!(w > 0)) continue;
      parts.push(concat(
        markup`<rect class="series" data-series="${name}:${p}" x="${x}" y="${y}" `,
        markup`width="${w}" height="${barH}" fill="${POOL_COLORS[p]}" `,
        markup`data-tip="${p} pool, ${name}: ${formatBytes(pools[p])}"/>`,
      ));
      x += w;
    }
  });
  return concat(
    markup`<svg class="chart" width="${WIDTH}" height="${svgH}" viewBox="0 0 ${WIDTH} ${svgH}" `,
    markup`role="img" aria-label="bytes by pool">${parts}</svg>`,
  );
}

/** Geometry of the heap map's rows, the same for the page and its script. */
export function heapRowGeometry(heaps: number): { rowH: number; gap: number; compact: boolean } {
  const compact = heaps > COMPACT_HEAPS;
  return { rowH: compact ? 9 : 18, gap: compact ? 2 : 6, compact };
}

/** Height of the heap map's offset axis, above its rows. */
const OFFSET_AXIS = 22;

/**
 * One row per heap on one byte scale (`scale` bytes span the rows' width;
 * default: the largest heap's size), under an axis of offsets: each block
 * at its offset, as wide as its size.
 */
export function heapMap(heaps: readonly SnapshotHeap[], scale?: number): Markup {
  if (heaps.length === 0) return markup`<p class="noheaps">No heaps held.</p>`;
  const shown = heaps.slice(0, MAX_HEAPS);
  const bytes = scale ?? Math.max(...shown.map((h) => h.size));
  const { rowH, gap, compact } = heapRowGeometry(shown.length);
  const top = OFFSET_AXIS;
  const svgH = top + shown.length * (rowH + gap) + 4;
  const barW = WIDTH - LABEL_W - RIGHT;
  const perByte = barW / bytes;
  const patterns = POOL_NAMES.map((p) =>
    concat(
      markup`<pattern id="pending-${p}" width="6" height="6" patternUnits="userSpaceOnUse" `,
      markup`patternTransform="rotate(45)"><rect width="3" height="6" fill="${POOL_COLORS[p]}"/>`,
      markup`<rect x="3" width="3" height="6" fill="#fff"/></pattern>`,
    )
  );
  // Ticks within the scale only: one past it would lie outside the picture.
  const axis = ticks(bytes, niceStep(bytes / 8)).filter((v) => v <= bytes).map((v) => {
    const x = LABEL_W + v * perByte;
    // A label that would run past the picture ends at its tick.
    const anchor = x + (byteLabel(v).length * CHAR_W) / 2 > WIDTH - 2 ? "end" : "middle";
    return concat(
      markup`<line class="grid" x1="${x}" x2="${x}" y1="${top - 4}" y2="${svgH - 4}"/>`,
      markup`<text x="${x}" y="${top - 8}" text-anchor="${anchor}">${byteLabel(v)}</text>`,
    );
  });
  const rows = shown.map((h, r) => {
    const y = top + r * (rowH + gap);
    const kind = h.isSplit ? "heap" : "unsplit";
    const small = compact ? markup` style="font-size:9px"` : null;
    const parts: Markup[] = [
      markup`<g class="heap" data-heap="${h.id}" data-pool="${h.pool}" data-size="${h.size}">`,
      markup`<text x="${LABEL_W - 8}" y="${y + (compact ? 8 : 13)}" text-anchor="end"${small}>`,
      markup`#${h.id} ${h.pool} ${kind} ${byteLabel(h.size)}</text>`,
      markup`<rect class="row" x="${LABEL_W}" y="${y}" width="${Math.max(h.size * perByte, 1)}" `,
      markup`height="${rowH}" data-tip="heap #${h.id}: ${h.pool} pool, ${kind}, `,
      markup`${formatBytes(h.size)}"/>`,
    ];
    const rect = (x: number, w: number, state: BlockStateName, tip: string) =>
      blockRect({ x: LABEL_W + x * perByte, y, w: w * perByte, h: rowH }, h.pool, state, tip);
    // Neighbours of one state narrower than 2 px merge into one run, so a heap of
    // thousands of small blocks stays a readable (and small) picture.
    let run: { x: number; end: number; state: BlockStateName; count: number } | null = null;
    const flush = () => {
      if (run && run.state !== "free") {
        const bytes = run.end - run.x;
        parts.push(
          rect(run.x, bytes, run.state, `${run.count} ${run.state} blocks, ${formatBytes(bytes)}`),
        );
      }
      run = null;
    };
    for (const b of h.blocks) {
      if (b.size * perByte < 2) {
        const r = run as typeof run;
        if (r && r.state === b.state && r.end === b.offset) {
          r.end = b.offset + b.size;
          r.count++;
        } else {
          flush();
          run = { x: b.offset, end: b.offset + b.size, state: b.state, count: 1 };
        }
        continue;
      }
      flush();
      if (b.state !== "free") parts.push(rect(b.offset, b.size, b.state, blockTip(b)));
    }
    flush();
    return concat(parts, markup`</g>`);
  });
  const rest = heaps.slice(MAX_HEAPS);
  const restBytes = formatBytes(rest.reduce((s, h) => s + h.size, 0));
  const more = rest.length > 0
    ? markup`<p>${rest.length} more heaps not drawn (${restBytes}).</p>`
    : null;
  return concat(
    markup`<svg class="heapmap" width="${WIDTH}" height="${svgH}" viewBox="0 0 ${WIDTH} ${svgH}" `,
    markup`data-bytes="${bytes}" role="img" aria-label="heap map"><defs>${patterns}</defs>`,
    markup`<g class="offsets">${axis}</g><g class="rows">${rows}</g></svg>${more}`,
  );
}

/** A block of `pool` in `state` drawn in the box at (x, y), w wide and h high. */
function blockRect(
  { x, y, w, h }: { x: number; y: number; w: number; h: number },
  pool: string,
  state: BlockStateName,
  tip: string,
): Markup {
  const fill = state === "pending" ? `url(#pending-${pool})` : POOL_COLORS[pool] ?? "#888";
  const opacity = state === "cached" ? markup` fill-opacity="${CACHED_OPACITY}"` : null;
  // A hairline between neighbours keeps adjacent blocks apart; the tiniest stay visible.
  const stroke = w >= 3 ? markup` stroke="#fff" stroke-width="0.6"` : null;
  return concat(
    markup`<rect class="block ${state}" x="${x}" y="${y}" width="${Math.max(w, 1.5)}" `,
    markup`height="${h}" fill="${fill}"${opacity}${stroke} data-tip="${tip}"/>`,
  );
}

/** A block's details, as the heap map shows them. */
export function blockTip(b: SnapshotBlock): string {
  return `block #${b.id} ${b.state}: ${formatBytes(b.size)} at offset ${b.offset}` +
    ` (requested ${b.requestedSize} B${b.label ? `, ${cutLabel(b.label)}` : ""})`;
}

/** A coordinate in a list of points, to one decimal; never NaN or Infinity. */
function coordinate(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`Cannot draw a point at ${v}: it must be finite`);
  return String(Math.round(v * 10) / 10);
}
