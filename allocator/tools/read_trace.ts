/**
 * Reads traces: the gpuheap format and plain `["a", id, size]` lists, with
 * every event's items and the recorded settings checked. See `../trace.ts`
 * for the format.
 *
 * Whatever the input, reading it ends in a {@linkcode Trace} or a
 * {@linkcode TraceError}: sizes are integers a double holds exactly, names
 * are looked up among our own (never on `Object.prototype`), and messages
 * quote at most a few items of a value, however deep it is nested.
 *
 * @module
 */

import { POOL_NAMES } from "../allocator.ts";
import { type AllocatorSettings, type AllocConf, parseAllocConf, parseBytes } from "../config.ts";
import type { AllocatorLimits } from "../device.ts";
import type { Trace } from "../trace.ts";

/**
 * A trace that cannot be read or replayed; `index` is the offending event's (or -1).
 *
 * @example
 * ```ts
 * import { readTrace, TraceError } from "@gpuheap/gpuheap/tools";
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

/** Items and characters a description of an input value shows at most. */
const DESCRIBE_ITEMS = 4;
const DESCRIBE_CHARS = 40;

/**
 * A short description of an input value for an error message: strings
 * quoted and cut, lists and objects shown one level deep and a few items
 * long. Never recurses, so a value nested 10⁵ deep costs no more than a flat one.
 *
 * @example
 * ```ts
 * import { describe } from "./read_trace.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(describe(["a", 1, [2, [3]], "x".repeat(100)]), '["a", 1, [2 items], "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…"]');
 * assert.equal(describe({ format: "other", events: [] }), '{format: "other", events: [0 items]}');
 * ```
 */
export function describe(value: unknown): string {
  const shallow = (v: unknown): string => {
    if (typeof v === "string") {
      return JSON.stringify(v.length > DESCRIBE_CHARS ? v.slice(0, DESCRIBE_CHARS - 3) + "…" : v);
    }
    if (Array.isArray(v)) return `[${v.length} items]`;
    if (v === null) return "null";
    if (typeof v === "object") return "{…}";
    if (typeof v === "undefined") return "nothing";
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    if (typeof v === "bigint") return describeBigInt(v);
    return typeof v;
  };
  const more = (n: number) => n > DESCRIBE_ITEMS ? `, … ${n - DESCRIBE_ITEMS} more` : "";
  if (Array.isArray(value)) {
    const items = value.slice(0, DESCRIBE_ITEMS).map(shallow);
    return `[${items.join(", ")}${more(value.length)}]`;
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    const items = keys.slice(0, DESCRIBE_ITEMS).map((k) =>
      `${shallow(k).slice(1, -1)}: ${shallow((value as Record<string, unknown>)[k])}`
    );
    return `{${items.join(", ")}${more(keys.length)}}`;
  }
  return shallow(value);
}

/**
 * A big int for a message: cut to its first digits past 40 (a pickle's int
 * may have thousands).
 *
 * @example
 * ```ts
 * import { describeBigInt } from "./read_trace.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(describeBigInt(2n ** 64n), "18446744073709551616");
 * assert.equal(describeBigInt(10n ** 100n), `1${"0".repeat(36)}… (101 digits)`);
 * ```
 */
export function describeBigInt(v: bigint): string {
  const s = String(v);
  return s.length > DESCRIBE_CHARS ? `${s.slice(0, DESCRIBE_CHARS - 3)}… (${s.length} digits)` : s;
}

/** One item of an event: its name, what it must be, and the check. */
type Item = readonly [name: string, expects: string, ok: (v: unknown) => boolean];

const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isSize = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;
const isPool = (v: unknown) => (POOL_NAMES as readonly unknown[]).includes(v);
const POOL_LIST = POOL_NAMES.join(", ");

const BLOCK_ID: Item = ["block id", "an integer", Number.isSafeInteger];
const HEAP_ID: Item = ["heap id", "an integer", Number.isSafeInteger];
const REQUESTED: Item = ["size", "a positive integer (at most 2^53 - 1)", isSize];
const TIME: Item = ["time", "a finite number", Number.isFinite];
const POOL: Item = ["pool", `one of ${POOL_LIST}`, isPool];

