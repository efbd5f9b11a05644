/**
 * One memory budget for every allocator of a process: a SharedArrayBuffer
 * that each Worker's allocator reserves heap bytes from (with Atomics), and
 * where each publishes its live statistics for any thread to read.
 *
 * @module
 */

import { BUDGET_LABEL_BYTES, BUDGET_RELIEVE_MS, BUDGET_SLOTS } from "../../allocator/constants.ts";
import { parseBytes } from "../../allocator/config.ts";
import type { MemoryBudget } from "../../allocator/budget.ts";
import { AllocatorError } from "../../allocator/errors.ts";
import { formatBytes } from "../../allocator/format.ts";
import type { PoolCounters } from "../../allocator/stats.ts";

/** Options of a new {@linkcode SharedBudget}. */
export interface SharedBudgetOptions {
  /** Bytes all sharers together may reserve, as a number or `"512MiB"` (0: no limit, the default). */
  limit?: number | string;
  /** How many sharers can hold a slot at once (default 64). */
  slots?: number;
}

/** One sharer's part of a {@linkcode SharedBudget}, as {@linkcode SharedBudget.shares} reads it. */
export interface BudgetShare {
  /** The slot's index. */
  slot: number;
  /** The label given when the slot was claimed. */
  label: string;
  /** Bytes of heaps the sharer holds now. */
  reserved: number;
  /** Highest `reserved` since the slot was claimed. */
  peakReserved: number;
  /** Bytes of live blocks, as last published. */
  allocated: number;
  /** Highest `allocated`, as last published. */
  peakAllocated: number;
  /** Bytes of blocks freed and waiting for a submit, as last published. */
  pendingFree: number;
  /** Heaps (GPUBuffers) held, as last published. */
  heaps: number;
  /** Live blocks, as last published. */
  blocks: number;
  /** Allocations served so far, as last published. */
  allocations: number;
  /** Allocations served from cached memory so far, as last published. */
  cacheHits: number;
  /** GPUBuffers created so far, as last published. */
  createBufferCalls: number;
}

// ---- layout of the SharedArrayBuffer ----
// Header: 8 BigInt64 (bytes need more than 32 bits), then 16 Int32.
const MAGIC = 0x6770756865617031n; // "gpuheap1"
const H_MAGIC = 0;
const H_LIMIT = 1;
const H_RESERVED = 2;
const H_RESERVED_PEAK = 3;
const H_ALLOCATED = 4;
const H_ALLOCATED_PEAK = 5;
const H_SLOTS = 6;
const I_PRESSURE = 16; // Int32 index: raised (incremented) to ask every sharer to release
const I_RELEASES = 17; // incremented on every release; waiters in relieve wait on it
const I_NEXT_TOKEN = 18;
const I_REFUSALS = 19;
const I_WAITERS = 20; // sharers waiting in relieve: a release wakes them only if there are any
const HEADER_BYTES = 128;
// A slot: Int32 token, seqlock, label length, spare; BigInt64 reserved and
// its peak (exact, the owner and a reclaimer both touch them); Float64 published figures
// (one writer: a seqlock is enough, and plain stores are cheaper than Atomics).
const S_TOKEN = 0;
const S_SEQ = 1;
const S_LABEL_LEN = 2;
const S_BIG = 16;
const B_RESERVED = 0;
const B_RESERVED_PEAK = 1;
const S_FLOAT = 32;
const F_ALLOCATED = 0;
const F_ALLOCATED_PEAK = 1;
const F_PENDING_FREE = 2;
const F_HEAPS = 3;
const F_BLOCKS = 4;
const F_ALLOCATIONS = 5;
const F_CACHE_HITS = 6;
const F_CREATE_BUFFER_CALLS = 7;
const FLOATS = 8;
const S_LABEL = S_FLOAT + FLOATS * 8;
const SLOT_BYTES = S_LABEL + BUDGET_LABEL_BYTES;
const MAX_SLOTS = 4096;
/** A slot being given back: neither free nor owned. */
const RECLAIMING = -1;
/** A waiting sharer raises pressure again after this long: others may have freed more since. */
const RELIEVE_SLICE_MS = 10;

