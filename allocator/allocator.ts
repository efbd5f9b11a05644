/**
 * The caching allocator: pools of heaps (GPUBuffers) sub-allocated by TLSF,
 * staging buffers, a scalar pool, watermarks, garbage collection and exact
 * statistics — PyTorch's MPS allocator translated to WebGPU.
 *
 * @module
 */

import {
  DEDICATED_REUSE_SLACK,
  MAX_SCALAR_SIZE,
  MAX_SMALL_ALLOC,
  MIN_LARGE_ALLOC,
  MIN_STAGING,
  ROUND_LARGE,
  SCALAR_HEAP,
  STAGING_DIVISIONS,
  STAGING_REUSE_SLACK,
  UNIFORM_HEAP,
  XLARGE_HEAP,
  XLARGE_HEAP_UNIFIED,
} from "./constants.ts";
import {
  type AllocatorSettings,
  type AllocConf,
  type DebugFlags,
  formatAllocConf,
  parseAllocConf,
  parseBytes,
  parseDebug,
  readEnv,
} from "./config.ts";
import type { AllocatorDevice, AllocatorLimits } from "./device.ts";
import { AllocatorError, OutOfMemoryError } from "./errors.ts";
import { formatBytes } from "./format.ts";
import { type Range, type Region, Tlsf } from "./tlsf.ts";
import {
  addStat,
  emptyPoolCounters,
  type MemoryStats,
  type PoolCounters,
  type PoolStats,
  resetPeak,
} from "./stats.ts";
import type { MemoryBudget } from "./budget.ts";
import { type Snapshot, walkHeaps } from "./snapshot.ts";
import type { Trace } from "./trace.ts";
import { TraceRecorder } from "./trace_recorder.ts";

/** What a block is for: it decides the pool, the GPUBuffer usage and the alignment. */
export type Usage = "storage" | "uniform" | "readback" | "upload";
/** The allocator's pools. */
export type PoolName = "small" | "large" | "uniform" | "scalar" | "readback" | "upload";
/** Element types a scalar can hold. */
export type ScalarType = "f32" | "i32" | "u32";

/** Every pool, in the order stats list them. */
export const POOL_NAMES: readonly PoolName[] = [
  "small",
  "large",
  "uniform",
  "scalar",
  "readback",
  "upload",
];
const USAGES: readonly Usage[] = ["storage", "uniform", "readback", "upload"];
const SCALAR_TYPES: readonly ScalarType[] = ["f32", "i32", "u32"];

/** Options of a {@linkcode HeapAllocator}; each falls back to its environment variable. */
export interface HeapAllocatorOptions {
  /** Hard limit on reserved bytes, as a number or `"512MiB"` (0: none). `GPUHEAP_HIGH_WATERMARK`. */
  highWatermark?: number | string;
  /**
   * Soft limit on reserved bytes (0: none): above it, cached memory is released
   * oldest first and no extra-large heaps are made. `GPUHEAP_LOW_WATERMARK`.
   */
  lowWatermark?: number | string;
  /** Alloc conf, e.g. `"roundup_power2_divisions:4"`. `GPUHEAP_ALLOC_CONF`. */
  allocConf?: string;
  /** Debug output: `true`, or flags `"alloc,reuse,release"`. `GPUHEAP_DEBUG`. */
  debug?: boolean | string;
  /** Where debug lines go (default: `console.error`). */
  log?: (line: string) => void;
  /** A budget shared with other allocators (e.g. across Workers). */
  budget?: MemoryBudget;
}

/** Options of {@linkcode HeapAllocator.alloc}. */
export interface AllocOptions {
  /** What the block is for (default `"storage"`). */
  usage?: Usage;
  /** A name shown in debug output and snapshots. */
  label?: string;
}

/** @internal a heap: one GPUBuffer, split among many blocks or holding one. */
interface Heap {
  id: number;
  pool: PoolName;
  size: number;
  buffer: GPUBuffer;
  isSplit: boolean;
  region: Region | null;
  /** The one block of an unsplit heap. */
  block: Block | null;
  /** Blocks placed in the heap: live, or freed and waiting for a submit. */
  live: number;
  lost: boolean;
  createdAt: number;
}

/** @internal per-block state the allocator keeps out of the public surface. */
interface BlockState {
  owner: HeapAllocator;
  heap: Heap;
  range: Range | null;
  state: "live" | "pending" | "free";
  touched: boolean;
  id: number;
  /** The allocator's operation count when the block was handed out (a clock cheaper than performance.now()). */
  bornAtOp: number;
}

let stateOf: (block: Block) => BlockState;
let touchless: (block: Block) => GPUBuffer;

