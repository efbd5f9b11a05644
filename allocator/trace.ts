/**
 * Traces of an allocator's events: the format, a reader that checks it, and
 * the recorder behind `HeapAllocator.startRecording()`.
 *
 * The format, version 1, is one JSON object:
 *
 * ```jsonc
 * {
 *   "format": "gpuheap-trace",
 *   "version": 1,
 *   "settings": { "allocConf": "…", "highWatermark": 0, "lowWatermark": 0,
 *                 "alignment": 32, "limits": { … }, "fallbackAdapter": false },
 *   "durationMs": 52.1,
 *   "events": [["heap", 1, 8388608, "small", true, 0.01],
 *              ["a", 1, 4000, "storage", 0.012, "small", 1, 0, 4000],
 *              ["f", 1, true, 0.3], ["submit", 0.31]]
 * }
 * ```
 *
 * Each event is an array whose first item names its kind; `t` is milliseconds
 * since recording started. Items after the ones a replay needs are optional,
 * so a plain list of `["a", id, size]` and `["f", id]` events (a trace of any
 * allocator) is a trace too, and may stand alone in place of the object.
 *
 * | event                                                               | meaning |
 * | ------------------------------------------------------------------- | ------- |
 * | `["a", id, requested, usage?, t?, pool?, heap?, offset?, size?, label?]` | `alloc(requested, { usage })` (usage default `"storage"`) returned block `id` of `size` bytes at `offset` in `heap` |
 * | `["f", id, pending?, t?]`                                           | `free` of block `id`; `pending` (default false): the block was given to GPU work, so its memory waited for the next submit |
 * | `["s", id, t?, heap?, offset?, size?]`                              | `scalar()` returned block `id` |
 * | `["submit", t?]`                                                    | `submit()`: blocks freed before it are reusable |
 * | `["emptyCache", t?]`                                                | `emptyCache()` |
 * | `["heap", heap, size, pool, isSplit, t?]`                           | a heap (GPUBuffer) was made |
 * | `["release", heap, t?]`                                             | a heap was released |
 * | `["split", heap, t?]`                                               | a cached unsplit heap became a split heap (its cached block is gone) |
 * | `["oom", requested, pool, t?]`                                      | an allocation failed with `OutOfMemoryError` |
 * | `["resetPeak", t?]`                                                 | `resetPeakStats()` |
 *
 * Block ids may be reused once freed. A recording started on a busy
 * allocator begins with the state then: a `heap` event per heap held, an
 * `a` (or `s`) event per block placed, and an `f` event for each of those
 * already freed (cached or waiting for a submit).
 *
 * @module
 */

import type { AllocatorSettings } from "./config.ts";
import type { Snapshot } from "./snapshot.ts";

/** `alloc(requested, { usage })` returned block `id` of `size` bytes at `offset` in `heap`. */
export type AllocEvent = [
  kind: "a",
  id: number,
  requested: number,
  usage?: string,
  t?: number,
  pool?: string,
  heap?: number,
  offset?: number,
  size?: number,
  label?: string,
];
/** `free` of block `id`; `pending`: its memory waited for the next submit. */
export type FreeEvent = [kind: "f", id: number, pending?: boolean | 0 | 1, t?: number];
/** `scalar()` returned block `id`. */
export type ScalarEvent = [
  kind: "s",
  id: number,
  t?: number,
  heap?: number,
  offset?: number,
  size?: number,
];
/** `submit()`. */
export type SubmitEvent = [kind: "submit", t?: number];
/** `emptyCache()`. */
export type EmptyCacheEvent = [kind: "emptyCache", t?: number];
/** A heap (GPUBuffer) was made. */
export type HeapEvent = [
  kind: "heap",
  heap: number,
  size: number,
  pool: string,
  isSplit: boolean,
  t?: number,
];
/** A heap was released. */
export type ReleaseEvent = [kind: "release", heap: number, t?: number];
/** A cached unsplit heap became a split heap (its cached block is gone). */
export type SplitEvent = [kind: "split", heap: number, t?: number];
/** An allocation failed with `OutOfMemoryError`. */
export type OomEvent = [kind: "oom", requested: number, pool: string, t?: number];
/** `resetPeakStats()`. */
export type ResetPeakEvent = [kind: "resetPeak", t?: number];

