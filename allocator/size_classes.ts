/**
 * Size classes: which pool a request goes to, the size it rounds to, and the
 * size of the heap made for it — PyTorch's MPS heap table on plain numbers,
 * with no GPU types, so every rule can be tested without a device.
 *
 * | request (storage)                   | pool  | heap made when nothing cached fits      |
 * | ----------------------------------- | ----- | --------------------------------------- |
 * | ≤ 1 MiB                             | small | R / 8 within 128 KiB … `small_heap` (8 MiB), shared |
 * | ≤ 10 MiB                            | large | `large_heap` (32 MiB), shared           |
 * | < xlarge / 2, no memory pressure    | large | extra-large: R / 16 within 64 MiB … 128 MiB (1 GiB on a CPU), shared |
 * | otherwise                           | large | its own, rounded up to 2 MiB            |
 * | > `max_split_size`, when set        | large | its own, at its aligned size            |
 *
 * R is the bytes the allocator holds when the heap is made: heaps follow
 * demand, so a small allocator makes small heaps and a large one fewer large
 * ones (Note [heaps follow demand]). Uniforms and scalars have heaps of their
 * own, each as large as its pool's heaps together (16 KiB … 1 MiB and 4 KiB … 64 KiB:
 * they are few whatever the rest); readback and upload
 * blocks are one GPUBuffer each, rounded to 4 steps per power of two. Every
 * heap is at least its request, and at most the `limit` of its
 * {@linkcode HeapDemand} (what a shared budget has room for).
 *
 * Note [heaps follow demand]: the free tail of the heap being filled is waste
 * at the peak. A fixed heap size is a large share of a small run (a 128 MiB
 * extra-large heap holding one 25 MiB block in a 0.5 GiB run; an 8 MiB small
 * heap for a Worker holding 0.4 MiB), and a needlessly fine one for a large run
 * (more createBuffer calls). A heap sized as a fraction of what the allocator
 * holds keeps the tail within that fraction of reserved bytes at every scale.
 *
 * Note [one block, one heap]: a block of half an extra-large heap or more gets
 * a heap of its own (rounded to 2 MiB). Beside it, a shared heap would keep
 * less room than the block takes, and one long-lived neighbour would pin the
 * whole heap; a heap of its own is all live while the block lives and all idle
 * once it is freed: cached whole, reused whole by a block of nearly its size,
 * or released whole (Note [the cache bound] in heaps.ts). Its waste while live
 * is the rounding (at most 2 MiB, under 6% of a block of 32 MiB or more). A
 * heap is split only when it is made for smaller blocks, or when a cached one
 * takes a smaller block instead of a new shared heap being made (Note [a cached
 * heap becomes a split heap] in allocator.ts); free ranges of a split heap merge
 * with their neighbours as they are freed, never across heaps.
 *
 * Note [max_split_size]: the free ranges of split heaps that no request fits
 * are the one waste at the peak that no rule bounds (Note [placement] in
 * allocator.ts); heaps of their own leave none, and under the cache bound
 * their waste is what the bound allows. `max_split_size` (named after
 * PyTorch's `max_split_size_mb`, which keeps large blocks out of split
 * segments) gives every larger request a heap of its own, made at its aligned
 * size: the reuse slack of cached heaps (an eighth) already serves nearby
 * sizes, and 2 MiB of rounding on many such heaps would be waste of its own.
 * The price is `createBuffer` calls. Heaps of their own cannot lend memory to
 * blocks of other sizes that are never live beside them (the scores and then
 * the MLP of one transformer layer), so a loop whose sizes differ from step to
 * step keeps making and releasing them under the cache bound. It is a setting
 * for runs where memory is short and sizes repeat, not a default:
 * `deno task fragmentation` prints both figures per trace.
 *
 * @module
 */

import { type AllocConf, DEFAULT_ALLOC_CONF } from "./config.ts";
import {
  HEAP_GROWTH,
  MAX_SCALAR_SIZE,
  MAX_SMALL_ALLOC,
  MIN_LARGE_ALLOC,
  MIN_SCALAR_HEAP,
  MIN_SMALL_HEAP,
  MIN_STAGING,
  MIN_UNIFORM_HEAP,
  MIN_XLARGE_HEAP,
  ROUND_LARGE,
  SCALAR_HEAP,
  STAGING_DIVISIONS,
  UNIFORM_HEAP,
  XLARGE_GROWTH,
  XLARGE_HEAP,
  XLARGE_HEAP_UNIFIED,
} from "./constants.ts";
import { formatBytes } from "./format.ts";

