/**
 * The caching allocator: pools of heaps (GPUBuffers) sub-allocated by TLSF,
 * staging buffers, a scalar pool, watermarks, garbage collection and exact
 * statistics — PyTorch's MPS allocator translated to WebGPU.
 *
 * This file is the policy for blocks: where a request is placed, when freed
 * memory may be handed out again, and the allocator's API. The layers below
 * it, each in a file of its own: `size_classes.ts` (pools, rounding and heap
 * sizes, on plain numbers), `tlsf.ts` (placement in a heap), `block.ts` (the
 * block, heap and pool records), `gpu_memory.ts` (the one place GPUBuffers
 * are made and destroyed) and `heaps.ts` (which heaps exist: made within the
 * watermarks and the budget, released when idle).
 *
 * @module
 */

import {
  BUDGET_HEAP_SHARE,
  DEDICATED_REUSE_SLACK,
  FRONT_CACHE_MAX_BLOCK,
  ROUND_LARGE,
  SHORT_RESERVED_RATIO,
  STAGING_REUSE_SLACK,
} from "./constants.ts";
import {
  type AllocatorSettings,
  type AllocConf,
  checkWatermarks,
  type DebugFlags,
  formatAllocConf,
  type HeapAllocatorOptions,
  parseBytes,
  readOptions,
} from "./config.ts";
import {
  Block,
  type BlockOwner,
  type BlockRecord,
  blockRecord,
  type Heap,
  newPool,
  newRecord,
  type Pool,
} from "./block.ts";
import type { AllocatorDevice } from "./device.ts";
import { AllocatorError, DeviceLostError } from "./errors.ts";
import { formatBytes } from "./format.ts";
import { Heaps } from "./heaps.ts";
import {
  type HeapDemand,
  POOL_NAMES,
  poolFor,
  type PoolName,
  SizeClasses,
  type Usage,
  USAGES,
} from "./size_classes.ts";
import type { Range } from "./tlsf.ts";
import {
  addBlockCount,
  addStat,
  emptyPoolCounters,
  type MemoryStats,
  type PoolCounters,
  type PoolStats,
  poolStats,
  resetAccumulated,
  resetPeak,
  subStat,
} from "./stats.ts";
import { flatMemoryStats, formatMemorySummary } from "./memory_summary.ts";
import type { MemoryBudget } from "./budget.ts";
import { type Snapshot, walkHeaps } from "./snapshot.ts";
import type { Trace } from "./trace.ts";
import { TraceRecorder } from "./trace_recorder.ts";
import { type PlanInfo, PlannedMemory } from "./planned_arena.ts";

export { Block } from "./block.ts";
export type { HeapAllocatorOptions } from "./config.ts";
export { POOL_NAMES, type PoolName, type Usage } from "./size_classes.ts";
export type { PlanInfo } from "./planned_arena.ts";

/** Element types a scalar can hold. */
export type ScalarType = "f32" | "i32" | "u32";
const SCALAR_TYPES: readonly ScalarType[] = ["f32", "i32", "u32"];
/** The pools with a front cache. */
const FRONT_POOLS: readonly PoolName[] = ["small", "uniform"];

/** Options of {@linkcode HeapAllocator.alloc}. */
export interface AllocOptions {
  /** What the block is for (default `"storage"`). */
  usage?: Usage;
  /** A name shown in debug output and snapshots. */
  label?: string;
  /**
   * The block is a cache the caller keeps for itself, such as the kernels'
   * parameter slots: its bytes count as cached, not allocated, so
   * `currentAllocatedMemory()` returns to its baseline once the caller's own
   * data is freed (default false). It is live all the same: freed only by
   * `free`.
   */
  cached?: boolean;
  /**
   * The block outlives many others (a model's weights, what a kernel derives
   * from them): it gets a GPUBuffer of its own size, so that it never pins a
   * heap of short-lived blocks nor keeps the holes they leave (Note
   * [long-lived blocks]). Not planned inside an iteration. Default false.
   */
  longLived?: boolean;
}

/**
 * A caching GPU memory allocator for one `GPUDevice`, with the semantics of
 * PyTorch's MPS allocator. Storage blocks are placed inside large GPUBuffers
 * (heaps) by TLSF; uniform blocks likewise, in heaps of their own; readback and upload blocks are one mappable
 * GPUBuffer each; scalars are uniform slots with their value written. Freed
 * memory stays cached for reuse until a watermark, `emptyCache()` or
 * `destroy()` releases it.
 *
 * WebGPU checks usage per GPUBuffer within a dispatch: a buffer bound as
 * read-write storage may not also be bound read-only. Since storage blocks
 * share heaps, declare every storage binding of a kernel `read_write`
 * (uniforms and scalars come from other heaps, so they never conflict).
 *
 * | method     | average | worst                                  |
 * | ---------- | ------- | -------------------------------------- |
 * | alloc      | O(1)    | O(h) when a heap must be made or freed |
 * | free       | O(1)    | O(1)                                   |
 * | scalar     | O(1)    | as alloc                               |
 * | submit     | O(p)    | O(p) blocks freed since last submit    |
 * | emptyCache | O(h)    | O(h) cached heaps                      |
 *
 * @example
 * ```ts
 * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const heap = new HeapAllocator(new FakeDevice());
 * const a = heap.alloc(1 << 20);
 * heap.free(a);
 * const b = heap.alloc(1 << 20); // the same memory, no new GPUBuffer
 * assert.equal(b.offset, a.offset);
 * assert.equal(heap.memoryStats().heaps, 1);
 * heap.destroy();
 * ```
 */
export class HeapAllocator implements BlockOwner {
  #device: AllocatorDevice;
  #heaps: Heaps;
  #sizes: SizeClasses;
  #conf: AllocConf;
  #debug: DebugFlags;
  #log: (line: string) => void;
  #budget: MemoryBudget | undefined;
  /** The pools and their counters (the same objects as the heaps'). */
  #pools: Record<PoolName, Pool>;
  #totals: PoolCounters = emptyPoolCounters();
  /** Blocks freed since the last submit that recorded work may still read. */
  #pending: BlockRecord[] = [];
  #nextBlockId = 1;
  /** Allocations and frees so far: the clock block ages are measured in. */
  #ops = 0;
  #destroyed = false;
  #submitHooks = new Set<() => GPUCommandBuffer[]>();
  /** The trace being recorded, or null: every hook is one null check when off. */
  #recorder: TraceRecorder | null = null;
  /** Reports blocks garbage-collected while live (debug flag `leak`), or null. */
  #leaks: FinalizationRegistry<BlockRecord> | null = null;
  /** Anything to tell of each block (leaks, a recording, a budget, debug lines): see #watchedNow. */
  #watched = false;
  /** Submit to reuse blocks freed since the last submit rather than make a heap. */
  #submitWhenShort: boolean;
  /** Planned iterations (Note [planned runs]), made at the first beginIteration; null before. */
  #plans: PlannedMemory | null = null;