/** One event of a {@linkcode Trace}. */
export type TraceEvent =
  | AllocEvent
  | FreeEvent
  | ScalarEvent
  | SubmitEvent
  | EmptyCacheEvent
  | HeapEvent
  | ReleaseEvent
  | SplitEvent
  | OomEvent
  | ResetPeakEvent;

/** What `HeapAllocator.stopRecording()` returns: a versioned, JSON-ready list of events. */
export interface Trace {
  /** Always `"gpuheap-trace"`. */
  format: "gpuheap-trace";
  /** Version of the format: 1. */
  version: 1;
  /** The settings the allocator ran with (a replay uses them unless told otherwise). */
  settings: AllocatorSettings | null;
  /** Milliseconds from the start of the recording to its end. */
  durationMs: number;
  /** The events, in order. */
  events: TraceEvent[];
}

/**
 * A trace that cannot be read or replayed; `index` is the offending event's (or -1).
 *
 * @example
 * ```ts
 * import { readTrace, TraceError } from "./trace.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => readTrace([["a", 1, 64], ["x"]]), (e: unknown) => {
 *   assert.ok(e instanceof TraceError);
 *   assert.equal(e.index, 1);
 *   assert.match(e.message, /event 1: unknown event "x"/);
 *   return true;
 * });
 * ```
 */
export class TraceError extends Error {
  /** Index of the offending event in the trace's events, or -1 for the trace as a whole. */
  readonly index: number;

  /**
   * Creates the error; the message is prefixed with the event's index.
   *
   * @param message what is wrong
   * @param index the offending event's index, or -1
   */
  constructor(message: string, index = -1) {
    super(index >= 0 ? `Invalid trace: event ${index}: ${message}` : `Invalid trace: ${message}`);
    this.name = "TraceError";
    this.index = index;
  }
}

/** Number of items each event kind must have at least, and at most. */
const ARITY: Record<string, [number, number]> = {
  a: [3, 10],
  f: [2, 4],
  s: [2, 6],
  submit: [1, 2],
  emptyCache: [1, 2],
  heap: [5, 6],
  release: [2, 3],
  split: [2, 3],
  oom: [3, 4],
  resetPeak: [1, 2],
};

/**
 * Reads a trace from JSON text or a parsed value: a {@linkcode Trace}
 * object, or a plain list of events. Checks the shape of every event.
 *
 * @throws {TraceError} malformed JSON, an unknown format or version, or a
 *   malformed event (the message names its index)
 *
 * @example
 * ```ts
 * import { readTrace } from "./trace.ts";
 * import assert from "node:assert/strict";
 *
 * const trace = readTrace('[["a", 1, 4096], ["f", 1]]');
 * assert.equal(trace.events.length, 2);
 * assert.equal(trace.settings, null);
 * ```
 */
export function readTrace(input: string | unknown): Trace {
  let value = input;
  if (typeof input === "string") {
    try {
      value = JSON.parse(input);
    } catch (error) {
      throw new TraceError(`malformed JSON (${(error as Error).message})`);
    }
  }
  let trace: Trace;
  if (Array.isArray(value)) {
    trace = { format: "gpuheap-trace", version: 1, settings: null, durationMs: 0, events: value };
  } else if (value && typeof value === "object") {
    const v = value as Partial<Trace>;
    if (v.format !== "gpuheap-trace") {
      throw new TraceError(
        `expected a list of events or an object with format "gpuheap-trace", got format ${
          JSON.stringify(v.format)
        }`,
      );
    }
    if (v.version !== 1) {
      throw new TraceError(`unsupported version ${JSON.stringify(v.version)} (this reads 1)`);
    }
    if (!Array.isArray(v.events)) throw new TraceError(`"events" must be a list`);
    trace = {
      format: "gpuheap-trace",
      version: 1,
      settings: v.settings ?? null,
      durationMs: typeof v.durationMs === "number" ? v.durationMs : 0,
      events: v.events,
    };
  } else {
    throw new TraceError(
      `expected a list of events or a trace object, got ${JSON.stringify(value)}`,
    );
  }
  const events = trace.events as unknown[];
  for (let i = 0; i < events.length; i++) checkEvent(events[i], i);
  return trace;
}

