/**
 * The layout of the block timeline: every block a band from the event that
 * placed it to the event that freed it, stacked in the order they were
 * placed, so that the top of the stack is the bytes allocated. When a block
 * is freed, the bands above it slide down (as in PyTorch's memory_viz).
 *
 * Bounded whatever the trace: at most `maxBands` blocks are drawn one by
 * one (those live at the peak first, then the largest), the others summed
 * in one band on top; a band's outline keeps one step per pixel column;
 * and past `maxSteps` steps in all, the number of bands is halved.
 *
 * @module
 */

/** The blocks to lay out, by their place in the order they were placed. */
export interface TimelineBlocks {
  /** Bytes of each block. */
  size: ArrayLike<number>;
  /** Event index that placed each block. */
  placedAt: ArrayLike<number>;
  /** Event index that freed each block; `events` or more: never freed. */
  freedAt: ArrayLike<number>;
  /** Events in the trace. */
  events: number;
  /** The event of the peak: blocks live there are drawn first. */
  peakAt: number;
}

/** Bounds and scale of a layout. */
export interface TimelineOptions {
  /** Blocks drawn one by one at most. */
  maxBands: number;
  /** Steps in all bands' outlines at most (each step is four points of the page). */
  maxSteps: number;
  /** The pixel column of an event index (`events`: the end); non-decreasing. */
  px: (event: number) => number;
}

/** One block's band: its outline as steps of its lower edge. */
export interface Band {
  /** The block (its place in the order they were placed). */
  block: number;
  /** The band's height, in bytes. */
  size: number;
  /** Pixel columns where the lower edge changes; the first is where the band starts. */
  x: number[];
  /** Bytes under the band from each column on. */
  base: number[];
  /** Pixel column where the band ends. */
  end: number;
}

/** What {@linkcode layoutBands} gives. */
export interface TimelineLayout {
  /** Bands of the blocks drawn one by one, in the order they were placed. */
  bands: Band[];
  /** Blocks not drawn one by one: their bytes are summed in `rest`. */
  hidden: number;
  /**
   * The summed band on top of the others, by pixel column where anything
   * changed: the column's highest total, then its last if lower. Each point:
   * its column, the bytes under it (the bands' top) and its own bytes.
   */
  rest: { x: number[]; under: number[]; bytes: number[] };
}

/**
 * Lays out the bands of a trace's blocks. See the module for the bounds.
 *
 * @example
 * ```ts
 * import { layoutBands } from "./block_timeline.ts";
 * import assert from "node:assert/strict";
 *
 * // Block 0 lives from event 0 to 3, block 1 from 1 to the end: when 0 is
 * // freed, band 1 slides down by 0's 100 bytes.
 * const layout = layoutBands(
 *   { size: [100, 50], placedAt: [0, 1], freedAt: [3, 9], events: 4, peakAt: 1 },
 *   { maxBands: 10, maxSteps: 100, px: (e) => e * 10 },
 * );
 * assert.deepEqual(layout.bands[1], { block: 1, size: 50, x: [10, 30], base: [100, 0], end: 40 });
 * assert.equal(layout.hidden, 0);
 * ```
 */
export function layoutBands(blocks: TimelineBlocks, options: TimelineOptions): TimelineLayout {
  const n = blocks.size.length;
  const order = drawOrder(blocks, Math.min(n, Math.max(0, Math.floor(options.maxBands))));
  let count = order.length;
  for (;;) {
    const shown = order.subarray(0, count);
    const bands = stack(blocks, shown, options, count > 1 ? options.maxSteps : Infinity);
    if (bands) return { bands, hidden: n - count, rest: rest(blocks, shown, options) };
    count = Math.floor(count / 2);
  }
}

/**
 * The first `limit` block indices to draw: those live at the peak first,
 * each group largest first, then earliest. Sorts only the candidates: the
 * blocks at the peak and those at least as large as the `limit`-th largest.
 */
