/**
 * The front cache: a few freed blocks of each size, handed back to the next
 * request of that size without going through TLSF (no split, no merge, no
 * heap turning idle and busy again). The idea is the per-thread block cache
 * of PyTorch MPS's thread-safe fork; here an allocator belongs to one thread
 * (a Worker), so the allocator's own front cache is that cache.
 *
 * Note [front cache]: a block enters the front cache only where it would
 * have become reusable anyway (after the submit its free waited for, trap 1),
 * and it keeps its place in its heap (the heap stays busy, its TLSF range
 * stays taken) until it is handed out again or flushed back to TLSF. The
 * allocator flushes the whole cache before anything that needs free memory
 * merged or heaps idle: before making a heap, before releasing idle heaps
 * (emptyCache, a shared budget's pressure, the watermarks), and it bypasses
 * the cache above the low watermark. A block of a heap the device refused is
 * dropped when it comes up. Bytes in the front cache count as cached, and
 * snapshots show its blocks as `cached`.
 *
 * | method | time |
 * | ------ | ---- |
 * | take   | O(1) |
 * | put    | O(1) |
 * | flush  | O(n) |
 *
 * @module
 */

import { FRONT_CACHE_BYTES, FRONT_CACHE_DEPTH } from "./constants.ts";
import type { Range } from "./tlsf.ts";

/**
 * @internal freed ranges of one split pool, by exact size, at most
 * {@linkcode FRONT_CACHE_DEPTH} of each size and
 * {@linkcode FRONT_CACHE_BYTES} in all, and not past what TLSF has free; the
 * last one put is taken first.
 *
 * @example
 * ```ts
 * import { FrontCache } from "./front_cache.ts";
 * import { Tlsf } from "./tlsf.ts";
 * import assert from "node:assert/strict";
 *
 * const tlsf = new Tlsf(256);
 * tlsf.addRegion(1 << 20);
 * const cache = new FrontCache(256, 64 << 10);
 * const a = tlsf.alloc(4096)!;
 * assert.equal(cache.put(a, tlsf.freeBytes), true);
 * assert.equal(cache.take(4096), a); // the same range, TLSF untouched
 * assert.equal(cache.take(4096), null);
 * ```
 */
export class FrontCache {
  /** The ranges of each size, indexed by size / granularity. */
  #stacks: (Range[] | undefined)[];
  /** Indexes of the stacks made so far: a flush visits these, not every size. */
  #made: number[] = [];
  /** log2 of the granularity: sizes become indexes by a shift. */
  #shift: number;
  #maxSize: number;
  #bytes = 0;

  /**
   * @param granularity every size is a multiple of it (a power of two)
   * @param maxSize the largest range kept (below 2^31)
   */
  constructor(granularity: number, maxSize: number) {
    this.#shift = Math.log2(granularity);
    this.#maxSize = maxSize;
    // Filled, not holey: a lookup stays one load.
    this.#stacks = new Array(Math.floor(maxSize / granularity) + 1).fill(undefined);
  }

  /** Ranges held (counted: for tests and reports, not the hot path). */
  get size(): number {
    let n = 0;
    for (const i of this.#made) n += this.#stacks[i]!.length;
    return n;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The range put last of exactly `size` bytes, removed; null if none. */
  take(size: number): Range | null {
    const stack = this.#stacks[size >>> this.#shift];
    if (stack === undefined || stack.length === 0) return null;
    this.#bytes -= size;
    return stack.pop()!;
  }

  /**
   * Keeps a freed range; false (and nothing kept) when its size is full, the
   * cache would hold more than {@linkcode FRONT_CACHE_BYTES}, or it holds
   * more than `freeBytes` already (what TLSF has free besides): about half of
   * the pool's free memory at most stays out of TLSF's reach, so a full heap
   * is not flushed at every turn.
   */
  put(range: Range, freeBytes: number): boolean {
    const size = range.size;
    const bytes = this.#bytes + size;
    if (size > this.#maxSize || bytes > FRONT_CACHE_BYTES || this.#bytes > freeBytes) {
      return false;
    }
    const i = size >>> this.#shift;
    let stack = this.#stacks[i];
    if (stack === undefined) {
      stack = this.#stacks[i] = [];
      this.#made.push(i);
    } else if (stack.length >= FRONT_CACHE_DEPTH) return false;
    stack.push(range);
    this.#bytes = bytes;
    return true;
  }

  /** Empties the cache, handing each range to `each` (to give it back to TLSF). */
  flush(each: (range: Range) => void): void {
    if (this.#bytes === 0) return;
    const ranges: Range[] = [];
    for (const i of this.#made) {
      const stack = this.#stacks[i]!;
      for (const range of stack) ranges.push(range);
      stack.length = 0;
    }
    this.#bytes = 0;
    // Handed over once the cache is empty: `each` may start another flush.
    for (const range of ranges) each(range);
  }

  /** Every range held. */
  *[Symbol.iterator](): IterableIterator<Range> {
    for (const i of this.#made) yield* this.#stacks[i]!;
  }
}
