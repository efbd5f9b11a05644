/**
 * The interface between an allocator and a memory budget it shares with
 * other allocators (one per Worker).
 *
 * @module
 */

import type { PoolCounters } from "./stats.ts";

/** A budget of heap bytes that several allocators reserve from. */
export interface MemoryBudget {
  /** The budget's limit in bytes (0: none). */
  readonly limit: number;
  /** Bytes reserved now, by every sharer together. */
  readonly reserved: number;
  /** Takes `bytes` from the budget before a heap is made; false if they do not fit. */
  reserve(bytes: number): boolean;
  /** Gives back `bytes` when a heap is released. */
  release(bytes: number): void;
  /** Checked before each allocation: true when others asked this allocator to release its cache. */
  pressured(): boolean;
  /**
   * Asks every other allocator to release its cache, and may wait (briefly) for
   * `bytes` to fit; true if a retry may now succeed. The allocator retries while
   * it returns true, so it must return false after a bounded time.
   */
  relieve(bytes?: number): boolean;
  /** Publishes this allocator's live counters (called after each allocation and free). */
  publish(counters: Readonly<PoolCounters>): void;
  /** Each sharer's part of the budget, for an out-of-memory message. */
  describe(): string;
}