function checkEvent(e: unknown, i: number): void {
  if (!Array.isArray(e) || e.length === 0) {
    throw new TraceError(`expected an array such as ["a", id, size], got ${JSON.stringify(e)}`, i);
  }
  const arity = ARITY[e[0]];
  if (!arity) {
    throw new TraceError(
      `unknown event ${JSON.stringify(e[0])} (expected one of ${Object.keys(ARITY).join(", ")})`,
      i,
    );
  }
  if (e.length < arity[0] || e.length > arity[1]) {
    throw new TraceError(
      `"${e[0]}" takes ${arity[0]} to ${arity[1]} items, got ${JSON.stringify(e)}`,
      i,
    );
  }
  const kind = e[0];
  if (kind === "a" || kind === "f" || kind === "s") {
    if (!Number.isSafeInteger(e[1])) {
      throw new TraceError(`block id must be an integer, got ${JSON.stringify(e[1])}`, i);
    }
  }
  if (kind === "a" || kind === "oom") {
    const size = kind === "a" ? e[2] : e[1];
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new TraceError(`size must be a positive integer, got ${JSON.stringify(size)}`, i);
    }
  }
  if (kind === "a" && e.length > 3 && typeof e[3] !== "string") {
    throw new TraceError(`usage must be a string, got ${JSON.stringify(e[3])}`, i);
  }
  if (kind === "f" && e.length > 2 && ![true, false, 0, 1].includes(e[2])) {
    throw new TraceError(`pending must be true, false, 0 or 1, got ${JSON.stringify(e[2])}`, i);
  }
}

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
] as const;
const POOLS = ["small", "large", "uniform", "scalar", "readback", "upload"];
const USAGES = ["storage", "uniform", "readback", "upload"];
const POOL_CODE: Record<string, number> = Object.fromEntries(POOLS.map((p, i) => [p, i << 8]));
const USAGE_CODE: Record<string, number> = Object.fromEntries(USAGES.map((u, i) => [u, i << 11]));
// Head word of a record: kind in bits 0-3, then flags, then pool and usage codes.
const FLAG = 1 << 4; // a free's pending, a heap's isSplit
const LABELLED = 1 << 5; // one more field: the label's index
const WIDE = 1 << 6; // each field takes two words (lo, hi): a value reached 2^32
/** Words per chunk of the recording (1 MiB): chunks are never copied or regrown. */
const CHUNK_WORDS = 1 << 18;
/** Longest record: a head and six wide fields. */
const MAX_RECORD = 1 + 2 * 6;
/** The clock is read once per this many events: a read costs as much as an alloc+free. */
const CLOCK_EVERY = 16;

/**
 * @internal collects events while `HeapAllocator` records. Events are packed
 * into fixed chunks of 32-bit words (an alloc takes 6, a free 2), with the
 * clock read every {@linkcode CLOCK_EVERY} events and on every rarer event:
 * no object per event, no copying, few pages touched. {@linkcode
 * TraceRecorder.finish} turns them into {@linkcode TraceEvent}s; events
 * between two clock readings share the earlier time.
 */
export class TraceRecorder {
  #chunks: Uint32Array[] = [];
  #used: number[] = [];
  #chunk = new Uint32Array(0);
  #o = 0;
  #count = 0;
  /** Clock readings: event index and milliseconds since the start, alternating. */
  #clock: number[] = [];
  #labels: string[] = [];
  #labelCode = new Map<string, number>();
  #settings: AllocatorSettings;
  #t0 = performance.now();

  /** @param settings the allocator's settings, stored with the trace */
  constructor(settings: AllocatorSettings) {
    this.#settings = settings;
  }

  /** Records the state of a busy allocator as the trace's first events. */
  begin(snapshot: Snapshot): void {
    for (const heap of snapshot.heaps) this.heap(heap.id, heap.size, heap.pool, heap.isSplit);
    for (const heap of snapshot.heaps) {
      for (const b of heap.blocks) {
        if (b.id === null) continue;
        this.placed(
          b.id,
          b.requestedSize,
          b.usage ?? "storage",
          heap.pool,
          heap.id,
          b.offset,
          b.size,
          b.label ?? undefined,
        );
        if (b.state !== "live") this.free(b.id, b.state === "pending");
      }
    }
  }