/** Set by {@linkcode SharedBudget.from} for the constructor it calls. */
let attaching: { buffer: SharedArrayBuffer; slot: number } | null = null;

/**
 * A memory budget shared by allocators on several threads: one
 * SharedArrayBuffer with one limit for the whole process, and a slot per
 * sharer (claimed by compare-and-swap) where the sharer's reservation and
 * live figures are kept. Make it on the main thread, pass
 * {@linkcode SharedBudget.buffer} and a claimed slot to each Worker in
 * `postMessage`, and rebuild it there with {@linkcode SharedBudget.from}.
 *
 * Each heap an allocator makes is reserved first; when a reservation would
 * cross the limit, the allocator releases its own cache, then
 * {@linkcode SharedBudget.relieve} raises a pressure flag that makes every
 * other sharer release its cache at its next allocation, and waits (at most
 * 200 ms) for the room to appear. The main thread reads every sharer's
 * memory with {@linkcode SharedBudget.shares}, without a message, and gives
 * back the slot of a Worker that died with {@linkcode SharedBudget.reclaim}.
 *
 * A view bound to a slot is for one thread: the one whose allocator uses it.
 *
 * | method   | cost                                          |
 * | -------- | --------------------------------------------- |
 * | reserve  | O(1): a compare-and-swap loop on the total    |
 * | release  | O(1)                                          |
 * | pressured| O(1): one atomic load                         |
 * | publish  | O(1): two atomic stores, eight plain ones, one atomic add |
 * | relieve  | O(s) per wait of up to 10 ms, s slots         |
 * | claim    | O(s)                                          |
 * | shares   | O(s)                                          |
 *
 * @example
 * ```ts
 * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import { SharedBudget } from "@gpuheap/gpuheap/workers";
 * import assert from "node:assert/strict";
 *
 * const budget = new SharedBudget({ limit: "64MiB" });
 * // In a Worker: SharedBudget.from(buffer, slot), with both sent by postMessage.
 * const mine = SharedBudget.from(budget.buffer, budget.claim("worker 1").slot);
 * const heap = new HeapAllocator(new FakeDevice(), { budget: mine });
 * const block = heap.alloc(1 << 20);
 * assert.equal(budget.reserved, heap.driverAllocatedMemory());
 * assert.equal(budget.shares()[0].allocated, block.size);
 * heap.destroy();
 * mine.detach();
 * assert.equal(budget.reserved, 0);
 * ```
 */
export class SharedBudget implements MemoryBudget {
  #buffer: SharedArrayBuffer;
  #i32: Int32Array<SharedArrayBuffer>;
  #big: BigInt64Array<SharedArrayBuffer>;
  #f64: Float64Array<SharedArrayBuffer>;
  #u8: Uint8Array<SharedArrayBuffer>;
  #slots: number;
  #limit: bigint;
  /** The bound slot, or -1. */
  #slot = -1;
  #token = 0;
  #tokenIdx = 0;
  #seqIdx = 0;
  #bigIdx = 0;
  #floatIdx = 0;
  #lastAllocated = 0;
  #seenPressure = 0;
  /** End of the current relieve episode (0: none); reset by the next allocation. */
  #relieveUntil = 0;
  /** The release count when relieve last said to retry (null: not yet this episode). */
  #retriedAt: number | null = null;

