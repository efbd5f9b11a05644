/**
 * The SVG pieces of the memory picture: stacked areas of bytes over events,
 * bars of bytes by pool, the map of every heap's blocks, axes, the legend and
 * the table of facts. All of it is written with {@linkcode markup}, so every
 * string is escaped; every loop is bounded whatever the numbers drawn.
 *
 * @module
 */

import { POOL_NAMES } from "../allocator.ts";
import { formatBytes } from "../format.ts";
import type { BlockStateName, SnapshotBlock, SnapshotHeap } from "../snapshot.ts";
import type { PoolBytes } from "./heap_model.ts";
import { concat, type Markup, markup } from "./markup.ts";

/**
 * Each pool's colour, the same on every chart and map.
 *
 * @example
 * ```ts
 * import { POOL_COLORS } from "./charts.ts";
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

/** Width of every chart, in pixels. */
export const WIDTH = 1160;
const LEFT = 88;
const RIGHT = 24;
const PLOT = WIDTH - LEFT - RIGHT;
/** Heaps drawn in the map; the rest are summed up in one line. */
const MAX_HEAPS = 400;
/** Past this many heaps, rows are drawn compact. */
const COMPACT_HEAPS = 60;
/** Ticks on an axis at most: a bound on the tick loops whatever the axis's range. */
const MAX_TICKS = 12;
const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/** Bytes per pool at each point of a series. */
export interface Series {
  /** Event index of each point. */
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

/** A round top for a byte axis: a few steps of 1, 2 or 5 times a power of ten of a binary unit. */
export function niceMax(bytes: number): number {
  const step = niceStep(bytes / 5);
  return step * Math.max(1, Math.ceil(bytes / step));
}

/** A round step of at least `bytes` (at least 1): 1, 2, 5, 10 … 500 of a binary unit. */
export function niceStep(bytes: number): number {
  const b = Math.max(1, bytes);
  const power = Math.min(BYTE_UNITS.length - 1, Math.floor(Math.log2(b) / 10));
  const unit = 1024 ** power;
  const v = b / unit;
  for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]) {
    if (m >= v) return m * unit;
  }
  // Past the largest unit: a power of two.
  return 2 ** Math.ceil(Math.log2(b));
}

/** A round count of at least `n`: 1, 2 or 5 times a power of ten. */
function niceCount(n: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(1, n)));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

/** The values of ticks from 0 to `max`, `step` apart, at most {@linkcode MAX_TICKS} + 1. */
function ticks(max: number, step: number): number[] {
  const n = Math.min(MAX_TICKS, Math.floor(max / step + 0.5));
  return Array.from({ length: n + 1 }, (_, k) => k * step);
}

