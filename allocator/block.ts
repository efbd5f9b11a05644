/**
 * The allocator's plain records: the {@linkcode Block} a caller holds, and
 * the records the allocator keeps of blocks, heaps and pools — apart from the
 * policy that moves them, as PyTorch's MPS allocator keeps `BufferBlock`,
 * `HeapBlock` and `BufferPool` apart from the allocator.
 *
 * The allocator never holds a `Block` itself, only its {@linkcode BlockRecord}:
 * a block its caller dropped without freeing can be garbage-collected, and in
 * debug mode is reported.
 *
 * @module
 */

import { AllocatorError } from "./errors.ts";
import { formatBytes } from "./format.ts";
import { CachedBlocks } from "./cached_blocks.ts";
import { FrontCache } from "./front_cache.ts";
import type { PoolName, Usage } from "./size_classes.ts";
import type { PoolCounters } from "./stats.ts";
import { emptyPoolCounters } from "./stats.ts";
import { type Range, type Region, Tlsf } from "./tlsf.ts";

/** Where a block is in its life: handed out, freed but waiting for a submit, or free. */
export type BlockPhase = "live" | "pending" | "free";

/** @internal what a block needs of the allocator that made it. */
export interface BlockOwner {
  /** True once the allocator was destroyed: its blocks' memory is gone. */
  readonly destroyed: boolean;
  /** Frees a live block. */
  free(block: Block): void;
}

/**
 * @internal the allocator's record of one block. It is made for a request
 * (by {@linkcode newRecord}) and carried through placement, which fills in
 * where the block lies; then it follows the block through its life.
 */
export interface BlockRecord extends AllocRequest {
  /** The allocator that made the block. */
  readonly owner: BlockOwner;
  /** Identifier, unique within the allocator (set when placed). */
  id: number;
  /** The heap the block lies in (set when placed). */
  heap: Heap;
  /** The block's range in a split heap; null in a heap of its own. */
  range: Range | null;
  /** Byte offset in the heap. */
  offset: number;
  /** The rounded request; once placed, the block's usable bytes. */
  size: number;
  /** What the block is for. */
  readonly usage: Usage;
  /** The caller's label, if any. */
  readonly label: string | undefined;
  /** Where it is in its life. */
  state: BlockPhase;
  /** Its buffer was read: recorded work may use it, so once freed it waits for a submit. */
  touched: boolean;
  /** The allocator's operation count when it was handed out (a clock cheaper than time). */
  bornAtOp: number;
  /** Kept by its caller as a cache: counted as cached bytes, not allocated (`AllocOptions.cached`). */
  cached: boolean;
  /** Its caller marked it long-lived: a GPUBuffer of its own (`AllocOptions.longLived`). */
  longLived: boolean;
}

/** @internal what a block is made for: a request, its usage and its label. */
export interface BlockRequest extends AllocRequest {
  /** What the block is for. */
  readonly usage: Usage;
  /** The caller's label, if any. */
  readonly label: string | undefined;
}

/**
 * @internal a record for a request of `requestedSize` bytes (`size` once
 * rounded), not yet placed: placement sets its heap, range, offset and id.
 */
export function newRecord(owner: BlockOwner, request: BlockRequest): BlockRecord {
  return {
    owner,
    pool: request.pool,
    size: request.size,
    requestedSize: request.requestedSize,
    id: 0,
    // Placement sets it before anything reads it; a record never escapes unplaced.
    heap: null as unknown as Heap,
    range: null,
    offset: 0,
    usage: request.usage,
    label: request.label,
    state: "live",
    touched: false,
    bornAtOp: 0,
    cached: false,
    longLived: false,
  };
}

