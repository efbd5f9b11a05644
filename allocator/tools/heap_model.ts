/**
 * A model of the heaps a trace describes: heaps made and released, blocks
 * placed, freed, waiting for a submit or cached, followed event by event,
 * with the bytes allocated and reserved in each pool. The memory picture
 * reads it; it takes a trace {@linkcode readTrace} has checked.
 *
 * @module
 */

import { POOL_NAMES } from "../allocator.ts";
import {
  type BlockStateName,
  freeRange,
  type SnapshotBlock,
  type SnapshotHeap,
} from "../snapshot.ts";
import type { TraceEvent } from "../trace.ts";
import { cutLabel } from "./markup.ts";
import { TraceError } from "./read_trace.ts";

/** A pool's name: one of `POOL_NAMES`. */
export type PoolName = typeof POOL_NAMES[number];

/** Bytes of each pool. */
export type PoolBytes = Record<PoolName, number>;

/** Zero bytes in every pool. */
export function emptyPoolBytes(): PoolBytes {
  return Object.fromEntries(POOL_NAMES.map((p) => [p, 0])) as PoolBytes;
}

/** The sum over pools. */
export function total(bytes: PoolBytes): number {
  let s = 0;
  for (const p of POOL_NAMES) s += bytes[p];
  return s;
}

interface ModelBlock {
  /** Its place in the {@linkcode History}, or -1 without one. */
  k: number;
  id: number;
  offset: number;
  size: number;
  requestedSize: number;
  state: BlockStateName;
  usage: string;
  label: string | null;
}

/** What {@linkcode History.addBlock} keeps of a placed block. */
export type PlacedBlock = Pick<ModelBlock, "id" | "offset" | "size" | "requestedSize" | "label">;

interface ModelHeap {
  /** Its place in the {@linkcode History}, or -1 without one. */
  k: number;
  id: number;
  pool: PoolName;
  size: number;
  isSplit: boolean;
  blocks: Map<number, ModelBlock>;
}

/** Blocks a {@linkcode History} makes room for at first; it doubles when full. */
const FIRST_ROOM = 1024;

/**
 * What a model kept of every block and heap, for pictures over time: event
 * indices of each block's placing, free, recycling (its memory reusable:
 * at once, or at the submit after a pending free) and end (a cached block
 * of an unsplit heap ends when it is replaced or its heap released), and of
 * each heap's making, split and release. An index not reached is
 * {@linkcode NEVER}. Blocks are kept in typed arrays (a trace may place
 * millions): index them below {@linkcode History.blocks}.
 */
export class History {
  /** Blocks kept, in the order they were placed. */
  blocks = 0;
  /** Each block's heap: its index in the `heap*` lists. */
  blockHeap: Float64Array;
  /** Offset of each block in its heap. */
  offset: Float64Array;
  /** Bytes of each block. */
  size: Float64Array;
  /** Bytes each block asked for. */
  requested: Float64Array;
  /** The trace's block id of each block (ids are reused once freed). */
  id: Float64Array;
  /** Event that placed each block. */
  placedAt: Float64Array;
  /** Event that freed each block (its bytes stopped counting as allocated). */
  freedAt: Float64Array;
  /** Event that made each block's memory reusable: its free, or the submit after a pending free. */
  recycledAt: Float64Array;
  /** Event that took each block out of its heap (cached blocks stay until replaced). */
  goneAt: Float64Array;
  /** Each block's label: its index in `labels`, or -1. */
  labelIndex: Int32Array;
  /** The distinct labels, in the order first seen. */
  readonly labels: string[] = [];
  readonly #labelCodes = new Map<string, number>();
  /** Heaps in the order they were made: their trace id. */
  readonly heapId: number[] = [];
  /** Pool of each heap. */
  readonly heapPool: PoolName[] = [];
  /** Bytes of each heap. */
  readonly heapSize: number[] = [];
  /** Event that made each heap. */
  readonly madeAt: number[] = [];
  /** Event that released each heap. */
  readonly releasedAt: number[] = [];
  /** Event that made each heap a split heap: the event that made it if it was split from the start. */
  readonly splitAt: number[] = [];

  /** @param room blocks to make room for at first (it grows past them) */
  constructor(room = FIRST_ROOM) {
    const n = Math.max(1, room);
    this.blockHeap = new Float64Array(n);
    this.offset = new Float64Array(n);
    this.size = new Float64Array(n);
    this.requested = new Float64Array(n);
    this.id = new Float64Array(n);
    this.placedAt = new Float64Array(n);
    this.freedAt = new Float64Array(n);
    this.recycledAt = new Float64Array(n);
    this.goneAt = new Float64Array(n);
    this.labelIndex = new Int32Array(n);
  }