/**
 * A range of a GPUBuffer handed out by a {@linkcode HeapAllocator}. Bind it
 * as `{ buffer, offset, size }` or with {@linkcode Block.binding}.
 */
export class Block {
  /** Byte offset of the block inside {@linkcode Block.buffer}. */
  readonly offset: number;
  /** Usable bytes (the request rounded up). */
  readonly size: number;
  /** Bytes the caller asked for. */
  readonly requestedSize: number;
  /** What the block is for. */
  readonly usage: Usage;
  /** The pool it came from. */
  readonly pool: PoolName;
  /** The caller's label, if any. */
  readonly label: string | undefined;
  #buffer: GPUBuffer;
  #state: BlockState;

  static {
    stateOf = (block) => block.#state;
    touchless = (block) => block.#buffer;
  }

  /** @internal blocks are made by {@linkcode HeapAllocator.alloc}. */
  constructor(
    buffer: GPUBuffer,
    offset: number,
    size: number,
    requestedSize: number,
    usage: Usage,
    pool: PoolName,
    label: string | undefined,
    state: BlockState,
  ) {
    this.#buffer = buffer;
    this.offset = offset;
    this.size = size;
    this.requestedSize = requestedSize;
    this.usage = usage;
    this.pool = pool;
    this.label = label;
    this.#state = state;
  }

  /**
   * The GPUBuffer the block lies in. Reading it marks the block as possibly
   * used by recorded GPU work, so once freed it is reused only after the next
   * {@linkcode HeapAllocator.submit}.
   */
  get buffer(): GPUBuffer {
    this.#state.touched = true;
    return this.#buffer;
  }

  /** Identifier of the heap (GPUBuffer) the block lies in, as snapshots and debug output name it. */
  get heapId(): number {
    return this.#state.heap.id;
  }

  /** Identifier of the block, unique within its allocator. */
  get id(): number {
    return this.#state.id;
  }

  /** True until the block is freed. */
  get isLive(): boolean {
    return this.#state.state === "live";
  }

  /** A bind group entry resource: the requested bytes, rounded up to 4 as WebGPU requires. */
  binding(): GPUBufferBinding {
    return {
      buffer: this.buffer,
      offset: this.offset,
      size: Math.ceil(this.requestedSize / 4) * 4,
    };
  }
}

// A buffer bound as read-write storage in a dispatch may not be bound there in
// any other way (WebGPU usage scopes are per GPUBuffer), so uniforms and
// scalars live in heaps of their own, apart from storage heaps.
const BUFFER_USAGE: Record<PoolName, number> = {
  small: 0x80 | 0x08 | 0x04, // STORAGE | COPY_DST | COPY_SRC
  large: 0x80 | 0x08 | 0x04,
  uniform: 0x40 | 0x08 | 0x04, // UNIFORM | COPY_DST | COPY_SRC
  scalar: 0x40 | 0x08, // UNIFORM | COPY_DST
  readback: 0x01 | 0x08, // MAP_READ | COPY_DST
  upload: 0x02 | 0x04, // MAP_WRITE | COPY_SRC
};