/** @internal a heap: one GPUBuffer, split among many blocks or holding one. */
export interface Heap {
  /** Identifier, unique within the allocator (as debug output and snapshots name it). */
  readonly id: number;
  /** The pool it belongs to. */
  readonly pool: PoolName;
  /** Bytes of its GPUBuffer. */
  readonly size: number;
  /** Its GPUBuffer. */
  readonly buffer: GPUBuffer;
  /** Shared by many blocks (placed by the pool's TLSF), or one block's own. */
  isSplit: boolean;
  /** Its region in the pool's TLSF, when split. */
  region: Region | null;
  /** The block of an unsplit heap (live, or freed and cached). */
  block: BlockRecord | null;
  /** Blocks placed in it: live, freed and waiting for a submit, or in the front cache. */
  live: number;
  /** The device refused it: nothing more is placed in it. */
  lost: boolean;
  /** Its GPUBuffer was destroyed: the heap is gone (a late verdict finds it so). */
  released: boolean;
  /** When it was made (`performance.now()`). */
  readonly createdAt: number;
  /** Nothing is placed in it: it is in its allocator's list of idle heaps. */
  idle: boolean;
  /** The heap that became idle just before it (list of idle heaps). */
  olderIdle: Heap | null;
  /** The heap that became idle just after it. */
  newerIdle: Heap | null;
}

/** @internal a pool: its heaps, their placement, its cache and its counters. */
export interface Pool {
  /** The pool's name. */
  readonly name: PoolName;
  /** Placement over the pool's split heaps (null for staging pools: a GPUBuffer per block). */
  readonly tlsf: Tlsf | null;
  /** Every heap of the pool, oldest first. */
  readonly heaps: Set<Heap>;
  /** Freed blocks of unsplit heaps, by size, ready for reuse. */
  readonly cached: CachedBlocks<BlockRecord>;
  /** Recently freed blocks of split heaps, by size (Note [front cache]); null where none is kept. */
  readonly front: FrontCache | null;
  /** The pool's running statistics. */
  readonly counters: PoolCounters;
}

/** @internal what placement reads of a request (PyTorch's `AllocParams`): a {@linkcode BlockRecord} before it is placed. */
export interface AllocRequest {
  /** The pool it goes to. */
  readonly pool: PoolName;
  /** The request rounded by the pool's size class. */
  readonly size: number;
  /** Bytes asked for. */
  readonly requestedSize: number;
}

/**
 * @internal an empty pool; `split` pools place blocks in shared heaps with
 * TLSF, and keep a front cache of blocks up to `frontMax` bytes (0: none).
 */
export function newPool(name: PoolName, alignment: number, split: boolean, frontMax = 0): Pool {
  return {
    name,
    // Note [the fullest heap first] in tlsf.ts: large heaps only.
    tlsf: split ? new Tlsf(alignment, name === "large") : null,
    heaps: new Set(),
    cached: new CachedBlocks<BlockRecord>(),
    front: split && frontMax > 0 ? new FrontCache(alignment, frontMax) : null,
    counters: emptyPoolCounters(),
  };
}

/** @internal a heap record for a new GPUBuffer. */
export function newHeap(
  id: number,
  pool: PoolName,
  buffer: GPUBuffer,
  size: number,
  isSplit: boolean,
): Heap {
  return {
    id,
    pool,
    size,
    buffer,
    isSplit,
    region: null,
    block: null,
    live: 0,
    lost: false,
    released: false,
    createdAt: performance.now(),
    idle: false,
    olderIdle: null,
    newerIdle: null,
  };
}

let recordOf: (block: Block) => BlockRecord;

/**
 * A range of a GPUBuffer handed out by a `HeapAllocator`. Bind it as
 * `{ buffer, offset, size }` or with {@linkcode Block.binding}; free it with
 * `heap.free(block)`, or let a `using` declaration free it at the end of its
 * scope.
 *
 * @example
 * ```ts
 * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const heap = new HeapAllocator(new FakeDevice());
 * {
 *   using block = heap.alloc(4096, { label: "scratch" });
 *   assert.equal(heap.currentAllocatedMemory(), block.size);
 * } // freed here
 * assert.equal(heap.currentAllocatedMemory(), 0);
 * heap.destroy();
 * ```
 */
export class Block {
  #record: BlockRecord;
  #buffer: GPUBuffer;

