/**
 * A pure range allocator: two-level segregated fit (TLSF) over any number of
 * disjoint regions, with no GPU types. Each region stands for one heap; ranges
 * never span or coalesce across regions, so one instance serves a whole pool
 * and placement stays O(1) however many heaps the pool holds.
 *
 * | method        | average | worst                 |
 * | ------------- | ------- | --------------------- |
 * | alloc         | O(1)    | O(1)                  |
 * | free          | O(1)    | O(1)                  |
 * | addRegion     | O(1)    | O(1)                  |
 * | removeRegion  | O(1)    | O(1)                  |
 * | retireRegion  | O(n)    | O(n) ranges in region |
 * | largestFree   | O(1)    | O(n) in top class     |
 *
 * @module
 */

import { TLSF_EXACT_SCAN, TLSF_FULLEST_SCAN, TLSF_SL_BITS } from "./constants.ts";

const SL_COUNT = 1 << TLSF_SL_BITS;

/** A range inside a region: allocated to a caller, or free. */
export interface Range {
  /** The region the range lies in. */
  readonly region: Region;
  /** Start of the range in bytes from the region's start. */
  readonly offset: number;
  /** Length in bytes. */
  readonly size: number;
  /** Whether the range is free. */
  readonly isFree: boolean;
  /** Caller data attached to an allocated range (the block it holds); cleared when freed. */
  tag: unknown;
}

/** One contiguous span of address space managed by a {@linkcode Tlsf}. */
export interface Region {
  /** Identifier, unique within its allocator. */
  readonly id: number;
  /** Total size in bytes. */
  readonly size: number;
  /** Bytes of this region handed out and not yet freed. */
  readonly usedBytes: number;
  /** True once retired: its free ranges are never handed out again. */
  readonly retired: boolean;
  /** Caller data attached to the region (the heap it stands for). */
  readonly owner: unknown;
}

class Node implements Range {
  region: RegionImpl;
  offset: number;
  size: number;
  isFree = true;
  tag: unknown = undefined;
  prevPhys: Node | null = null;
  nextPhys: Node | null = null;
  prevFree: Node | null = null;
  nextFree: Node | null = null;
  constructor(region: RegionImpl, offset: number, size: number) {
    this.region = region;
    this.offset = offset;
    this.size = size;
  }
}

class RegionImpl implements Region {
  id: number;
  size: number;
  usedBytes = 0;
  retired = false;
  owner: unknown;
  first: Node;
  constructor(id: number, size: number, owner: unknown) {
    this.id = id;
    this.size = size;
    this.owner = owner;
    this.first = new Node(this, 0, size);
  }
}

/**
 * TLSF placement (Masmano et al., as in AMD's VMA): free ranges are kept
 * in lists indexed by (first level = floor(log2 size), second level = the
 * next {@linkcode TLSF_SL_BITS} bits); two bitmaps find a non-empty list
 * that is guaranteed to fit in constant time. Sizes are multiples of the
 * granularity, so every offset is a multiple of it too.
 *
 * @example
 * ```ts
 * import { Tlsf } from "./tlsf.ts";
 * import assert from "node:assert/strict";
 *
 * const tlsf = new Tlsf(256);
 * const heap = tlsf.addRegion(8 << 20);
 * const a = tlsf.alloc(1024)!;
 * const b = tlsf.alloc(4096)!;
 * assert.equal(b.offset, 1024);
 * tlsf.free(a);
 * tlsf.free(b);
 * assert.equal(tlsf.largestFree(), heap.size); // neighbours coalesced
 * ```
 */
export class Tlsf {
  #granularity: number;
  #flBitmap = 0;
  #slBitmaps: number[] = [];
  #heads: (Node | null)[] = [];
  #regions = new Map<number, RegionImpl>();
  #nextRegionId = 1;
  #freeBytes = 0;
  #fullestFirst: boolean;

  /**
   * @param granularity every size and offset is a multiple of this (a power of two).
   * @param fullestFirst place each range in the fullest region among the first few that
   *   hold it (Note [the fullest heap first]) rather than in the first good fit
   */
  constructor(granularity: number, fullestFirst = false) {
    if (!Number.isInteger(granularity) || granularity <= 0 || (granularity & (granularity - 1))) {
      throw new RangeError(
        `Cannot create Tlsf: granularity must be a power of two, got ${granularity}`,
      );
    }
    this.#granularity = granularity;
    this.#fullestFirst = fullestFirst;
    for (let i = 0; i < 32; i++) this.#slBitmaps.push(0);
    for (let i = 0; i < 32 * SL_COUNT; i++) this.#heads.push(null);
  }

  /** The granularity every size and offset is a multiple of. */
  get granularity(): number {
    return this.#granularity;
  }

  /** Bytes in free ranges of regions that are not retired. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /** Number of regions. */
  get regionCount(): number {
    return this.#regions.size;
  }

