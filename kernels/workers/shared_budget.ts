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

/**
 * A figure in a shared budget's memory that cannot be believed: not an
 * integer, out of range, or a slot token no claim gives. Every Worker can
 * write anywhere in the budget's SharedArrayBuffer, so each figure read from
 * it is checked first; the slot's owner mends its own slot at its next call,
 * and {@linkcode SharedBudget.reclaim} frees a slot whatever it holds.
 *
 * @example
 * ```ts
 * import { SharedBudget, SharedBudgetError } from "@gpuheap/gpuheap/workers";
 * import assert from "node:assert/strict";
 *
 * const budget = new SharedBudget({ limit: "64MiB" });
 * const w = budget.claim("w");
 * w.reserve(4096);
 * // Another thread writes garbage over the whole buffer but its header.
 * new Float64Array(budget.buffer).fill(NaN, 16);
 * assert.throws(() => budget.shares(), SharedBudgetError);
 * assert.equal(budget.reclaim(w.slot), 0, "freed, though what it held could not be read");
 * ```
 */
export class SharedBudgetError extends AllocatorError {
  /** The slot whose figure is bad (-1: the budget's header). */
  readonly slot: number;
  /** Which figure: `"reserved bytes"`, `"token"`… */
  readonly figure: string;

  /**
   * Creates the error.
   *
   * @param what what could not be done
   * @param slot the slot (-1: the header)
   * @param figure which figure
   * @param value the value read
   * @param range what it should have been
   */
  constructor(what: string, slot: number, figure: string, value: unknown, range: string) {
    super(
      `Cannot ${what}: ${
        slot < 0 ? "its" : `slot ${slot}'s`
      } ${figure} read ${value}, not ${range}` +
        " (a sharer overwrote the shared budget's memory)",
    );
    this.name = "SharedBudgetError";
    this.slot = slot;
    this.figure = figure;
  }
}

// ---- layout of the SharedArrayBuffer: see Note [Shared memory is untrusted] ----
// Header: 8 BigInt64, then 16 Int32.
const MAGIC = 0x6770756865617032n; // "gpuheap2"
const H_MAGIC = 0;
const H_LIMIT = 1;
const H_SLOTS = 2;
const H_RESERVED_PEAK = 3;
const H_ALLOCATED = 4; // a running sum, kept only for the peak below
const H_ALLOCATED_PEAK = 5;
// The limit and slot count again, bit-inverted: a Worker attaching checks the pair.
const H_LIMIT_NOT = 6;
const H_SLOTS_NOT = 7;
const I_PRESSURE = 16; // Int32 index: raised (incremented) to ask every sharer to release
const I_RELEASES = 17; // incremented on every release; waiters in relieve wait on it
const I_NEXT_TOKEN = 18;
const I_REFUSALS = 19;
const I_WAITERS = 20; // sharers waiting in relieve: a release wakes them only if there are any
// Slots below this were ever claimed: sums stop there. Kept with a 32-bit hash of it; a pair
// that disagrees (overwritten, or two claims raising it at once) makes sums read every slot.
const I_USED = 21;
const I_USED_CHECK = 22;
const HEADER_BYTES = 128;
// Then one BigInt64 per slot of reserved bytes, one per slot of allocated bytes (dense, so a
// sum reads few cache lines), each `check << 44 | bytes`: the check, from the claim's token
// and the bytes, makes a word overwritten by chance read as one with odds of 1 in 2^19.
const BYTES_BITS = 44n;
const BYTES_MASK = (1n << BYTES_BITS) - 1n;
/** Most bytes a figure holds: 16 TiB. */
const MAX_BYTES = 2 ** 44 - 1;
/** Checks run from 1 to this (19 bits), never 0: no sound word is 0 or a small integer. */
const CHECKS = 2 ** 19 - 1;
/** Int32 indices of a word's low and high halves, as this machine orders bytes. */
const LO = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const HI = 1 - LO;
// Then a record per slot: the token as a BigInt64 of the Int32 token and its bit-inverse (so a
// token overwritten by chance reads as garbage, and both change in one compare-and-swap);
// Int32 seqlock, label length; Float64 published figures (one writer: a seqlock is enough, and
// plain stores are cheaper than Atomics).
const S_SEQ = 2;
const S_LABEL_LEN = 3;
const S_FLOAT = 16;
const F_RESERVED_PEAK = 0;
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
/** A slot being claimed: its token not yet written. Tokens below it are garbage. */
const CLAIMING = -2;
/** What a token word that is not a token and its inverse reads as. */
const GARBAGE = -3;
/** The token words of a free slot, one being claimed and one being given back. */
const FREE_TOKEN = tokenWord(0);
const CLAIMING_TOKEN = tokenWord(CLAIMING);
const RECLAIMING_TOKEN = tokenWord(RECLAIMING);
/** A free slot's word: no bytes, under token 0's check. */
const FREE = word(0, 0);
const FREE_HI = Number(FREE >> 32n) | 0;
const FREE_LO = Number(BigInt.asIntN(32, FREE));
/** A waiting sharer raises pressure again after this long: others may have freed more since. */
const RELIEVE_SLICE_MS = 10;
/**
 * Times a reservation refused only because others' reservations were in flight is tried
 * again: each of them takes its bytes back at once when refused, so the room shows.
 */
const RESERVE_TRIES = 4;

// Note [Shared memory is untrusted]
//
// Rationale. Every Worker of a budget can write anywhere in its SharedArrayBuffer: a bug, a
// Worker killed half-way through an update, or user code. A figure read from it is believed
// only once checked (an integer, in range, under a token some claim gave), and no stored
// total can drift: a total is the sum of the slots' figures, read when wanted.
//
// Approach. A slot's reserved and allocated bytes are each one BigInt64 word that holds a check
// (from the claim's token and the bytes) above the bytes. Only the owner changes them, by
// compare-and-swap against the word it expects; a reclaimer swaps them to FREE first. So an owner
// still running after its slot was given back (a Worker not yet stopped by terminate()) finds
// its word gone and changes nothing, and a reclaim gives back exactly what was there. A word
// of a claimed slot is believed only if its check matches the slot's token.
//   - reserve(b) announces b in its word, then sums every slot's word: over the limit, it
//     takes b back and refuses. Of two reservations granted at once, the later sum saw both,
//     so the sharers together never cross the limit; one sharer alone never does either, as
//     it also checks its own bytes, which it keeps privately.
//   - An owner finds its own word overwritten (bad check, out of range, or below what it knows
//     it holds) and writes back what it holds. A figure of another slot out of range is a
//     SharedBudgetError naming the slot, raised after this sharer took its own bytes back.
//   - A free slot's words are FREE (no bytes, under token 0's check), never 0: a word zeroed,
//     or any small integer, reads as garbage wherever it lands, so a token and a word both
//     zeroed do not make a free slot. A slot whose token reads free but whose words are not
//     FREE (its token overwritten) is not claimed again: its bytes still count until
//     reclaim(), or its owner's detach(), gives them back. reclaim() frees a slot whatever
//     its token and figures read.
//   - A token is kept with its bit-inverse in one word: one overwritten reads as garbage (a
//     SharedBudgetError naming the slot) rather than as another claim or a free slot.
//   - The header's limit and slot count are checked against inverted copies when a Worker
//     attaches, and written again by every claim() from the claimer's own copy; sums read
//     the slots ever claimed, a count kept with a hash (all slots when the two disagree).
//
// Limitations. A sharer that knows a slot's token can write a smaller figure with a valid
// check: the budget lends those bytes again until that owner's next call mends its word.
// Peaks are high-water marks and are not mended.

/** Module-private: the options that make a view of an existing buffer (see attach()). */
const ATTACH = Symbol("attach");
interface Attach {
  [ATTACH]: {
    buffer: SharedArrayBuffer;
    slots: number;
    limit: bigint;
    slot: number;
    token: number;
  };
}

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
 * Any thread may write anything into the buffer: every figure read from it
 * is checked, a bad one is a {@linkcode SharedBudgetError} naming the slot,
 * the sharers together never reserve more than the limit, and
 * {@linkcode SharedBudget.reclaim} always frees a slot.
 *
 * | method                         | cost                                          |
 * | ------------------------------ | --------------------------------------------- |
 * | reserve                        | O(u), u slots ever claimed: a CAS, then a sum |
 * | release                        | O(1): a compare-and-swap on its slot          |
 * | pressured                      | O(1): one atomic load                         |
 * | publish                        | O(1): a few atomics, eight plain stores       |
 * | reserved, allocated, available | O(u): a sum                                   |
 * | relieve                        | O(u) per wait of up to 10 ms                  |
 * | claim, shares                  | O(s), s slots                                 |
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
  /** Most bytes one figure may read: the limit, or MAX_BYTES without one. */
  #bound: bigint;
  /** BigInt64 index of slot 0's reserved word; its allocated word is #slots further. */
  #words: number;
  /** The bound slot, or -1. */
  #slot = -1;
  #token = 0;
  /** BigInt64 index of the bound slot's token word, and the word this claim's token makes. */
  #tokenIdx = 0;
  #tokenWord = 0n;
  #seqIdx = 0;
  #floatIdx = 0;
  /** Bytes this view reserved: known here, whatever the shared memory says. */
  #mine = 0;
  #peakMine = 0;
  #lastAllocated = 0;
  /** The reserved and allocated words this view last wrote, and their bytes. */
  #wrote: [bigint, bigint] = [0n, 0n];
  #wroteBytes: [number, number] = [0, 0];
  /** #bound as a number. */
  #most = 0;
  /** The most the allocated bytes of all slots can sum to. */
  #peakCap = 0n;
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
    const attach = (options as Partial<Attach>)[ATTACH];
    let slots: number;
    let limit: bigint;
    if (attach) {
      ({ slots, limit } = attach);
      this.#buffer = attach.buffer;
    } else {
      slots = options.slots ?? BUDGET_SLOTS;
      if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS) {
        throw new RangeError(
          `Cannot create SharedBudget: slots must be an integer from 1 to ${MAX_SLOTS}, got ${slots}`,
        );
      }
      const bytes = parseBytes(options.limit ?? 0, "SharedBudget limit");
      if (bytes > MAX_BYTES) {
        throw new RangeError(
          `Cannot create SharedBudget: the limit must be at most ${
            formatBytes(MAX_BYTES)
          }, got ${bytes}`,
        );
      }
      limit = BigInt(bytes);
      this.#buffer = new SharedArrayBuffer(bufferBytes(slots));
    }
    this.#i32 = new Int32Array(this.#buffer);
    this.#big = new BigInt64Array(this.#buffer);
    this.#f64 = new Float64Array(this.#buffer);
    this.#u8 = new Uint8Array(this.#buffer);
    this.#slots = slots;
    this.#limit = limit;
    this.#bound = limit > 0n ? limit : BigInt(MAX_BYTES);
    this.#most = Number(this.#bound);
    this.#peakCap = this.#bound * BigInt(slots);
    this.#words = HEADER_BYTES / 8;
    this.#seenPressure = Atomics.load(this.#i32, I_PRESSURE);
    if (!attach) {
      this.#writeHeader();
      Atomics.store(this.#i32, I_USED_CHECK, usedCheck(0));
      this.#big.fill(FREE, this.#words, this.#words + 2 * slots);
      for (let slot = 0; slot < slots; slot++) this.#big[this.#tokenAt(slot)] = FREE_TOKEN;
    }
    if (attach && attach.slot >= 0) this.#bind(attach.slot, attach.token);
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
    const limit = big[H_LIMIT];
    if (
      big[H_MAGIC] !== MAGIC || !Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS ||
      buffer.byteLength !== bufferBytes(slots) || limit < 0n || limit > BigInt(MAX_BYTES) ||
      big[H_LIMIT_NOT] !== ~limit || big[H_SLOTS_NOT] !== ~big[H_SLOTS]
    ) {
      throw new TypeError(
        "Cannot attach to SharedBudget: the SharedArrayBuffer was not made by SharedBudget",
      );
    }
    if (slot !== -1 && (!Number.isInteger(slot) || slot < 0 || slot >= slots)) {
      throw new RangeError(
        `Cannot attach to slot ${slot}: the shared budget has slots 0 to ${slots - 1}`,
      );
    }
    const token = slot < 0
      ? 0
      : tokenOf(Atomics.load(new BigInt64Array(buffer), slotByte(slots, slot) / 8));
    if (slot >= 0 && token <= 0) {
      throw new RangeError(`Cannot attach to slot ${slot}: it is not claimed (use claim())`);
    }
    return attach(buffer, slots, limit, slot, token);
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

  /**
   * Bytes reserved by all sharers now: the sum of the slots' figures.
   *
   * @throws {SharedBudgetError} a slot's figure was overwritten
   */
  get reserved(): number {
    return this.#sum(0, "read the reserved bytes");
  }

  /**
   * Highest `reserved` a reservation saw since the budget was made: the
   * process's peak of heap bytes.
   *
   * @throws {SharedBudgetError} the figure was overwritten
   */
  get peakReserved(): number {
    return this.#header(H_RESERVED_PEAK, "peak reserved bytes");
  }

  /**
   * Bytes of live blocks of all sharers, as published: the sum of the slots' figures.
   *
   * @throws {SharedBudgetError} a slot's figure was overwritten
   */
  get allocated(): number {
    return this.#sum(this.#slots, "read the allocated bytes");
  }

  /**
   * Highest sum of published `allocated` figures since the budget was made.
   *
   * @throws {SharedBudgetError} the figure was overwritten
   */
  get peakAllocated(): number {
    return this.#header(H_ALLOCATED_PEAK, "peak allocated bytes");
  }

  /**
   * Bytes that can still be reserved before the limit (`Infinity` without
   * one): what an allocator sizing a new heap to the budget can count on now.
   *
   * @throws {SharedBudgetError} a slot's figure was overwritten
   */
  get available(): number {
    if (this.#limit === 0n) return Infinity;
    return Math.max(0, Number(this.#limit) - this.#sum(0, "read the available bytes"));
  }

  /** Slots claimed now: the sharers the limit is split among. O(s) for s slots. */
  get sharers(): number {
    let n = 0;
    for (let slot = 0, used = this.#used(); slot < used; slot++) {
      if (this.#readToken(slot) > 0) n++;
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
   * the Worker died. A slot that reads free but still holds figures (its
   * token was overwritten) is not handed out: its bytes wait for reclaim().
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
      const at = this.#tokenAt(slot);
      if (this.#readToken(slot) !== 0 || this.#holds(slot)) continue;
      this.#raiseUsed(slot + 1); // before the slot can hold anything
      if (Atomics.compareExchange(this.#big, at, FREE_TOKEN, CLAIMING_TOKEN) !== FREE_TOKEN) {
        continue;
      }
      const token = (Atomics.add(this.#i32, I_NEXT_TOKEN, 1) + 1) & 0x7fffffff || 1;
      this.#writeHeader(); // mended here, before a Worker attaches
      this.#resetSlot(slot);
      Atomics.store(this.#big, this.#words + slot, word(token, 0));
      Atomics.store(this.#big, this.#words + this.#slots + slot, word(token, 0));
      this.#writeLabel(slot, label ?? `slot ${slot}`);
      Atomics.store(this.#big, at, tokenWord(token));
      return attach(this.#buffer, this.#slots, this.#limit, slot, token);
    }
    throw new AllocatorError(
      `Cannot claim a slot of the shared budget: all ${this.#slots} are taken` +
        " (or hold figures overwritten in its memory: reclaim() frees them)",
    );
  }