  /**
   * Creates an allocator over a device; it makes no GPUBuffer until the first allocation.
   *
   * @param device the device to allocate from (a `GPUDevice`, or a {@linkcode FakeDevice})
   * @param options watermarks, alloc conf, debug output, shared budget
   */
  constructor(device: AllocatorDevice, options: HeapAllocatorOptions = {}) {
    if (!device || typeof device.createBuffer !== "function" || !device.limits) {
      throw new TypeError(`Cannot create HeapAllocator: expected a GPUDevice, got ${device}`);
    }
    this.#device = device;
    // Read once: a GPUDevice's limits object is slow to read per call.
    const limits = device.limits;
    const alignment = Math.max(
      limits.minStorageBufferOffsetAlignment,
      limits.minUniformBufferOffsetAlignment,
      4,
    );
    const read = readOptions(options);
    this.#conf = read.allocConf;
    this.#sizes = new SizeClasses(this.#conf, {
      maxBufferSize: limits.maxBufferSize,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxUniformBufferBindingSize: limits.maxUniformBufferBindingSize,
      alignment,
    }, device.adapterInfo?.isFallbackAdapter === true);
    this.#debug = read.debug;
    this.#log = read.log;
    if (this.#debug.leaks) {
      this.#leaks = new FinalizationRegistry((record) => this.#reportLeak(record));
    }
    this.#budget = options.budget;
    const short = options.submitWhenShort;
    if (short !== undefined && typeof short !== "boolean") {
      throw new TypeError(`Invalid submitWhenShort: expected true or false, got ${short}`);
    }
    this.#submitWhenShort = short === true;
    const caching = this.#conf.caching;
    this.#pools = {
      // Front caches for the pools of many small blocks (Note [front cache]); none
      // without caching, where a heap is released as soon as it is empty.
      small: newPool("small", alignment, true, caching ? FRONT_CACHE_MAX_BLOCK : 0),
      large: newPool("large", alignment, true),
      uniform: newPool(
        "uniform",
        alignment,
        true,
        // Capped: the cache's table grows with its largest size, and a device may allow
        // uniform bindings of gigabytes.
        caching ? Math.min(limits.maxUniformBufferBindingSize, FRONT_CACHE_MAX_BLOCK) : 0,
      ),
      scalar: newPool("scalar", alignment, true),
      readback: newPool("readback", alignment, false),
      upload: newPool("upload", alignment, false),
    };
    this.#heaps = new Heaps(this.#pools, this.#totals, {
      device,
      budget: this.#budget,
      conf: this.#conf,
      highWatermark: read.highWatermark,
      lowWatermark: read.lowWatermark,
      debug: this.#debug,
      say: (line) => this.#say(line),
    });
    this.#watched = this.#watchedNow();
  }

  /** The device this allocator allocates from. */
  get device(): AllocatorDevice {
    return this.#device;
  }

  /** Alignment of every block's offset and size: the device's larger offset alignment. */
  get alignment(): number {
    return this.#sizes.alignment;
  }

  /** The hard limit on reserved bytes (0: none); change it with {@linkcode HeapAllocator.setHighWatermark}. */
  get highWatermark(): number {
    return this.#heaps.high;
  }

  /**
   * Changes the hard limit on reserved bytes while the allocator runs (as
   * `torch.cuda.set_per_process_memory_fraction` does): later heaps are made
   * only within it. Lowered below what is reserved, it releases cached heaps,
   * oldest first, until reserved bytes fit (or only heaps with live blocks,
   * or blocks awaiting a submit, are left). A trace records the watermark
   * its recording started with.
   *
   * @example
   * ```ts
   * import { FakeDevice, HeapAllocator, OutOfMemoryError } from "@gpuheap/gpuheap";
   * import assert from "node:assert/strict";
   *
   * const heap = new HeapAllocator(new FakeDevice());
   * heap.free(heap.alloc(2 << 20)); // a 32 MiB large heap, cached
   * heap.alloc(4096); // a small heap: an eighth of what the allocator holds, 4 MiB
   * heap.setHighWatermark("16MiB");
   * assert.equal(heap.driverAllocatedMemory(), 4 << 20, "the cached heap went");
   * assert.throws(() => heap.alloc(13 << 20), OutOfMemoryError);
   * heap.setHighWatermark(0); // no limit
   * heap.alloc(10 << 20);
   * heap.destroy();
   * ```
   *
   * @param bytes the limit, as a number or `"4GiB"`; 0 for none
   * @throws {RangeError} not a byte count, or below the low watermark
   * @throws {AllocatorError} the allocator was destroyed
   */
  setHighWatermark(bytes: number | string): void {
    this.#checkAlive("set the high watermark");
    const high = parseBytes(bytes, "highWatermark");
    checkWatermarks(high, this.#heaps.low);
    this.#heaps.setWatermarks(high, this.#heaps.low);
  }

  /** The soft limit on reserved bytes (0: none). */
  get lowWatermark(): number {
    return this.#heaps.low;
  }

  /**
   * Allocates a block of at least `size` bytes.
   *
   * @throws {TypeError} size is not a number, or usage is unknown
   * @throws {RangeError} size is not a positive integer or exceeds the device's limits
   * @throws {OutOfMemoryError} the high watermark (or the device) cannot fit it
   * @throws {AllocatorError} the allocator was destroyed
   * @throws {DeviceLostError} the device was lost
   */
  alloc(size: number, options?: AllocOptions): Block {
    this.#checkUsable("allocate");
    const usage = options?.usage ?? "storage";
    if (usage !== "storage" && !USAGES.includes(usage)) {
      throw new TypeError(
        `Cannot allocate: unknown usage ${JSON.stringify(usage)} (expected ${USAGES.join(", ")})`,
      );
    }
    this.#sizes.check(size, usage);
    this.#throwDeviceError();
    const longLived = options?.longLived ?? false;
    if (typeof longLived !== "boolean") {
      throw new TypeError(`Cannot allocate: longLived must be a boolean, got ${typeof longLived}`);
    }
    this.#ops++;
    const pool = this.#pools[poolFor(usage, size)];
    if (this.#plans?.active === true && usage === "storage" && !longLived) {
      return this.#allocPlanned(pool, size, options?.label);
    }
    const r = newRecord(this, {
      pool: pool.name,
      requestedSize: size,
      size: this.#sizes.round(pool.name, size),
      usage,
      label: options?.label,
    });
    r.cached = options?.cached === true;
    // Staging blocks have a buffer of their own already: the mark changes nothing there.
    r.longLived = longLived && pool.tlsf !== null;
    return r.longLived ? this.#placeUnsplit(pool, r) : this.#place(pool, r);
  }

  /**
   * Allocates a scalar from the scalar pool with its value already written
   * (by `queue.writeBuffer`, so work submitted after this call sees it).
   * Bind it as a uniform: `var<uniform> s: f32;`.
   *
   * @throws {TypeError} the value is not a number or the type is unknown
   * @throws {RangeError} the value does not fit an integer type
   * @throws {DeviceLostError} the device was lost
   */
  scalar(value: number, type: ScalarType = "f32"): Block {
    this.#checkUsable("allocate a scalar");
    if (!SCALAR_TYPES.includes(type)) {
      throw new TypeError(
        `Cannot allocate a scalar: unknown type ${JSON.stringify(type)} (expected ${
          SCALAR_TYPES.join(", ")
        })`,
      );
    }
    if (typeof value !== "number") {
      throw new TypeError(`Cannot allocate a scalar: value must be a number, got ${typeof value}`);
    }
    const [lo, hi] = type === "i32" ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1];
    if (type !== "f32" && (!Number.isInteger(value) || value < lo || value > hi)) {
      throw new RangeError(
        `Cannot allocate a scalar: ${value} is not a ${type} (integers ${lo} to ${hi})`,
      );
    }
    this.#throwDeviceError();
    this.#ops++;
    const r = newRecord(this, {
      pool: "scalar",
      requestedSize: 4,
      size: this.#sizes.round("scalar", 4),
      usage: "uniform",
      label: `scalar ${type}`,
    });
    const block = this.#place(this.#pools.scalar, r);
    const data = type === "f32"
      ? new Float32Array([value])
      : type === "i32"
      ? new Int32Array([value])
      : new Uint32Array([value]);
    this.#device.queue.writeBuffer(r.heap.buffer, r.offset, data);
    return block;
  }

  /**
   * Frees a block. Its memory is reused at once if its `buffer` was never
   * read, otherwise after the next {@linkcode HeapAllocator.submit} (work
   * recorded before the free may still read it). A mapped staging block is
   * unmapped.
   *
   * @throws {AllocatorError} double free, a block of another allocator, or a destroyed allocator
   */
  free(block: Block): void {
    this.#checkAlive("free");
    const r = this.#own(block, "free");
    if (r.state !== "live") {
      throw new AllocatorError(
        `Cannot free block #${r.id} (${formatBytes(r.size)}, ${r.pool} pool): already freed`,
      );
    }
    this.#ops++;
    if (this.#watched) {
      this.#leaks?.unregister(r);
      this.#recorder?.free(r.id, r.touched);
    }
    const pool = this.#pools[r.pool];
    if (!r.cached) {
      subStat(pool.counters.allocated, this.#totals.allocated, r.size);
      subStat(pool.counters.requested, this.#totals.requested, r.requestedSize);
      // Active until reusable: now if untouched, else at the next submit.
      if (!r.touched) subStat(pool.counters.active, this.#totals.active, r.size);
      pool.counters.blocks--;
      this.#totals.blocks--;
    }
    if (pool.tlsf === null) {
      const buffer = r.heap.buffer;
      try {
        if (buffer.mapState !== "unmapped") buffer.unmap();
      } catch {
        // A lost device's buffers refuse to unmap; freeing must still work (DeviceLostError).
      }
    }
    if (this.#plans !== null && this.#plans.free(r)) {
      // A planned block: its bytes are the plan's again, safe by the plan's proof.
      this.#budget?.publish(this.#totals);
      return;
    }
    if (r.touched) {
      r.state = "pending";
      pool.counters.pendingFree += r.size;
      this.#totals.pendingFree += r.size;
      this.#pending.push(r);
    } else {
      this.#recycle(r, pool);
    }
    this.#budget?.publish(this.#totals);
  }

  /**
   * Submits command buffers to the device's queue, then makes every block
   * freed before this call reusable: everything recorded before those frees
   * is now on the queue, ahead of any later write. `submit()` with no
   * buffers only does the latter. Work of {@linkcode HeapAllocator.beforeSubmit}
   * hooks (e.g. a pending kernel batch) goes on the queue first.
   *
   * @throws {OutOfMemoryError} a heap made earlier was refused by the device
   * @throws {DeviceLostError} the device was lost
   */
  submit(commandBuffers: GPUCommandBuffer[] = []): void {
    this.#checkUsable("submit");
    this.#throwDeviceError();
    let all = commandBuffers;
    if (this.#submitHooks.size > 0) {
      all = [];
      for (const hook of this.#submitHooks) all.push(...hook());
      all.push(...commandBuffers);
    }
    this.#device.queue.submit(all);
    this.#recorder?.submit();
    this.#plans?.submitted();
    const pending = this.#pending;
    this.#pending = [];
    for (const r of pending) {
      const pool = this.#pools[r.pool];
      pool.counters.pendingFree -= r.size;
      this.#totals.pendingFree -= r.size;
      if (!r.cached) subStat(pool.counters.active, this.#totals.active, r.size);
      this.#recycle(r, pool);
    }
  }

  /**
   * Registers work that must reach the queue ahead of every submit: at each
   * {@linkcode HeapAllocator.submit}, `hook` returns command buffers (it may
   * also free blocks), which are submitted before the caller's. Whoever
   * records into an encoder of its own and frees blocks mid-recording (a
   * kernel batch) registers here, so that no submit can make those blocks
   * reusable while the work that reads them is still unsubmitted.
   *
   * @returns a function that removes the hook
   */
  beforeSubmit(hook: () => GPUCommandBuffer[]): () => void {
    this.#checkUsable("add a submit hook");
    this.#submitHooks.add(hook);
    return () => this.#submitHooks.delete(hook);
  }

  /**
   * Releases every cached block and every heap with nothing live in it.
   * Blocks freed since the last submit are kept until it. With no live blocks
   * and nothing awaiting a submit, `driverAllocatedMemory()` is 0 afterwards.
   *
   * @returns bytes released
   */
  emptyCache(): number {
    this.#checkAlive("empty the cache");
    this.#recorder?.emptyCache();
    this.#flushFront();
    return this.#heaps.releaseIdle(null, 0) + (this.#plans?.releaseIdle() ?? 0);
  }

  /** Bytes in live blocks (each block's rounded size). */
  currentAllocatedMemory(): number {
    this.#checkAlive("read stats");
    return this.#totals.allocated.current;
  }

  /** Bytes in GPUBuffers this allocator holds (heaps, scalar heaps, staging buffers). */
  driverAllocatedMemory(): number {
    this.#checkAlive("read stats");
    return this.#totals.reserved.current;
  }

  /** Exact statistics, per pool and in total. */
  memoryStats(): MemoryStats {
    this.#checkAlive("read stats");
    const pools = {} as Record<PoolName, PoolStats>;
    let largest = 0;
    for (const name of POOL_NAMES) {
      const pool = this.#pools[name];
      pools[name] = poolStats(pool.counters, this.#largestFree(pool));
      largest = Math.max(largest, pools[name].largestFreeRange);
    }
    return {
      ...poolStats(this.#totals, largest),
      pools,
      numAllocRetries: this.#heaps.retries,
      numOoms: this.#heaps.ooms,
      highWatermark: this.#heaps.high,
      lowWatermark: this.#heaps.low,
    };
  }

  /**
   * Sets every peak to its current value (`torch.cuda.reset_peak_memory_stats`).
   *
   * @throws {AllocatorError} the allocator was destroyed
   */
  resetPeakStats(): void {
    this.#checkAlive("reset stats");
    for (const counters of [this.#totals, ...POOL_NAMES.map((n) => this.#pools[n].counters)]) {
      resetPeak(counters);
    }
    this.#recorder?.resetPeak();
  }

  /**
   * Clears what the statistics accumulated, as
   * `torch.cuda.reset_accumulated_memory_stats` does: the bytes allocated
   * and freed in total, and the counts of allocations, cache hits,
   * createBuffer calls, retries and OOMs. Current values and peaks stay.
   *
   * @example
   * ```ts
   * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
   * import assert from "node:assert/strict";
   *
   * const heap = new HeapAllocator(new FakeDevice());
   * heap.free(heap.alloc(4096));
   * const kept = heap.alloc(4096);
   * heap.resetAccumulatedStats();
   * const stats = heap.memoryStats();
   * assert.deepEqual([stats.allocations, stats.allocatedBytes.allocated], [0, 0]);
   * assert.equal(stats.allocatedBytes.current, kept.size);
   * heap.destroy();
   * ```
   *
   * @throws {AllocatorError} the allocator was destroyed
   */
  resetAccumulatedStats(): void {
    this.#checkAlive("reset stats");
    for (const counters of [this.#totals, ...POOL_NAMES.map((n) => this.#pools[n].counters)]) {
      resetAccumulated(counters);
    }
    this.#heaps.resetCounts();
  }

  /**
   * The peak of bytes in live blocks since creation or the last
   * {@linkcode HeapAllocator.resetPeakStats} (`torch.cuda.max_memory_allocated`).
   *
   * @throws {AllocatorError} the allocator was destroyed
   */
  maxMemoryAllocated(): number {
    this.#checkAlive("read stats");
    return this.#totals.allocated.peak;
  }

  /**
   * The peak of bytes in GPUBuffers held since creation or the last
   * {@linkcode HeapAllocator.resetPeakStats} (`torch.cuda.max_memory_reserved`).
   *
   * @throws {AllocatorError} the allocator was destroyed
   */
  maxMemoryReserved(): number {
    this.#checkAlive("read stats");
    return this.#totals.reserved.peak;
  }

  /**
   * The statistics as a table to read (`torch.cuda.memory_summary`): bytes
   * allocated, active, requested and reserved, and the counts of blocks and
   * heaps — now, at their peak, allocated and freed in total — for all pools
   * and each pool used; non-releasable, cached and pending bytes; oversize
   * blocks and heaps. Walks the heaps (as {@linkcode HeapAllocator.snapshot}
   * does). See {@linkcode formatMemorySummary}.
   *
   * @example
   * ```ts
   * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
   * import assert from "node:assert/strict";
   *
   * const heap = new HeapAllocator(new FakeDevice());
   * const a = heap.alloc(3 << 20, { label: "weights" });
   * heap.free(a);
   * assert.match(heap.memorySummary(), /\| Reserved memory +\| +32\.00 MiB \|/);
   * heap.destroy();
   * ```
   *
   * @throws {AllocatorError} the allocator was destroyed
   */
  memorySummary(): string {
    return formatMemorySummary(this.snapshot());
  }

  /**
   * The statistics as one flat record keyed as `torch.cuda.memory_stats()`
   * (`"allocated_bytes.all.current"`, `"segment.large_pool.peak"`, …; see
   * {@linkcode flatMemoryStats}). Walks the heaps, as `snapshot()` does.
   *
   * @example
   * ```ts
   * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
   * import assert from "node:assert/strict";
   *
   * const heap = new HeapAllocator(new FakeDevice());
   * const before = heap.memoryStatsFlat()["allocated_bytes.all.current"];
   * heap.free(heap.alloc(4096));
   * assert.equal(heap.memoryStatsFlat()["allocated_bytes.all.current"], before);
   * assert.equal(heap.memoryStatsFlat()["allocation.all.allocated"], 1);
   * heap.destroy();
   * ```
   *
   * @throws {AllocatorError} the allocator was destroyed
   */
  memoryStatsFlat(): Record<string, number> {
    return flatMemoryStats(this.snapshot());
  }

  /**
   * Every heap with every block and free range in it, and the stats, as
   * plain JSON (format `"gpuheap-snapshot"`, version 1, documented with
   * {@linkcode Snapshot}). Takes time in proportion to the ranges held.
   *
   * @example
   * ```ts
   * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
   * import assert from "node:assert/strict";
   *
   * const heap = new HeapAllocator(new FakeDevice());
   * const a = heap.alloc(4000, { label: "x" });
   * const snap = heap.snapshot();
   * assert.equal(snap.heaps[0].id, a.heapId);
   * assert.deepEqual(
   *   snap.heaps[0].blocks.map((b) => [b.id, b.state, b.label]),
   *   [[a.id, "live", "x"], [null, "free", null]],
   * );
   * heap.destroy();
   * ```
   */
  snapshot(): Snapshot {
    this.#checkAlive("take a snapshot");
    const snapshot = walkHeaps({
      heaps: POOL_NAMES.flatMap((name) => [...this.#pools[name].heaps]),
      ranges: (heap) => this.#pools[heap.pool as PoolName].tlsf!.ranges(heap.region!),
      ops: this.#ops,
      stats: this.memoryStats(),
      settings: this.settings(),
    });
    this.#plans?.fillSnapshot(snapshot, this.#ops);
    return snapshot;
  }

  /** The settings this allocator runs with, as snapshots and traces record them. */
  settings(): AllocatorSettings {
    const l = this.#device.limits;
    return {
      allocConf: formatAllocConf(this.#conf),
      highWatermark: this.#heaps.high,
      lowWatermark: this.#heaps.low,
      alignment: this.#sizes.alignment,
      // Copied field by field: a GPUSupportedLimits does not serialize to JSON.
      limits: {
        maxBufferSize: l.maxBufferSize,
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxUniformBufferBindingSize: l.maxUniformBufferBindingSize,
        minStorageBufferOffsetAlignment: l.minStorageBufferOffsetAlignment,
        minUniformBufferOffsetAlignment: l.minUniformBufferOffsetAlignment,
      },
      fallbackAdapter: this.#device.adapterInfo?.isFallbackAdapter === true,
    };
  }

  /**
   * Starts recording a trace of alloc, free, scalar, submit, emptyCache and
   * heap events (format `"gpuheap-trace"`, version 1, documented with
   * {@linkcode Trace}). A recording started on a busy
   * allocator begins with the heaps and blocks held then. Recording again
   * starts over. With `stacks`, each allocation's label also names its call
   * site (`"tensor @ ops.ts:42 conv2d ← model.ts:7 forward"`: the innermost
   * frames outside the allocator), for the latest `maxEntries` allocations.
   *
   * @example
   * ```ts
   * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
   * import { replay } from "@gpuheap/gpuheap/tools";
   * import assert from "node:assert/strict";
   *
   * const heap = new HeapAllocator(new FakeDevice());
   * heap.startRecording();
   * heap.free(heap.alloc(1 << 20));
   * const trace = heap.stopRecording();
   * assert.deepEqual(trace.events.map((e) => e[0]), ["heap", "a", "f"]);
   * assert.equal(replay(trace).peakReserved, heap.memoryStats().reservedBytes.peak);
   * heap.destroy();
   * ```
   *
   * @param options `stacks`: keep a call site per allocation; `maxEntries`: for how many
   * @throws {TypeError} `stacks` is not a boolean
   * @throws {RangeError} `maxEntries` is not an integer >= 0
   */
  startRecording(options: { stacks?: boolean; maxEntries?: number } = {}): void {
    this.#checkAlive("start recording");
    const recorder = new TraceRecorder(this.settings(), options);
    if (this.#totals.heaps > 0) recorder.begin(this.snapshot(), this.#longLivedIds());
    this.#recorder = recorder;
    this.#heaps.record(recorder);
    this.#watched = true;
  }

  /**
   * Stops recording and returns the trace (JSON-ready).
   *
   * @throws {AllocatorError} no recording was started
   */
  stopRecording(): Trace {
    const recorder = this.#recorder;
    if (!recorder) {
      throw new AllocatorError("Cannot stop recording: no recording was started");
    }
    this.#recorder = null;
    this.#heaps.record(null);
    this.#watched = this.#watchedNow();
    return recorder.finish();
  }

  /** True between {@linkcode HeapAllocator.startRecording} and {@linkcode HeapAllocator.stopRecording}. */
  get recording(): boolean {
    return this.#recorder !== null;
  }

  /** Events recorded so far (0 when not recording): a replay maps its recording onto its input. */
  get recordedEvents(): number {
    return this.#recorder?.length ?? 0;
  }

  /**
   * Waits for the device's verdict on every heap made so far and throws if it
   * refused one. Heap creation is checked with an out-of-memory error scope
   * whose answer comes asynchronously; until this resolves, a refused heap is
   * reported by the next `alloc`, `scalar` or `submit` after the answer came.
   *
   * @throws {OutOfMemoryError} the device refused a heap
   * @throws {DeviceLostError} the device was lost
   */
  async checkDeviceErrors(): Promise<void> {
    await this.#heaps.settle();
    this.#checkUsable("check device errors");
    this.#throwDeviceError();
  }

  /**
   * Destroys every GPUBuffer of the allocator, live blocks' too: every block
   * is dead afterwards (`isLive` false, its `buffer` throws). Later calls of
   * any other method throw {@linkcode AllocatorError}; calling destroy again
   * does nothing.
   */
  destroy(): void {
    if (this.#destroyed) return;
    for (const name of FRONT_POOLS) this.#pools[name].front?.flush(() => {});
    for (const pool of Object.values(this.#pools)) {
      for (const heap of pool.heaps) {
        if (heap.block) heap.block.state = "free";
        if (!heap.region) continue;
        for (const range of pool.tlsf!.ranges(heap.region)) {
          if (!range.isFree) (range.tag as BlockRecord).state = "free";
        }
      }
    }
    this.#plans?.destroy();
    this.#plans = null;
    this.#destroyed = true;
    this.#heaps.destroy();
    this.#pending = [];
  }

  /** True once {@linkcode HeapAllocator.destroy} was called. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * Begins an iteration named `key` (say, by its input shape). The first
   * iteration with a key is recorded as it runs on the online allocator; at
   * its end its storage blocks are planned in one arena. Each later
   * iteration with that key takes every storage block at its planned offset,
   * with no search and no new GPUBuffer. One that departs from the recording
   * (another size, another order, an extra allocation) goes on with the
   * online allocator, is counted in {@linkcode HeapAllocator.plans}, and is
   * reported once. While plans exist the device queue's `writeBuffer` is
   * watched, to keep trap 1 (Note [planned runs] in `planned_arena.ts`).
   * A recording releases the arenas no run holds first, and with
   * `submitWhenShort` it submits rather than grow a heap: it runs once per
   * key, on the online allocator, and heaps grown for it would outlast it.
   *
   * @example
   * ```ts
   * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
   * import assert from "node:assert/strict";
   *
   * const heap = new HeapAllocator(new FakeDevice());
   * const step = () => {
   *   heap.beginIteration("batch 1");
   *   const a = heap.alloc(4096);
   *   const b = heap.alloc(8192);
   *   heap.free(a);
   *   const c = heap.alloc(4096); // a's bytes, in the plan
   *   heap.free(b);
   *   heap.free(c);
   *   heap.endIteration();
   *   return [a.offset, c.offset];
   * };
   * step(); // recorded
   * const [a, c] = step(); // planned
   * assert.equal(a, c);
   * const [plan] = heap.plans();
   * assert.deepEqual([plan.size, plan.peakLive, plan.departures], [12288, 12288, 0]);
   * heap.destroy();
   * ```
   *
   * @param key names the iteration: runs with the same key must repeat the same allocations
   * @throws {TypeError} the key is not a non-empty string
   * @throws {AllocatorError} an iteration is already running, or the allocator was destroyed
   */
  beginIteration(key: string): void {
    this.#checkUsable("begin an iteration");
    this.#plans ??= new PlannedMemory({
      alignment: this.#sizes.alignment,
      maxArena: this.#device.limits.maxBufferSize,
      queue: this.#device.queue,
      obtainArena: (size, k) => this.#obtainArena(size, k),
      releaseArena: (arena) => {
        arena.live = 0;
        this.#heaps.release(arena);
      },
      place: (arena, offset, size, requested, label) =>
        this.#placePlanned(arena, offset, size, requested, label),
      submit: () => this.submit(),
      say: (line) => this.#say(line),
    });
    this.#plans.begin(key);
    this.#recorder?.iter(key);
  }

  /**
   * Ends the iteration begun by {@linkcode HeapAllocator.beginIteration}; the
   * first with its key is planned now.
   *
   * @throws {AllocatorError} no iteration was begun
   */
  endIteration(): void {
    this.#checkAlive("end an iteration");
    if (this.#plans === null) {
      throw new AllocatorError("Cannot end iteration: no iteration was begun");
    }
    this.#plans.end();
    this.#recorder?.iter(null);
  }

  /** Each plan made by {@linkcode HeapAllocator.beginIteration}: its size ÷ peak live, runs and departures. */
  plans(): PlanInfo[] {
    this.#checkAlive("read plans");
    return this.#plans?.infos() ?? [];
  }

  // ---- placement ----
  //
  // Note [placement]: where a request goes, cheapest first, and what bounds the waste.
  // - A freed block of its size in the front cache (Note [front cache]), else a free range of
  //   a split heap (TLSF good fit): both cost no new memory.
  // - A block of one-heap size (Note [one block, one heap] in size_classes.ts) first takes a
  //   cached heap of its own size (Note [a cached heap serves nearby sizes]), then a free
  //   range of a split heap (still no new memory), and only then a new heap.
  // - A block of shared size that finds no free range takes a cached one-block heap, split
  //   (Note [a cached heap becomes a split heap]), before a new heap is made.
  // - A new heap is sized by Note [heaps follow demand]; before it is made, idle heaps are
  //   released to keep the cache bounded (Note [the cache bound] in heaps.ts).
  // At the peak, reserved bytes are live bytes plus: idle heaps (bounded by the cache bound),
  // the rounding and reuse slack of one-block heaps (at most 2 MiB or an eighth of the block),
  // the free tail of the heaps being filled (a fraction of reserved bytes), and the free ranges
  // of split heaps that no request fits (bounded by nothing but the workload: what
  // bench/commands/adversary.ts searches for).
  //
  // Note [a cached heap serves nearby sizes]: a cached one-block heap serves a request of at
  // least 1/(1 + 1/8) of it (and within 2 MiB): a larger one would hold a small block at the
  // cost of the next large one, and what it wastes counts while the block lives. Staging
  // buffers, short-lived, serve requests down to half their size.
  //
  // Note [a cached heap becomes a split heap]: when a block of shared size finds no free range,
  // the smallest cached one-block heap that holds it becomes a split heap (its region joins
  // TLSF) rather than a new GPUBuffer being made: a workload whose large tensors shrink (a
  // smaller batch, a shorter sequence) reuses their heaps for its smaller ones.
  //
  // Note [long-lived blocks]: a block its caller marks long-lived (`AllocOptions.longLived`)
  // gets a GPUBuffer of its own size (aligned, not rounded to 2 MiB), or a cached one within an
  // eighth of it, never a range of a split heap. Placed among short-lived blocks, it would keep
  // their heap for as long as it lives, and the holes they leave when freed would stay between
  // it and its long-lived neighbours; a heap sized for long-lived blocks alone would leave a
  // tail, since how many more will come is unknown. Its own buffer wastes its alignment only,
  // and costs one `createBuffer` per block (made once, as a model loads).
  //
  // Note [blocks count what they hold]: a block counts its rounded request in allocated bytes,
  // in a heap of its own too; the rest of that heap (its 2 MiB rounding, the slack of a reused
  // heap) is reserved, not allocated, as PyTorch counts its blocks, so that peak reserved ÷
  // peak live measures placement and peak live is PyTorch's peak allocated.

  /** A storage block while an iteration runs: at its planned offset, or online (and recorded). */
  #allocPlanned(pool: Pool, size: number, label: string | undefined): Block {
    const planned = this.#plans!.alloc(size, label);
    if (planned !== null) return planned;
    const r = newRecord(this, {
      pool: pool.name,
      requestedSize: size,
      size: this.#sizes.round(pool.name, size),
      usage: "storage",
      label,
    });
    const block = this.#place(pool, r);
    this.#plans!.placedOnline(r);
    return block;
  }

  /**
   * The arena of a plan: a large-pool heap of its own, never idle. The heaps
   * the storage pools hold idle go first: the recorded run left them, and
   * the arena takes their place.
   */
  #obtainArena(size: number, key: string): Heap {
    this.#flushFront();
    this.#heaps.releaseIdle("small", 0);
    this.#heaps.releaseIdle("large", 0);
    const r = newRecord(this, {
      pool: "large",
      requestedSize: size,
      size,
      usage: "storage",
      label: `plan ${JSON.stringify(key)}`,
    });
    const heap = this.#heaps.obtain(r, size, false);
    r.id = this.#nextBlockId++;
    r.heap = heap;
    r.bornAtOp = this.#ops;
    // Reserved, not allocated: the planned blocks in it count as allocated.
    r.state = "free";
    heap.block = r;
    heap.live = 1;
    return heap;
  }

  /** A planned block at `offset` in `arena`, counted as any block of the large pool. */
  #placePlanned(
    arena: Heap,
    offset: number,
    size: number,
    requested: number,
    label: string | undefined,
  ): Block {
    const r = newRecord(this, {
      pool: "large",
      requestedSize: requested,
      size,
      usage: "storage",
      label,
    });
    r.offset = offset;
    return this.#newBlock(this.#pools.large, r, arena, undefined, true);
  }

  /** Places a block for the request `r` in `pool`: a free range, a cached heap, or a new heap. */
  #place(pool: Pool, r: BlockRecord): Block {
    if (this.#budget?.pressured()) {
      this.#flushFront();
      this.#heaps.releaseIdle(null, 0);
    }
    if (pool.front !== null) {
      const range = pool.front.take(r.size);
      if (range !== null) return this.#fromFront(pool, r, range);
    }
    if (pool.tlsf === null) return this.#placeUnsplit(pool, r);
    const reserved = this.#totals.reserved.current;
    if (!this.#sizes.isDedicated(pool.name, r.size, reserved)) {
      const range = pool.tlsf.alloc(r.size) ?? this.#allocAfterFlush(pool, r.size);
      if (range) return this.#blockInRange(pool, r, range, true);
    }
    const heapSize = this.#sizes.splitHeapSize(pool.name, r.size, this.#demand(pool));
    return heapSize > 0 ? this.#fromNewHeap(pool, r, heapSize) : this.#placeUnsplit(pool, r);
  }

  /** What a new heap's size follows now (Note [heaps follow demand] in size_classes.ts). */
  #demand(pool: Pool): HeapDemand {
    const reserved = this.#totals.reserved.current;
    const low = this.#heaps.low;
    return {
      reserved,
      poolReserved: pool.counters.reserved.current,
      pressure: low > 0 && reserved + this.#sizes.xlargeHeapSize(reserved) > low,
      // Under a budget, a heap takes a share of what is left, so its sharers still
      // find room for theirs: sizes follow the budget, not just this allocator.
      limit: this.#budgetShare(),
    };
  }

  /** The largest heap a shared budget's room allows now (its share of what is left); else Infinity. */
  #budgetShare(): number {
    const budget = this.#budget;
    return budget && budget.limit > 0
      ? Math.max(0, budget.limit - budget.reserved) * BUDGET_HEAP_SHARE
      : Infinity;
  }

  /**
   * Submits, when the allocator may (`submitWhenShort`) and blocks of `pool`
   * freed since the last submit could hold `size` bytes, so that they can be
   * reused instead of a heap of `heapSize` bytes being made; true if it did.
   * While that heap keeps reserved bytes within {@linkcode SHORT_RESERVED_RATIO}
   * times the peak of live bytes (and its share of a shared budget), the heap
   * is made instead: a submit costs ~0.1 ms of CPU and GPU time, and a loop
   * that submits at every iteration is bound by it. A run recording a plan
   * submits always: it runs once per key, and heaps grown for it would stay
   * beside the plan's arena until the arena's first run releases them.
   */
  #submitToReuse(pool: Pool, size: number, heapSize: number): boolean {
    if (!this.#submitWhenShort || pool.counters.pendingFree < size) return false;
    const t = this.#totals;
    const grow = !this.#plans?.recording &&
      t.reserved.current + heapSize <= SHORT_RESERVED_RATIO * t.allocated.peak &&
      heapSize <= this.#budgetShare();
    if (grow) return false;
    this.submit();
    return true;
  }

  /**
   * A block in a heap of its own: dedicated large blocks and staging buffers.
   * A dedicated block counts its own size, not its heap's (Note [blocks count
   * what they hold]); a staging block is its whole buffer (it is mapped whole).
   * See Note [placement].
   */
  #placeUnsplit(pool: Pool, r: BlockRecord): Block {
    const staging = pool.tlsf === null;
    const cached = this.#takeCached(pool, r.size, staging, r.longLived);
    if (cached) {
      const heap = cached.heap;
      this.#heaps.busy(heap);
      heap.live = 1;
      if (staging) r.size = cached.size;
      return this.#newBlock(pool, r, heap, null, true);
    }
    if (r.longLived) return this.#newUnsplit(pool, r, r.size);
    // A free range of a split heap costs no new memory: better than a new dedicated heap.
    if (!staging) {
      const range = pool.tlsf!.alloc(r.size) ?? this.#allocAfterFlush(pool, r.size);
      if (range) return this.#blockInRange(pool, r, range, true);
    }
    const heapSize = this.#sizes.dedicatedHeapSize(r.size, pool.name);
    if (this.#submitToReuse(pool, r.size, heapSize)) return this.#place(pool, r);
    return this.#newUnsplit(pool, r, heapSize);
  }

  /** A block in a new heap of its own of `heapSize` bytes. */
  #newUnsplit(pool: Pool, r: BlockRecord, heapSize: number): Block {
    const staging = pool.tlsf === null;
    const heap = this.#obtain(r, heapSize, false);
    heap.live = 1;
    if (staging) r.size = heap.size;
    return this.#newBlock(pool, r, heap, null, false);
  }

  /** A block in a new split heap of `heapSize` bytes (or a cached unsplit one, split). */
  #fromNewHeap(pool: Pool, r: BlockRecord, heapSize: number): Block {
    if (this.#submitToReuse(pool, r.size, heapSize)) return this.#place(pool, r);
    // A cached dedicated heap serves as a split heap sooner than a new GPUBuffer.
    if (pool.cached.size > 0 && this.#convertCached(pool, r.size)) {
      return this.#blockInRange(pool, r, pool.tlsf!.alloc(r.size)!, true);
    }
    const heap = this.#obtain(r, heapSize, true);
    // The new heap is the only place with room: nothing else fit a moment ago.
    const range = pool.tlsf!.alloc(r.size);
    if (!range) {
      this.#heaps.release(heap);
      throw new AllocatorError(
        `gpuheap internal error: a new heap of ${heap.size} bytes cannot place ${r.size} bytes`,
      );
    }
    return this.#blockInRange(pool, r, range, false);
  }

  /** A block in a range the front cache kept: its heap is busy already. */
  #fromFront(pool: Pool, r: BlockRecord, range: Range): Block {
    const heap = range.region.owner as Heap;
    if (heap.lost) {
      // The device refused the heap since: its range goes back (to a retired region).
      this.#releaseRange(pool, range);
      return this.#place(pool, r);
    }
    if (!r.cached) {
      pool.counters.frontCacheHits++;
      this.#totals.frontCacheHits++;
    }
    return this.#newBlock(pool, r, heap, range, true);
  }

  /** Makes a heap for `r`, the front cache flushed first: the heaps it holds may go idle. */
  #obtain(r: BlockRecord, heapSize: number, isSplit: boolean): Heap {
    this.#flushFront();
    return this.#heaps.obtain(r, heapSize, isSplit);
  }

  /** Flushes the front cache and places `size` bytes in `pool` if that made room; else null. */
  #allocAfterFlush(pool: Pool, size: number): Range | null {
    return this.#flushFront() ? pool.tlsf!.alloc(size) : null;
  }

  /** Gives every block of the front caches back to TLSF; false if they were empty. */
  #flushFront(): boolean {
    let flushed = false;
    for (const name of FRONT_POOLS) {
      const pool = this.#pools[name];
      if (pool.front === null || pool.front.bytes === 0) continue;
      flushed = true;
      pool.front!.flush((range) => this.#releaseRange(pool, range));
    }
    return flushed;
  }

  /** Frees a range in its pool's TLSF; its heap may become idle. */
  #releaseRange(pool: Pool, range: Range): void {
    const heap = range.region.owner as Heap;
    pool.tlsf!.free(range);
    if (--heap.live === 0) this.#heaps.emptied(heap);
  }

  #blockInRange(pool: Pool, r: BlockRecord, range: Range, reused: boolean): Block {
    const heap = range.region.owner as Heap;
    if (heap.live++ === 0) this.#heaps.busy(heap);
    return this.#newBlock(pool, r, heap, range, reused);
  }

  /**
   * Completes the record of a block placed in `heap` and hands it out: in
   * `range`, whose size it takes, or all of the heap, with the size the
   * record holds.
   */
  #newBlock(
    pool: Pool,
    r: BlockRecord,
    heap: Heap,
    range: Range | null | undefined,
    reused: boolean,
  ): Block {
    // Read once and stored unconditionally: the hot path stays as short as it was.
    const size = range ? range.size : r.size;
    r.id = this.#nextBlockId++;
    r.heap = heap;
    r.range = range ?? null;
    r.size = size;
    r.bornAtOp = this.#ops;
    // The heap names its blocks, so a snapshot can walk them; a planned block (no range
    // given: undefined) is neither in a range nor its arena's own, which keeps its record.
    if (range) {
      r.offset = range.offset;
      range.tag = r;
    } else if (range === null) {
      heap.block = r;
    }
    const block = new Block(r, heap.buffer);
    const c = pool.counters;
    const t = this.#totals;
    // A block the caller keeps as a cache counts as cached bytes, in no figure of blocks.
    if (!r.cached) {
      addStat(c.allocated, t.allocated, size);
      addStat(c.requested, t.requested, r.requestedSize);
      addStat(c.active, t.active, size);
      addBlockCount(c, t);
      c.allocations++;
      t.allocations++;
      if (reused) {
        c.cacheHits++;
        t.cacheHits++;
      }
    }
    if (this.#watched) this.#watchPlaced(pool, r, block, reused);
    return block;
  }

  /** What a placed block tells whoever watches: leak registry, trace, budget, debug output. */
  #watchPlaced(pool: Pool, r: BlockRecord, block: Block, reused: boolean): void {
    this.#leaks?.register(block, r, r);
    this.#recorder?.placed(r, pool.name, r.heap.id);
    this.#budget?.publish(this.#totals);
    if (reused ? this.#debug.reuses : this.#debug.allocations) {
      this.#say(
        `${reused ? "reused" : "allocated"} block #${r.id} of ${
          formatBytes(r.size)
        } (size ${r.size} B, requested ${r.requestedSize} B${
          r.label ? `, ${r.label}` : ""
        }) from heap #${r.heap.id} at offset ${r.offset} on ${pool.name} pool`,
      );
    }
  }

  /** Ids of the live long-lived blocks: each is its heap's own block. */
  #longLivedIds(): Set<number> {
    const ids = new Set<number>();
    for (const pool of Object.values(this.#pools)) {
      for (const heap of pool.heaps) if (heap.block?.longLived) ids.add(heap.block.id);
    }
    return ids;
  }

  /** Whether anything watches blocks come and go: kept in step with what it reads. */
  #watchedNow(): boolean {
    return this.#leaks !== null || this.#recorder !== null || this.#budget !== undefined ||
      this.#debug.allocations || this.#debug.reuses;
  }

  /** Turns the smallest cached unsplit heap that holds `size` into a split heap. */
  #convertCached(pool: Pool, size: number): boolean {
    const record = pool.cached.take(size, Infinity);
    if (!record) return false;
    const heap = record.heap;
    heap.block = null;
    heap.isSplit = true;
    heap.region = pool.tlsf!.addRegion(heap.size, heap);
    this.#recorder?.split(heap.id);
    if (this.#debug.allocations) {
      this.#say(
        `split heap #${heap.id} of ${formatBytes(heap.size)} on ${pool.name} pool` +
          ` (size ${heap.size} B): its cached block #${record.id} is gone, blocks share it now`,
      );
    }
    return true;
  }

  /** A cached unsplit block that fits `size` without wasting much, removed from the cache. */
  #takeCached(pool: Pool, size: number, staging: boolean, longLived: boolean): BlockRecord | null {
    const slack = staging
      ? size * STAGING_REUSE_SLACK
      : Math.max(longLived ? 0 : ROUND_LARGE, size * DEDICATED_REUSE_SLACK);
    // A staging buffer still mapped (or map-pending) cannot be reused yet.
    return pool.cached.take(size, size + slack, staging ? unmapped : undefined);
  }

  /**
   * Puts a freed block's memory back: into the front cache, its heap's free
   * ranges, or the unsplit cache.
   */
  #recycle(r: BlockRecord, pool: Pool): void {
    r.state = "free";
    const heap = r.heap;
    if (r.range) {
      // Above the low watermark, freed memory goes where it can be released (reserved
      // bytes cross it only when a heap is made, and that flushes the cache).
      const low = this.#heaps.low;
      if (
        pool.front !== null && !heap.lost && (low === 0 || this.#totals.reserved.current <= low) &&
        pool.front.put(r.range, pool.tlsf!.freeBytes)
      ) return;
      pool.tlsf!.free(r.range);
    } else if (!heap.lost) {
      // Cached by what its heap holds: the next block may take more of it than this one did.
      r.size = this.#sizes.usableSize(heap.size, pool.name);
      pool.cached.add(r);
    }
    if (--heap.live === 0) this.#heaps.emptied(heap);
  }

  /** A live block was garbage-collected: its caller lost it without freeing it. */
  #reportLeak(r: BlockRecord): void {
    if (this.#destroyed || r.state !== "live") return;
    this.#say(
      `block #${r.id} of ${formatBytes(r.size)} (${
        r.label === undefined ? "no label" : JSON.stringify(r.label)
      }, ${r.pool} pool, heap #${r.heap.id}) was garbage-collected without being freed:` +
        ` its memory stays allocated until destroy()`,
    );
  }

  // ---- helpers ----

  #largestFree(pool: Pool): number {
    if (pool.tlsf) return pool.tlsf.largestFree();
    return pool.cached.largest();
  }

  #own(block: Block, what: string): BlockRecord {
    let r: BlockRecord;
    try {
      r = blockRecord(block);
    } catch {
      throw new TypeError(`Cannot ${what}: expected a Block, got ${block}`);
    }
    if (r.owner !== this) {
      throw new AllocatorError(
        `Cannot ${what} block #${r.id}: it belongs to another allocator`,
      );
    }
    return r;
  }

  #checkAlive(what: string): void {
    if (this.#destroyed) throw new AllocatorError(`Cannot ${what}: the allocator was destroyed`);
  }

  /** Checks that the allocator and its device can still be used. */
  #checkUsable(what: string): void {
    this.#checkAlive(what);
    const lost = this.#heaps.lost;
    if (lost !== null) throw new DeviceLostError(what, lost.reason, lost.message);
  }

  #throwDeviceError(): void {
    const error = this.#heaps.takeDeviceError();
    if (error !== null) throw error;
  }

  #say(line: string): void {
    try {
      this.#log(`gpuheap: ${line}`);
    } catch {
      // A failing logger must not leave an allocation half done.
    }
  }
}

/** True for a block whose GPUBuffer is neither mapped nor being mapped. */
function unmapped(record: BlockRecord): boolean {
  return record.heap.buffer.mapState === "unmapped";
}
