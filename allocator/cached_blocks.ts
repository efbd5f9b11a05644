/**
 * The cache of freed blocks that each have a heap of their own (dedicated
 * heaps and staging buffers): found by size in time that does not grow with
 * the number of blocks cached, so a replay or a program holding tens of
 * thousands of staging buffers stays linear.
 *
 * | method | time                                         |
 * | ------ | -------------------------------------------- |
 * | add    | O(1), O(d) when its size is new              |
 * | delete | O(1), O(d) when it was the last of its size  |
 * | take   | O(log d + sizes and blocks passed over)      |
 *
 * d is the number of distinct sizes cached: sizes are rounded (staging to 4
 * steps per power of two, dedicated heaps to 2 MiB), so d stays small.
 *
 * @module
 */

/** What {@linkcode CachedBlocks} can hold: anything with a size in bytes. */
export interface Sized {
  /** Size in bytes. */
  readonly size: number;
}

/**
 * @internal freed blocks of unsplit heaps, by size; among blocks of one
 * size, the one cached first is taken first. Generic over what it caches
 * (the allocator's block records), so it knows nothing of blocks but their
 * size.
 *
 * @example
 * ```ts
 * import { CachedBlocks } from "./cached_blocks.ts";
 * import assert from "node:assert/strict";
 *
 * const cache = new CachedBlocks<{ id: number; size: number }>();
 * const rec = (id: number, size: number) => ({ id, size });
 * for (const r of [rec(1, 4096), rec(2, 8192), rec(3, 4096)]) cache.add(r);
 * assert.equal(cache.take(3000, 5000)?.id, 1);
 * assert.equal(cache.take(5000, 6000), null, "nothing within the bound");
 * assert.equal(cache.largest(), 8192);
 * ```
 */
export class CachedBlocks<T extends Sized> {
  /** The blocks of each size, in the order they were cached. */
  #bySize = new Map<number, Set<T>>();
  /** The sizes present, ascending. */
  #sizes: number[] = [];
  #count = 0;

  /** Blocks cached. */
  get size(): number {
    return this.#count;
  }

  /** Caches a block. */
  add(record: T): void {
    let same = this.#bySize.get(record.size);
    if (!same) {
      same = new Set();
      this.#bySize.set(record.size, same);
      this.#sizes.splice(this.#firstAtLeast(record.size), 0, record.size);
    }
    same.add(record);
    this.#count++;
  }

  /** Removes a block; false if it was not cached. */
  delete(record: T): boolean {
    const same = this.#bySize.get(record.size);
    if (!same?.delete(record)) return false;
    this.#count--;
    if (same.size === 0) {
      this.#bySize.delete(record.size);
      this.#sizes.splice(this.#firstAtLeast(record.size), 1);
    }
    return true;
  }

  /**
   * Removes and returns the smallest block of `min` to `max` bytes that
   * `usable` accepts (by default any), or null.
   */
  take(
    min: number,
    max: number,
    usable: (record: T) => boolean = () => true,
  ): T | null {
    const sizes = this.#sizes;
    for (let i = this.#firstAtLeast(min); i < sizes.length && sizes[i] <= max; i++) {
      for (const record of this.#bySize.get(sizes[i])!) {
        if (usable(record)) {
          this.delete(record);
          return record;
        }
      }
    }
    return null;
  }

  /** Size of the largest block cached (0 if none). */
  largest(): number {
    return this.#sizes.length > 0 ? this.#sizes[this.#sizes.length - 1] : 0;
  }

  /** Every block cached, smallest sizes first. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (const size of this.#sizes) yield* this.#bySize.get(size)!;
  }

  #firstAtLeast(size: number): number {
    const sizes = this.#sizes;
    let lo = 0;
    let hi = sizes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sizes[mid] < size) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