  /**
   * Gives this view's slot back: whatever it still reserves returns to the
   * budget (destroy the allocator first), and the slot is free to claim.
   * Does nothing on a view without a slot, or whose claim already ended:
   * given back by another view of the same claim (the Worker's own, say) or
   * reclaimed, even if the slot was claimed again since. So the thread that
   * claimed a slot for a Worker can always detach its own view when the
   * Worker ends, without knowing whether the Worker detached first. A slot
   * left half given back (its Worker stopped in the middle of detach()), or
   * whose token was overwritten (its figures still carry this claim's check,
   * or no claim's at all), is given back all the same: after detach() the
   * slot is free or held by a later claim.
   *
   * @returns the bytes the slot still reserved (0 if nothing was given back)
   */
  detach(): number {
    const slot = this.#slot;
    if (slot < 0) return 0;
    this.#slot = -1;
    const token = this.#token;
    this.#token = 0;
    const raw = Atomics.load(this.#big, this.#tokenIdx);
    const seen = tokenOf(raw);
    // This claim's, or no claim's that holds together: a token being given back or claimed,
    // garbage, 0 over figures, or a claim whose words do not carry its check.
    const ours = seen === token || seen < 0 || (seen === 0 && this.#holds(slot)) ||
      this.#carries(slot, token) || (seen > 0 && !this.#carries(slot, seen));
    if (
      !ours || Atomics.compareExchange(this.#big, this.#tokenIdx, raw, RECLAIMING_TOKEN) !== raw
    ) {
      return 0;
    }
    return this.#giveBack(slot);
  }

  /**
   * Gives back the slot of a sharer that ended without detaching (a Worker
   * that crashed or was terminated): its reservation returns to the budget.
   * Call it once the Worker can no longer run. It frees the slot whatever
   * its token and figures read; bytes it cannot read count as 0.
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
    const at = this.#tokenAt(slot);
    for (;;) {
      const raw = Atomics.load(this.#big, at);
      if (tokenOf(raw) === 0 && !this.#holds(slot)) return 0;
      if (Atomics.compareExchange(this.#big, at, raw, RECLAIMING_TOKEN) === raw) {
        return this.#giveBack(slot);
      }
    }
  }

  /**
   * Every claimed slot's figures, read without stopping anyone: reserved
   * and allocated bytes are exact, the rest as last published (after the
   * sharer's last allocation or free).
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
   * @throws {SharedBudgetError} a slot's token or figure was overwritten
   */
  shares(): BudgetShare[] {
    const out: BudgetShare[] = [];
    for (let slot = 0, used = this.#used(); slot < used; slot++) {
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
   * @throws {SharedBudgetError} another slot's figure was overwritten (nothing taken)
   * @throws {RangeError} bytes is not a non-negative integer, or this view would hold more than 256 TiB
   */
  reserve(bytes: number): boolean {
    const what = `reserve ${bytes} bytes`;
    this.#checkOwner(what);
    checkBytes(bytes, "reserve");
    if (this.#mine + bytes > MAX_BYTES) {
      throw new RangeError(
        `Cannot ${what}: one sharer holds at most ${formatBytes(MAX_BYTES)}, and this one holds ${
          formatBytes(this.#mine)
        }`,
      );
    }
    const mine = this.#mine;
    // Its own bytes first: whatever the shared memory says, one sharer stays under the limit.
    if (this.#limit > 0n && mine + bytes > this.#most) return this.#refuse();
    for (let tries = 1;; tries++) {
      // Announce, then sum: see Note [Shared memory is untrusted].
      if (!this.#update(0, bytes, mine)) {
        this.#checkOwner(what); // given back meanwhile: throws
        return this.#refuse();
      }
      let total: number;
      try {
        total = this.#sum(0, what);
      } catch (error) {
        this.#update(0, -bytes, mine + bytes);
        throw error;
      }
      if (this.#limit === 0n || total <= Number(this.#limit)) {
        this.#mine += bytes;
        raise(this.#big, H_RESERVED_PEAK, BigInt(total));
        if (this.#mine > this.#peakMine) {
          this.#peakMine = this.#mine;
          this.#writeFloat(F_RESERVED_PEAK, this.#mine);
        }
        this.#relieveUntil = 0;
        return true;
      }
      this.#update(0, -bytes, mine + bytes);
      // Refused by others' bytes in flight rather than held? They take theirs back when refused.
      if (tries >= RESERVE_TRIES || this.#sum(0, what) + bytes > Number(this.#limit)) {
        return this.#refuse();
      }
    }
  }

  /**
   * Gives `bytes` back and wakes sharers waiting in
   * {@linkcode SharedBudget.relieve}. Does nothing once the slot was given back
   * (the reclaimer took all of it).
   *
   * @throws {RangeError} bytes is not a non-negative integer
   */
  release(bytes: number): void {
    checkBytes(bytes, "release");
    if (!this.#owns()) return;
    const mine = this.#mine;
    const give = Math.min(bytes, mine);
    this.#mine -= give;
    if (!this.#update(0, -give, mine)) return;
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
   * @throws {SharedBudgetError} a slot's figure was overwritten
   */
  relieve(bytes = 0): boolean {
    if (this.#limit === 0n || !this.#owns()) return false;
    const i32 = this.#i32;
    if (this.#relieveUntil === 0) {
      this.#relieveUntil = performance.now() + BUDGET_RELIEVE_MS;
      this.#retriedAt = bytes > 0 ? null : Atomics.load(i32, I_RELEASES);
    }
    const need = Math.max(0, Math.ceil(bytes));
    for (;;) {
      const left = this.#relieveUntil - performance.now();
      if (left <= 0) return false;
      const releases = Atomics.load(i32, I_RELEASES);
      const fits = this.#sum(0, `wait for ${need} bytes`) + need <= Number(this.#limit);
      // A retry that failed is worth repeating only once something was released since.
      if (fits && releases !== this.#retriedAt) {
        this.#retriedAt = releases;
        return true;
      }
      // It fits, and the last retry failed all the same: something else refused it.
      if (fits && need > 0) return false;
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
   * free, so it is a handful of stores. Each call writes every figure again,
   * so one overwritten by another thread is mended.
   */
  publish(counters: Readonly<PoolCounters>): void {
    if (!this.#owns()) return;
    const i32 = this.#i32;
    const f = this.#f64;
    const at = this.#floatIdx;
    // A seqlock: odd while writing, so a reader retries rather than mixing two versions.
    const seq = Atomics.load(i32, this.#seqIdx) & ~1;
    Atomics.store(i32, this.#seqIdx, seq + 1);
    f[at + F_RESERVED_PEAK] = this.#peakMine;
    f[at + F_ALLOCATED_PEAK] = counters.allocated.peak;
    f[at + F_PENDING_FREE] = counters.pendingFree;
    f[at + F_HEAPS] = counters.heaps;
    f[at + F_BLOCKS] = counters.blocks;
    f[at + F_ALLOCATIONS] = counters.allocations;
    f[at + F_CACHE_HITS] = counters.cacheHits;
    f[at + F_CREATE_BUFFER_CALLS] = counters.createBufferCalls;
    Atomics.store(i32, this.#seqIdx, seq + 2);
    const now = counters.allocated.current;
    const last = this.#lastAllocated;
    const own = this.#words + this.#slots + this.#slot;
    if (now === last && Atomics.load(this.#big, own) === this.#wrote[1]) return;
    if (!this.#update(1, now - last, last)) return;
    this.#lastAllocated = now;
    if (now === last) return;
    const delta = BigInt(now - last);
    const total = Atomics.add(this.#big, H_ALLOCATED, delta) + delta;
    // Only a rise can set a peak; a running sum out of range was overwritten, and sets none.
    if (now > last && total <= this.#peakCap) raise(this.#big, H_ALLOCATED_PEAK, total);
  }

  /**
   * The budget and each sharer's part of it, for an out-of-memory message:
   * `Shared budget: 60.00 MiB of 64.00 MiB reserved by 2 sharers: worker 1
   * (this one) 40.00 MiB reserved, 12.00 MiB allocated; worker 2 …`. Never
   * throws: overwritten figures are named in the text instead.
   */
  describe(): string {
    let shares: BudgetShare[];
    let reserved: number;
    try {
      shares = this.shares();
      reserved = this.reserved;
    } catch (error) {
      if (!(error instanceof SharedBudgetError)) throw error;
      return `Shared budget: unreadable: ${error.message}.`;
    }
    const limit = this.#limit > 0n ? formatBytes(this.limit) : "no limit";
    const parts = shares.map((s) =>
      `${s.label}${s.slot === this.#slot ? " (this one)" : ""} ${
        formatBytes(s.reserved)
      } reserved, ${formatBytes(s.allocated)} allocated`
    );
    return `Shared budget: ${formatBytes(reserved)} of ${limit} reserved by ${shares.length} ${
      shares.length === 1 ? "sharer" : "sharers"
    }${parts.length > 0 ? `: ${parts.join("; ")}` : ""}.`;
  }

  // ---- private ----

  #bind(slot: number, token: number): void {
    const base = slotByte(this.#slots, slot);
    this.#slot = slot;
    this.#token = token;
    this.#tokenIdx = base / 8;
    this.#tokenWord = tokenWord(token);
    this.#seqIdx = base / 4 + S_SEQ;
    this.#floatIdx = (base + S_FLOAT) / 8;
    // What the slot already publishes, if it reads as this claim's: else republished in full.
    this.#lastAllocated = this.#read(this.#slots + slot, token) ?? 0;
    this.#wrote = [word(token, 0), word(token, this.#lastAllocated)];
    this.#wroteBytes = [0, this.#lastAllocated];
  }

  /** BigInt64 index of a slot's token word. */
  #tokenAt(slot: number): number {
    return slotByte(this.#slots, slot) / 8;
  }

  /** A slot's token, or GARBAGE. */
  #readToken(slot: number): number {
    return tokenOf(Atomics.load(this.#big, this.#tokenAt(slot)));
  }

  #owns(): boolean {
    // The token word as two Int32 halves: no BigInt made, on the path of every allocation.
    const half = this.#tokenIdx * 2;
    const token = this.#token;
    return token !== 0 && Atomics.load(this.#i32, half + LO) === token &&
      Atomics.load(this.#i32, half + HI) === ~token;
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

  #refuse(): false {
    Atomics.add(this.#i32, I_REFUSALS, 1);
    return false;
  }

  /**
   * Adds `delta` to one of this view's slot words (`which`: 0 reserved, 1 allocated), by
   * compare-and-swap against the word it last wrote there, while the slot is this claim's. A
   * word found otherwise is read: if it does not read as this claim's, in range and at least
   * `floor` (the bytes this view knows are there), it was overwritten, and is mended to
   * `floor + delta`.
   *
   * @returns false once the slot is not this claim's (nothing changed)
   */
  #update(which: 0 | 1, delta: number, floor: number): boolean {
    const at = this.#words + which * this.#slots + this.#slot;
    let seen = this.#wrote[which];
    let bytes = this.#wroteBytes[which];
    for (;;) {
      // Never below 0, nor into the check's bits.
      const next = Math.min(Math.max((bytes >= floor ? bytes : floor) + delta, 0), this.#most);
      if (!this.#owns()) return false;
      const w = word(this.#token, next);
      const was = Atomics.compareExchange(this.#big, at, seen, w);
      if (was === seen) {
        this.#wrote[which] = w;
        this.#wroteBytes[which] = next;
        return true;
      }
      seen = was;
      const sound = this.#check(was, this.#token);
      bytes = sound === null ? -1 : Number(sound);
    }
  }

  /**
   * The sum of every slot's word from `first` (0: reserved, #slots: allocated). A claimed
   * slot's word counts only if its check matches the token; a slot free, being claimed or
   * given back counts whatever bytes it holds (a free one holds none, unless its token was
   * overwritten: then they still count).
   *
   * @throws {SharedBudgetError} a token or a word that cannot be believed
   */
  #sum(first: number, what: string): number {
    const i32 = this.#i32;
    // Each word is read as two Int32 halves (no BigInt made): a free slot's are both 0, and a
    // claimed slot's check is tested on plain numbers. One that fails (or was torn between
    // the halves, or read while its slot changed hands) is read again, whole, in #settle.
    const at = (this.#words + first) * 2;
    const bound = Number(this.#bound);
    let total = 0;
    const used = this.#used();
    for (let slot = 0; slot < used; slot++) {
      // The token word too as halves: torn or overwritten, it reads as GARBAGE, settled below.
      const tokenHalves = this.#tokenAt(slot) * 2;
      const low = Atomics.load(i32, tokenHalves + LO);
      const token = Atomics.load(i32, tokenHalves + HI) === ~low ? low : GARBAGE;
      const hi = Atomics.load(i32, at + slot * 2 + HI);
      const lo = Atomics.load(i32, at + slot * 2 + LO);
      if (hi === FREE_HI && lo === FREE_LO && token <= 0 && token >= CLAIMING) continue;
      const bytes = (hi & 0xfff) * 2 ** 32 + (lo >>> 0);
      // A claim's word has its check; any other's has some check (never 0) and counts.
      const sound = token > 0
        ? hi >>> 12 === checkOf(token, bytes)
        : token >= CLAIMING && hi >>> 12 > 0;
      total += sound && hi >= 0 && bytes <= bound ? bytes : this.#settle(first, slot, what);
    }
    return total;
  }

  /**
   * A slot's word read whole, with its token before and after (read again while they
   * differ: the slot changed hands), for #sum.
   *
   * @throws {SharedBudgetError} the token or the word cannot be believed
   */
  #settle(first: number, slot: number, what: string): number {
    const tokenAt = this.#tokenAt(slot);
    let raw = Atomics.load(this.#big, tokenAt);
    let seen = Atomics.load(this.#big, this.#words + first + slot);
    for (let tries = 0; tries < 3; tries++) {
      const again = Atomics.load(this.#big, tokenAt);
      if (again === raw) break;
      raw = again;
      seen = Atomics.load(this.#big, this.#words + first + slot);
    }
    const token = tokenOf(raw);
    if (token < CLAIMING) {
      throw this.#badToken(what, slot);
    }
    if (seen === FREE && token <= 0) return 0;
    const bytes = token > 0 ? this.#check(seen, token) : this.#raw(seen);
    if (bytes === null) {
      throw new SharedBudgetError(
        what,
        slot,
        first === 0 ? "reserved bytes word" : "allocated bytes word",
        seen,
        token > 0
          ? `one with the check of token ${token} and at most ${this.#bound} bytes`
          : `at most ${this.#bound} bytes`,
      );
    }
    return Number(bytes);
  }

  /** The error for a slot whose token word is not a token beside its bit-inverse. */
  #badToken(what: string, slot: number): SharedBudgetError {
    const raw = BigInt.asUintN(64, Atomics.load(this.#big, this.#tokenAt(slot)));
    return new SharedBudgetError(
      what,
      slot,
      "token word",
      `0x${raw.toString(16).padStart(16, "0")}`,
      "a token beside its bit-inverse",
    );
  }

  /** The bytes of `seen` if it is claim `token`'s word and in range, else null. */
  #check(seen: bigint, token: number): bigint | null {
    const bytes = seen & BYTES_MASK;
    return bytes <= this.#bound && seen === word(token, Number(bytes)) ? bytes : null;
  }

  /** The bytes of a word whose claim is unknown, if in range, else null. */
  #raw(seen: bigint): bigint | null {
    const bytes = seen & BYTES_MASK;
    return seen >> BYTES_BITS > 0n && bytes <= this.#bound ? bytes : null;
  }

  /** The bytes in a word of slot index `index` (from #words), if claim `token`'s, else null. */
  #read(index: number, token: number): number | null {
    const bytes = this.#check(Atomics.load(this.#big, this.#words + index), token);
    return bytes === null ? null : Number(bytes);
  }

  /** A header figure, checked. */
  #header(at: number, figure: string): number {
    const value = Atomics.load(this.#big, at);
    const most = BigInt(Number.MAX_SAFE_INTEGER);
    if (value < 0n || value > most) {
      throw new SharedBudgetError(
        `read the shared budget's ${figure}`,
        -1,
        figure,
        value,
        `from 0 to ${most}`,
      );
    }
    return Number(value);
  }

  /** How many slots from 0 sums read: those ever claimed, or all when that cannot be told. */
  #used(): number {
    const used = Atomics.load(this.#i32, I_USED);
    return used >= 0 && used <= this.#slots &&
        Atomics.load(this.#i32, I_USED_CHECK) === usedCheck(used)
      ? used
      : this.#slots;
  }

  /** Raises the slots sums read to at least `used`. */
  #raiseUsed(used: number): void {
    const i32 = this.#i32;
    for (;;) {
      const was = Atomics.load(i32, I_USED);
      const sound = was >= 0 && was <= this.#slots &&
        Atomics.load(i32, I_USED_CHECK) === usedCheck(was);
      if (sound && was >= used) return;
      const next = sound ? used : Math.max(used, this.#slots);
      if (Atomics.compareExchange(i32, I_USED, was, next) !== was) continue;
      // The copy of what is there now: a claim that raised it meanwhile wins.
      Atomics.store(i32, I_USED_CHECK, usedCheck(Atomics.load(i32, I_USED)));
      return;
    }
  }

  /** Writes the header's constants from this view's own copy. */
  #writeHeader(): void {
    const big = this.#big;
    const slots = BigInt(this.#slots);
    Atomics.store(big, H_MAGIC, MAGIC);
    Atomics.store(big, H_LIMIT, this.#limit);
    Atomics.store(big, H_SLOTS, slots);
    Atomics.store(big, H_LIMIT_NOT, ~this.#limit);
    Atomics.store(big, H_SLOTS_NOT, ~slots);
  }

  /** Whether a slot holds any figure (a free one holds FREE words). */
  #holds(slot: number): boolean {
    return Atomics.load(this.#big, this.#words + slot) !== FREE ||
      Atomics.load(this.#big, this.#words + this.#slots + slot) !== FREE;
  }

  /** Whether a slot's words carry claim `token`'s check: that claim has not ended. */
  #carries(slot: number, token: number): boolean {
    return this.#read(slot, token) !== null || this.#read(this.#slots + slot, token) !== null;
  }

  /** Whether any other sharer holds heap bytes it might release. */
  #othersReserve(): boolean {
    for (let slot = 0, used = this.#used(); slot < used; slot++) {
      const token = this.#readToken(slot);
      if (slot !== this.#slot && token > 0 && (this.#read(slot, token) ?? 0) > 0) return true;
    }
    return false;
  }

  /** Returns a slot held as RECLAIMING to the budget and frees it; bytes it cannot read count 0. */
  #giveBack(slot: number): number {
    const big = this.#big;
    const reserved = Atomics.exchange(big, this.#words + slot, FREE);
    const allocated = Atomics.exchange(big, this.#words + this.#slots + slot, FREE);
    const live = this.#raw(allocated) ?? 0n;
    if (live > 0n) Atomics.sub(big, H_ALLOCATED, live);
    this.#resetSlot(slot);
    Atomics.compareExchange(this.#big, this.#tokenAt(slot), RECLAIMING_TOKEN, FREE_TOKEN);
    Atomics.add(this.#i32, I_RELEASES, 1);
    Atomics.notify(this.#i32, I_RELEASES);
    return Number(this.#raw(reserved) ?? 0n);
  }

  /** Zeroes a slot's published figures and label; the caller holds the slot. */
  #resetSlot(slot: number): void {
    const base = slotByte(this.#slots, slot);
    const seqAt = base / 4 + S_SEQ;
    const even = Atomics.load(this.#i32, seqAt) & ~1;
    Atomics.store(this.#i32, seqAt, even + 1);
    this.#f64.fill(0, (base + S_FLOAT) / 8, (base + S_FLOAT) / 8 + FLOATS);
    Atomics.store(this.#i32, base / 4 + S_LABEL_LEN, 0);
    Atomics.store(this.#i32, seqAt, even + 2);
  }

  /** Writes one published figure of this view's slot under its seqlock. */
  #writeFloat(index: number, value: number): void {
    const seq = Atomics.load(this.#i32, this.#seqIdx) & ~1;
    Atomics.store(this.#i32, this.#seqIdx, seq + 1);
    this.#f64[this.#floatIdx + index] = value;
    Atomics.store(this.#i32, this.#seqIdx, seq + 2);
  }

  #writeLabel(slot: number, label: string): void {
    const base = slotByte(this.#slots, slot);
    const bytes = new TextEncoder().encode(label);
    let n = Math.min(bytes.length, BUDGET_LABEL_BYTES);
    // Cut at a character boundary: continuation bytes are 0b10xxxxxx.
    while (n < bytes.length && n > 0 && (bytes[n] & 0xc0) === 0x80) n--;
    this.#u8.set(bytes.subarray(0, n), base + S_LABEL);
    Atomics.store(this.#i32, base / 4 + S_LABEL_LEN, n);
  }

  #readShare(slot: number): BudgetShare | null {
    const base = slotByte(this.#slots, slot);
    const i32 = this.#i32;
    const what = "read the shares of the shared budget";
    const token = this.#readToken(slot);
    if (token === RECLAIMING || token === CLAIMING || (token === 0 && !this.#holds(slot))) {
      return null;
    }
    if (token === GARBAGE) throw this.#badToken(what, slot);
    if (token <= 0) {
      throw new SharedBudgetError(what, slot, "token", token, "0 (free) with no figures, or > 0");
    }
    const seqAt = base / 4 + S_SEQ;
    const at = (base + S_FLOAT) / 8;
    let f: Float64Array = this.#f64.slice(at, at + FLOATS);
    // A sharer killed mid-publish leaves the seqlock odd: after a few tries, take what is there.
    for (let tries = 0; tries < 100; tries++) {
      const seq = Atomics.load(i32, seqAt);
      f = this.#f64.slice(at, at + FLOATS);
      if ((seq & 1) === 0 && Atomics.load(i32, seqAt) === seq) break;
    }
    const names = [
      "peak reserved bytes",
      "peak allocated bytes",
      "pending free bytes",
      "heaps",
      "blocks",
      "allocations",
      "cache hits",
      "createBuffer calls",
    ];
    f.forEach((value, i) => {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new SharedBudgetError(what, slot, names[i], value, "a safe non-negative integer");
      }
    });
    const figure = (first: number, name: string) => {
      const bytes = this.#read(first + slot, token);
      if (bytes === null) {
        const seen = Atomics.load(this.#big, this.#words + first + slot);
        throw new SharedBudgetError(what, slot, name, seen, `a word with token ${token}'s check`);
      }
      return bytes;
    };
    // A label's length out of range is cut: the label is a name, not a figure.
    const labelLength = Math.min(
      Math.max(0, Atomics.load(i32, base / 4 + S_LABEL_LEN)),
      BUDGET_LABEL_BYTES,
    );
    return {
      slot,
      label: new TextDecoder().decode(
        this.#u8.slice(base + S_LABEL, base + S_LABEL + labelLength),
      ),
      reserved: figure(0, "reserved bytes word"),
      peakReserved: f[F_RESERVED_PEAK],
      allocated: figure(this.#slots, "allocated bytes word"),
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

/** A view of an existing buffer, through the constructor's module-private options. */
function attach(
  buffer: SharedArrayBuffer,
  slots: number,
  limit: bigint,
  slot: number,
  token: number,
): SharedBudget {
  const options: Attach = { [ATTACH]: { buffer, slots, limit, slot, token } };
  return new SharedBudget(options as SharedBudgetOptions);
}

function bufferBytes(slots: number): number {
  return HEADER_BYTES + slots * 16 + slots * SLOT_BYTES;
}

function slotByte(slots: number, slot: number): number {
  return HEADER_BYTES + slots * 16 + slot * SLOT_BYTES;
}

/** A token word: the token in the low 32 bits, its bit-inverse in the high ones. */
function tokenWord(token: number): bigint {
  return BigInt.asIntN(64, (BigInt(~token) << 32n) | BigInt(token >>> 0));
}

/** The token a token word holds, or GARBAGE when its halves disagree. */
function tokenOf(raw: bigint): number {
  const token = Number(BigInt.asIntN(32, raw));
  return Number(raw >> 32n) === ~token ? token : GARBAGE;
}

/** A slot's word: the check of claim `token` and `bytes`, above the bytes. */
function word(token: number, bytes: number): bigint {
  return (BigInt(checkOf(token, bytes)) << BYTES_BITS) | BigInt(bytes);
}

/** A 32-bit hash of the count of slots sums read. */
function usedCheck(used: number): number {
  const h = Math.imul(used ^ 0x5bd1e995, 0x27d4eb2d);
  return Math.imul(h ^ (h >>> 15), 0x85ebca6b) ^ 0x68e31da4;
}

/** A hash of a token and a byte count, from 1 to CHECKS (a mix of multiplies and shifts). */
function checkOf(token: number, bytes: number): number {
  let h = Math.imul(token ^ 0x9e3779b9, 0x85ebca6b) ^ (bytes >>> 0);
  h = Math.imul(h ^ (h >>> 15), 0xc2b2ae35) ^ Math.floor(bytes / 2 ** 32);
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2d);
  return ((h ^ (h >>> 16)) >>> 0) % CHECKS + 1;
}

function checkBytes(bytes: number, what: string): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new RangeError(`Cannot ${what}: bytes must be a non-negative integer, got ${bytes}`);
  }
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