/** Each event's items after its kind: the ones it must have, then the optional ones. */
const EVENTS: ReadonlyMap<string, readonly [required: Item[], optional: Item[]]> = new Map([
  ["a", [[BLOCK_ID, REQUESTED], [
    ["usage", "a string", (v) => typeof v === "string"],
    TIME,
    POOL,
    HEAP_ID,
    ["offset", "an integer >= 0 (at most 2^53 - 1)", isCount],
    ["block size", "a positive integer (at most 2^53 - 1)", isSize],
    ["label", "a string", (v) => typeof v === "string"],
    ["longLived", "true or false", (v) => typeof v === "boolean"],
  ]]],
  ["f", [[BLOCK_ID], [
    ["pending", "true, false, 0 or 1", (v) => v === true || v === false || v === 0 || v === 1],
    TIME,
  ]]],
  ["s", [[BLOCK_ID], [
    TIME,
    HEAP_ID,
    ["offset", "an integer >= 0 (at most 2^53 - 1)", isCount],
    ["block size", "a positive integer (at most 2^53 - 1)", isSize],
  ]]],
  ["submit", [[], [TIME]]],
  ["emptyCache", [[], [TIME]]],
  ["heap", [[
    HEAP_ID,
    ["heap size", "a positive integer (at most 2^53 - 1)", isSize],
    POOL,
    ["isSplit", "true or false", (v) => typeof v === "boolean"],
  ], [TIME]]],
  ["release", [[HEAP_ID], [TIME]]],
  ["split", [[HEAP_ID], [TIME]]],
  ["oom", [[REQUESTED, POOL], [TIME]]],
  ["resetPeak", [[], [TIME]]],
  ["iter", [[["key", "a string or null", (v) => v === null || typeof v === "string"]], [TIME]]],
]);

/**
 * Reads a trace from JSON text or a parsed value: a {@linkcode Trace}
 * object, or a plain list of events. Checks the settings and every item of
 * every event.
 *
 * @throws {TraceError} malformed JSON, an unknown format or version, bad
 *   settings, or a malformed event (the message names its index)
 *
 * @example
 * ```ts
 * import { readTrace } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const trace = readTrace('[["a", 1, 4096], ["f", 1]]');
 * assert.equal(trace.events.length, 2);
 * assert.equal(trace.settings, null);
 * ```
 */
export function readTrace(input: string | unknown): Trace {
  const value = typeof input === "string" ? parseJson(input) : input;
  let trace: Trace;
  if (Array.isArray(value)) {
    trace = { format: "gpuheap-trace", version: 1, settings: null, durationMs: 0, events: value };
  } else if (value && typeof value === "object") {
    const v = value as Record<string, unknown>;
    if (v.format !== "gpuheap-trace") {
      throw new TraceError(
        `expected a list of events or an object with format "gpuheap-trace", got format ${
          describe(v.format)
        }`,
      );
    }
    if (v.version !== 1) {
      throw new TraceError(`unsupported version ${describe(v.version)} (this reads 1)`);
    }
    if (!Array.isArray(v.events)) throw new TraceError(`"events" must be a list`);
    const duration = v.durationMs ?? 0;
    if (!(Number.isFinite(duration) && (duration as number) >= 0)) {
      throw new TraceError(`durationMs must be a number >= 0, got ${describe(duration)}`);
    }
    trace = {
      format: "gpuheap-trace",
      version: 1,
      settings: readSettings(v.settings ?? null),
      durationMs: duration as number,
      events: v.events,
    };
  } else {
    throw new TraceError(`expected a list of events or a trace object, got ${describe(value)}`);
  }
  const events = trace.events as unknown[];
  for (let i = 0; i < events.length; i++) checkEvent(events[i], i);
  return trace;
}

/**
 * Parses JSON text, as every reader of traces and snapshots does.
 *
 * @throws {TraceError} malformed JSON
 */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    // V8 parses without recursion; a RangeError here means the text is too large.
    const why = error instanceof SyntaxError ? error.message : "too large or too deeply nested";
    throw new TraceError(`malformed JSON (${why})`);
  }
}

function checkEvent(e: unknown, i: number): void {
  if (!Array.isArray(e) || e.length === 0) {
    throw new TraceError(`expected an array such as ["a", id, size], got ${describe(e)}`, i);
  }
  const kind = e[0];
  const items = typeof kind === "string" ? EVENTS.get(kind) : undefined;
  if (!items) {
    throw new TraceError(
      `unknown event ${describe(kind)} (expected one of ${[...EVENTS.keys()].join(", ")})`,
      i,
    );
  }
  const [required, optional] = items;
  const min = 1 + required.length;
  const max = min + optional.length;
  if (e.length < min || e.length > max) {
    throw new TraceError(`"${kind}" takes ${min} to ${max} items, got ${describe(e)}`, i);
  }
  for (let k = 1; k < e.length; k++) {
    // An optional item may be null (absent), so that a later one can be given.
    if (k >= min && (e[k] === null || e[k] === undefined)) continue;
    const [name, expects, ok] = k < min ? required[k - 1] : optional[k - min];
    if (!ok(e[k])) throw new TraceError(`${name} must be ${expects}, got ${describe(e[k])}`, i);
  }
}

/**
 * Why the allocator refused an alloc conf, without the conf it quotes and
 * cut short: the conf may be any length.
 */
export function confReason(error: Error): string {
  const why = error.message.replace(/^Invalid alloc conf( "[^]*?")?: /, "");
  return why.length > 160 ? why.slice(0, 159) + "…" : why;
}

