/**
 * Planned placement: offsets in one arena for the blocks of a recorded
 * iteration, computed once, so that later runs of the same iteration place
 * each block without a search. Pure: plain numbers in, offsets out, no GPU
 * types (as TLSF is tested on plain numbers).
 *
 * Note [planned memory]
 *
 * Rationale. A loop that repeats the same allocations (an inference step for
 * one input shape) has a limit: the peak of bytes live at once. An online
 * allocator cannot reach it, since it does not know the future: it rounds,
 * splits heaps, and — to keep trap 1 (freed before submit) — either waits for
 * a submit or grows. A recording of one run knows every lifetime, and which
 * blocks `queue.writeBuffer` fills.
 *
 * Approach. Two blocks may share bytes unless they conflict:
 * - their lifetimes overlap (both live at once), or
 * - one of them, `j`, is filled by `writeBuffer` (which runs on the queue
 *   ahead of every later submit) while the other, `i`, was freed before `j`
 *   was made with no submit in between: work recorded before the free may
 *   still read `i` when the write lands (trap 1);
 * - and across runs: a block freed after the run's last submit is still read
 *   by unsubmitted work when the next run starts, so it conflicts with every
 *   written block made before that run's first submit. Where a written block
 *   is itself made before the first submit and freed after the last, no
 *   placement helps (it meets its own previous copy): the plan says
 *   `submitFirst`, a run then begins with a submit, and these conflicts go.
 * Blocks filled only by dispatches recorded after the free share freely: the
 * command encoder orders them after the reads. Placement is greedy (TFLite's
 * arena planner, greedy by size): blocks in a given order, each at the lowest
 * offset that overlaps no conflicting block placed so far. A few orders are
 * tried (size, size × lifetime, start time) and the smallest arena kept.
 *
 * Limitations. One arena; greedy, so not always optimal (the report gives
 * each plan's size ÷ peak live). The conflict graph is built pairwise:
 * O(n²) in the blocks of one iteration.
 *
 * @module
 */

/** One block of a recorded iteration, in operation counts (its alloc is operation `start`). */
export interface PlanBlock {
  /** Bytes to place (already aligned). */
  size: number;
  /** The operation that allocated it. */
  start: number;
  /** The operation that freed it (after `start`). */
  end: number;
  /** Filled by `queue.writeBuffer` (or a mapped upload): must not meet unsubmitted frees. */
  written: boolean;
}

/** What {@linkcode planArena} returns. */
export interface ArenaPlan {
  /** Offset of each block, in the order given. */
  offsets: number[];
  /** Bytes the arena needs: the end of the highest block. */
  size: number;
  /** The peak of bytes live at once: the limit no placement beats. */
  peakLive: number;
  /** `size / peakLive` (1 when nothing was placed). */
  ratio: number;
  /** The order that gave the smallest arena. */
  order: "size" | "area" | "start";
  /**
   * A run must begin with nothing freed unsubmitted: some written block is
   * made before the first submit and freed after the last, so the previous
   * run's copy of it, at the same offset, may still be read.
   */
  submitFirst: boolean;
}

/**
 * Places `blocks` in one arena: no two conflicting blocks (see Note
 * [planned memory]) share a byte. `submits` are the operation counts at which
 * submits fell (a submit at `p` comes after operation `p - 1`), ascending.
 *
 * @example
 * ```ts
 * import { planArena } from "./plan.ts";
 * import assert from "node:assert/strict";
 *
 * // a lives 0–2, b 1–3, c 2–4 (made after a was freed): c takes a's bytes.
 * const plan = planArena([
 *   { size: 256, start: 0, end: 2, written: false },
 *   { size: 256, start: 1, end: 3, written: false },
 *   { size: 256, start: 2, end: 4, written: false },
 * ], []);
 * assert.equal(plan.size, 512);
 * assert.equal(plan.ratio, 1);
 * // Filled by writeBuffer with no submit since a's free, c must not take a's bytes.
 * const strict = planArena([
 *   { size: 256, start: 0, end: 2, written: false },
 *   { size: 256, start: 1, end: 4, written: false },
 *   { size: 256, start: 3, end: 5, written: true },
 * ], []);
 * assert.equal(strict.size, 768);
 * ```
 *
 * @param blocks the blocks, each with `start < end`
 * @param submits operation counts of the submits, ascending
 * @returns offsets, arena size, peak live and their ratio
 * @throws {RangeError} a block with a bad size or lifetime
 */