  static {
    recordOf = (block) => block.#record;
  }

  /**
   * @internal blocks are made by `HeapAllocator.alloc`.
   *
   * @param record the allocator's record of the block
   * @param buffer the GPUBuffer it lies in
   */
  constructor(record: BlockRecord, buffer: GPUBuffer) {
    this.#record = record;
    this.#buffer = buffer;
  }

  /** Byte offset of the block inside {@linkcode Block.buffer}. */
  get offset(): number {
    return this.#record.offset;
  }

  /** Usable bytes (the request rounded up). */
  get size(): number {
    return this.#record.size;
  }

  /** Bytes the caller asked for. */
  get requestedSize(): number {
    return this.#record.requestedSize;
  }

  /** What the block is for. */
  get usage(): Usage {
    return this.#record.usage;
  }

  /** The pool it came from. */
  get pool(): PoolName {
    return this.#record.pool;
  }

  /** The caller's label, if any. */
  get label(): string | undefined {
    return this.#record.label;
  }

  /**
   * The GPUBuffer the block lies in. Reading it marks the block as possibly
   * used by recorded GPU work, so once freed it is reused only after the next
   * `HeapAllocator.submit`.
   *
   * @throws {AllocatorError} the block was freed, or its allocator destroyed:
   * its memory may belong to another block now
   */
  get buffer(): GPUBuffer {
    const r = this.#record;
    if (r.state !== "live") throw staleBlock(r);
    r.touched = true;
    return this.#buffer;
  }

  /** Identifier of the heap (GPUBuffer) the block lies in, as snapshots and debug output name it. */
  get heapId(): number {
    return this.#record.heap.id;
  }

  /** Identifier of the block, unique within its allocator. */
  get id(): number {
    return this.#record.id;
  }

  /** True until the block is freed (or its allocator destroyed). */
  get isLive(): boolean {
    return this.#record.state === "live";
  }

  /**
   * A bind group entry resource: the requested bytes, rounded up to 4 as WebGPU requires.
   *
   * @throws {AllocatorError} the block was freed, or its allocator destroyed
   */
  binding(): GPUBufferBinding {
    const r = this.#record;
    if (r.state !== "live") throw staleBlock(r);
    r.touched = true;
    return { buffer: this.#buffer, offset: r.offset, size: Math.ceil(r.requestedSize / 4) * 4 };
  }

  /**
   * What `console.log` shows in Deno: the block's fields (they are getters).
   *
   * @param inspect Deno's inspect function
   * @param options its options
   */
  [Symbol.for("Deno.customInspect")](
    inspect: (value: unknown, options?: unknown) => string,
    options?: unknown,
  ): string {
    const r = this.#record;
    const fields = {
      id: r.id,
      heapId: r.heap.id,
      offset: r.offset,
      size: r.size,
      requestedSize: r.requestedSize,
      usage: r.usage,
      pool: r.pool,
      label: r.label,
      isLive: r.state === "live",
    };
    return `Block ${inspect(fields, options)}`;
  }

  /**
   * Frees the block if it is still live (what a `using` declaration calls at
   * the end of its scope); does nothing if it was freed already or its
   * allocator was destroyed.
   */
  [Symbol.dispose](): void {
    const r = this.#record;
    if (r.state === "live" && !r.owner.destroyed) r.owner.free(this);
  }
}

/** The error for a use of a block that is no longer live, naming it. */
function staleBlock(r: BlockRecord): AllocatorError {
  const label = r.label === undefined ? "" : `, ${JSON.stringify(r.label)}`;
  const why = r.owner.destroyed ? "its allocator was destroyed" : "it was freed";
  return new AllocatorError(
    `Cannot use block #${r.id} (${formatBytes(r.size)}, ${r.pool} pool${label}): ${why}`,
  );
}

/**
 * @internal the allocator's record of a block.
 *
 * @throws {TypeError} `block` is not a {@linkcode Block}
 */
export function blockRecord(block: Block): BlockRecord {
  return recordOf(block);
}
