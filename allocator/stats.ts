/**
 * The allocator's statistics: counters kept exact at every step, and the
 * shapes `memoryStats()` returns.
 *
 * @module
 */

/** A quantity with its current value, its peak, and what was ever added and removed. */
export interface Stat {
  /** Value now. */
  current: number;
  /** Highest value since creation or the last `resetPeakStats()`. */
  peak: number;
  /** Sum of every increase (since creation or `resetAccumulatedStats()`). */
  allocated: number;
  /** Sum of every decrease (since creation or `resetAccumulatedStats()`). */
  freed: number;
}

/** Statistics of one pool, or of all pools together. */
export interface PoolStats {
  /** Bytes in live blocks (rounded sizes). */
  allocatedBytes: Stat;
  /** Bytes in GPUBuffers held (heaps, scalar heaps, staging buffers). */
  reservedBytes: Stat;
  /** Bytes live blocks asked for (before rounding). */
  requestedBytes: Stat;
  /**
   * Bytes of live blocks and of blocks freed but waiting for a submit
   * (PyTorch's active bytes: not yet reusable).
   */
  activeBytes: Stat;
  /** Live blocks: now, at their peak, placed and freed (PyTorch's allocation counts). */
  blockCount: Stat;
  /** GPUBuffers held: now, at their peak, made and released (PyTorch's segment counts). */
  heapCount: Stat;
  /** Reserved bytes ready for reuse: neither live nor waiting for a submit. */
  cachedBytes: number;
  /** Bytes of blocks freed since the last submit, reusable after it. */
  pendingFreeBytes: number;
  /** Largest range that one allocation could take without a new heap. */
  largestFreeRange: number;
  /** GPUBuffers held. */
  heaps: number;
  /** Live blocks. */
  blocks: number;
  /** Allocations served, ever. */
  allocations: number;
  /** Allocations served without creating a GPUBuffer, ever. */
  cacheHits: number;
  /** Of those, allocations served by the front cache (a block of the same size freed recently), ever. */
  frontCacheHits: number;
  /** GPUBuffers created, ever. */
  createBufferCalls: number;
}

/** What `memoryStats()` returns: totals, each pool, retries and OOMs. */
export interface MemoryStats extends PoolStats {
  /** Statistics of each pool. */
  pools: Record<"small" | "large" | "uniform" | "scalar" | "readback" | "upload", PoolStats>;
  /** Heap creations retried after releasing cached memory. */
  numAllocRetries: number;
  /** Requests that failed with `OutOfMemoryError` (and heaps the device refused). */
  numOoms: number;
  /** The hard limit in bytes (0: none). */
  highWatermark: number;
  /** The soft limit in bytes (0: none). */
  lowWatermark: number;
}

/**
 * @internal a running {@linkcode Stat}: what was freed is `allocated - current`,
 * worked out when read, so a decrease is one store. `resetAccumulatedStats()`
 * moves the bases instead of the running figures, for the same reason.
 */
export interface Counter {
  current: number;
  peak: number;
  allocated: number;
  /** `allocated` at the last reset of accumulated figures. */
  allocatedBase: number;
  /** `allocated - current` at that reset. */
  freedBase: number;
}

/** @internal the running counters behind {@linkcode PoolStats}. */
export interface PoolCounters {
  allocated: Counter;
  reserved: Counter;
  requested: Counter;
  active: Counter;
  pendingFree: number;
  heaps: number;
  heapsPeak: number;
  /** `heaps` at the last reset of accumulated figures. */
  heapsAtReset: number;
  blocks: number;
  blocksPeak: number;
  /** `blocks` at the last reset of accumulated figures. */
  blocksAtReset: number;
  allocations: number;
  cacheHits: number;
  frontCacheHits: number;
  createBufferCalls: number;
}

function emptyCounter(): Counter {
  return { current: 0, peak: 0, allocated: 0, allocatedBase: 0, freedBase: 0 };
}