export function planArena(blocks: readonly PlanBlock[], submits: readonly number[]): ArenaPlan {
  blocks.forEach(checkBlock);
  const n = blocks.length;
  const peakLive = peakOf(blocks);
  const first = submits.length > 0 ? submits[0] : Infinity;
  const last = submits.length > 0 ? submits[submits.length - 1] : -Infinity;
  const submitFirst = blocks.some((b) => b.written && b.start < first && b.end >= last);
  if (n === 0) return { offsets: [], size: 0, peakLive: 0, ratio: 1, order: "size", submitFirst };
  // A run that begins with a submit leaves nothing of the previous one pending.
  const conflicts = conflictLists(blocks, submits, submitFirst ? -1 : first);
  const life = (i: number) => blocks[i].end - blocks[i].start;
  const orders: [ArenaPlan["order"], (a: number, b: number) => number][] = [
    ["size", (a, b) => blocks[b].size - blocks[a].size || blocks[a].start - blocks[b].start],
    ["area", (a, b) => blocks[b].size * life(b) - blocks[a].size * life(a) || a - b],
    ["start", (a, b) => blocks[a].start - blocks[b].start || blocks[b].size - blocks[a].size],
  ];
  let best: ArenaPlan | null = null;
  for (const [order, compare] of orders) {
    const sequence = [...blocks.keys()].sort(compare);
    const offsets = greedy(blocks, conflicts, sequence);
    let size = 0;
    for (let i = 0; i < n; i++) size = Math.max(size, offsets[i] + blocks[i].size);
    if (best === null || size < best.size) {
      const ratio = peakLive > 0 ? size / peakLive : 1;
      best = { offsets, size, peakLive, ratio, order, submitFirst };
    }
  }
  return best!;
}

/**
 * Whether blocks `i` and `j` may not share bytes (Note [planned memory]).
 * `busy[i]` is the first submit after `i`'s free (Infinity if none);
 * `firstSubmit` the run's first.
 */
function conflict(
  a: PlanBlock,
  b: PlanBlock,
  busyA: number,
  busyB: number,
  firstSubmit: number,
): boolean {
  if (a.start < b.end && b.start < a.end) return true;
  return (b.written && pendingAt(a, busyA, b.start, firstSubmit)) ||
    (a.written && pendingAt(b, busyB, a.start, firstSubmit));
}

/** Whether work reading block `a` may be unsubmitted when a block made at `t` is written. */
function pendingAt(a: PlanBlock, busy: number, t: number, firstSubmit: number): boolean {
  if (a.end <= t) return busy > t;
  // Made before `a` in this run: the previous run's `a` is still pending until the first
  // submit if it was freed after that run's last one.
  return busy === Infinity && t < firstSubmit;
}

/** For each block, the blocks it conflicts with; a written block made before `firstSubmit` meets the previous run. */
function conflictLists(
  blocks: readonly PlanBlock[],
  submits: readonly number[],
  firstSubmit: number,
): number[][] {
  const busy = blocks.map((b) => firstAfter(submits, b.end));
  const lists: number[][] = blocks.map(() => []);
  for (let i = 0; i < blocks.length; i++) {
    for (let j = i + 1; j < blocks.length; j++) {
      if (conflict(blocks[i], blocks[j], busy[i], busy[j], firstSubmit)) {
        lists[i].push(j);
        lists[j].push(i);
      }
    }
  }
  return lists;
}

/** The first submit at or after operation count `t` + 1 (the free is operation `t`); else Infinity. */
function firstAfter(submits: readonly number[], t: number): number {
  let lo = 0;
  let hi = submits.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (submits[mid] > t) hi = mid;
    else lo = mid + 1;
  }
  return lo < submits.length ? submits[lo] : Infinity;
}

/** Places blocks in `sequence`, each at the lowest offset clear of its placed conflicts. */
function greedy(
  blocks: readonly PlanBlock[],
  conflicts: readonly number[][],
  sequence: readonly number[],
): number[] {
  const offsets = new Array<number>(blocks.length).fill(-1);
  for (const i of sequence) {
    const taken = conflicts[i].filter((j) => offsets[j] >= 0).sort((a, b) =>
      offsets[a] - offsets[b]
    );
    let offset = 0;
    for (const j of taken) {
      if (offsets[j] >= offset + blocks[i].size) break;
      offset = Math.max(offset, offsets[j] + blocks[j].size);
    }
    offsets[i] = offset;
  }
  return offsets;
}

/** The peak of bytes live at once. */
function peakOf(blocks: readonly PlanBlock[]): number {
  const steps: [number, number][] = [];
  for (const b of blocks) steps.push([b.start, b.size], [b.end, -b.size]);
  // Frees before allocs at the same count: a block freed at t is gone when one is made at t.
  steps.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let live = 0;
  let peak = 0;
  for (const [, delta] of steps) {
    live += delta;
    peak = Math.max(peak, live);
  }
  return peak;
}

function checkBlock(b: PlanBlock, i: number): void {
  const ok = b !== null && typeof b === "object" && Number.isSafeInteger(b.size) && b.size > 0 &&
    Number.isSafeInteger(b.start) && Number.isSafeInteger(b.end) && b.start >= 0 &&
    b.end > b.start;
  if (!ok) {
    throw new RangeError(
      `Cannot plan: block ${i} must have a positive integer size and 0 <= start < end, got ${
        JSON.stringify(b)
      }`,
    );
  }
}
