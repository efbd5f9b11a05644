/**
 * The recorder behind `HeapAllocator.startRecording()`: events packed into
 * chunks of 32-bit words, turned into a {@linkcode Trace} at the end.
 *
 * @module
 */

import type { AllocatorSettings } from "./config.ts";
import type { Snapshot } from "./snapshot.ts";
import type { AllocEvent, Trace, TraceEvent } from "./trace.ts";
import { POOL_NAMES as POOLS, type Usage, USAGES } from "./size_classes.ts";

const KINDS = [
  "a",
  "f",
  "s",
  "submit",
  "emptyCache",
  "heap",
  "release",
  "oom",
  "resetPeak",
  "split",
  "iter",
] as const;
const POOL_CODE: Record<string, number> = Object.fromEntries(POOLS.map((p, i) => [p, i << 8]));
const USAGE_CODE: Record<string, number> = Object.fromEntries(USAGES.map((u, i) => [u, i << 11]));
// Head word of a record: kind in bits 0-3, then flags, then pool and usage codes.
const FLAG = 1 << 4; // a free's pending, a heap's isSplit, an alloc's longLived
const LABELLED = 1 << 5; // one more field: the label's index
const WIDE = 1 << 6; // each field takes two words (lo, hi): a value reached 2^32
/** Words per chunk of the recording (1 MiB): chunks are never copied or regrown. */
const CHUNK_WORDS = 1 << 18;
/** Longest record: a head and six wide fields. */
const MAX_RECORD = 1 + 2 * 6;
/** The clock is read once per this many events: a read costs as much as an alloc+free. */
const CLOCK_EVERY = 16;
/** Frames of a call site kept: the innermost ones outside the package (the user's code). */
const SITE_FRAMES = 3;
/**
 * Frames a stack is read to: the package's own (the allocator's about 6, a
 * kernel's up to about 10 more) and {@linkcode SITE_FRAMES} more.
 */
const STACK_DEPTH = 40;
/** The package's code: frames in these folders (or its root module) are not call sites. */
const PACKAGE_ROOT = new URL("../", import.meta.url).href;
const PACKAGE_CODE = ["allocator/", "kernels/", "mod.ts"].map((p) => PACKAGE_ROOT + p);

/** What the recorder reads of a block handed out: the allocator's record of it. */
export interface PlacedBlock {
  /** The block's id. */
  readonly id: number;
  /** Bytes asked for. */
  readonly requestedSize: number;
  /** What it is for. */
  readonly usage: Usage;
  /** Byte offset in its heap. */
  readonly offset: number;
  /** Its rounded size. */
  readonly size: number;
  /** The caller's label, if any. */
  readonly label: string | undefined;
  /** Marked long-lived by its caller. */
  readonly longLived: boolean;
}

/** Options of a recording; see `HeapAllocator.startRecording`. */
export interface RecordingOptions {
  /** Keep a short call site per allocation in its label (default false). */
  stacks?: boolean;
  /** Allocations whose call sites are kept at most, the latest ones (default: all). */
  maxEntries?: number;
}

/**
 * @internal collects events while `HeapAllocator` records. Events are packed
 * into fixed chunks of 32-bit words (an alloc takes 6, a free 2), with the
 * clock read every {@linkcode CLOCK_EVERY} events and on every rarer event:
 * no object per event, no copying, few pages touched. {@linkcode
 * TraceRecorder.finish} turns them into {@linkcode TraceEvent}s; events
 * between two clock readings are spread evenly between them.
 */
export class TraceRecorder {
  #chunks: Uint32Array[] = [];
  #used: number[] = [];
  #chunk = new Uint32Array(0);
  #o = 0;
  /** The record being written is wide: its fields take two words each. */
  #wide = false;
  #count = 0;
  /** Clock readings: event index and milliseconds since the start, alternating. */
  #clock: number[] = [];
  #labels: string[] = [];
  #labelCode = new Map<string, number>();
  /** For a label with a call site (by code): the caller's own label; undefined for others. */
  #plain: (string | undefined | null)[] = [];
  #siteCode = new Map<string, number>();
  #stacks: boolean;
  #maxEntries: number;
  /** Allocations given a call site. */
  #sited = 0;
  #settings: AllocatorSettings;
  #t0 = performance.now();