/** What a block is for: it decides the pool, the GPUBuffer usage and the alignment. */
export type Usage = "storage" | "uniform" | "readback" | "upload";
/** The allocator's pools. */
export type PoolName = "small" | "large" | "uniform" | "scalar" | "readback" | "upload";

/** Every pool, in the order stats list them. */
export const POOL_NAMES: readonly PoolName[] = [
  "small",
  "large",
  "uniform",
  "scalar",
  "readback",
  "upload",
];
/** Every usage. */
export const USAGES: readonly Usage[] = ["storage", "uniform", "readback", "upload"];

/** The device limits the size classes obey, as numbers. */
export interface SizeLimits {
  /** Largest GPUBuffer. */
  maxBufferSize: number;
  /** Largest storage binding: no block may be larger. */
  maxStorageBufferBindingSize: number;
  /** Largest uniform binding. */
  maxUniformBufferBindingSize: number;
  /** Alignment of every block's offset and size (a power of two). */
  alignment: number;
}

/** What a new heap's size follows besides its request (Note [heaps follow demand]). */
export interface HeapDemand {
  /** Bytes the allocator holds now, all pools together. */
  reserved: number;
  /** Bytes the request's pool holds now. */
  poolReserved: number;
  /** Reserved bytes are near the low watermark: no extra-large heaps. */
  pressure: boolean;
  /** The most bytes a new heap may take beyond its request (a shared budget's room); Infinity: no limit. */
  limit: number;
}

/** Rounds `n` up to a multiple of `alignment`. */
export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Rounds `n` down to a multiple of `alignment`. */
export function alignDown(n: number, alignment: number): number {
  return Math.floor(n / alignment) * alignment;
}

/**
 * Rounds up to one of `divisions` equal steps between consecutive powers of
 * two (PyTorch's `roundup_power2_divisions`); 1 or 0 divisions round to the
 * next power of two.
 *
 * @example
 * ```ts
 * import { roundPower2Divisions } from "./size_classes.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(roundPower2Divisions(1200 << 10, 4), 1280 << 10); // 1 MiB + 1/4 MiB
 * assert.equal(roundPower2Divisions(5 << 20, 1), 8 << 20);
 * ```
 */
export function roundPower2Divisions(size: number, divisions: number): number {
  if (size <= 4) return 4;
  const floor = 2 ** Math.floor(Math.log2(size));
  if (floor === size) return size;
  if (divisions <= 1) return floor * 2;
  const step = Math.max(1, floor / divisions);
  return Math.ceil(size / step) * step;
}

/** The pool a request of `size` bytes for `usage` goes to. */
export function poolFor(usage: Usage, size: number): PoolName {
  return usage !== "storage" ? usage : size <= MAX_SMALL_ALLOC ? "small" : "large";
}

/** True for pools whose blocks are each one GPUBuffer (mappable staging buffers). */
export function isStaging(pool: PoolName): boolean {
  return pool === "readback" || pool === "upload";
}

/**
 * The size classes of one allocator: its alloc conf checked against the
 * device's limits, and the rounding and heap-size rules over them.
 *
 * @example
 * ```ts
 * import { DEFAULT_ALLOC_CONF } from "./config.ts";
 * import { SizeClasses } from "./size_classes.ts";
 * import assert from "node:assert/strict";
 *
 * const MiB = 1 << 20;
 * const sizes = new SizeClasses(DEFAULT_ALLOC_CONF, {
 *   maxBufferSize: 2048 * MiB,
 *   maxStorageBufferBindingSize: 128 * MiB,
 *   maxUniformBufferBindingSize: 64 << 10,
 *   alignment: 256,
 * }, false);
 * const holding = (reserved: number) => ({
 *   reserved,
 *   poolReserved: 0,
 *   pressure: false,
 *   limit: Infinity,
 * });
 * assert.equal(sizes.round("small", 1000), 1024);
 * assert.equal(sizes.splitHeapSize("small", 1024, holding(0)), 128 << 10); // the first
 * assert.equal(sizes.splitHeapSize("small", 1024, holding(1024 * MiB)), 8 * MiB);
 * assert.equal(sizes.splitHeapSize("large", 20 * MiB, holding(0)), 64 * MiB); // extra-large
 * assert.equal(sizes.splitHeapSize("large", 20 * MiB, holding(1536 * MiB)), 96 * MiB);
 * assert.equal(sizes.splitHeapSize("large", 40 * MiB, holding(0)), 0); // a heap of its own
 * assert.equal(sizes.dedicatedHeapSize(70 * MiB + 1), 72 * MiB);
 * ```
 */