  /** A block was handed out (by `alloc`, or by `scalar` in the scalar pool). */
  // placed and free are the hot ones: they write their words directly.
  placed(
    id: number,
    requested: number,
    usage: string,
    pool: string,
    heap: number,
    offset: number,
    size: number,
    label: string | undefined,
  ): void {
    const n = this.#count;
    let o = this.#o;
    if (
      label === undefined && pool !== "scalar" && (n & (CLOCK_EVERY - 1)) !== 0 &&
      o + 6 <= this.#chunk.length && id + requested + heap + offset + size <= 0xffffffff
    ) {
      const chunk = this.#chunk;
      chunk[o++] = USAGE_CODE[usage] | POOL_CODE[pool];
      chunk[o++] = id;
      chunk[o++] = requested;
      chunk[o++] = heap;
      chunk[o++] = offset;
      chunk[o++] = size;
      this.#o = o;
      this.#count = n + 1;
    } else if (pool === "scalar") {
      this.#record(2, 4, id, heap, offset, size, 0);
    } else if (label === undefined) {
      this.#record(USAGE_CODE[usage] | POOL_CODE[pool], 5, id, requested, heap, offset, size);
    } else {
      this.#record(
        USAGE_CODE[usage] | POOL_CODE[pool] | LABELLED,
        5,
        id,
        requested,
        heap,
        offset,
        size,
      );
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
    this.#record(pending ? 1 | FLAG : 1, 1, id, 0, 0, 0, 0);
  }

  /** `submit()` was called. */
  submit(): void {
    this.#record(3, 0, 0, 0, 0, 0, 0);
  }

  /** `emptyCache()` was called. */
  emptyCache(): void {
    this.#record(4, 0, 0, 0, 0, 0, 0);
  }

  /** A heap was made. */
  heap(id: number, size: number, pool: string, isSplit: boolean): void {
    this.#record(5 | POOL_CODE[pool] | (isSplit ? FLAG : 0), 2, id, size, 0, 0, 0);
  }

  /** A heap was released. */
  release(id: number): void {
    this.#record(6, 1, id, 0, 0, 0, 0);
  }

  /** An allocation failed. */
  oom(requested: number, pool: string): void {
    this.#record(7 | POOL_CODE[pool], 1, requested, 0, 0, 0, 0);
  }

  /** A cached unsplit heap became a split heap. */
  split(id: number): void {
    this.#record(9, 1, id, 0, 0, 0, 0);
  }

  /** `resetPeakStats()` was called. */
  resetPeak(): void {
    this.#record(8, 0, 0, 0, 0, 0, 0);
  }

  /** The trace recorded so far, as {@linkcode TraceEvent}s. */
  finish(): Trace {
    const events: TraceEvent[] = new Array(this.#count);
    const clock = this.#clock;
    let tick = 0;
    let t = 0;
    let i = 0;
    const used = [...this.#used.slice(0, this.#chunks.length - 1), this.#o];
    for (let c = 0; c < this.#chunks.length; c++) {
      const chunk = this.#chunks[c];
      let o = 0;
      while (o < used[c]) {
        while (tick < clock.length && clock[tick] <= i) {
          // Microseconds are enough to order events on a picture's time axis.
          t = Math.round(clock[tick + 1] * 1000) / 1000;
          tick += 2;
        }
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
            if (head & LABELLED) e.push(this.#labels[chunk[o++]]);
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

  /** Writes a record: the head word and `n` fields (of a..e), two words each if any is wide. */
  #record(head: number, n: number, a: number, b: number, c: number, d: number, e: number): void {
    if ((this.#count & (CLOCK_EVERY - 1)) === 0 || (head & 15) > 2) {
      this.#clock.push(this.#count, performance.now() - this.#t0);
    }
    this.#count++;
    let chunk = this.#chunk;
    let o = this.#o;
    if (o + MAX_RECORD + 1 > chunk.length) {
      /* + 1: a label */ if (this.#chunks.length > 0) this.#used.push(o);
      chunk = this.#chunk = new Uint32Array(CHUNK_WORDS);
      this.#chunks.push(chunk);
      o = 0;
    }
    // Fields are non-negative integers: if their sum fits 32 bits, each does.
    if (a + b + c + d + e <= 0xffffffff) {
      chunk[o++] = head;
      if (n > 0) chunk[o++] = a;
      if (n > 1) chunk[o++] = b;
      if (n > 2) chunk[o++] = c;
      if (n > 3) chunk[o++] = d;
      if (n > 4) chunk[o++] = e;
    } else {
      chunk[o++] = head | WIDE;
      const fields = [a, b, c, d, e];
      for (let k = 0; k < n; k++) {
        chunk[o++] = fields[k] % 2 ** 32;
        chunk[o++] = Math.floor(fields[k] / 2 ** 32);
      }
    }
    this.#o = o;
  }

  /** Appends one word to the record just written (room was left for it). */
  #word(value: number): void {
    this.#chunk[this.#o++] = value;
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
