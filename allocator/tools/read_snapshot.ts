/**
 * Reads snapshots (what `HeapAllocator.snapshot()` returns, see
 * `../snapshot.ts`) as traces are read: every field the format names is
 * checked, and only those are kept, so what the picture draws is a
 * well-formed {@linkcode Snapshot} or a {@linkcode SnapshotError}.
 *
 * @module
 */

import { POOL_NAMES } from "../allocator.ts";
import type { BlockStateName, Snapshot, SnapshotBlock, SnapshotHeap } from "../snapshot.ts";
import type { MemoryStats, PoolStats, Stat } from "../stats.ts";
import { describe, parseJson, readSettings, TraceError } from "./read_trace.ts";

/**
 * A snapshot that cannot be read; `path` names the offending field
 * (`heaps[2].blocks[0].size`). A {@linkcode TraceError}, so one `catch`
 * handles every input the tools refuse.
 *
 * @example
 * ```ts
 * import { readSnapshot, SnapshotError } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => readSnapshot({ format: "gpuheap-snapshot", version: 1 }), (e: unknown) => {
 *   assert.ok(e instanceof SnapshotError);
 *   assert.equal(e.path, "settings");
 *   return true;
 * });
 * ```
 */
export class SnapshotError extends TraceError {
  /** The offending field, or "" for the snapshot as a whole. */
  readonly path: string;

  /**
   * Creates the error.
   *
   * @param message what is wrong
   * @param path the offending field
   */
  constructor(message: string, path = "") {
    super(message);
    this.message = `Invalid snapshot: ${path ? `${path} ` : ""}${message}`;
    this.name = "SnapshotError";
    this.path = path;
  }
}

const STATES: readonly BlockStateName[] = ["live", "pending", "cached", "free"];
const STAT_FIELDS = ["current", "peak", "allocated", "freed"] as const;
const POOL_STAT_FIELDS = ["allocatedBytes", "reservedBytes", "requestedBytes"] as const;
const LATER_STAT_FIELDS = ["activeBytes", "blockCount", "heapCount"] as const;
const POOL_COUNT_FIELDS = [
  "cachedBytes",
  "pendingFreeBytes",
  "largestFreeRange",
  "heaps",
  "blocks",
  "allocations",
  "cacheHits",
  "createBufferCalls",
] as const;
const TOTAL_COUNT_FIELDS = ["numAllocRetries", "numOoms", "highWatermark", "lowWatermark"] as const;

/** Reads the fields of one object of a snapshot, naming each by its path. */
class Fields {
  readonly #v: Record<string, unknown>;
  readonly #path: string;

  constructor(value: unknown, path: string) {
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      throw new SnapshotError(`must be an object, got ${describe(value)}`, path);
    }
    this.#v = value as Record<string, unknown>;
    this.#path = path;
  }

  #at(name: string): string {
    return this.#path ? `${this.#path}.${name}` : name;
  }

  #check<T>(name: string, expects: string, ok: (v: unknown) => boolean): T {
    const v = this.#v[name];
    if (!ok(v)) throw new SnapshotError(`must be ${expects}, got ${describe(v)}`, this.#at(name));
    return v as T;
  }

  /** A non-negative integer a double holds exactly. */
  count(name: string): number {
    return this.#check(name, "an integer >= 0 (at most 2^53 - 1)", isCount);
  }

  /** A positive integer a double holds exactly. */
  size(name: string): number {
    return this.#check(name, "a positive integer (at most 2^53 - 1)", isSize);
  }

  id(name: string): number {
    return this.#check(name, "an integer", Number.isSafeInteger);
  }

  idOrNull(name: string): number | null {
    return this.#check(name, "an integer or null", (v) => v === null || Number.isSafeInteger(v));
  }

  /** A count that older snapshots may lack: 0 when absent. */
  optionalCount(name: string): number {
    return this.#v[name] === undefined ? 0 : this.count(name);
  }

  countOrNull(name: string): number | null {
    return this.#check(name, "an integer >= 0 or null", (v) => v === null || isCount(v));
  }

  time(name: string): number {
    return this.#check(name, "a number >= 0", (v) => Number.isFinite(v) && (v as number) >= 0);
  }

  boolean(name: string): boolean {
    return this.#check(name, "true or false", (v) => typeof v === "boolean");
  }

  textOrNull(name: string): string | null {
    return this.#check(name, "a string or null", (v) => v === null || typeof v === "string");
  }

  oneOf<T extends string>(name: string, words: readonly T[]): T {
    return this.#check(name, `one of ${words.join(", ")}`, (v) => words.includes(v as T));
  }

  list(name: string): unknown[] {
    return this.#check(name, "a list", Array.isArray);
  }

  object(name: string): Fields {
    return new Fields(this.#v[name], this.#at(name));
  }

  raw(name: string): unknown {
    return this.#v[name];
  }
}

