/**
 * The heaps an allocator holds: made within the watermarks and the shared
 * budget — releasing cached heaps and retrying before giving up with an
 * {@linkcode OutOfMemoryError} — kept while idle for reuse, released oldest
 * first, and retired when the device refuses them. Blocks, their placement
 * and their lifetimes are the allocator's (`allocator.ts`); GPUBuffers are
 * made and destroyed by `gpu_memory.ts`.
 *
 * @module
 */

import type { AllocRequest, Heap, Pool } from "./block.ts";
import type { MemoryBudget } from "./budget.ts";
import type { AllocConf, DebugFlags } from "./config.ts";
import type { AllocatorDevice } from "./device.ts";
import { AllocatorError, OutOfMemoryError } from "./errors.ts";
import { LOOP_RESERVED_RATIO } from "./constants.ts";
import { formatBytes } from "./format.ts";
import { GpuMemory } from "./gpu_memory.ts";
import type { PoolName } from "./size_classes.ts";
import { addHeapCount, addStat, type PoolCounters, subStat } from "./stats.ts";
import type { TraceRecorder } from "./trace_recorder.ts";

/** @internal what {@linkcode Heaps} works with. */
export interface HeapsOptions {
  /** The device GPUBuffers are made on. */
  device: AllocatorDevice;
  /** A budget shared with other allocators, if any. */
  budget: MemoryBudget | undefined;
  /** The alloc conf (`caching`, `max_reserved_ratio`). */
  conf: AllocConf;
  /** Hard limit on reserved bytes (0: none). */
  highWatermark: number;
  /** Soft limit on reserved bytes (0: none). */
  lowWatermark: number;
  /** Which debug lines to write. */
  debug: DebugFlags;
  /** Writes a debug line. */
  say: (line: string) => void;
}

/** @internal the heaps of one allocator, its pools and its byte counters. */
export class Heaps {
  /** The pools, with their heaps, cached blocks and counters. */
  readonly pools: Record<PoolName, Pool>;
  /** The counters of all pools together. */
  readonly totals: PoolCounters;
  #memory: GpuMemory;
  #budget: MemoryBudget | undefined;
  #conf: AllocConf;
  #debug: DebugFlags;
  #say: (line: string) => void;
  // Heaps with nothing placed in them, linked oldest first: what GC releases.
  // A list through the heaps themselves: an allocation that empties and fills
  // a heap costs two pointer updates, not two hash-set operations.
  #oldestIdle: Heap | null = null;
  #newestIdle: Heap | null = null;
  #nextId = 1;
  #destroyed = false;
  #recorder: TraceRecorder | null = null;
  #high: number;
  #low: number;
  #retries = 0;
  #ooms = 0;
  // The device's latest refusal of a heap, not yet reported.
  #deviceError: OutOfMemoryError | AllocatorError | null = null;
  #lost: { reason: string; message: string } | null = null;
  /** What refused the last heap that could not be made. */
  #refusedBy: "watermark" | "budget" | null = null;
  // Note [a repeating loop widens the bound]: sizes of heaps the cache bound released and
  // no heap was made at since, how often each size was made again, and the room kept.
  #boundReleased = new Set<number>();
  #remakes = new Map<number, number>();
  #loopRoom = 0;