  /**
   * @param settings the allocator's settings, stored with the trace
   * @param options call sites, and how many are kept
   * @throws {TypeError} `stacks` not a boolean
   * @throws {RangeError} `maxEntries` not an integer >= 0
   */
  constructor(settings: AllocatorSettings, options: RecordingOptions = {}) {
    const { stacks = false, maxEntries = Number.MAX_SAFE_INTEGER } = options;
    if (typeof stacks !== "boolean") {
      throw new TypeError(`Cannot start recording: stacks must be true or false, got ${stacks}`);
    }
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 0) {
      throw new RangeError(
        `Cannot start recording: maxEntries must be an integer >= 0, got ${maxEntries}`,
      );
    }
    this.#settings = settings;
    this.#stacks = stacks;
    this.#maxEntries = maxEntries;
  }

  /**
   * Records the state of a busy allocator as the trace's first events;
   * `longLived` names the blocks marked long-lived (a snapshot does not say).
   */
  begin(snapshot: Snapshot, longLived: ReadonlySet<number> = new Set()): void {
    // Blocks placed before the recording have no call site to read.
    const stacks = this.#stacks;
    this.#stacks = false;
    for (const heap of snapshot.heaps) this.heap(heap.id, heap.size, heap.pool, heap.isSplit);
    for (const heap of snapshot.heaps) {
      for (const b of heap.blocks) {
        if (b.id === null) continue;
        this.placed(
          {
            id: b.id,
            requestedSize: b.requestedSize,
            usage: (b.usage ?? "storage") as Usage,
            offset: b.offset,
            size: b.size,
            label: b.label ?? undefined,
            longLived: longLived.has(b.id),
          },
          heap.pool,
          heap.id,
        );
        if (b.state !== "live") this.free(b.id, b.state === "pending");
      }
    }
    this.#stacks = stacks;
  }

  /**
   * A block was handed out (by `alloc`, or by `scalar` in the scalar pool),
   * in heap `heap` of pool `pool`.
   */
  // placed and free are the hot ones: they write their words directly.
  placed(block: PlacedBlock, pool: string, heap: number): void {
    const { id, requestedSize: requested, offset, size, label } = block;
    const usage = USAGE_CODE[block.usage] | (block.longLived ? FLAG : 0);
    if (this.#stacks && pool !== "scalar") {
      this.#recordPlaced(usage | POOL_CODE[pool] | LABELLED, block, heap);
      this.#word(this.#siteIndex(label));
      return;
    }
    const n = this.#count;
    let o = this.#o;
    if (
      label === undefined && pool !== "scalar" && (n & (CLOCK_EVERY - 1)) !== 0 &&
      o + 6 <= this.#chunk.length && id + requested + heap + offset + size <= 0xffffffff
    ) {
      const chunk = this.#chunk;
      chunk[o++] = usage | POOL_CODE[pool];
      chunk[o++] = id;
      chunk[o++] = requested;
      chunk[o++] = heap;
      chunk[o++] = offset;
      chunk[o++] = size;
      this.#o = o;
      this.#count = n + 1;
    } else if (pool === "scalar") {
      this.#recordPlaced(2, block, heap);
    } else if (label === undefined) {
      this.#recordPlaced(usage | POOL_CODE[pool], block, heap);
    } else {
      this.#recordPlaced(usage | POOL_CODE[pool] | LABELLED, block, heap);
      this.#word(this.#labelIndex(label));
    }
  }

  /** A block was freed; `pending`: it waits for the next submit. */
  free(id: number, pending: boolean): void {
    const n = this.#count;
    const o = this.#o;
    if ((n & (CLOCK_EVERY - 1)) !== 0 && o + 2 <= this.#chunk.length && id <= 0xffffffff) {
      const chunk = this.#chunk;
      chunk[o] = pending ? 1 | FLAG : 1;
      chunk[o + 1] = id;
      this.#o = o + 2;
      this.#count = n + 1;
      return;
    }
    this.#record(pending ? 1 | FLAG : 1, 1, id);
  }

  /** `submit()` was called. */
  submit(): void {
    this.#record(3, 0);
  }

  /** `emptyCache()` was called. */
  emptyCache(): void {
    this.#record(4, 0);
  }

  /** A heap was made. */
  heap(id: number, size: number, pool: string, isSplit: boolean): void {
    this.#record(5 | POOL_CODE[pool] | (isSplit ? FLAG : 0), 2, id, size);
  }

  /** A heap was released. */
  release(id: number): void {
    this.#record(6, 1, id);
  }

  /** An allocation failed. */
  oom(requested: number, pool: string): void {
    this.#record(7 | POOL_CODE[pool], 1, requested);
  }

  /** A cached unsplit heap became a split heap. */
  split(id: number): void {
    this.#record(9, 1, id);
  }

  /** `beginIteration(key)` was called, or `endIteration()` (key null). */
  iter(key: string | null): void {
    this.#record(10 | (key === null ? 0 : LABELLED), 0);
    if (key !== null) this.#word(this.#labelIndex(key));
  }

  /** `resetPeakStats()` was called. */
  resetPeak(): void {
    this.#record(8, 0);
  }

  /** Events recorded so far. */
  get length(): number {
    return this.#count;
  }

  /** The trace recorded so far, as {@linkcode TraceEvent}s. */
  finish(): Trace {
    const events: TraceEvent[] = new Array(this.#count);
    const clock = this.#clock;
    // The earliest call sites past maxEntries are dropped: their labels are the caller's own.
    let drop = this.#sited - this.#maxEntries;
    // Events between two clock readings are spread evenly between them (each
    // happened in that span), so a block placed and freed between two readings
    // still spans time; those after the last reading share its time.
    let tick = 0;
    let i0 = 0;
    let t0 = 0;
    let t = 0;
    let i = 0;
    const used = [...this.#used.slice(0, this.#chunks.length - 1), this.#o];
    for (let c = 0; c < this.#chunks.length; c++) {
      const chunk = this.#chunks[c];
      let o = 0;
      while (o < used[c]) {
        while (tick < clock.length && clock[tick] <= i) {
          i0 = clock[tick];
          t0 = clock[tick + 1];
          tick += 2;
        }
        const spread = tick < clock.length
          ? t0 + (clock[tick + 1] - t0) * (i - i0) / (clock[tick] - i0)
          : t0;
        // Microseconds are enough to order events on a picture's time axis.
        t = Math.round(spread * 1000) / 1000;
        const head = chunk[o++];
        const wide = (head & WIDE) !== 0;
        const field = () => {
          const v = wide ? chunk[o] + chunk[o + 1] * 2 ** 32 : chunk[o];
          o += wide ? 2 : 1;
          return v;
        };
        const pool = POOLS[(head >> 8) & 7];
        switch (KINDS[head & 15]) {
          case "a": {
            const e: AllocEvent = [
              "a",
              field(),
              field(),
              USAGES[(head >> 11) & 3],
              t,
              pool,
              field(),
              field(),
              field(),
            ];
            if (head & LABELLED) {
              const code = chunk[o++];
              const plain = this.#plain[code];
              const label = plain !== undefined && drop-- > 0 ? plain : this.#labels[code];
              if (label !== null) e.push(label);
            }
            if (head & FLAG) {
              if (e.length < 10) e.push(null);
              e.push(true);
            }
            events[i] = e;
            break;
          }
          case "f":
            events[i] = ["f", field(), (head & FLAG) !== 0, t];
            break;
          case "s":
            events[i] = ["s", field(), t, field(), field(), field()];
            break;
          case "submit":
            events[i] = ["submit", t];
            break;
          case "emptyCache":
            events[i] = ["emptyCache", t];
            break;
          case "heap":
            events[i] = ["heap", field(), field(), pool, (head & FLAG) !== 0, t];
            break;
          case "release":
            events[i] = ["release", field(), t];
            break;
          case "oom":
            events[i] = ["oom", field(), pool, t];
            break;
          case "resetPeak":
            events[i] = ["resetPeak", t];
            break;
          case "split":
            events[i] = ["split", field(), t];
            break;
          case "iter":
            events[i] = ["iter", head & LABELLED ? this.#labels[chunk[o++]] : null, t];
            break;
        }
        i++;
      }
    }
    return {
      format: "gpuheap-trace",
      version: 1,
      settings: this.#settings,
      durationMs: Math.round((performance.now() - this.#t0) * 1000) / 1000,
      events,
    };
  }

  /**
   * Writes a record of `n` fields (0 to 2: a, b). The hot events (placed,
   * free) write their words directly; placements off that path go through
   * `#recordPlaced`.
   */
  #record(head: number, n: number, a = 0, b = 0): void {
    this.#begin(head, a + b > 0xffffffff);
    if (n > 0) this.#field(a);
    if (n > 1) this.#field(b);
  }

  /** Writes a placement's record: id, requested bytes (not for a scalar), heap, offset, size. */
  #recordPlaced(head: number, block: PlacedBlock, heap: number): void {
    const { id, requestedSize, offset, size } = block;
    const scalar = head === 2;
    this.#begin(head, id + (scalar ? 0 : requestedSize) + heap + offset + size > 0xffffffff);
    this.#field(id);
    if (!scalar) this.#field(requestedSize);
    this.#field(heap);
    this.#field(offset);
    this.#field(size);
  }

  /**
   * Begins a record: ticks the clock when due, makes room, and writes the
   * head word; `wide` when a field reaches 2^32 (fields are non-negative
   * integers: if their sum fits 32 bits, each does), and then every field
   * takes two words.
   */
  #begin(head: number, wide: boolean): void {
    if ((this.#count & (CLOCK_EVERY - 1)) === 0 || (head & 15) > 2) {
      this.#clock.push(this.#count, performance.now() - this.#t0);
    }
    this.#count++;
    if (this.#o + MAX_RECORD + 1 > this.#chunk.length) {
      /* + 1: a label */ if (this.#chunks.length > 0) this.#used.push(this.#o);
      this.#chunk = new Uint32Array(CHUNK_WORDS);
      this.#chunks.push(this.#chunk);
      this.#o = 0;
    }
    this.#wide = wide;
    this.#chunk[this.#o++] = wide ? head | WIDE : head;
  }

  /** Writes a field of the record begun: one word, or two (lo, hi) in a wide record. */
  #field(value: number): void {
    if (!this.#wide) {
      this.#chunk[this.#o++] = value;
    } else {
      this.#chunk[this.#o++] = value % 2 ** 32;
      this.#chunk[this.#o++] = Math.floor(value / 2 ** 32);
    }
  }

  /** Appends one word to the record just written (room was left for it). */
  #word(value: number): void {
    this.#chunk[this.#o++] = value;
  }

  /** The code of `label` with the call site of the allocation being recorded. */
  #siteIndex(label: string | undefined): number {
    this.#sited++;
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = STACK_DEPTH;
    const stack = new Error().stack ?? "";
    Error.stackTraceLimit = limit;
    const site = callSite(stack);
    const text = label === undefined ? site : site === "" ? label : `${label} @ ${site}`;
    let code = this.#siteCode.get(text);
    if (code === undefined) {
      code = this.#labels.length;
      this.#labels.push(text);
      this.#plain[code] = label ?? null;
      this.#siteCode.set(text, code);
    }
    return code;
  }

  #labelIndex(label: string): number {
    let code = this.#labelCode.get(label);
    if (code === undefined) {
      code = this.#labels.length;
      this.#labels.push(label);
      this.#labelCode.set(label, code);
    }
    return code;
  }
}