  /** Every region, in the order they were added. */
  regions(): IterableIterator<Region> {
    return this.#regions.values();
  }

  /** Adds a region of `size` bytes, all free, and returns it. */
  addRegion(size: number, owner?: unknown): Region {
    this.#checkSize(size, "add region");
    const region = new RegionImpl(this.#nextRegionId++, size, owner);
    this.#regions.set(region.id, region);
    this.#insert(region.first);
    this.#freeBytes += size;
    return region;
  }

  /** Removes a region that has nothing allocated in it. */
  removeRegion(region: Region): void {
    const r = this.#own(region);
    if (r.usedBytes !== 0) {
      throw new Error(`Cannot remove region ${r.id}: ${r.usedBytes} bytes are still allocated`);
    }
    if (!r.retired) {
      this.#unlink(r.first);
      this.#freeBytes -= r.size;
    }
    this.#regions.delete(r.id);
  }

  /**
   * Stops handing out ranges of a region (its memory went bad): its free
   * ranges leave the free lists; ranges freed later are not returned to them.
   */
  retireRegion(region: Region): void {
    const r = this.#own(region);
    if (r.retired) return;
    for (let n: Node | null = r.first; n; n = n.nextPhys) {
      if (n.isFree) {
        this.#unlink(n);
        this.#freeBytes -= n.size;
      }
    }
    r.retired = true;
  }

  /**
   * Places `size` bytes (a positive multiple of the granularity) and returns
   * the range, or null when no free range is large enough.
   */
  alloc(size: number): Range | null {
    this.#checkSize(size, "allocate");
    const units = size / this.#granularity;
    // Round up to the next list boundary so any range in the found list fits.
    const first = listIndex(units + classStep(units) - 1);
    let node = this.#findFrom(first >>> TLSF_SL_BITS, first & (SL_COUNT - 1));
    if (!node) {
      // Good fit failed; the list of the exact class may still hold a range that fits.
      let scanned = 0;
      for (
        let n = this.#heads[listIndex(units)];
        n && scanned < TLSF_EXACT_SCAN;
        n = n.nextFree
      ) {
        scanned++;
        if (n.size >= size) {
          node = n;
          break;
        }
      }
      if (!node) return null;
    }
    // With one region there is no other to choose.
    if (this.#fullestFirst && this.#regions.size > 1) node = this.#fullest(size, units, node);
    this.#unlink(node);
    this.#freeBytes -= node.size;
    if (node.size > size) {
      const rest = new Node(node.region, node.offset + size, node.size - size);
      rest.prevPhys = node;
      rest.nextPhys = node.nextPhys;
      if (node.nextPhys) node.nextPhys.prevPhys = rest;
      node.nextPhys = rest;
      node.size = size;
      this.#insert(rest);
      this.#freeBytes += rest.size;
    }
    node.isFree = false;
    node.region.usedBytes += size;
    return node;
  }

  /** Returns a range from {@linkcode Tlsf.alloc}, merging it with free neighbours. */
  free(range: Range): void {
    let node = range as Node;
    if (!(node instanceof Node) || this.#regions.get(node.region.id) !== node.region) {
      throw new Error("Cannot free range: it does not belong to this allocator");
    }
    if (node.isFree) throw new Error(`Cannot free range at offset ${node.offset}: already free`);
    const region = node.region;
    region.usedBytes -= node.size;
    node.isFree = true;
    node.tag = undefined;
    const live = !region.retired;
    const prev = node.prevPhys;
    if (prev && prev.isFree) {
      if (live) {
        this.#unlink(prev);
        this.#freeBytes -= prev.size;
      }
      prev.size += node.size;
      prev.nextPhys = node.nextPhys;
      if (node.nextPhys) node.nextPhys.prevPhys = prev;
      node = prev;
    }
    const next = node.nextPhys;
    if (next && next.isFree) {
      if (live) {
        this.#unlink(next);
        this.#freeBytes -= next.size;
      }
      node.size += next.size;
      node.nextPhys = next.nextPhys;
      if (next.nextPhys) next.nextPhys.prevPhys = node;
    }
    if (node.prevPhys === null) region.first = node;
    if (live) {
      this.#insert(node);
      this.#freeBytes += node.size;
    }
  }

  /** The largest free range of regions that are not retired, in bytes (0 if none). */
  largestFree(): number {
    if (this.#flBitmap === 0) return 0;
    const fl = 31 - Math.clz32(this.#flBitmap);
    const sl = 31 - Math.clz32(this.#slBitmaps[fl]);
    let best = 0;
    for (let n = this.#heads[fl * SL_COUNT + sl]; n; n = n.nextFree) best = Math.max(best, n.size);
    return best;
  }

  /** Every range of a region, allocated and free, in address order. */
  *ranges(region: Region): IterableIterator<Range> {
    for (let n: Node | null = this.#own(region).first; n; n = n.nextPhys) yield n;
  }

  #own(region: Region): RegionImpl {
    const r = this.#regions.get(region.id);
    if (r !== region) throw new Error(`Region ${region.id} does not belong to this allocator`);
    return r;
  }

  #checkSize(size: number, what: string): void {
    if (!Number.isInteger(size) || size <= 0 || size % this.#granularity !== 0) {
      throw new RangeError(
        `Cannot ${what}: size must be a positive multiple of ${this.#granularity}, got ${size}`,
      );
    }
    if (size / this.#granularity >= 2 ** 31) {
      throw new RangeError(`Cannot ${what}: size ${size} is too large for this granularity`);
    }
  }

  // Note [the fullest heap first]: a range of a large-pool request goes to the fullest heap
  // (used bytes ÷ size) among the first TLSF_FULLEST_SCAN free ranges that hold it, smallest
  // lists first, ties to the smaller range. What pins memory is a heap that is mostly free but
  // not empty: a few blocks that outlive their neighbours keep the whole heap, and the next
  // request too large for its free ranges makes a new heap. Placing new blocks in full heaps
  // lets the emptier ones drain, so that they serve a large request whole or go back as idle;
  // the first good fit spreads blocks over whichever heap freed a range last. Tuning half: mean
  // 1.061 -> 1.065, worst 1.099 both; 40 random workloads: worst 1.431 -> 1.398; the
  // adversary's worst: 1.858 -> 1.607 (bench/README.md). Small pools keep the first good fit:
  // their heaps are at most 8 MiB, and their requests are the hot path.

  /** Among the first free ranges that hold `size`, the one in the fullest region (`found` if none). */
  #fullest(size: number, units: number, found: Node): Node {
    let best = found;
    let bestFill = fill(found);
    let index = listIndex(units);
    let visited = 0;
    while (visited < TLSF_FULLEST_SCAN) {
      const head = this.#findFrom(index >>> TLSF_SL_BITS, index & (SL_COUNT - 1));
      if (!head) break;
      for (let n: Node | null = head; n && visited < TLSF_FULLEST_SCAN; n = n.nextFree) {
        visited++;
        if (n.size < size) continue;
        const f = fill(n);
        if (f > bestFill || (f === bestFill && n.size < best.size)) {
          best = n;
          bestFill = f;
        }
      }
      index = listIndex(head.size / this.#granularity) + 1;
    }
    return best;
  }

  #findFrom(fl: number, sl: number): Node | null {
    if (fl >= 32) return null;
    let slMap = this.#slBitmaps[fl] & (~0 << sl);
    if (slMap === 0) {
      const flMap = fl + 1 >= 32 ? 0 : this.#flBitmap & (~0 << (fl + 1));
      if (flMap === 0) return null;
      fl = 31 - Math.clz32(flMap & -flMap);
      slMap = this.#slBitmaps[fl];
    }
    sl = 31 - Math.clz32(slMap & -slMap);
    return this.#heads[fl * SL_COUNT + sl];
  }

  #insert(node: Node): void {
    const i = listIndex(node.size / this.#granularity);
    const fl = i >>> TLSF_SL_BITS;
    const sl = i & (SL_COUNT - 1);
    const head = this.#heads[i];
    node.prevFree = null;
    node.nextFree = head;
    if (head) head.prevFree = node;
    this.#heads[i] = node;
    this.#slBitmaps[fl] |= 1 << sl;
    this.#flBitmap |= 1 << fl;
  }

  #unlink(node: Node): void {
    const i = listIndex(node.size / this.#granularity);
    const fl = i >>> TLSF_SL_BITS;
    const sl = i & (SL_COUNT - 1);
    if (node.prevFree) node.prevFree.nextFree = node.nextFree;
    else this.#heads[i] = node.nextFree;
    if (node.nextFree) node.nextFree.prevFree = node.prevFree;
    node.prevFree = node.nextFree = null;
    if (this.#heads[i] === null) {
      this.#slBitmaps[fl] &= ~(1 << sl);
      if (this.#slBitmaps[fl] === 0) this.#flBitmap &= ~(1 << fl);
    }
  }
}

/** The used fraction of a free range's region. */
function fill(n: Node): number {
  return n.region.usedBytes / n.region.size;
}

/** Index of the free list holding sizes of `units` granules: first level * SL_COUNT + second level. */
function listIndex(units: number): number {
  if (units < SL_COUNT) return units;
  const log2 = 31 - Math.clz32(units);
  return (log2 - TLSF_SL_BITS + 1) * SL_COUNT +
    ((units >>> (log2 - TLSF_SL_BITS)) & (SL_COUNT - 1));
}

/** Width, in granules, of the size class holding `units`. */
function classStep(units: number): number {
  if (units < SL_COUNT) return 1;
  return 1 << (31 - Math.clz32(units) - TLSF_SL_BITS);
}