function drawOrder(b: TimelineBlocks, limit: number): Uint32Array {
  const n = b.size.length;
  if (limit === 0) return new Uint32Array(0);
  const atPeak = (k: number) => b.placedAt[k] <= b.peakAt && b.peakAt < b.freedAt[k];
  const sizes = Float64Array.from(b.size).sort();
  const least = sizes[n - limit];
  const candidates: number[] = [];
  for (let k = 0; k < n; k++) if (b.size[k] >= least || atPeak(k)) candidates.push(k);
  candidates.sort((p, q) =>
    Number(atPeak(q)) - Number(atPeak(p)) || b.size[q] - b.size[p] || p - q
  );
  return Uint32Array.from(candidates.slice(0, limit));
}

/**
 * The bands of `shown` stacked in the order they were placed; null when
 * their outlines take more than `maxSteps` steps.
 */
function stack(
  b: TimelineBlocks,
  shown: Uint32Array,
  options: TimelineOptions,
  maxSteps: number,
): Band[] | null {
  const end = b.events;
  // Placings and frees of the shown blocks, in event order (a placing before
  // a free of the same event: a block placed and freed at once still shows).
  const changes: [event: number, place: number, block: number][] = [];
  for (const k of shown) {
    changes.push([b.placedAt[k], 0, k], [Math.min(b.freedAt[k], end), 1, k]);
  }
  changes.sort((p, q) => p[0] - q[0] || p[1] - q[1] || p[2] - q[2]);
  const bands = new Map<number, Band>();
  const live: number[] = [];
  let top = 0;
  let steps = 0;
  for (const [event, place, k] of changes) {
    const x = options.px(event);
    if (place === 0) {
      bands.set(k, { block: k, size: b.size[k], x: [x], base: [top], end: x });
      live.push(k);
      top += b.size[k];
      steps++;
      continue;
    }
    const band = bands.get(k)!;
    band.end = x;
    const at = live.indexOf(k);
    live.splice(at, 1);
    top -= band.size;
    // Everything above slides down; one step per pixel column and band.
    for (let j = at; j < live.length; j++) {
      const above = bands.get(live[j])!;
      const last = above.x.length - 1;
      const base = above.base[last] - band.size;
      if (above.x[last] === x) {
        above.base[last] = base;
      } else {
        above.x.push(x);
        above.base.push(base);
        if (++steps > maxSteps) return null;
      }
    }
  }
  return [...bands.values()].sort((p, q) => p.block - q.block);
}

/** The bytes of blocks not shown, over the events, on top of the shown ones. */
function rest(
  b: TimelineBlocks,
  shown: Uint32Array,
  options: TimelineOptions,
): TimelineLayout["rest"] {
  const end = b.events;
  const out: TimelineLayout["rest"] = { x: [], under: [], bytes: [] };
  if (shown.length === b.size.length) return out;
  const isShown = new Uint8Array(b.size.length);
  for (const k of shown) isShown[k] = 1;
  // Change of each total at each event: placings add, frees take away.
  const dShown = new Float64Array(end + 1);
  const dRest = new Float64Array(end + 1);
  for (let k = 0; k < b.size.length; k++) {
    const d = isShown[k] ? dShown : dRest;
    d[b.placedAt[k]] += b.size[k];
    d[Math.min(b.freedAt[k], end)] -= b.size[k];
  }
  // Each column: its highest total (no peak is lost), then its last if lower (which holds
  // until the next column with a change, however far).
  let under = 0;
  let bytes = 0;
  let column = NaN;
  let best = -1;
  let bestUnder = 0;
  let bestBytes = 0;
  const flush = () => {
    if (best < 0) return;
    out.x.push(column);
    out.under.push(bestUnder);
    out.bytes.push(bestBytes);
    if (under + bytes < best) {
      out.x.push(column);
      out.under.push(under);
      out.bytes.push(bytes);
    }
  };
  for (let i = 0; i <= end; i++) {
    if (dShown[i] === 0 && dRest[i] === 0) continue;
    const x = options.px(i);
    if (x !== column) {
      flush();
      column = x;
      best = -1;
    }
    under += dShown[i];
    bytes += dRest[i];
    if (under + bytes > best) {
      best = under + bytes;
      bestUnder = under;
      bestBytes = bytes;
    }
  }
  flush();
  return out;
}
