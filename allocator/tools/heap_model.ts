/**
 * A model of the heaps a trace describes: heaps made and released, blocks
 * placed, freed, waiting for a submit or cached, followed event by event,
 * with the bytes allocated and reserved in each pool. The memory picture
 * reads it; it takes a trace {@linkcode readTrace} has checked.
 *
 * @module
 */

import { POOL_NAMES } from "../allocator.ts";
import type { BlockStateName, SnapshotBlock, SnapshotHeap } from "../snapshot.ts";
import type { TraceEvent } from "../trace.ts";
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
  id: number;
  offset: number;
  size: number;
  requestedSize: number;
  state: BlockStateName;
  usage: string;
  label: string | null;
}

interface ModelHeap {
  id: number;
  pool: PoolName;
  size: number;
  isSplit: boolean;
  blocks: Map<number, ModelBlock>;
}

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
  readonly #heaps = new Map<number, ModelHeap>();
  readonly #heapOf = new Map<number, ModelHeap>();
  readonly #pending = new Set<number>();

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
        this.#heaps.set(e[1], { id: e[1], pool, size: e[2], isSplit: e[4], blocks: new Map() });
        this.reserved[pool] += e[2];
        break;
      }
      case "release": {
        const heap = this.#heaps.get(e[1]);
        if (!heap) break;
        this.reserved[heap.pool] -= heap.size;
        for (const b of heap.blocks.values()) this.#drop(heap, b);
        this.#heaps.delete(e[1]);
        break;
      }
      case "split": {
        const heap = this.#heaps.get(e[1]);
        if (!heap) break;
        for (const b of heap.blocks.values()) this.#drop(heap, b);
        heap.isSplit = true;
        break;
      }
      case "a":
      case "s": {
        const scalar = e[0] === "s";
        const heap = this.#heaps.get((scalar ? e[3] : e[6]) ?? NaN);
        if (!heap) break;
        const block: ModelBlock = scalar
          ? {
            id: e[1],
            offset: e[4]!,
            size: e[5]!,
            requestedSize: 4,
            state: "live",
            usage: "uniform",
            label: "scalar",
          }
          : {
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
        if (!heap.isSplit) { for (const old of heap.blocks.values()) this.#drop(heap, old); }
        // A live block of the same id elsewhere was never freed: the new one replaces it.
        const before = this.#heapOf.get(block.id);
        const old = before?.blocks.get(block.id);
        if (before && old) this.#drop(before, old);
        heap.blocks.set(block.id, block);
        this.#heapOf.set(block.id, heap);
        this.allocated[heap.pool] += block.size;
        this.requested += block.requestedSize;
        break;
      }
      case "f": {
        const heap = this.#heapOf.get(e[1]);
        const block = heap?.blocks.get(e[1]);
        if (!heap || !block || block.state !== "live") break;
        this.allocated[heap.pool] -= block.size;
        this.requested -= block.requestedSize;
        if (e[2] === true || e[2] === 1) {
          block.state = "pending";
          this.#pending.add(block.id);
        } else {
          this.#recycle(heap, block);
        }
        break;
      }
      case "submit":
        for (const id of this.#pending) {
          const heap = this.#heapOf.get(id);
          const block = heap?.blocks.get(id);
          if (heap && block?.state === "pending") this.#recycle(heap, block);
        }
        this.#pending.clear();
        break;
    }
  }

  /** Takes a block out of the model, with its bytes if it was live. */
  #drop(heap: ModelHeap, block: ModelBlock): void {
    if (block.state === "live") {
      this.allocated[heap.pool] -= block.size;
      this.requested -= block.requestedSize;
    }
    heap.blocks.delete(block.id);
    this.#heapOf.delete(block.id);
    this.#pending.delete(block.id);
  }

  #recycle(heap: ModelHeap, block: ModelBlock): void {
    if (heap.isSplit) {
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
        blocks.push({ ...b, ageOps: null });
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

function freeRange(offset: number, size: number): SnapshotBlock {
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