export class SizeClasses {
  /** Alignment of every block's offset and size. */
  readonly alignment: number;
  /** Largest small heap: the conf's `small_heap`. */
  readonly smallHeap: number;
  /** Size of a large heap: the conf's `large_heap` (a default within maxBufferSize). */
  readonly largeHeap: number;
  /** Largest extra-large heap: the conf's, or the adapter's default, within maxBufferSize. */
  readonly xlargeHeap: number;
  readonly #conf: Readonly<AllocConf>;
  readonly #limits: SizeLimits;
  /** Largest heap: maxBufferSize rounded down to the alignment. */
  readonly #maxHeap: number;
  /** Largest block: maxStorageBufferBindingSize rounded down to the alignment. */
  readonly #maxBlock: number;
  /** Largest storage request: the smaller of the binding and buffer limits. */
  readonly #maxStorage: number;

  /**
   * Checks an alloc conf against a device's limits and prepares the rules.
   *
   * @param conf the alloc conf
   * @param limits the device's limits and the alignment
   * @param unified the adapter is the CPU (memory is the host's): larger extra-large heaps
   * @throws {RangeError} a heap size of the conf is unaligned or above maxBufferSize
   */
  constructor(conf: Readonly<AllocConf>, limits: SizeLimits, unified: boolean) {
    const a = limits.alignment;
    if (!Number.isInteger(a) || a < 4 || (a & (a - 1)) !== 0) {
      throw new RangeError(`Invalid alignment: expected a power of two >= 4, got ${a}`);
    }
    this.alignment = a;
    this.#conf = conf;
    this.#limits = limits;
    this.#maxHeap = alignDown(limits.maxBufferSize, a);
    this.#maxBlock = alignDown(limits.maxStorageBufferBindingSize, a);
    const heaps: [string, keyof AllocConf][] = [
      ["small_heap", "smallHeap"],
      ["large_heap", "largeHeap"],
      ["xlarge_heap", "xlargeHeap"],
    ];
    for (const [key, field] of heaps) {
      const size = conf[field] as number;
      // The defaults fit every real device (WebGPU guarantees a maxBufferSize of at
      // least 256 MiB); only a fake device's smaller limits cap them.
      const tooLarge = size > this.#maxHeap && size !== DEFAULT_ALLOC_CONF[field];
      if (size % a !== 0 || tooLarge) {
        throw new RangeError(
          `Invalid alloc conf: ${key} ${size} (${formatBytes(size)}) must be a multiple of the ` +
            `alignment ${a} and at most the device's maxBufferSize ${limits.maxBufferSize}`,
        );
      }
    }
    this.#maxStorage = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    this.smallHeap = Math.min(conf.smallHeap, this.#maxHeap);
    this.largeHeap = Math.min(conf.largeHeap, this.#maxHeap);
    this.xlargeHeap = Math.min(
      conf.xlargeHeap || (unified ? XLARGE_HEAP_UNIFIED : XLARGE_HEAP),
      this.#maxHeap,
    );
  }

  /**
   * Checks that `size` bytes of `usage` can be one block.
   *
   * @throws {TypeError} size is not a number
   * @throws {RangeError} size is not a positive integer, or exceeds the binding (or buffer) limit
   */
  check(size: number, usage: Usage): void {
    // The common case first, in one comparison: storage within both limits.
    if (usage === "storage" && size > 0 && size <= this.#maxStorage && Number.isInteger(size)) {
      return;
    }
    if (typeof size !== "number") {
      throw new TypeError(`Cannot allocate: size must be a number of bytes, got ${typeof size}`);
    }
    if (!Number.isInteger(size) || size <= 0) {
      throw new RangeError(`Cannot allocate: size must be a positive integer, got ${size}`);
    }
    let name: "maxStorageBufferBindingSize" | "maxUniformBufferBindingSize" | "maxBufferSize" =
      usage === "storage"
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

  /** The size a request of `size` bytes in `pool` occupies: rounded and aligned. */
  round(pool: PoolName, size: number): number {
    // The common case, small storage and uniforms: aligned in integer arithmetic.
    if (size <= MAX_SMALL_ALLOC && (pool === "small" || pool === "uniform")) {
      return (size + this.alignment - 1) & -this.alignment;
    }
    const a = this.alignment;
    if (pool === "scalar") return alignUp(MAX_SCALAR_SIZE, a);
    const divisions = this.#conf.roundupPower2Divisions;
    if (isStaging(pool)) {
      return alignUp(
        roundPower2Divisions(Math.max(size, MIN_STAGING), divisions || STAGING_DIVISIONS),
        a,
      );
    }
    let s = divisions > 0 && size > MAX_SMALL_ALLOC ? roundPower2Divisions(size, divisions) : size;
    // Rounding never takes a block past the binding limit, unless the request itself is.
    s = Math.max(size, Math.min(alignUp(s, a), this.#maxBlock));
    return alignUp(s, a);
  }

  /**
   * The size of an extra-large heap made when the allocator holds `reserved`
   * bytes: a sixteenth of them, within 64 MiB and {@linkcode SizeClasses.xlargeHeap}.
   */
  xlargeHeapSize(reserved: number): number {
    const grown = alignUp(reserved * XLARGE_GROWTH, ROUND_LARGE);
    return Math.min(this.xlargeHeap, Math.max(MIN_XLARGE_HEAP, grown));
  }

  /**
   * True if a block of `size` (rounded) bytes in `pool` gets a heap of its
   * own: half an extra-large heap or more, when the allocator holds `reserved`
   * bytes, or more than the conf's `max_split_size`.
   */
  isDedicated(pool: PoolName, size: number, reserved: number): boolean {
    return pool === "large" &&
      (size >= this.xlargeHeapSize(reserved) / 2 || this.#isOversize(size));
  }

  /** True if `size` is above the conf's `max_split_size` (Note [max_split_size]). */
  #isOversize(size: number): boolean {
    return this.#conf.maxSplitSize > 0 && size > this.#conf.maxSplitSize;
  }

  /**
   * The size of a new shared heap for a block of `size` (rounded) bytes in a
   * split pool, or 0 when the block gets a heap of its own instead: a
   * dedicated size, or an extra-large one under memory pressure.
   */
  splitHeapSize(pool: PoolName, size: number, demand: HeapDemand): number {
    const r = demand.reserved;
    let heap: number;
    if (pool === "small") heap = grow(r, MIN_SMALL_HEAP, this.smallHeap);
    // Uniforms and scalars are few whatever the rest: their heaps double their pool.
    else if (pool === "uniform") heap = clamp(demand.poolReserved, MIN_UNIFORM_HEAP, UNIFORM_HEAP);
    else if (pool === "scalar") heap = clamp(demand.poolReserved, MIN_SCALAR_HEAP, SCALAR_HEAP);
    else if (this.isDedicated(pool, size, r)) return 0;
    else if (size < MIN_LARGE_ALLOC) heap = this.largeHeap;
    else if (!demand.pressure) heap = this.xlargeHeapSize(r);
    else return 0;
    return alignUp(Math.max(size, Math.min(heap, demand.limit)), this.alignment);
  }

  /** The GPUBuffer size of a heap of its own for `size` (rounded) bytes. */
  dedicatedHeapSize(size: number, pool: PoolName = "large"): number {
    if (isStaging(pool)) return size;
    return Math.min(
      alignUp(size, this.#isOversize(size) ? this.alignment : ROUND_LARGE),
      this.#maxHeap,
    );
  }

  /** Bytes a block gets of a heap of its own of `heapSize`: all of it, within the binding limit. */
  usableSize(heapSize: number, pool: PoolName = "large"): number {
    return isStaging(pool) ? heapSize : Math.min(heapSize, this.#maxBlock);
  }
}

/** A heap of `reserved` × {@linkcode HEAP_GROWTH} bytes within `min` and `max`, in whole KiB. */
function grow(reserved: number, min: number, max: number): number {
  return clamp(alignUp(reserved * HEAP_GROWTH, 1024), min, max);
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}