  /** The label of block `k`, or null. */
  label(k: number): string | null {
    const l = this.labelIndex[k];
    return l < 0 ? null : this.labels[l];
  }

  /** Keeps a block of heap `heap` placed at event `i`; returns its index. */
  addBlock(heap: number, block: PlacedBlock, i: number): number {
    const k = this.blocks++;
    if (k === this.size.length) this.#grow();
    this.blockHeap[k] = heap;
    this.offset[k] = block.offset;
    this.size[k] = block.size;
    this.requested[k] = block.requestedSize;
    this.id[k] = block.id;
    this.placedAt[k] = i;
    this.freedAt[k] = this.recycledAt[k] = this.goneAt[k] = NEVER;
    // Labels are drawn: see MAX_LABEL_CHARS.
    const label = block.label === null ? null : cutLabel(block.label);
    let l = -1;
    if (label !== null) {
      l = this.#labelCodes.get(label) ?? -1;
      if (l < 0) {
        l = this.labels.push(label) - 1;
        this.#labelCodes.set(label, l);
      }
    }
    this.labelIndex[k] = l;
    return k;
  }

  #grow(): void {
    const wider = <T extends Float64Array | Int32Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(a.length * 2);
      b.set(a);
      return b;
    };
    this.blockHeap = wider(this.blockHeap);
    this.offset = wider(this.offset);
    this.size = wider(this.size);
    this.requested = wider(this.requested);
    this.id = wider(this.id);
    this.placedAt = wider(this.placedAt);
    this.freedAt = wider(this.freedAt);
    this.recycledAt = wider(this.recycledAt);
    this.goneAt = wider(this.goneAt);
    this.labelIndex = wider(this.labelIndex);
  }
}

/** The index of an event that never came. */
export const NEVER: number = Number.MAX_SAFE_INTEGER;

/**
 * The heaps and blocks of a trace after each event. Events naming a heap
 * it does not hold (a trace that starts mid-run) are skipped; a heap made
 * twice, or a block outside its heap, is a {@linkcode TraceError}.
 */
export class HeapModel {
  /** Bytes in live blocks, per pool. */
  readonly allocated: PoolBytes = emptyPoolBytes();
  /** Bytes in heaps held, per pool. */
  readonly reserved: PoolBytes = emptyPoolBytes();
  /** Bytes live blocks asked for. */
  requested = 0;
  /** Bytes in live blocks, all pools. */
  allocatedTotal = 0;
  /** Bytes in heaps held, all pools. */
  reservedTotal = 0;
  readonly #heaps = new Map<number, ModelHeap>();
  readonly #heapOf = new Map<number, ModelHeap>();
  readonly #pending = new Set<number>();
  /** What the model keeps of every block and heap, if asked. */
  readonly history: History | null;

  /**
   * @param options `history`: keep every block's and heap's life in
   *   {@linkcode HeapModel.history}; `blocks`: how many to make room for
   */
  constructor(options: { history?: boolean; blocks?: number } = {}) {
    this.history = options.history ? new History(options.blocks) : null;
  }