  /**
   * @param pools the allocator's pools
   * @param totals the counters of all pools together
   * @param options device, budget, conf, watermarks and debug output
   */
  constructor(pools: Record<PoolName, Pool>, totals: PoolCounters, options: HeapsOptions) {
    this.pools = pools;
    this.totals = totals;
    this.#high = options.highWatermark;
    this.#low = options.lowWatermark;
    this.#budget = options.budget;
    this.#conf = options.conf;
    this.#debug = options.debug;
    this.#say = options.say;
    this.#memory = new GpuMemory(options.device, options.budget, {
      refused: (heap, message) => this.#onDeviceRefused(heap, message),
      failed: (heap, error) => {
        this.#deviceError = new AllocatorError(
          `gpuheap internal error while handling the device's verdict on heap #${heap.id}: ${
            error instanceof Error ? error.message : error
          }`,
          { cause: error },
        );
      },
      lost: (reason, message) => {
        this.#lost ??= { reason, message };
      },
    });
  }

  /** Hard limit on reserved bytes (0: none). */
  get high(): number {
    return this.#high;
  }

  /** Soft limit on reserved bytes (0: none). */
  get low(): number {
    return this.#low;
  }

  /** Heap creations retried after releasing cached memory. */
  get retries(): number {
    return this.#retries;
  }

  /** Requests refused for lack of memory, and heaps the device refused. */
  get ooms(): number {
    return this.#ooms;
  }

  /** Why the device was lost, once it was; null until then. */
  get lost(): { reason: string; message: string } | null {
    return this.#lost;
  }

  /**
   * Changes the watermarks (0: none). Reserved bytes above the new hard
   * limit release idle heaps, oldest first, until they fit.
   */
  setWatermarks(high: number, low: number): void {
    this.#high = high;
    this.#low = low;
    if (high > 0 && this.totals.reserved.current > high) this.releaseIdle(null, high);
  }

  /** Records heaps made and released, and requests refused, into `recorder` (null: stop). */
  record(recorder: TraceRecorder | null): void {
    this.#recorder = recorder;
  }

  /** Clears the counts of retries and OOMs. */
  resetCounts(): void {
    this.#retries = 0;
    this.#ooms = 0;
  }

  /** Makes a heap of `heapSize` bytes for `req`, releasing cached memory and retrying before giving up. */
  obtain(req: AllocRequest, heapSize: number, isSplit: boolean): Heap {
    const pool = this.pools[req.pool];
    const size = req.size;
    const t = this.totals;
    if (this.#low > 0 && t.reserved.current + heapSize > this.#low) {
      this.releaseIdle(null, Math.max(0, this.#low - heapSize));
    }
    const ratio = this.#conf.maxReservedRatio;
    if (ratio > 0) {
      // Note [the cache bound]: idle heaps are the only memory that can be given back, and
      // reserved bytes rise only when a heap is made. So, before one is made, idle heaps
      // are released, oldest first, until reserved bytes plus the new heap are within
      // `ratio` times the peak of live bytes (or what is in use now, if more): the cache
      // never holds more than (ratio - 1) of the peak in use beyond what live blocks pin.
      // The pool's own go first: the new heap takes their place, and a small heap made
      // does not cost the cache a large one. A workload whose sizes change every step pays
      // for the bound in createBuffer calls (bench/commands/fragmentation.ts prints them);
      // a loop that makes again what the bound released widens it (Note [a repeating loop
      // widens the bound]).
      const inUse = Math.max(t.allocated.peak, t.allocated.current + t.pendingFree + size);
      this.#widenForLoop(heapSize, inUse, ratio);
      const target = Math.max(0, inUse * ratio + this.#loopRoom - heapSize);
      if (t.reserved.current > target) {
        this.releaseIdle(pool.name, target, this.#boundReleased);
        this.releaseIdle(null, target, this.#boundReleased);
      }
    }
    let heap = this.#create(pool, heapSize, isSplit);
    if (heap) return heap;
    if (this.releaseIdle(pool.name, 0) > 0) {
      this.#retries++;
      heap = this.#create(pool, heapSize, isSplit);
      if (heap) return heap;
    }
    if (this.releaseIdle(null, 0) > 0) {
      this.#retries++;
      heap = this.#create(pool, heapSize, isSplit);
      if (heap) return heap;
    }
    // The budget waits (bounded) for other sharers to release, and says when to stop
    // retrying. Only worth it when the budget refused: others releasing cannot
    // lower this allocator's own reserved bytes under its high watermark.
    while (this.#refusedBy === "budget" && this.#budget?.relieve(heapSize)) {
      this.#retries++;
      heap = this.#create(pool, heapSize, isSplit);
      if (heap) return heap;
    }
    // A heap just large enough may still fit where a standard one does not.
    if (heapSize > size) {
      heap = this.#create(pool, size, isSplit);
      if (heap) return heap;
    }
    this.#ooms++;
    this.#recorder?.oom(req.requestedSize, pool.name);
    throw new OutOfMemoryError({
      allocated: t.allocated.current,
      cached: t.reserved.current - t.allocated.current,
      limit: this.#budget?.limit || this.#high,
      requested: req.requestedSize,
      pool: pool.name,
      detail: this.#budget?.describe(),
    });
  }

  /**
   * Note [a repeating loop widens the bound]: a loop whose heaps together sit just above
   * the cache bound releases a heap at every step and makes it again later in the step,
   * forever (4 heaps a step on some seeds of the synthetic training loop). So a heap made
   * at the size of one the bound released is a remake; from a size's second remake on, the
   * bound leaves room for what is reserved now plus that heap, up to
   * {@linkcode LOOP_RESERVED_RATIO} times the peak in use (the ratio peak reserved ÷ peak
   * live is promised within). A heap of any other size means the workload moved on, and
   * the bound narrows back at once: room kept for a loop that ended would only be waste.
   */
  #widenForLoop(heapSize: number, inUse: number, ratio: number): void {
    if (!this.#boundReleased.delete(heapSize)) {
      this.#loopRoom = 0;
      return;
    }
    const remakes = (this.#remakes.get(heapSize) ?? 0) + 1;
    this.#remakes.set(heapSize, remakes);
    if (remakes < 2) return;
    const room = this.totals.reserved.current + heapSize - inUse * ratio;
    const most = inUse * Math.max(0, LOOP_RESERVED_RATIO - ratio);
    this.#loopRoom = Math.min(Math.max(this.#loopRoom, room), most);
  }

  /** A block was placed in an idle heap: it is no longer a candidate for release. */
  busy(heap: Heap): void {
    if (heap.idle) this.#unlinkIdle(heap);
  }

  /** The last block placed in a heap was recycled: keep it idle, or release it. */
  emptied(heap: Heap): void {
    if (heap.lost || !this.#conf.caching) {
      this.release(heap);
      return;
    }
    this.#linkIdle(heap);
    if (this.#low > 0 && this.totals.reserved.current > this.#low) {
      this.releaseIdle(null, this.#low);
    }
  }

  /**
   * Releases idle heaps, oldest first, of one pool (or all) until reserved
   * bytes are at most `target`; adds the size of each to `sizes`, if given.
   *
   * @returns the bytes released
   */
  releaseIdle(only: PoolName | null, target: number, sizes?: Set<number>): number {
    let released = 0;
    for (let heap = this.#oldestIdle; heap !== null;) {
      const next = heap.newerIdle;
      if (this.totals.reserved.current <= target) break;
      // A map-pending staging buffer is still in use by its mapping.
      const mapping = !heap.isSplit && heap.buffer.mapState === "pending";
      if ((only === null || heap.pool === only) && !mapping) {
        released += heap.size;
        sizes?.add(heap.size);
        this.release(heap);
      }
      heap = next;
    }
    return released;
  }

  /** Releases a heap: its GPUBuffer is destroyed and its bytes leave the counters. */
  release(heap: Heap): void {
    if (heap.released) return;
    const pool = this.pools[heap.pool];
    if (heap.idle) this.#unlinkIdle(heap);
    if (heap.region && heap.region.usedBytes === 0) pool.tlsf!.removeRegion(heap.region);
    if (heap.block && !heap.isSplit) pool.cached.delete(heap.block);
    pool.heaps.delete(heap);
    this.#memory.destroyHeap(heap);
    subStat(pool.counters.reserved, this.totals.reserved, heap.size);
    pool.counters.heaps--;
    this.totals.heaps--;
    this.#recorder?.release(heap.id);
    if (this.#debug.releases) {
      this.#say(
        `released heap #${heap.id} of ${formatBytes(heap.size)} on ${heap.pool} pool` +
          ` (size ${heap.size} B, reserved: ${formatBytes(this.totals.reserved.current)})`,
      );
    }
  }

  /** Releases every heap, live blocks' too; verdicts that come later are ignored. */
  destroy(): void {
    for (const pool of Object.values(this.pools)) {
      for (const heap of [...pool.heaps]) this.release(heap);
    }
    this.#destroyed = true;
  }

  /** The device's refusal of a heap, once: null if none came since the last call. */
  takeDeviceError(): OutOfMemoryError | AllocatorError | null {
    const error = this.#deviceError;
    if (error !== null) this.#deviceError = null;
    return error;
  }

  /** Resolves once the device gave its verdict on every heap made so far. */
  settle(): Promise<void> {
    return this.#memory.settle();
  }

  #linkIdle(heap: Heap): void {
    heap.idle = true;
    heap.olderIdle = this.#newestIdle;
    heap.newerIdle = null;
    if (this.#newestIdle) this.#newestIdle.newerIdle = heap;
    else this.#oldestIdle = heap;
    this.#newestIdle = heap;
  }

  #unlinkIdle(heap: Heap): void {
    const older = heap.olderIdle;
    const newer = heap.newerIdle;
    if (older) older.newerIdle = newer;
    else this.#oldestIdle = newer;
    if (newer) newer.olderIdle = older;
    else this.#newestIdle = older;
    heap.idle = false;
    heap.olderIdle = heap.newerIdle = null;
  }

  /** A new heap, or null if the watermark or the shared budget has no room for it. */
  #create(pool: Pool, size: number, isSplit: boolean): Heap | null {
    const t = this.totals;
    if (this.#high > 0 && t.reserved.current + size > this.#high) {
      this.#refusedBy = "watermark";
      return null;
    }
    const heap = this.#memory.createHeap(pool.name, size, this.#nextId, isSplit);
    if (!heap) {
      this.#refusedBy = "budget";
      return null;
    }
    this.#nextId++;
    try {
      if (isSplit) heap.region = pool.tlsf!.addRegion(size, heap);
    } catch (error) {
      this.#memory.destroyHeap(heap); // whatever fails after createBuffer gives the memory back
      throw error;
    }
    pool.heaps.add(heap);
    addStat(pool.counters.reserved, t.reserved, size);
    addHeapCount(pool.counters, t);
    pool.counters.createBufferCalls++;
    t.createBufferCalls++;
    this.#recorder?.heap(heap.id, size, pool.name, isSplit);
    if (this.#debug.allocations) {
      this.#say(
        `new ${isSplit ? "" : "unsplit "}heap #${heap.id} of ${
          formatBytes(size)
        } on ${pool.name} pool (size ${size} B, reserved: ${formatBytes(t.reserved.current)})`,
      );
    }
    return heap;
  }

  /**
   * The device reported a heap as out of memory: report it, and stop using
   * the heap if it still exists (see Note [late verdicts] in gpu_memory.ts).
   */
  #onDeviceRefused(heap: Heap, message: string): void {
    if (this.#destroyed || heap.lost) return;
    heap.lost = true;
    this.#ooms++;
    const t = this.totals;
    this.#deviceError = new OutOfMemoryError({
      allocated: t.allocated.current,
      cached: t.reserved.current - t.allocated.current,
      limit: this.#high,
      requested: heap.size,
      pool: heap.pool,
      device: true,
      detail: `Heap #${heap.id} is unusable${
        heap.released ? " (it was released before the device said so)" : ""
      }: ${message}`,
    });
    if (heap.released) return;
    if (heap.region) this.pools[heap.pool].tlsf!.retireRegion(heap.region);
    if (heap.live === 0) this.release(heap);
  }
}