interface Pool {
  name: PoolName;
  /** Placement over the pool's split heaps (none for staging pools). */
  tlsf: Tlsf | null;
  heaps: Set<Heap>;
  /** Freed blocks of unsplit heaps, ascending by size, ready for reuse. */
  cached: Block[];
  counters: PoolCounters;
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
 * import { HeapAllocator, FakeDevice } from "../mod.ts";
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
export class HeapAllocator {
  #device: AllocatorDevice;
  /** The device's limits, read once: a GPUDevice's limits object is slow to read per call. */
  #limits: AllocatorLimits;
  #granule: number;
  #conf: AllocConf;
  #debug: DebugFlags;
  #log: (line: string) => void;
  #high: number;
  #low: number;
  #budget: MemoryBudget | undefined;
  #xlarge: number;
  #pools: Record<PoolName, Pool>;
  #totals: PoolCounters = emptyPoolCounters();
  /** Heaps with nothing placed in them, oldest first: what GC releases. */
  #idle = new Set<Heap>();
  /** Blocks freed since the last submit that recorded work may still read. */
  #pending: Block[] = [];
  #retries = 0;
  #ooms = 0;
  #nextHeapId = 1;
  #nextBlockId = 1;
  /** Allocations and frees so far: the clock block ages are measured in. */
  #ops = 0;
  #destroyed = false;
  #deviceError: OutOfMemoryError | null = null;
  #scopes = new Set<Promise<void>>();
  #submitHooks = new Set<() => GPUCommandBuffer[]>();
  /** The trace being recorded, or null: every hook is one null check when off. */
  #recorder: TraceRecorder | null = null;

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
    const limits = {
      maxBufferSize: device.limits.maxBufferSize,
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxUniformBufferBindingSize: device.limits.maxUniformBufferBindingSize,
      minStorageBufferOffsetAlignment: device.limits.minStorageBufferOffsetAlignment,
      minUniformBufferOffsetAlignment: device.limits.minUniformBufferOffsetAlignment,
    };
    this.#limits = limits;
    this.#granule = Math.max(
      limits.minStorageBufferOffsetAlignment,
      limits.minUniformBufferOffsetAlignment,
      4,
    );
    this.#high = parseBytes(
      options.highWatermark ?? readEnv("GPUHEAP_HIGH_WATERMARK") ?? 0,
      "highWatermark",
    );
    this.#low = parseBytes(
      options.lowWatermark ?? readEnv("GPUHEAP_LOW_WATERMARK") ?? 0,
      "lowWatermark",
    );
    if (this.#high > 0 && this.#low > this.#high) {
      throw new RangeError(
        `Invalid watermarks: lowWatermark ${this.#low} is above highWatermark ${this.#high}`,
      );
    }
    this.#conf = parseAllocConf(options.allocConf ?? readEnv("GPUHEAP_ALLOC_CONF") ?? "");
    this.#debug = parseDebug(options.debug ?? readEnv("GPUHEAP_DEBUG"));
    this.#log = options.log ?? ((line) => console.error(line));
    this.#budget = options.budget;
    const unified = device.adapterInfo?.isFallbackAdapter === true;
    this.#xlarge = Math.min(
      this.#conf.xlargeHeap || (unified ? XLARGE_HEAP_UNIFIED : XLARGE_HEAP),
      this.#floorGranule(limits.maxBufferSize),
    );
    const pool = (name: PoolName, split: boolean): Pool => ({
      name,
      tlsf: split ? new Tlsf(this.#granule) : null,
      heaps: new Set(),
      cached: [],
      counters: emptyPoolCounters(),
    });
    this.#pools = {
      small: pool("small", true),
      large: pool("large", true),
      uniform: pool("uniform", true),
      scalar: pool("scalar", true),
      readback: pool("readback", false),
      upload: pool("upload", false),
    };
  }

  /** The device this allocator allocates from. */
  get device(): AllocatorDevice {
    return this.#device;
  }

  /** Alignment of every block's offset and size: the device's larger offset alignment. */
  get alignment(): number {
    return this.#granule;
  }

  /** The hard limit on reserved bytes (0: none). */
  get highWatermark(): number {
    return this.#high;
  }

  /** The soft limit on reserved bytes (0: none). */
  get lowWatermark(): number {
    return this.#low;
  }

  /**
   * Allocates a block of at least `size` bytes.
   *
   * @throws {TypeError} size is not a number, or usage is unknown
   * @throws {RangeError} size is not a positive integer or exceeds the device's limits
   * @throws {OutOfMemoryError} the high watermark (or the device) cannot fit it
   * @throws {AllocatorError} the allocator was destroyed
   */
  alloc(size: number, options: AllocOptions = {}): Block {
    this.#checkAlive("allocate");
    const usage = options.usage ?? "storage";
    if (usage !== "storage" && !USAGES.includes(usage)) {
      throw new TypeError(
        `Cannot allocate: unknown usage ${JSON.stringify(usage)} (expected ${USAGES.join(", ")})`,
      );
    }
    this.#checkSize(size, usage);
    this.#throwDeviceError();
    this.#ops++;
    const pool = usage !== "storage" ? usage : size <= MAX_SMALL_ALLOC ? "small" : "large";
    return this.#place(this.#pools[pool], size, usage, options.label);
  }

  /**
   * Allocates a scalar from the scalar pool with its value already written
   * (by `queue.writeBuffer`, so work submitted after this call sees it).
   * Bind it as a uniform: `var<uniform> s: f32;`.
   *
   * @throws {TypeError} the value is not a number or the type is unknown
   * @throws {RangeError} the value does not fit an integer type
   */
  scalar(value: number, type: ScalarType = "f32"): Block {
    this.#checkAlive("allocate a scalar");
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
    const block = this.#place(this.#pools.scalar, 4, "uniform", `scalar ${type}`);
    const data = type === "f32"
      ? new Float32Array([value])
      : type === "i32"
      ? new Int32Array([value])
      : new Uint32Array([value]);
    this.#device.queue.writeBuffer(touchless(block), block.offset, data);
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
    const s = this.#own(block, "free");
    if (s.state !== "live") {
      throw new AllocatorError(
        `Cannot free block #${s.id} (${
          formatBytes(block.size)
        }, ${block.pool} pool): already freed`,
      );
    }
    this.#ops++;
    this.#recorder?.free(s.id, s.touched);
    const pool = this.#pools[block.pool];
    addStat(pool.counters.allocated, this.#totals.allocated, -block.size);
    addStat(pool.counters.requested, this.#totals.requested, -block.requestedSize);
    pool.counters.blocks--;
    this.#totals.blocks--;
    if (pool.tlsf === null) {
      const buffer = touchless(block);
      if (buffer.mapState !== "unmapped") buffer.unmap();
    }
    if (s.touched) {
      s.state = "pending";
      pool.counters.pendingFree += block.size;
      this.#totals.pendingFree += block.size;
      this.#pending.push(block);
    } else {
      this.#recycle(block);
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
   */
  submit(commandBuffers: GPUCommandBuffer[] = []): void {
    this.#checkAlive("submit");
    this.#throwDeviceError();
    let all = commandBuffers;
    if (this.#submitHooks.size > 0) {
      all = [];
      for (const hook of this.#submitHooks) all.push(...hook());
      all.push(...commandBuffers);
    }
    this.#device.queue.submit(all);
    this.#recorder?.submit();
    const pending = this.#pending;
    this.#pending = [];
    for (const block of pending) {
      const pool = this.#pools[block.pool];
      pool.counters.pendingFree -= block.size;
      this.#totals.pendingFree -= block.size;
      this.#recycle(block);
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
    this.#checkAlive("add a submit hook");
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
    return this.#releaseIdle(null, 0);
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
      pools[name] = this.#poolStats(pool.counters, this.#largestFree(pool));
      largest = Math.max(largest, pools[name].largestFreeRange);
    }
    return {
      ...this.#poolStats(this.#totals, largest),
      pools,
      numAllocRetries: this.#retries,
      numOoms: this.#ooms,
      highWatermark: this.#high,
      lowWatermark: this.#low,
    };
  }

  /** Sets every peak to its current value. */
  resetPeakStats(): void {
    this.#checkAlive("reset stats");
    for (const counters of [this.#totals, ...POOL_NAMES.map((n) => this.#pools[n].counters)]) {
      resetPeak(counters);
    }
    this.#recorder?.resetPeak();
  }

  /**
   * Every heap with every block and free range in it, and the stats, as
   * plain JSON (format `"gpuheap-snapshot"`, version 1, documented with
   * {@linkcode Snapshot}). Takes time in proportion to the ranges held.
   *
   * @example
   * ```ts
   * import { FakeDevice, HeapAllocator } from "../mod.ts";
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
    return walkHeaps({
      heaps: POOL_NAMES.flatMap((name) => [...this.#pools[name].heaps]),
      ranges: (heap) => this.#pools[heap.pool as PoolName].tlsf!.ranges(heap.region!),
      blockState: (block) => stateOf(block as Block),
      ops: this.#ops,
      stats: this.memoryStats(),
      settings: this.settings(),
    });
  }

  /** The settings this allocator runs with, as snapshots and traces record them. */
  settings(): AllocatorSettings {
    const l = this.#device.limits;
    return {
      allocConf: formatAllocConf(this.#conf),
      highWatermark: this.#high,
      lowWatermark: this.#low,
      alignment: this.#granule,
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
   * import { FakeDevice, HeapAllocator } from "../mod.ts";
   * import { replay } from "./tools/replay.ts";
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
    if (this.#totals.heaps > 0) recorder.begin(this.snapshot());
    this.#recorder = recorder;
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
    return recorder.finish();
  }

  /** True between {@linkcode HeapAllocator.startRecording} and {@linkcode HeapAllocator.stopRecording}. */
  get recording(): boolean {
    return this.#recorder !== null;
  }

  /**
   * Waits for the device's verdict on every heap made so far and throws if it
   * refused one. Heap creation is checked with an out-of-memory error scope
   * whose answer comes asynchronously; until this resolves, a refused heap is
   * reported by the next `alloc`, `scalar` or `submit` after the answer came.
   *
   * @throws {OutOfMemoryError} the device refused a heap
   */
  async checkDeviceErrors(): Promise<void> {
    while (this.#scopes.size > 0) await Promise.all([...this.#scopes]);
    this.#throwDeviceError();
  }

  /**
   * Destroys every GPUBuffer of the allocator, live blocks' too. Later calls
   * of any other method throw {@linkcode AllocatorError}; calling destroy
   * again does nothing.
   */
  destroy(): void {
    if (this.#destroyed) return;
    for (const name of POOL_NAMES) {
      for (const heap of [...this.#pools[name].heaps]) this.#releaseHeap(heap);
    }
    this.#pending = [];
    this.#destroyed = true;
  }

  /** True once {@linkcode HeapAllocator.destroy} was called. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  // ---- placement ----

  #place(pool: Pool, requested: number, usage: Usage, label: string | undefined): Block {
    if (this.#budget?.pressured()) this.#releaseIdle(null, 0);
    if (pool.tlsf === null) return this.#placeUnsplit(pool, requested, usage, label);
    const size = this.#round(pool, requested);
    const dedicated = pool.name === "large" && size >= this.#xlarge / 2;
    if (!dedicated) {
      const range = pool.tlsf.alloc(size);
      if (range) return this.#blockInRange(pool, range, requested, usage, label, true);
    }
    if (pool.name !== "large") {
      const heapSize = pool.name === "small"
        ? this.#conf.smallHeap
        : pool.name === "uniform"
        ? UNIFORM_HEAP
        : SCALAR_HEAP;
      return this.#fromNewHeap(pool, size, Math.max(heapSize, size), requested, usage, label);
    }
    const pressure = this.#low > 0 && this.#totals.reserved.current + this.#xlarge > this.#low;
    if (!dedicated && size < MIN_LARGE_ALLOC) {
      return this.#fromNewHeap(pool, size, this.#conf.largeHeap, requested, usage, label);
    }
    if (!dedicated && !pressure) {
      return this.#fromNewHeap(pool, size, this.#xlarge, requested, usage, label);
    }
    return this.#placeUnsplit(pool, requested, usage, label);
  }

  /** A block in a heap of its own: dedicated large blocks and staging buffers. */
  #placeUnsplit(pool: Pool, requested: number, usage: Usage, label: string | undefined): Block {
    const size = this.#round(pool, requested);
    const staging = pool.tlsf === null;
    const cached = this.#takeCached(pool, size, staging);
    if (cached) return this.#reuseUnsplit(pool, cached, requested, usage, label);
    // A free range of a split heap costs no new memory: better than a new dedicated heap.
    if (!staging) {
      const range = pool.tlsf!.alloc(size);
      if (range) return this.#blockInRange(pool, range, requested, usage, label, true);
    }
    const heapSize = staging ? size : Math.min(
      Math.ceil(size / ROUND_LARGE) * ROUND_LARGE,
      this.#floorGranule(this.#limits.maxBufferSize),
    );
    const heap = this.#obtainHeap(pool, heapSize, false, size, requested);
    const usable = staging
      ? heap.size
      : Math.min(heap.size, this.#floorGranule(this.#limits.maxStorageBufferBindingSize));
    heap.live = 1;
    const block = this.#newBlock(pool, heap, null, 0, usable, requested, usage, label, false);
    heap.block = block;
    return block;
  }

  #fromNewHeap(
    pool: Pool,
    size: number,
    heapSize: number,
    requested: number,
    usage: Usage,
    label: string | undefined,
  ): Block {
    // A cached dedicated heap serves as a split heap sooner than a new GPUBuffer.
    if (pool.cached.length > 0 && this.#convertCached(pool, size)) {
      const range = pool.tlsf!.alloc(size)!;
      return this.#blockInRange(pool, range, requested, usage, label, true);
    }
    this.#obtainHeap(pool, heapSize, true, size, requested);
    // The new heap is the only place with room: nothing else fit a moment ago.
    const range = pool.tlsf!.alloc(size);
    if (!range) throw new Error(`gpuheap internal error: a new heap cannot place ${size} bytes`);
    return this.#blockInRange(pool, range, requested, usage, label, false);
  }

  #blockInRange(
    pool: Pool,
    range: Range,
    requested: number,
    usage: Usage,
    label: string | undefined,
    reused: boolean,
  ): Block {
    const heap = range.region.owner as Heap;
    if (heap.live++ === 0) this.#idle.delete(heap);
    return this.#newBlock(
      pool,
      heap,
      range,
      range.offset,
      range.size,
      requested,
      usage,
      label,
      reused,
    );
  }

  #reuseUnsplit(
    pool: Pool,
    old: Block,
    requested: number,
    usage: Usage,
    label: string | undefined,
  ): Block {
    const heap = stateOf(old).heap;
    this.#idle.delete(heap);
    heap.live = 1;
    const block = this.#newBlock(pool, heap, null, 0, old.size, requested, usage, label, true);
    heap.block = block;
    return block;
  }

  #newBlock(
    pool: Pool,
    heap: Heap,
    range: Range | null,
    offset: number,
    size: number,
    requested: number,
    usage: Usage,
    label: string | undefined,
    reused: boolean,
  ): Block {
    const state: BlockState = {
      owner: this,
      heap,
      range,
      state: "live",
      touched: false,
      id: this.#nextBlockId++,
      bornAtOp: this.#ops,
    };
    const block = new Block(heap.buffer, offset, size, requested, usage, pool.name, label, state);
    // The range names its block, so a snapshot can walk a heap's ranges.
    if (range) range.tag = block;
    this.#recorder?.placed(state.id, requested, usage, pool.name, heap.id, offset, size, label);
    addStat(pool.counters.allocated, this.#totals.allocated, size);
    addStat(pool.counters.requested, this.#totals.requested, requested);
    pool.counters.blocks++;
    this.#totals.blocks++;
    pool.counters.allocations++;
    this.#totals.allocations++;
    if (reused) {
      pool.counters.cacheHits++;
      this.#totals.cacheHits++;
    }
    this.#budget?.publish(this.#totals);
    if (reused ? this.#debug.reuses : this.#debug.allocations) {
      this.#say(
        `${reused ? "reused" : "allocated"} block #${state.id} of ${
          formatBytes(size)
        } (size ${size} B, requested ${requested} B${
          label ? `, ${label}` : ""
        }) from heap #${heap.id} at offset ${offset} on ${pool.name} pool`,
      );
    }
    return block;
  }

  /** Turns the smallest cached unsplit heap that holds `size` into a split heap. */
  #convertCached(pool: Pool, size: number): boolean {
    const cached = pool.cached;
    let lo = 0;
    let hi = cached.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cached[mid].size < size) lo = mid + 1;
      else hi = mid;
    }
    if (lo >= cached.length) return false;
    const block = cached.splice(lo, 1)[0];
    const heap = stateOf(block).heap;
    heap.block = null;
    heap.isSplit = true;
    heap.region = pool.tlsf!.addRegion(heap.size, heap);
    this.#recorder?.split(heap.id);
    if (this.#debug.allocations) {
      this.#say(
        `split heap #${heap.id} of ${formatBytes(heap.size)} on ${pool.name} pool` +
          ` (size ${heap.size} B): its cached block #${
            stateOf(block).id
          } is gone, blocks share it now`,
      );
    }
    return true;
  }

  /** A cached unsplit block that fits `size` without wasting much, removed from the cache. */
  #takeCached(pool: Pool, size: number, staging: boolean): Block | null {
    const cached = pool.cached;
    let lo = 0;
    let hi = cached.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cached[mid].size < size) lo = mid + 1;
      else hi = mid;
    }
    const slack = staging
      ? size * STAGING_REUSE_SLACK
      : Math.max(ROUND_LARGE, size * DEDICATED_REUSE_SLACK);
    for (let i = lo; i < cached.length && cached[i].size <= size + slack; i++) {
      // A staging buffer still mapped (or map-pending) cannot be reused yet.
      if (staging && touchless(cached[i]).mapState !== "unmapped") continue;
      return cached.splice(i, 1)[0];
    }
    return null;
  }

  // ---- heaps ----

  /** Makes a heap, releasing cached memory and retrying before giving up. */
  #obtainHeap(
    pool: Pool,
    heapSize: number,
    isSplit: boolean,
    size: number,
    requested: number,
  ): Heap {
    if (this.#low > 0 && this.#totals.reserved.current + heapSize > this.#low) {
      this.#releaseIdle(null, Math.max(0, this.#low - heapSize));
    }
    const ratio = this.#conf.maxReservedRatio;
    if (ratio > 0) {
      // Bound the cache: release idle heaps, oldest first, so that reserved bytes stay
      // within `ratio` times the peak of live bytes (or what is in use now, if more).
      const t = this.#totals;
      const inUse = Math.max(t.allocated.peak, t.allocated.current + t.pendingFree + size);
      const target = inUse * ratio - heapSize;
      if (t.reserved.current > target) this.#releaseIdle(null, Math.max(0, target));
    }
    let heap = this.#createHeap(pool, heapSize, isSplit);
    if (heap) return heap;
    if (this.#releaseIdle(pool, 0) > 0) {
      this.#retries++;
      heap = this.#createHeap(pool, heapSize, isSplit);
      if (heap) return heap;
    }
    if (this.#releaseIdle(null, 0) > 0) {
      this.#retries++;
      heap = this.#createHeap(pool, heapSize, isSplit);
      if (heap) return heap;
    }
    // The budget waits (bounded) for other sharers to release, and says when to stop retrying.
    while (this.#budget?.relieve(heapSize)) {
      this.#retries++;
      heap = this.#createHeap(pool, heapSize, isSplit);
      if (heap) return heap;
    }
    // A heap just large enough may still fit where a standard one does not.
    if (heapSize > size) {
      heap = this.#createHeap(pool, size, isSplit);
      if (heap) return heap;
    }
    this.#ooms++;
    this.#recorder?.oom(requested, pool.name);
    throw new OutOfMemoryError({
      allocated: this.#totals.allocated.current,
      cached: this.#totals.reserved.current - this.#totals.allocated.current,
      limit: this.#budget?.limit || this.#high,
      requested,
      pool: pool.name,
      detail: this.#budget?.describe(),
    });
  }

  /** A new heap, or null if the watermark or the shared budget has no room for it. */
  #createHeap(pool: Pool, size: number, isSplit: boolean): Heap | null {
    if (this.#high > 0 && this.#totals.reserved.current + size > this.#high) return null;
    if (this.#budget && !this.#budget.reserve(size)) return null;
    const id = this.#nextHeapId++;
    this.#device.pushErrorScope("out-of-memory");
    let buffer: GPUBuffer;
    try {
      buffer = this.#device.createBuffer({
        size,
        usage: BUFFER_USAGE[pool.name],
        label: `gpuheap ${pool.name} heap #${id}`,
      });
    } catch (error) {
      this.#device.popErrorScope().catch(() => {});
      this.#budget?.release(size);
      throw error;
    }
    const heap: Heap = {
      id,
      pool: pool.name,
      size,
      buffer,
      isSplit,
      region: null,
      block: null,
      live: 0,
      lost: false,
      createdAt: performance.now(),
    };
    const scope = this.#device.popErrorScope().then(
      (error) => {
        if (error) this.#onDeviceRefused(heap, error.message);
      },
      () => {},
    ).finally(() => this.#scopes.delete(scope));
    this.#scopes.add(scope);
    if (isSplit) heap.region = pool.tlsf!.addRegion(size, heap);
    pool.heaps.add(heap);
    addStat(pool.counters.reserved, this.#totals.reserved, size);
    pool.counters.heaps++;
    this.#totals.heaps++;
    pool.counters.createBufferCalls++;
    this.#totals.createBufferCalls++;
    this.#recorder?.heap(id, size, pool.name, isSplit);
    if (this.#debug.allocations) {
      this.#say(
        `new ${isSplit ? "" : "unsplit "}heap #${id} of ${formatBytes(size)} on ${pool.name} pool` +
          ` (size ${size} B, reserved: ${formatBytes(this.#totals.reserved.current)})`,
      );
    }
    return heap;
  }

  /** The device reported a heap as out of memory: stop using it and report it. */
  #onDeviceRefused(heap: Heap, message: string): void {
    if (this.#destroyed || heap.lost) return;
    heap.lost = true;
    this.#ooms++;
    const pool = this.#pools[heap.pool];
    this.#deviceError = new OutOfMemoryError({
      allocated: this.#totals.allocated.current,
      cached: this.#totals.reserved.current - this.#totals.allocated.current,
      limit: this.#high,
      requested: heap.size,
      pool: heap.pool,
      device: true,
      detail: `Heap #${heap.id} is unusable: ${message}`,
    });
    if (heap.region) pool.tlsf!.retireRegion(heap.region);
    if (heap.live === 0) {
      this.#idle.delete(heap);
      this.#releaseHeap(heap);
    }
  }

  /** Puts a freed block's memory back: into its heap's free ranges, or the unsplit cache. */
  #recycle(block: Block): void {
    const s = stateOf(block);
    s.state = "free";
    const heap = s.heap;
    const pool = this.#pools[heap.pool];
    if (s.range) pool.tlsf!.free(s.range);
    else if (!heap.lost) insertSorted(pool.cached, block);
    if (--heap.live > 0) return;
    if (heap.lost || !this.#conf.caching) {
      this.#releaseHeap(heap);
      return;
    }
    this.#idle.add(heap);
    if (this.#low > 0 && this.#totals.reserved.current > this.#low) {
      this.#releaseIdle(null, this.#low);
    }
  }

  /**
   * Releases idle heaps, oldest first, of one pool (or all) until reserved
   * bytes are at most `target`. Returns the bytes released.
   */
  #releaseIdle(only: Pool | null, target: number): number {
    let released = 0;
    for (const heap of [...this.#idle]) {
      if (this.#totals.reserved.current <= target) break;
      if (only && heap.pool !== only.name) continue;
      // A map-pending staging buffer is still in use by its mapping.
      if (!heap.isSplit && touchless(heap.block!).mapState === "pending") continue;
      released += heap.size;
      this.#releaseHeap(heap);
    }
    return released;
  }

  #releaseHeap(heap: Heap): void {
    const pool = this.#pools[heap.pool];
    this.#idle.delete(heap);
    if (heap.region && heap.region.usedBytes === 0) pool.tlsf!.removeRegion(heap.region);
    if (heap.block && !heap.isSplit) {
      const i = pool.cached.indexOf(heap.block);
      if (i >= 0) pool.cached.splice(i, 1);
    }
    pool.heaps.delete(heap);
    heap.buffer.destroy();
    this.#budget?.release(heap.size);
    addStat(pool.counters.reserved, this.#totals.reserved, -heap.size);
    pool.counters.heaps--;
    this.#totals.heaps--;
    this.#recorder?.release(heap.id);
    if (this.#debug.releases) {
      this.#say(
        `released heap #${heap.id} of ${formatBytes(heap.size)} on ${heap.pool} pool` +
          ` (size ${heap.size} B, reserved: ${formatBytes(this.#totals.reserved.current)})`,
      );
    }
  }

  // ---- helpers ----

  #round(pool: Pool, size: number): number {
    if (pool.name === "scalar") return this.#alignUp(MAX_SCALAR_SIZE);
    let s = size;
    if (pool.tlsf === null) {
      s = roundPower2Divisions(
        Math.max(s, MIN_STAGING),
        this.#conf.roundupPower2Divisions || STAGING_DIVISIONS,
      );
    } else if (this.#conf.roundupPower2Divisions > 0 && s > MAX_SMALL_ALLOC) {
      s = roundPower2Divisions(s, this.#conf.roundupPower2Divisions);
    }
    s = this.#alignUp(s);
    if (pool.tlsf !== null) {
      s = Math.max(
        size,
        Math.min(s, this.#floorGranule(this.#limits.maxStorageBufferBindingSize)),
      );
      s = this.#alignUp(s);
    }
    return s;
  }

  #alignUp(n: number): number {
    return Math.ceil(n / this.#granule) * this.#granule;
  }

  #floorGranule(n: number): number {
    return Math.floor(n / this.#granule) * this.#granule;
  }

  #largestFree(pool: Pool): number {
    if (pool.tlsf) return pool.tlsf.largestFree();
    return pool.cached.length > 0 ? pool.cached[pool.cached.length - 1].size : 0;
  }

  #poolStats(c: PoolCounters, largestFreeRange: number): PoolStats {
    return {
      allocatedBytes: { ...c.allocated },
      reservedBytes: { ...c.reserved },
      requestedBytes: { ...c.requested },
      cachedBytes: c.reserved.current - c.allocated.current - c.pendingFree,
      pendingFreeBytes: c.pendingFree,
      largestFreeRange,
      heaps: c.heaps,
      blocks: c.blocks,
      allocations: c.allocations,
      cacheHits: c.cacheHits,
      createBufferCalls: c.createBufferCalls,
    };
  }

  #checkSize(size: number, usage: Usage): void {
    if (typeof size !== "number") {
      throw new TypeError(`Cannot allocate: size must be a number of bytes, got ${typeof size}`);
    }
    if (!Number.isInteger(size) || size <= 0) {
      throw new RangeError(`Cannot allocate: size must be a positive integer, got ${size}`);
    }
    let name: keyof AllocatorLimits = usage === "storage"
      ? "maxStorageBufferBindingSize"
      : usage === "uniform"
      ? "maxUniformBufferBindingSize"
      : "maxBufferSize";
    // A block lies in one GPUBuffer: past maxBufferSize it would be cut short.
    if (this.#limits.maxBufferSize < this.#limits[name]) name = "maxBufferSize";
    const limit = this.#limits[name];
    if (size > limit) {
      throw new RangeError(
        `Cannot allocate ${size} bytes (${
          formatBytes(size)
        }) of ${usage}: larger than the device's ${name} ${limit}`,
      );
    }
  }

  #own(block: Block, what: string): BlockState {
    let s: BlockState;
    try {
      s = stateOf(block);
    } catch {
      throw new TypeError(`Cannot ${what}: expected a Block, got ${block}`);
    }
    if (s.owner !== this) {
      throw new AllocatorError(
        `Cannot ${what} block #${s.id}: it belongs to another allocator`,
      );
    }
    return s;
  }

  #checkAlive(what: string): void {
    if (this.#destroyed) throw new AllocatorError(`Cannot ${what}: the allocator was destroyed`);
  }

  #throwDeviceError(): void {
    const error = this.#deviceError;
    if (error) {
      this.#deviceError = null;
      throw error;
    }
  }

  #say(line: string): void {
    this.#log(`gpuheap: ${line}`);
  }
}

/** Rounds up to one of `divisions` equal steps between consecutive powers of two. */
export function roundPower2Divisions(size: number, divisions: number): number {
  if (size <= 4) return 4;
  const floor = 2 ** Math.floor(Math.log2(size));
  if (floor === size) return size;
  if (divisions <= 1) return floor * 2;
  const step = Math.max(1, floor / divisions);
  return Math.ceil(size / step) * step;
}

function insertSorted(list: Block[], block: Block): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid].size <= block.size) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, block);
}