  /**
   * Makes a new budget with its own SharedArrayBuffer. The view it returns
   * holds no slot: claim one per sharer with {@linkcode SharedBudget.claim}.
   *
   * @param options the limit (default: none) and the number of slots (default 64)
   * @throws {RangeError} a bad limit or slot count
   */
  constructor(options: SharedBudgetOptions = {}) {
    const from = attaching;
    attaching = null;
    if (from) {
      this.#buffer = from.buffer;
    } else {
      const slots = options.slots ?? BUDGET_SLOTS;
      if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS) {
        throw new RangeError(
          `Cannot create SharedBudget: slots must be an integer from 1 to ${MAX_SLOTS}, got ${slots}`,
        );
      }
      const limit = parseBytes(options.limit ?? 0, "SharedBudget limit");
      this.#buffer = new SharedArrayBuffer(HEADER_BYTES + slots * SLOT_BYTES);
      const big = new BigInt64Array(this.#buffer);
      big[H_MAGIC] = MAGIC;
      big[H_LIMIT] = BigInt(limit);
      big[H_SLOTS] = BigInt(slots);
    }
    this.#i32 = new Int32Array(this.#buffer);
    this.#big = new BigInt64Array(this.#buffer);
    this.#f64 = new Float64Array(this.#buffer);
    this.#u8 = new Uint8Array(this.#buffer);
    this.#slots = Number(this.#big[H_SLOTS]);
    this.#limit = this.#big[H_LIMIT];
    this.#seenPressure = Atomics.load(this.#i32, I_PRESSURE);
    if (from && from.slot >= 0) this.#bind(from.slot);
  }

