/**
 * Snapshots: every heap of an allocator with every block in it, and the
 * statistics, as plain JSON with stable field names.
 *
 * The format, version 1:
 *
 * ```jsonc
 * {
 *   "format": "gpuheap-snapshot",
 *   "version": 1,
 *   "settings": { "allocConf": "…", "highWatermark": 0, "lowWatermark": 0,
 *                 "alignment": 32, "limits": { … }, "fallbackAdapter": false },
 *   "stats": { … },            // memoryStats(), same fields
 *   "heaps": [                 // pools in POOL_NAMES order, each pool's heaps oldest first
 *     { "id": 1, "pool": "small", "size": 8388608, "isSplit": true, "lost": false,
 *       "ageMs": 12.5,
 *       "blocks": [            // address order, covering [0, size) without gaps
 *         { "id": 3, "offset": 0, "size": 4096, "requestedSize": 4000,
 *           "state": "live", "usage": "storage", "label": "x", "ageOps": 2 },
 *         { "id": null, "offset": 4096, "size": 8384512, "requestedSize": 0,
 *           "state": "free", "usage": null, "label": null, "ageOps": null }
 *       ] }
 *   ]
 * }
 * ```
 *
 * Block states: `live` (handed out, not freed), `pending` (freed while
 * recorded GPU work may still read it: reusable after the next submit),
 * `cached` (a freed block kept whole for reuse: an unsplit heap's, or one in
 * the front cache of a split heap, see Note [front cache]) and
 * `free` (a free range of a split heap, or the tail of an unsplit heap past
 * its block). Sums agree with the stats: live sizes add up to
 * `stats.allocatedBytes.current`, pending sizes to `stats.pendingFreeBytes`,
 * cached and free sizes to `stats.cachedBytes`, heap sizes to
 * `stats.reservedBytes.current` (per pool as well).
 *
 * @module
 */

import type { AllocatorSettings } from "./config.ts";
import type { MemoryStats } from "./stats.ts";
import type { Range, Region } from "./tlsf.ts";

/** The state of a block in a {@linkcode Snapshot}. */
export type BlockStateName = "live" | "pending" | "cached" | "free";

/** One block (or free range) of a heap in a {@linkcode Snapshot}. */
export interface SnapshotBlock {
  /** The block's id (as `Block.id` and debug output name it); null for a free range. */
  id: number | null;
  /** Byte offset inside the heap. */
  offset: number;
  /** Bytes the block occupies (the request rounded up). */
  size: number;
  /** Bytes the caller asked for (0 for a free range). */
  requestedSize: number;
  /** What the range holds now. */
  state: BlockStateName;
  /** What the block was allocated for (`"storage"`, `"uniform"`, …); null for a free range. */
  usage: string | null;
  /** The caller's label; null if none. */
  label: string | null;
  /**
   * Allocator operations (allocs, scalars and frees) since the block was
   * handed out — the allocator's clock, cheaper than reading time; null for a
   * free range.
   */
  ageOps: number | null;
}

/** One heap (GPUBuffer) in a {@linkcode Snapshot}. */
export interface SnapshotHeap {
  /** The heap's id (as `Block.heapId` and debug output name it). */
  id: number;
  /** The pool it belongs to. */
  pool: string;
  /** Size of its GPUBuffer in bytes. */
  size: number;
  /** True for a heap shared by many blocks; false for one block's own GPUBuffer. */
  isSplit: boolean;
  /** True if the device refused the heap: nothing more is placed in it. */
  lost: boolean;
  /** Milliseconds since the heap was made. */
  ageMs: number;
  /** Its blocks and free ranges in address order, covering the whole heap. */
  blocks: SnapshotBlock[];
}

/** What `HeapAllocator.snapshot()` returns: a versioned, JSON-ready picture of memory. */
export interface Snapshot {
  /** Always `"gpuheap-snapshot"`. */
  format: "gpuheap-snapshot";
  /** Version of the format: 1. */
  version: 1;
  /** The settings the allocator runs with. */
  settings: AllocatorSettings;
  /** `memoryStats()` at the moment of the snapshot. */
  stats: MemoryStats;
  /** Every heap, pools in `POOL_NAMES` order, each pool's heaps oldest first. */
  heaps: SnapshotHeap[];
}

/** @internal the part of a block the walk reads. */
export interface WalkBlock {
  readonly id: number;
  readonly state: "live" | "pending" | "free";
  readonly bornAtOp: number;
  readonly offset: number;
  readonly size: number;
  readonly requestedSize: number;
  readonly usage: string;
  readonly label: string | undefined;
}

/** @internal the part of a heap the walk reads. */
export interface WalkHeap {
  readonly id: number;
  readonly pool: string;
  readonly size: number;
  readonly isSplit: boolean;
  readonly lost: boolean;
  readonly createdAt: number;
  readonly region: Region | null;
  readonly block: WalkBlock | null;
}

