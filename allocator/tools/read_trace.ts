/**
 * Reads traces: the gpuheap format and plain `["a", id, size]` lists, with
 * every event's shape checked. See `../trace.ts` for the format.
 *
 * @module
 */

import type { Trace } from "../trace.ts";

/**
 * A trace that cannot be read or replayed; `index` is the offending event's (or -1).
 *
 * @example
 * ```ts
 * import { readTrace, TraceError } from "./read_trace.ts";
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
 * import { readTrace } from "./read_trace.ts";
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