  /**
   * A view of an existing budget, e.g. in a Worker given the buffer by
   * `postMessage`; bound to `slot` (already claimed) when given.
   *
   * @example
   * ```ts
   * import { SharedBudget } from "@gpuheap/gpuheap/workers";
   * import assert from "node:assert/strict";
   *
   * const budget = new SharedBudget({ limit: 1 << 30 });
   * const slot = budget.claim("worker 1").slot;
   * const view = SharedBudget.from(budget.buffer, slot);
   * assert.ok(view.reserve(4096));
   * assert.equal(budget.reserved, 4096);
   * view.release(4096);
   * view.detach();
   * ```
   *
   * @param buffer the budget's SharedArrayBuffer
   * @param slot a claimed slot to bind the view to (default: none)
   * @returns the view
   * @throws {TypeError} the buffer is not a budget's
   * @throws {RangeError} the slot is out of range or not claimed
   */
  static from(buffer: SharedArrayBuffer, slot = -1): SharedBudget {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < HEADER_BYTES) {
      throw new TypeError(
        `Cannot attach to SharedBudget: expected its SharedArrayBuffer, got ${buffer}`,
      );
    }
    const big = new BigInt64Array(buffer, 0, HEADER_BYTES / 8);
    const slots = Number(big[H_SLOTS]);
    if (big[H_MAGIC] !== MAGIC || buffer.byteLength !== HEADER_BYTES + slots * SLOT_BYTES) {
      throw new TypeError(
        "Cannot attach to SharedBudget: the SharedArrayBuffer was not made by SharedBudget",
      );
    }
    attaching = { buffer, slot };
    return new SharedBudget();
  }

  /** The SharedArrayBuffer to send to Workers (it is shared, not copied, by `postMessage`). */
  get buffer(): SharedArrayBuffer {
    return this.#buffer;
  }

  /** The bytes all sharers together may reserve (0: no limit). */
  get limit(): number {
    return Number(this.#limit);
  }

  /** The number of slots. */
  get slots(): number {
    return this.#slots;
  }

  /** The slot this view is bound to, or -1. */
  get slot(): number {
    return this.#slot;
  }

  /** Bytes reserved by all sharers now. */
  get reserved(): number {
    return Number(Atomics.load(this.#big, H_RESERVED));
  }

  /** Highest `reserved` since the budget was made: the process's peak of heap bytes. */
  get peakReserved(): number {
    return Number(Atomics.load(this.#big, H_RESERVED_PEAK));
  }

  /** Bytes of live blocks of all sharers, as published. */
  get allocated(): number {
    return Number(Atomics.load(this.#big, H_ALLOCATED));
  }

  /** Highest `allocated` since the budget was made. */
  get peakAllocated(): number {
    return Number(Atomics.load(this.#big, H_ALLOCATED_PEAK));
  }

  /**
   * Bytes that can still be reserved before the limit (`Infinity` without
   * one): what an allocator sizing a new heap to the budget can count on now.
   */
  get available(): number {
    if (this.#limit === 0n) return Infinity;
    const left = this.#limit - Atomics.load(this.#big, H_RESERVED);
    return Number(left > 0n ? left : 0n);
  }

  /** Slots claimed now: the sharers the limit is split among. O(s) for s slots. */
  get sharers(): number {
    let n = 0;
    for (let slot = 0; slot < this.#slots; slot++) {
      if (Atomics.load(this.#i32, slotByte(slot) / 4 + S_TOKEN) > 0) n++;
    }
    return n;
  }

  /** Times a sharer asked the others to release their caches. */
  get pressureEvents(): number {
    return Atomics.load(this.#i32, I_PRESSURE);
  }

  /** Reservations refused because they would have crossed the limit. */
  get refusals(): number {
    return Atomics.load(this.#i32, I_REFUSALS);
  }

  /**
   * Claims a free slot (by compare-and-swap, so threads may claim at once)
   * and returns a view bound to it. Pass its {@linkcode SharedBudget.slot} to
   * the Worker that will use it; the claimer gives it back with
   * {@linkcode SharedBudget.detach}, or {@linkcode SharedBudget.reclaim} if
   * the Worker died.
   *
   * @example
   * ```ts
   * import { SharedBudget } from "@gpuheap/gpuheap/workers";
   * import assert from "node:assert/strict";
   *
   * const budget = new SharedBudget({ slots: 2 });
   * const a = budget.claim("a");
   * const b = budget.claim("b");
   * assert.deepEqual(budget.shares().map((s) => s.label), ["a", "b"]);
   * assert.throws(() => budget.claim("c"), /all 2 are taken/);
   * a.detach();
   * b.detach();
   * ```
   *
   * @param label a name for the sharer, shown in out-of-memory messages (default `slot N`)
   * @returns a view bound to the claimed slot
   * @throws {AllocatorError} every slot is taken
   */
  claim(label?: string): SharedBudget {
    for (let slot = 0; slot < this.#slots; slot++) {
      const at = slotByte(slot) / 4 + S_TOKEN;
      if (Atomics.load(this.#i32, at) !== 0) continue;
      const token = (Atomics.add(this.#i32, I_NEXT_TOKEN, 1) + 1) & 0x7fffffff || 1;
      if (Atomics.compareExchange(this.#i32, at, 0, token) !== 0) continue;
      this.#resetSlot(slot);
      this.#writeLabel(slot, label ?? `slot ${slot}`);
      attaching = { buffer: this.#buffer, slot };
      return new SharedBudget();
    }
    throw new AllocatorError(
      `Cannot claim a slot of the shared budget: all ${this.#slots} are taken`,
    );
  }

  /**
   * Gives this view's slot back: whatever it still reserves returns to the
   * budget (destroy the allocator first), and the slot is free to claim.
   * Does nothing on a view without a slot, or whose claim already ended:
   * given back by another view of the same claim (the Worker's own, say) or
   * reclaimed, even if the slot was claimed again since. So the thread that
   * claimed a slot for a Worker can always detach its own view when the
   * Worker ends, without knowing whether the Worker detached first.
   *
   * @returns the bytes the slot still reserved (0 if nothing was given back)
   */
  detach(): number {
    const slot = this.#slot;
    if (slot < 0) return 0;
    this.#slot = -1;
    const token = this.#token;
    this.#token = 0;
    if (Atomics.compareExchange(this.#i32, this.#tokenIdx, token, RECLAIMING) !== token) return 0;
    return this.#giveBack(slot);
  }

  /**
   * Gives back the slot of a sharer that ended without detaching (a Worker
   * that crashed or was terminated): its reservation returns to the budget.
   * Call it once the Worker can no longer run.
   *
   * @example
   * ```ts
   * import { SharedBudget } from "@gpuheap/gpuheap/workers";
   * import assert from "node:assert/strict";
   *
   * const budget = new SharedBudget();
   * const worker = budget.claim("worker 1"); // as if used by a Worker that then died
   * worker.reserve(8 << 20);
   * assert.equal(budget.reclaim(worker.slot), 8 << 20);
   * assert.equal(budget.reserved, 0);
   * ```
   *
   * @param slot the slot to free
   * @returns the bytes it still reserved (0 if it was free)
   * @throws {RangeError} the slot is out of range
   */
  reclaim(slot: number): number {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.#slots) {
      throw new RangeError(
        `Cannot reclaim slot ${slot}: the shared budget has slots 0 to ${this.#slots - 1}`,
      );
    }
    const at = slotByte(slot) / 4 + S_TOKEN;
    const token = Atomics.load(this.#i32, at);
    if (token <= 0 || Atomics.compareExchange(this.#i32, at, token, RECLAIMING) !== token) return 0;
    return this.#giveBack(slot);
  }

  /**
   * Every claimed slot's figures, read without stopping anyone: reserved
   * bytes are exact, the rest as last published (after the sharer's last
   * allocation or free).
   *
   * @example
   * ```ts
   * import { SharedBudget } from "@gpuheap/gpuheap/workers";
   * import assert from "node:assert/strict";
   *
   * const budget = new SharedBudget();
   * const w = budget.claim("w");
   * w.reserve(1024);
   * assert.equal(budget.shares()[0].reserved, 1024);
   * w.release(1024);
   * w.detach();
   * assert.deepEqual(budget.shares(), []);
   * ```
   *
   * @returns one entry per claimed slot, by slot
   */
  shares(): BudgetShare[] {
    const out: BudgetShare[] = [];
    for (let slot = 0; slot < this.#slots; slot++) {
      const share = this.#readShare(slot);
      if (share) out.push(share);
    }
    return out;
  }

  // ---- MemoryBudget: the calls of the allocator that uses this view ----

  /**
   * Takes `bytes` from the budget for this view's slot; false (and nothing
   * taken) if the total would cross the limit.
   *
   * @throws {AllocatorError} the view has no slot, or its slot was given back
   * @throws {RangeError} bytes is not a non-negative integer
   */
  reserve(bytes: number): boolean {
    this.#checkOwner(`reserve ${bytes} bytes`);
    const b = toBig(bytes, "reserve");
    const big = this.#big;
    let total = Atomics.load(big, H_RESERVED);
    for (;;) {
      const next = total + b;
      if (this.#limit > 0n && next > this.#limit) {
        Atomics.add(this.#i32, I_REFUSALS, 1);
        return false;
      }
      const seen = Atomics.compareExchange(big, H_RESERVED, total, next);
      if (seen === total) {
        total = next;
        break;
      }
      total = seen;
    }
    raise(big, H_RESERVED_PEAK, total);
    const mine = Atomics.add(big, this.#bigIdx + B_RESERVED, b) + b;
    raise(big, this.#bigIdx + B_RESERVED_PEAK, mine);
    this.#relieveUntil = 0;
    return true;
  }

  /**
   * Gives `bytes` back and wakes sharers waiting in
   * {@linkcode SharedBudget.relieve}. Does nothing once the slot was given back
   * (the reclaimer took all of it).
   *
   * @throws {RangeError} bytes is not a non-negative integer
   */
  release(bytes: number): void {
    const b = toBig(bytes, "release");
    if (!this.#owns()) return;
    Atomics.sub(this.#big, this.#bigIdx + B_RESERVED, b);
    Atomics.sub(this.#big, H_RESERVED, b);
    Atomics.add(this.#i32, I_RELEASES, 1);
    if (Atomics.load(this.#i32, I_WAITERS) > 0) Atomics.notify(this.#i32, I_RELEASES);
  }

  /**
   * True once after each time another sharer raised the pressure flag: the
   * allocator then releases its cache. Called before every allocation, so it
   * is one atomic load.
   */
  pressured(): boolean {
    this.#relieveUntil = 0;
    const seq = Atomics.load(this.#i32, I_PRESSURE);
    if (seq === this.#seenPressure) return false;
    this.#seenPressure = seq;
    return true;
  }

  /**
   * Asks every other sharer to release its cache (at its next allocation)
   * and waits, raising the flag again every 10 ms, until `bytes` fit. True
   * when a retry may succeed: the bytes fit, and something was released since
   * the last retry this allocation. False at once when waiting cannot help:
   * there is no limit, nobody else holds memory, or the bytes fit and
   * nothing was released since the last retry (then the budget is not what
   * refused: the allocator's own watermark did, and nobody's cache is
   * emptied for it). Bytes beyond the limit still raise the flag: what the
   * others release may let a smaller retry fit. False too once 200 ms have passed since the
   * allocation began, so an allocator that retries while this returns true stops.
   *
   * @param bytes the reservation that failed (0: true once anything is released)
   */
  relieve(bytes = 0): boolean {
    if (this.#limit === 0n || !this.#owns()) return false;
    const i32 = this.#i32;
    if (this.#relieveUntil === 0) {
      this.#relieveUntil = performance.now() + BUDGET_RELIEVE_MS;
      this.#retriedAt = bytes > 0 ? null : Atomics.load(i32, I_RELEASES);
    }
    const need = BigInt(Math.max(0, Math.ceil(bytes)));
    for (;;) {
      const left = this.#relieveUntil - performance.now();
      if (left <= 0) return false;
      const releases = Atomics.load(i32, I_RELEASES);
      const fits = Atomics.load(this.#big, H_RESERVED) + need <= this.#limit;
      // A retry that failed is worth repeating only once something was released since.
      if (fits && releases !== this.#retriedAt) {
        this.#retriedAt = releases;
        return true;
      }
      // It fits, and the last retry failed all the same: something else refused it.
      if (fits && need > 0n) return false;
      if (!this.#othersReserve()) return false;
      // Raised again each round: the others may have freed more blocks since they last looked.
      this.#seenPressure = Atomics.add(i32, I_PRESSURE, 1) + 1;
      Atomics.notify(i32, I_PRESSURE); // sharers idle in waitForPressure
      Atomics.add(i32, I_WAITERS, 1);
      Atomics.wait(i32, I_RELEASES, releases, Math.min(left, RELIEVE_SLICE_MS));
      Atomics.sub(i32, I_WAITERS, 1);
    }
  }

  /**
   * Resolves true when a sharer raises the pressure flag after this call, or
   * false after `timeoutMs`. A sharer that makes no allocations for a while
   * (a Worker between jobs) waits on this, and empties its cache when
   * {@linkcode SharedBudget.pressured} then says so: it would otherwise
   * release nothing until its next allocation.
   *
   * @example
   * ```ts
   * import { SharedBudget } from "@gpuheap/gpuheap/workers";
   * import assert from "node:assert/strict";
   *
   * const budget = new SharedBudget();
   * const view = budget.claim("idle worker");
   * assert.equal(await view.waitForPressure(10), false);
   * view.detach();
   * ```
   *
   * @param timeoutMs how long to wait at most (default: no limit)
   * @returns whether pressure was raised
   */
  async waitForPressure(timeoutMs = Infinity): Promise<boolean> {
    const seq = Atomics.load(this.#i32, I_PRESSURE);
    const wait = Atomics.waitAsync(this.#i32, I_PRESSURE, seq, timeoutMs);
    if (!wait.async) return wait.value !== "timed-out";
    // A pending Atomics.waitAsync does not keep Deno's event loop alive; a timer does.
    const keepAlive = setInterval(() => {}, Math.min(timeoutMs + 1, 2 ** 30));
    try {
      return (await wait.value) !== "timed-out";
    } finally {
      clearInterval(keepAlive);
    }
  }

  /**
   * Publishes the allocator's live figures in this view's slot, for
   * {@linkcode SharedBudget.shares}; called after every allocation and
   * free, so it is a handful of stores.
   */
  publish(counters: Readonly<PoolCounters>): void {
    if (!this.#owns()) return;
    const i32 = this.#i32;
    const f = this.#f64;
    const at = this.#floatIdx;
    // A seqlock: odd while writing, so a reader retries rather than mixing two versions.
    const seq = Atomics.load(i32, this.#seqIdx);
    Atomics.store(i32, this.#seqIdx, seq + 1);
    f[at + F_ALLOCATED] = counters.allocated.current;
    f[at + F_ALLOCATED_PEAK] = counters.allocated.peak;
    f[at + F_PENDING_FREE] = counters.pendingFree;
    f[at + F_HEAPS] = counters.heaps;
    f[at + F_BLOCKS] = counters.blocks;
    f[at + F_ALLOCATIONS] = counters.allocations;
    f[at + F_CACHE_HITS] = counters.cacheHits;
    f[at + F_CREATE_BUFFER_CALLS] = counters.createBufferCalls;
    Atomics.store(i32, this.#seqIdx, seq + 2);
    const delta = counters.allocated.current - this.#lastAllocated;
    if (delta !== 0) {
      this.#lastAllocated = counters.allocated.current;
      const d = BigInt(delta);
      raise(this.#big, H_ALLOCATED_PEAK, Atomics.add(this.#big, H_ALLOCATED, d) + d);
    }
  }

  /**
   * The budget and each sharer's part of it, for an out-of-memory message:
   * `Shared budget: 60.00 MiB of 64.00 MiB reserved by 2 sharers: worker 1
   * (this one) 40.00 MiB reserved, 12.00 MiB allocated; worker 2 …`.
   */
  describe(): string {
    const shares = this.shares();
    const limit = this.#limit > 0n ? formatBytes(this.limit) : "no limit";
    const parts = shares.map((s) =>
      `${s.label}${s.slot === this.#slot ? " (this one)" : ""} ${
        formatBytes(s.reserved)
      } reserved, ${formatBytes(s.allocated)} allocated`
    );
    return `Shared budget: ${formatBytes(this.reserved)} of ${limit} reserved by ${shares.length} ${
      shares.length === 1 ? "sharer" : "sharers"
    }${parts.length > 0 ? `: ${parts.join("; ")}` : ""}.`;
  }

  // ---- private ----

  #bind(slot: number): void {
    if (!Number.isInteger(slot) || slot >= this.#slots) {
      throw new RangeError(
        `Cannot attach to slot ${slot}: the shared budget has slots 0 to ${this.#slots - 1}`,
      );
    }
    const base = slotByte(slot);
    const token = Atomics.load(this.#i32, base / 4 + S_TOKEN);
    if (token <= 0) {
      throw new RangeError(`Cannot attach to slot ${slot}: it is not claimed (use claim())`);
    }
    this.#slot = slot;
    this.#token = token;
    this.#tokenIdx = base / 4 + S_TOKEN;
    this.#seqIdx = base / 4 + S_SEQ;
    this.#bigIdx = (base + S_BIG) / 8;
    this.#floatIdx = (base + S_FLOAT) / 8;
    this.#lastAllocated = this.#f64[this.#floatIdx + F_ALLOCATED];
  }

  #owns(): boolean {
    return this.#token !== 0 && Atomics.load(this.#i32, this.#tokenIdx) === this.#token;
  }

  #checkOwner(what: string): void {
    if (this.#slot < 0) {
      throw new AllocatorError(
        `Cannot ${what}: this SharedBudget view has no slot (use claim() or from(buffer, slot))`,
      );
    }
    if (!this.#owns()) {
      throw new AllocatorError(
        `Cannot ${what}: slot ${this.#slot} of the shared budget was given back`,
      );
    }
  }

  /** Whether any other sharer holds heap bytes it might release. */
  #othersReserve(): boolean {
    for (let slot = 0; slot < this.#slots; slot++) {
      if (slot === this.#slot) continue;
      const base = slotByte(slot);
      if (Atomics.load(this.#i32, base / 4 + S_TOKEN) <= 0) continue;
      if (Atomics.load(this.#big, (base + S_BIG) / 8 + B_RESERVED) > 0n) return true;
    }
    return false;
  }

  /** Returns a slot held as RECLAIMING to the budget and frees it. */
  #giveBack(slot: number): number {
    const base = slotByte(slot);
    const bigAt = (base + S_BIG) / 8;
    const bytes = Atomics.exchange(this.#big, bigAt + B_RESERVED, 0n);
    Atomics.sub(this.#big, H_RESERVED, bytes);
    const allocated = this.#f64[(base + S_FLOAT) / 8 + F_ALLOCATED];
    if (allocated !== 0) Atomics.sub(this.#big, H_ALLOCATED, BigInt(allocated));
    this.#resetSlot(slot);
    Atomics.store(this.#i32, base / 4 + S_TOKEN, 0);
    Atomics.add(this.#i32, I_RELEASES, 1);
    Atomics.notify(this.#i32, I_RELEASES);
    return Number(bytes);
  }

  /** Zeroes a slot's figures; the caller holds the slot (claimed or RECLAIMING). */
  #resetSlot(slot: number): void {
    const base = slotByte(slot);
    const seqAt = base / 4 + S_SEQ;
    const seq = Atomics.load(this.#i32, seqAt);
    const even = seq + (seq & 1);
    Atomics.store(this.#i32, seqAt, even + 1);
    Atomics.store(this.#big, (base + S_BIG) / 8 + B_RESERVED, 0n);
    Atomics.store(this.#big, (base + S_BIG) / 8 + B_RESERVED_PEAK, 0n);
    this.#f64.fill(0, (base + S_FLOAT) / 8, (base + S_FLOAT) / 8 + FLOATS);
    Atomics.store(this.#i32, base / 4 + S_LABEL_LEN, 0);
    Atomics.store(this.#i32, seqAt, even + 2);
  }

  #writeLabel(slot: number, label: string): void {
    const base = slotByte(slot);
    const bytes = new TextEncoder().encode(label);
    let n = Math.min(bytes.length, BUDGET_LABEL_BYTES);
    // Cut at a character boundary: continuation bytes are 0b10xxxxxx.
    while (n < bytes.length && n > 0 && (bytes[n] & 0xc0) === 0x80) n--;
    this.#u8.set(bytes.subarray(0, n), base + S_LABEL);
    Atomics.store(this.#i32, base / 4 + S_LABEL_LEN, n);
  }

  #readShare(slot: number): BudgetShare | null {
    const base = slotByte(slot);
    const i32 = this.#i32;
    if (Atomics.load(i32, base / 4 + S_TOKEN) <= 0) return null;
    const seqAt = base / 4 + S_SEQ;
    const at = (base + S_FLOAT) / 8;
    let f: Float64Array = this.#f64.slice(at, at + FLOATS);
    // A sharer killed mid-publish leaves the seqlock odd: after a few tries, take what is there.
    for (let tries = 0; tries < 100; tries++) {
      const seq = Atomics.load(i32, seqAt);
      f = this.#f64.slice(at, at + FLOATS);
      if ((seq & 1) === 0 && Atomics.load(i32, seqAt) === seq) break;
    }
    const labelLength = Atomics.load(i32, base / 4 + S_LABEL_LEN);
    const big = (base + S_BIG) / 8;
    return {
      slot,
      label: new TextDecoder().decode(
        this.#u8.slice(base + S_LABEL, base + S_LABEL + labelLength),
      ),
      reserved: Number(Atomics.load(this.#big, big + B_RESERVED)),
      peakReserved: Number(Atomics.load(this.#big, big + B_RESERVED_PEAK)),
      allocated: f[F_ALLOCATED],
      peakAllocated: f[F_ALLOCATED_PEAK],
      pendingFree: f[F_PENDING_FREE],
      heaps: f[F_HEAPS],
      blocks: f[F_BLOCKS],
      allocations: f[F_ALLOCATIONS],
      cacheHits: f[F_CACHE_HITS],
      createBufferCalls: f[F_CREATE_BUFFER_CALLS],
    };
  }
}

function slotByte(slot: number): number {
  return HEADER_BYTES + slot * SLOT_BYTES;
}

function toBig(bytes: number, what: string): bigint {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new RangeError(`Cannot ${what}: bytes must be a non-negative integer, got ${bytes}`);
  }
  return BigInt(bytes);
}

/** Raises a shared maximum to `value` (a compare-and-swap loop: others may raise it at once). */
function raise(big: BigInt64Array<SharedArrayBuffer>, at: number, value: bigint): void {
  let seen = Atomics.load(big, at);
  while (value > seen) {
    const was = Atomics.compareExchange(big, at, seen, value);
    if (was === seen) return;
    seen = was;
  }
}