/** A byte count on an axis: `512 MiB`, `1.5 GiB`. */
export function byteLabel(bytes: number): string {
  if (bytes === 0) return "0";
  let u = 0;
  let v = bytes;
  while (v >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${BYTE_UNITS[u]}`;
}

/** A two-column table of facts. */
export function factTable(facts: readonly [string, string][]): Markup {
  const rows = facts.map(([k, v]) => markup`<tr><td>${k}</td><td>${v}</td></tr>`);
  return markup`<table class="facts">${rows}</table>`;
}

/** The pools' colours and the heap map's states. */
export function legend(): Markup {
  const large = POOL_COLORS.large;
  const pools = POOL_NAMES.map((p) =>
    markup`<span><i style="background:${POOL_COLORS[p]}"></i>${p}</span>`
  );
  const stripes = `repeating-linear-gradient(45deg,${large} 0 3px,#fff 3px 5px)`;
  return concat(
    markup`<div class="legend"><b>Pools:</b> ${pools}</div>`,
    markup`<div class="legend"><b>Heap map:</b> `,
    markup`<span><i style="background:${large}"></i>live block</span>`,
    markup`<span><i style="background:${stripes}"></i>pending a submit</span>`,
    markup`<span><i style="background:${large};opacity:0.35"></i>cached (unsplit heap)</span>`,
    markup`<span><i style="background:#ececec"></i>free</span></div>`,
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

/** A peak marked on an area chart. */
export interface Mark {
  /** Where, in events. */
  x: number;
  /** What it says. */
  label: string;
}

/**
 * Stacked areas of bytes per pool over `n` events (first pool at the
 * bottom), with marks and, if given, the outline of another series' total.
 */
export function areaChart(
  id: string,
  s: Series,
  n: number,
  max: number,
  marks: readonly Mark[],
  outline?: Series,
): Markup {
  const height = 240;
  const top = 10;
  const bottom = top + height;
  const svgH = bottom + 44;
  const xOf = (x: number) => LEFT + (n > 0 ? (x / n) * PLOT : 0);
  const yOf = (v: number) => bottom - (v / max) * height;
  const point = (x: number, v: number) => `${coordinate(xOf(x))},${coordinate(yOf(v))}`;
  const parts: Markup[] = yAxis(height, top, max);
  const base = s.x.map(() => 0);
  for (const p of POOL_NAMES) {
    const vals = s.pools[p];
    if (!vals.some((v) => v > 0)) continue;
    const upper = s.x.map((x, i) => point(x, base[i] + vals[i]));
    const lower = s.x.map((x, i) => point(x, base[i])).reverse();
    const points = [...upper, ...lower].join(" ");
    parts.push(concat(
      markup`<polygon class="series" data-series="${id}:${p}" fill="${POOL_COLORS[p]}" `,
      markup`fill-opacity="0.85" points="${points}"><title>${p}</title></polygon>`,
    ));
    for (let i = 0; i < base.length; i++) base[i] += vals[i];
  }
  if (outline) {
    const points = outline.x.map((x, i) => {
      let t = 0;
      for (const p of POOL_NAMES) t += outline.pools[p][i];
      return point(x, t);
    }).join(" ");
    parts.push(concat(
      markup`<polyline class="series" data-series="${id}:reserved-total" fill="none" `,
      markup`stroke="#222" stroke-width="1.2" stroke-dasharray="5 3" points="${points}">`,
      markup`<title>reserved, all pools</title></polyline>`,
    ));
  }
  for (const [k, m] of marks.entries()) {
    const x = xOf(m.x);
    // Right of its line, or left of it near the right edge.
    const nearEdge = x > LEFT + PLOT - 200;
    const anchor = nearEdge ? "end" : "start";
    parts.push(concat(
      markup`<line x1="${x}" x2="${x}" y1="${top}" y2="${bottom}" stroke="#c00" `,
      markup`stroke-dasharray="2 3"/>`,
      markup`<text class="mark" x="${nearEdge ? x - 4 : x + 4}" y="${top + 14 + 16 * k}" `,
      markup`text-anchor="${anchor}" fill="#c00">${m.label}</text>`,
    ));
  }
  // X axis: event counts.
  for (const v of ticks(n, niceCount(Math.max(1, n) / 8))) {
    const x = xOf(v);
    parts.push(concat(
      markup`<line class="axis" x1="${x}" x2="${x}" y1="${bottom}" y2="${bottom + 5}" `,
      markup`stroke="#999"/>`,
      markup`<text x="${x}" y="${bottom + 18}" text-anchor="middle">${v}</text>`,
    ));
  }
  parts.push(concat(
    markup`<line x1="${LEFT}" x2="${LEFT + PLOT}" y1="${bottom}" y2="${bottom}" stroke="#999"/>`,
    markup`<line x1="${LEFT}" x2="${LEFT}" y1="${top}" y2="${bottom}" stroke="#999"/>`,
    markup`<text x="${LEFT + PLOT / 2}" y="${bottom + 38}" text-anchor="middle">`,
    markup`events (alloc, free, submit, …) in the order they happened</text>`,
  ));
  return concat(
    markup`<svg class="chart" id="chart-${id}" width="${WIDTH}" height="${svgH}" `,
    markup`viewBox="0 0 ${WIDTH} ${svgH}" role="img" aria-label="${id} bytes over events">`,
    parts,
    markup`</svg>`,
  );
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
        markup`width="${w}" height="${barH}" fill="${POOL_COLORS[p]}">`,
        markup`<title>${p}: ${formatBytes(pools[p])}</title></rect>`,
      ));
      x += w;
    }
  });
  return concat(
    markup`<svg class="chart" width="${WIDTH}" height="${svgH}" viewBox="0 0 ${WIDTH} ${svgH}" `,
    markup`role="img" aria-label="bytes by pool">${parts}</svg>`,
  );
}