/** @internal what the allocator hands {@linkcode walkHeaps}. */
export interface WalkSource {
  /** Every heap, in the order the snapshot lists them. */
  heaps: Iterable<WalkHeap>;
  /** The ranges of a split heap's region, in address order (each allocated one tagged with its block). */
  ranges(heap: WalkHeap): Iterable<Range>;
  /** The allocator's operation count now. */
  ops: number;
  stats: MemoryStats;
  settings: AllocatorSettings;
}

/**
 * @internal walks every heap and builds a {@linkcode Snapshot}. Time taken is
 * O(ranges), so call it on demand, not per allocation.
 */
export function walkHeaps(source: WalkSource): Snapshot {
  const now = performance.now();
  const heaps: SnapshotHeap[] = [];
  for (const heap of source.heaps) {
    const blocks: SnapshotBlock[] = [];
    if (heap.isSplit && heap.region) {
      for (const range of source.ranges(heap)) {
        if (range.isFree) blocks.push(freeRange(range.offset, range.size));
        else blocks.push(blockEntry(source, range.tag as WalkBlock, range.size));
      }
    } else if (heap.block) {
      blocks.push(blockEntry(source, heap.block, heap.block.size));
      // A dedicated heap rounded past the binding limit has a tail no block covers.
      if (heap.block.size < heap.size) {
        blocks.push(freeRange(heap.block.size, heap.size - heap.block.size));
      }
    }
    heaps.push({
      id: heap.id,
      pool: heap.pool,
      size: heap.size,
      isSplit: heap.isSplit,
      lost: heap.lost,
      ageMs: roundMs(now - heap.createdAt),
      blocks,
    });
  }
  return {
    format: "gpuheap-snapshot",
    version: 1,
    settings: source.settings,
    stats: source.stats,
    heaps,
  };
}

function blockEntry(
  source: WalkSource,
  block: WalkBlock,
  size: number,
): SnapshotBlock {
  return {
    id: block.id,
    offset: block.offset,
    size,
    requestedSize: block.requestedSize,
    // A freed block still in its place: an unsplit heap's, or one in the front cache.
    state: block.state === "free" ? "cached" : block.state,
    usage: block.usage,
    label: block.label ?? null,
    ageOps: source.ops - block.bornAtOp,
  };
}

/** @internal the snapshot entry of a free range: no block, no owner. */
export function freeRange(offset: number, size: number): SnapshotBlock {
  return {
    id: null,
    offset,
    size,
    requestedSize: 0,
    state: "free",
    usage: null,
    label: null,
    ageOps: null,
  };
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** What a walk over a snapshot's heaps finds that the counters do not keep. */
export interface HeapFacts {
  /**
   * Free and cached bytes in split heaps that also hold a live or pending
   * block: the heap cannot be released for them (PyTorch's inactive split
   * bytes, "non-releasable memory").
   */
  nonReleasableBytes: number;
  /** The ranges of those bytes. */
  nonReleasableRanges: number;
  /**
   * Live blocks in heaps of their own (unsplit) in pools that split heaps:
   * too large to share one (PyTorch's oversize allocations).
   */
  oversizeBlocks: number;
  /** Unsplit heaps in pools that split heaps (PyTorch's oversize segments). */
  oversizeHeaps: number;
}

/** Pools whose every block has a GPUBuffer of its own: none of their heaps is oversize. */
const UNSPLIT_POOLS = ["readback", "upload"];

/**
 * Walks a snapshot's heaps for the figures counters do not keep: bytes that
 * cannot be released, and blocks too large to share a heap.
 *
 * @example
 * ```ts
 * import { heapFacts } from "./snapshot.ts";
 * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const heap = new HeapAllocator(new FakeDevice());
 * const a = heap.alloc(4096);
 * heap.alloc(4096); // b, next to a in the same heap, keeps the heap held
 * heap.free(a);
 * const [h] = heap.snapshot().heaps;
 * const facts = heapFacts(heap.snapshot());
 * assert.equal(facts.nonReleasableBytes, h.size - 4096); // all but b
 * assert.equal(facts.oversizeBlocks, 0);
 * heap.destroy();
 * ```
 */
export function heapFacts(snapshot: Snapshot): HeapFacts {
  const facts = {
    nonReleasableBytes: 0,
    nonReleasableRanges: 0,
    oversizeBlocks: 0,
    oversizeHeaps: 0,
  };
  for (const heap of snapshot.heaps) {
    const held = heap.blocks.some((b) => b.state === "live" || b.state === "pending");
    if (heap.isSplit) {
      if (!held) continue;
      for (const b of heap.blocks) {
        if (b.state !== "free" && b.state !== "cached") continue;
        facts.nonReleasableBytes += b.size;
        facts.nonReleasableRanges++;
      }
    } else if (!UNSPLIT_POOLS.includes(heap.pool)) {
      facts.oversizeHeaps++;
      for (const b of heap.blocks) if (b.state === "live") facts.oversizeBlocks++;
    }
  }
  return facts;
}