  /**
   * Applies one event of a checked trace.
   *
   * @param e the event
   * @param i its index, for errors
   * @throws {TraceError} a heap made twice, or a block that does not fit its heap
   */
  apply(e: TraceEvent, i: number): void {
    switch (e[0]) {
      case "heap": {
        if (this.#heaps.has(e[1])) throw new TraceError(`heap ${e[1]} is made twice`, i);
        const pool = e[3] as PoolName;
        const h = this.history;
        const k = h ? h.heapId.length : -1;
        if (h) {
          h.heapId.push(e[1]);
          h.heapPool.push(pool);
          h.heapSize.push(e[2]);
          h.madeAt.push(i);
          h.releasedAt.push(NEVER);
          h.splitAt.push(e[4] ? i : NEVER);
        }
        this.#heaps.set(e[1], { k, id: e[1], pool, size: e[2], isSplit: e[4], blocks: new Map() });
        this.reserved[pool] += e[2];
        this.reservedTotal += e[2];
        break;
      }
      case "release": {
        const heap = this.#heaps.get(e[1]);
        if (!heap) break;
        this.reserved[heap.pool] -= heap.size;
        this.reservedTotal -= heap.size;
        for (const b of heap.blocks.values()) this.#drop(heap, b, i);
        this.#heaps.delete(e[1]);
        if (this.history) this.history.releasedAt[heap.k] = i;
        break;
      }
      case "split": {
        const heap = this.#heaps.get(e[1]);
        if (!heap) break;
        for (const b of heap.blocks.values()) this.#drop(heap, b, i);
        heap.isSplit = true;
        if (this.history && this.history.splitAt[heap.k] === NEVER) {
          this.history.splitAt[heap.k] = i;
        }
        break;
      }
      case "a":
      case "s": {
        const scalar = e[0] === "s";
        const heap = this.#heaps.get((scalar ? e[3] : e[6]) ?? NaN);
        if (!heap) break;
        const block: ModelBlock = scalar
          ? {
            k: -1,
            id: e[1],
            offset: e[4]!,
            size: e[5]!,
            requestedSize: 4,
            state: "live",
            usage: "uniform",
            label: "scalar",
          }
          : {
            k: -1,
            id: e[1],
            offset: e[7]!,
            size: e[8]!,
            requestedSize: e[2],
            state: "live",
            usage: e[3] ?? "storage",
            label: e[9] ?? null,
          };
        if (block.offset + block.size > heap.size) {
          throw new TraceError(
            `block ${block.id} of ${block.size} bytes at offset ${block.offset} lies outside ` +
              `heap ${heap.id} of ${heap.size} bytes`,
            i,
          );
        }
        // An unsplit heap holds one block: a new one replaces the cached one.
        if (!heap.isSplit) { for (const old of heap.blocks.values()) this.#drop(heap, old, i); }
        // A live block of the same id elsewhere was never freed: the new one replaces it.
        const before = this.#heapOf.get(block.id);
        const old = before?.blocks.get(block.id);
        if (before && old) this.#drop(before, old, i);
        if (this.history) {
          block.k = this.history.addBlock(heap.k, block, i);
        }
        heap.blocks.set(block.id, block);
        this.#heapOf.set(block.id, heap);
        this.allocated[heap.pool] += block.size;
        this.allocatedTotal += block.size;
        this.requested += block.requestedSize;
        break;
      }
      case "f": {
        const heap = this.#heapOf.get(e[1]);
        const block = heap?.blocks.get(e[1]);
        if (!heap || !block || block.state !== "live") break;
        this.allocated[heap.pool] -= block.size;
        this.allocatedTotal -= block.size;
        this.requested -= block.requestedSize;
        if (this.history) this.history.freedAt[block.k] = i;
        if (e[2] === true || e[2] === 1) {
          block.state = "pending";
          this.#pending.add(block.id);
        } else {
          this.#recycle(heap, block, i);
        }
        break;
      }
      case "submit":
        for (const id of this.#pending) {
          const heap = this.#heapOf.get(id);
          const block = heap?.blocks.get(id);
          if (heap && block?.state === "pending") this.#recycle(heap, block, i);
        }
        this.#pending.clear();
        break;
    }
  }

  /** Takes a block out of the model at event `i`, with its bytes if it was live. */
  #drop(heap: ModelHeap, block: ModelBlock, i: number): void {
    if (block.state === "live") {
      this.allocated[heap.pool] -= block.size;
      this.allocatedTotal -= block.size;
      this.requested -= block.requestedSize;
      if (this.history) this.history.freedAt[block.k] = i;
    }
    const h = this.history;
    if (h) {
      if (block.state !== "cached") h.recycledAt[block.k] = i;
      h.goneAt[block.k] = i;
    }
    heap.blocks.delete(block.id);
    this.#heapOf.delete(block.id);
    this.#pending.delete(block.id);
  }

  #recycle(heap: ModelHeap, block: ModelBlock, i: number): void {
    if (this.history) this.history.recycledAt[block.k] = i;
    if (heap.isSplit) {
      if (this.history) this.history.goneAt[block.k] = i;
      heap.blocks.delete(block.id);
      this.#heapOf.delete(block.id);
    } else {
      block.state = "cached";
    }
  }

  /** The heaps now, as a snapshot lists them: pools in order, free ranges filled in. */
  snapshotHeaps(): SnapshotHeap[] {
    const order = (h: ModelHeap) => POOL_NAMES.indexOf(h.pool);
    const heaps = [...this.#heaps.values()].sort((a, b) => order(a) - order(b) || a.id - b.id);
    return heaps.map((h) => {
      const blocks: SnapshotBlock[] = [];
      let at = 0;
      for (const b of [...h.blocks.values()].sort((x, y) => x.offset - y.offset)) {
        if (b.offset > at) blocks.push(freeRange(at, b.offset - at));
        const { k: _, ...block } = b;
        blocks.push({ ...block, ageOps: null });
        at = Math.max(at, b.offset + b.size);
      }
      if (at < h.size) blocks.push(freeRange(at, h.size - at));
      return {
        id: h.id,
        pool: h.pool,
        size: h.size,
        isSplit: h.isSplit,
        lost: false,
        ageMs: 0,
        blocks,
      };
    });
  }
}