/** @internal fresh counters. */
export function emptyPoolCounters(): PoolCounters {
  return {
    allocated: emptyCounter(),
    reserved: emptyCounter(),
    requested: emptyCounter(),
    active: emptyCounter(),
    pendingFree: 0,
    heaps: 0,
    heapsPeak: 0,
    heapsAtReset: 0,
    blocks: 0,
    blocksPeak: 0,
    blocksAtReset: 0,
    allocations: 0,
    cacheHits: 0,
    frontCacheHits: 0,
    createBufferCalls: 0,
  };
}

/** @internal adds `n` bytes to a pool's counter and the matching total. */
export function addStat(pool: Counter, total: Counter, n: number): void {
  grow(pool, n);
  grow(total, n);
}

/** @internal takes `n` bytes from a pool's counter and the matching total. */
export function subStat(pool: Counter, total: Counter, n: number): void {
  pool.current -= n;
  total.current -= n;
}

/** @internal one live block more, in a pool and the totals. */
export function addBlockCount(pool: PoolCounters, total: PoolCounters): void {
  if (++pool.blocks > pool.blocksPeak) pool.blocksPeak = pool.blocks;
  if (++total.blocks > total.blocksPeak) total.blocksPeak = total.blocks;
}

/** @internal one heap more, in a pool and the totals. */
export function addHeapCount(pool: PoolCounters, total: PoolCounters): void {
  if (++pool.heaps > pool.heapsPeak) pool.heapsPeak = pool.heaps;
  if (++total.heaps > total.heapsPeak) total.heapsPeak = total.heaps;
}

function grow(c: Counter, n: number): void {
  c.current += n;
  c.allocated += n;
  if (c.current > c.peak) c.peak = c.current;
}

/** The public figures of a counter. */
function stat(c: Counter): Stat {
  return {
    current: c.current,
    peak: c.peak,
    allocated: c.allocated - c.allocatedBase,
    freed: c.allocated - c.current - c.freedBase,
  };
}

/** A count as a {@linkcode Stat}: what left since the reset is what came less what it grew by. */
function count(current: number, peak: number, added: number, atReset: number): Stat {
  return { current, peak, allocated: added, freed: added - (current - atReset) };
}

/** @internal the figures of one pool (or of all) from its counters. */
export function poolStats(c: PoolCounters, largestFreeRange: number): PoolStats {
  return {
    allocatedBytes: stat(c.allocated),
    reservedBytes: stat(c.reserved),
    requestedBytes: stat(c.requested),
    activeBytes: stat(c.active),
    blockCount: count(c.blocks, c.blocksPeak, c.allocations, c.blocksAtReset),
    heapCount: count(c.heaps, c.heapsPeak, c.createBufferCalls, c.heapsAtReset),
    cachedBytes: c.reserved.current - c.allocated.current - c.pendingFree,
    pendingFreeBytes: c.pendingFree,
    largestFreeRange,
    heaps: c.heaps,
    blocks: c.blocks,
    allocations: c.allocations,
    cacheHits: c.cacheHits,
    frontCacheHits: c.frontCacheHits,
    createBufferCalls: c.createBufferCalls,
  };
}

/** @internal sets each peak to its current value. */
export function resetPeak(c: PoolCounters): void {
  for (const s of [c.allocated, c.reserved, c.requested, c.active]) s.peak = s.current;
  c.blocksPeak = c.blocks;
  c.heapsPeak = c.heaps;
}

/** @internal clears what was accumulated: bytes allocated and freed in total, and the counts. */
export function resetAccumulated(c: PoolCounters): void {
  for (const s of [c.allocated, c.reserved, c.requested, c.active]) {
    s.allocatedBase = s.allocated;
    s.freedBase = s.allocated - s.current;
  }
  c.blocksAtReset = c.blocks;
  c.heapsAtReset = c.heaps;
  c.allocations = 0;
  c.cacheHits = 0;
  c.frontCacheHits = 0;
  c.createBufferCalls = 0;
}