/** Each device limit the allocator reads, and what it must be. */
const LIMITS: ReadonlyMap<keyof AllocatorLimits, "size" | "binding" | "alignment"> = new Map([
  ["maxBufferSize", "size"],
  ["maxStorageBufferBindingSize", "binding"],
  ["maxUniformBufferBindingSize", "binding"],
  ["minStorageBufferOffsetAlignment", "alignment"],
  ["minUniformBufferOffsetAlignment", "alignment"],
]);

/** WebGPU's bound on alignment limits: every device aligns to 256 bytes or less. */
const MAX_ALIGNMENT = 256;

/**
 * The largest binding a device reports: WebGPU implementations (wgpu, Dawn) keep binding
 * sizes in 32 bits, so a larger figure in a trace was written by no device.
 */
const MAX_BINDING = 2 ** 32 - 1;

const isAlignment = (v: unknown) =>
  Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= MAX_ALIGNMENT &&
  ((v as number) & ((v as number) - 1)) === 0;

/**
 * Reads the settings recorded with a trace or snapshot: the alloc conf as
 * the allocator reads it, watermarks, alignment and device limits within
 * what a device can have, and heaps that fit in `maxBufferSize`. Only the
 * fields the format names are kept.
 *
 * @param value the settings, or null
 * @param fail makes the error for a field (`path`: `"settings.alignment"`); default a TraceError
 * @throws {TraceError} a field of the wrong type or out of range
 */
export function readSettings(
  value: unknown,
  fail: (message: string, path: string) => Error = (message, path) =>
    new TraceError(`${path} ${message}`),
): AllocatorSettings | null {
  const where = "settings";
  if (value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw fail(`must be an object or null, got ${describe(value)}`, where);
  }
  const v = value as Record<string, unknown>;
  const bad = (field: string, expects: string) =>
    fail(`must be ${expects}, got ${describe(v[field])}`, `${where}.${field}`);
  const out: Partial<AllocatorSettings> = {};
  let conf: AllocConf | undefined;
  if (v.allocConf !== undefined) {
    if (typeof v.allocConf !== "string") throw bad("allocConf", "a string");
    try {
      conf = parseAllocConf(v.allocConf);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw fail(`cannot be read: ${confReason(error)}`, `${where}.allocConf`);
    }
    out.allocConf = v.allocConf;
  }
  for (const field of ["highWatermark", "lowWatermark"] as const) {
    if (v[field] === undefined) continue;
    let bytes = NaN;
    try {
      bytes = typeof v[field] === "number" || typeof v[field] === "string"
        ? parseBytes(v[field] as number | string, field)
        : NaN;
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
    }
    if (!Number.isSafeInteger(bytes)) throw bad(field, "bytes (at most 2^53 - 1)");
    out[field] = bytes;
  }
  if (out.highWatermark && out.lowWatermark && out.lowWatermark > out.highWatermark) {
    throw fail(
      `${out.lowWatermark} is above highWatermark ${out.highWatermark}`,
      `${where}.lowWatermark`,
    );
  }
  if (v.alignment !== undefined) {
    if (!isAlignment(v.alignment)) throw bad("alignment", `a power of two <= ${MAX_ALIGNMENT}`);
    out.alignment = v.alignment as number;
  }
  if (v.fallbackAdapter !== undefined) {
    if (typeof v.fallbackAdapter !== "boolean") throw bad("fallbackAdapter", "true or false");
    out.fallbackAdapter = v.fallbackAdapter;
  }
  if (v.limits !== undefined) {
    out.limits = readLimits(v.limits, `${where}.limits`, conf ?? parseAllocConf(""), fail);
  }
  return out as AllocatorSettings;
}

function readLimits(
  value: unknown,
  where: string,
  conf: AllocConf,
  fail: (message: string, path: string) => Error,
): AllocatorLimits {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw fail(`must be an object, got ${describe(value)}`, where);
  }
  const v = value as Record<string, unknown>;
  const out: Partial<Record<keyof AllocatorLimits, number>> = {};
  for (const [name, kind] of LIMITS) {
    const x = v[name];
    if (x === undefined) continue;
    const ok = kind === "alignment"
      ? isAlignment(x)
      : isSize(x) && (kind === "size" || (x as number) <= MAX_BINDING);
    if (!ok) {
      const expects = kind === "alignment"
        ? `a power of two <= ${MAX_ALIGNMENT}`
        : kind === "binding"
        ? "a positive integer of at most 2^32 - 1 (a binding size, 32 bits in WebGPU)"
        : "a positive integer (at most 2^53 - 1)";
      throw fail(`must be ${expects}, got ${describe(x)}`, `${where}.${name}`);
    }
    out[name] = x as number;
  }
  // The heaps the alloc conf asks for must fit in one GPUBuffer.
  const max = out.maxBufferSize;
  if (max !== undefined && Math.max(conf.smallHeap, conf.largeHeap) > max) {
    throw fail(
      `${max} is below the heaps of the alloc conf ` +
        `(small ${conf.smallHeap}, large ${conf.largeHeap} bytes)`,
      `${where}.maxBufferSize`,
    );
  }
  return out as AllocatorLimits;
}