const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isSize = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

/**
 * Reads a snapshot from JSON text or a parsed value: the format, settings,
 * every statistic, every heap and every block (in address order, inside
 * its heap).
 *
 * @throws {SnapshotError} a field missing, of the wrong type or out of range
 * @throws {TraceError} malformed JSON or settings
 *
 * @example
 * ```ts
 * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import { readSnapshot } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const heap = new HeapAllocator(new FakeDevice());
 * heap.alloc(1000);
 * const snapshot = heap.snapshot();
 * assert.deepEqual(readSnapshot(JSON.stringify(snapshot)), snapshot);
 * heap.destroy();
 * ```
 */
export function readSnapshot(input: string | unknown): Snapshot {
  const top = new Fields(typeof input === "string" ? parseJson(input) : input, "");
  if (top.raw("format") !== "gpuheap-snapshot") {
    throw new SnapshotError(
      `expected format "gpuheap-snapshot", got format ${describe(top.raw("format"))}`,
    );
  }
  if (top.raw("version") !== 1) {
    throw new SnapshotError(`unsupported version ${describe(top.raw("version"))} (this reads 1)`);
  }
  const fail = (message: string, path: string) => new SnapshotError(message, path);
  const settings = readSettings(top.raw("settings") ?? null, fail);
  if (!settings) throw new SnapshotError("must be an object, got nothing", "settings");
  return {
    format: "gpuheap-snapshot",
    version: 1,
    settings,
    stats: readStats(top.object("stats")),
    heaps: top.list("heaps").map((h, i) => readHeap(h, `heaps[${i}]`)),
  };
}

function readStat(f: Fields): Stat {
  return Object.fromEntries(STAT_FIELDS.map((k) => [k, f.count(k)])) as unknown as Stat;
}

function readPoolStats(f: Fields): PoolStats {
  const out: Record<string, unknown> = {};
  for (const k of POOL_STAT_FIELDS) out[k] = readStat(f.object(k));
  for (const k of POOL_COUNT_FIELDS) out[k] = f.count(k);
  // Snapshots written before the front cache existed have no count of its hits.
  out.frontCacheHits = f.optionalCount("frontCacheHits");
  // Nor did older ones carry these figures: left out, and the summary skips their rows.
  for (const k of LATER_STAT_FIELDS) {
    if (f.raw(k) !== undefined) out[k] = readStat(f.object(k));
  }
  return out as unknown as PoolStats;
}

function readStats(f: Fields): MemoryStats {
  const pools = f.object("pools");
  const out: Record<string, unknown> = {
    ...readPoolStats(f),
    pools: Object.fromEntries(POOL_NAMES.map((p) => [p, readPoolStats(pools.object(p))])),
  };
  for (const k of TOTAL_COUNT_FIELDS) out[k] = f.count(k);
  return out as unknown as MemoryStats;
}

function readHeap(value: unknown, path: string): SnapshotHeap {
  const f = new Fields(value, path);
  const size = f.size("size");
  const heap: SnapshotHeap = {
    id: f.id("id"),
    pool: f.oneOf("pool", POOL_NAMES),
    size,
    isSplit: f.boolean("isSplit"),
    lost: f.boolean("lost"),
    ageMs: f.time("ageMs"),
    blocks: [],
  };
  let end = 0;
  for (const [j, value] of f.list("blocks").entries()) {
    const at = `${path}.blocks[${j}]`;
    const b = new Fields(value, at);
    const block: SnapshotBlock = {
      id: b.idOrNull("id"),
      offset: b.count("offset"),
      size: b.size("size"),
      requestedSize: b.count("requestedSize"),
      state: b.oneOf("state", STATES),
      usage: b.textOrNull("usage"),
      label: b.textOrNull("label"),
      ageOps: b.countOrNull("ageOps"),
    };
    if (block.offset < end || block.offset + block.size > size) {
      throw new SnapshotError(
        `at offset ${block.offset} of ${block.size} bytes overlaps the block before it or ` +
          `lies outside its heap of ${size} bytes`,
        at,
      );
    }
    end = block.offset + block.size;
    heap.blocks.push(block);
  }
  return heap;
}