/** One row per heap: its blocks at their offsets, scaled to the row's width. */
export function heapMap(heaps: readonly SnapshotHeap[]): Markup {
  if (heaps.length === 0) return markup`<p>No heaps held.</p>`;
  const shown = heaps.slice(0, MAX_HEAPS);
  const compact = shown.length > COMPACT_HEAPS;
  const rowH = compact ? 9 : 18;
  const gap = compact ? 2 : 6;
  const top = 4;
  const svgH = top + shown.length * (rowH + gap) + 4;
  const labelW = 230;
  const barW = WIDTH - labelW - RIGHT;
  const patterns = POOL_NAMES.map((p) =>
    concat(
      markup`<pattern id="pending-${p}" width="6" height="6" patternUnits="userSpaceOnUse" `,
      markup`patternTransform="rotate(45)"><rect width="3" height="6" fill="${POOL_COLORS[p]}"/>`,
      markup`<rect x="3" width="3" height="6" fill="#fff"/></pattern>`,
    )
  );
  const rows = shown.map((h, r) => {
    const y = top + r * (rowH + gap);
    const kind = h.isSplit ? "heap" : "unsplit";
    const small = compact ? markup` style="font-size:9px"` : null;
    const parts: Markup[] = [
      markup`<g class="heap" data-heap="${h.id}" data-pool="${h.pool}" data-size="${h.size}">`,
      markup`<text x="${labelW - 8}" y="${y + (compact ? 8 : 13)}" text-anchor="end"${small}>`,
      markup`#${h.id} ${h.pool} ${kind} ${byteLabel(h.size)}</text>`,
      markup`<rect x="${labelW}" y="${y}" width="${barW}" height="${rowH}" fill="#ececec" `,
      markup`stroke="#bbb" stroke-width="0.5"/>`,
    ];
    const scale = barW / h.size;
    const rect = (x: number, w: number, state: BlockStateName, title: string) =>
      blockRect(labelW + x * scale, y, w * scale, rowH, h.pool, state, title);
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
      if (b.size * scale < 2) {
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
      if (b.state !== "free") parts.push(rect(b.offset, b.size, b.state, blockTitle(b)));
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
    markup`role="img" aria-label="heap map"><defs>${patterns}</defs>${rows}</svg>${more}`,
  );
}

function blockRect(
  x: number,
  y: number,
  w: number,
  h: number,
  pool: string,
  state: BlockStateName,
  title: string,
): Markup {
  const fill = state === "pending" ? `url(#pending-${pool})` : POOL_COLORS[pool] ?? "#888";
  const opacity = state === "cached" ? markup` fill-opacity="0.35"` : null;
  // A hairline between neighbours keeps adjacent blocks apart; the tiniest stay visible.
  const stroke = w >= 3 ? markup` stroke="#fff" stroke-width="0.6"` : null;
  return concat(
    markup`<rect class="block ${state}" x="${x}" y="${y}" width="${Math.max(w, 1.5)}" `,
    markup`height="${h}" fill="${fill}"${opacity}${stroke}><title>${title}</title></rect>`,
  );
}

function blockTitle(b: SnapshotBlock): string {
  return `block #${b.id} ${b.state}: ${formatBytes(b.size)} at offset ${b.offset}` +
    ` (requested ${b.requestedSize} B${b.label ? `, ${b.label}` : ""})`;
}

/** A coordinate in a list of points, to one decimal; never NaN or Infinity. */
function coordinate(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`Cannot draw a point at ${v}: it must be finite`);
  return String(Math.round(v * 10) / 10);
}