/**
 * The innermost frames of a stack outside the package (its `allocator/`
 * and `kernels/` folders and root module) and the runtime's own code, as
 * `file.ts:line function`, joined by " ← " (innermost first): the user's
 * line that asked for the memory, then its callers.
 *
 * @example
 * ```ts
 * import { callSite } from "./trace_recorder.ts";
 * import assert from "node:assert/strict";
 *
 * const own = new URL("../kernels/relu.ts", import.meta.url).href;
 * const stack = `Error\n    at relu (${own}:53:10)\n    at layer (file:///app/model.ts:7:3)` +
 *   `\n    at file:///app/main.ts:2:1`;
 * assert.equal(callSite(stack), "model.ts:7 layer ← main.ts:2");
 * ```
 */
export function callSite(stack: string): string {
  const frames: string[] = [];
  for (const line of stack.split("\n")) {
    const m = /^\s*at (?:async )?(?:(.*?) \()?(\S+?):(\d+):\d+\)?$/.exec(line);
    if (!m || isPackageOrRuntime(m[2])) continue;
    const file = m[2].slice(m[2].lastIndexOf("/") + 1);
    frames.push(m[1] ? `${file}:${m[3]} ${m[1]}` : `${file}:${m[3]}`);
    if (frames.length === SITE_FRAMES) break;
  }
  return frames.join(" ← ");
}

/** True for a file of the package's own code, or of the runtime (`ext:`, `node:`). */
function isPackageOrRuntime(url: string): boolean {
  if (url.startsWith("ext:") || url.startsWith("node:")) return true;
  return PACKAGE_CODE.some((p) => url.startsWith(p));
}
