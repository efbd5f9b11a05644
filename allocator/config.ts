/**
 * Options of the allocator and how they are read from the environment
 * (`GPUHEAP_HIGH_WATERMARK`, `GPUHEAP_LOW_WATERMARK`, `GPUHEAP_ALLOC_CONF`,
 * `GPUHEAP_DEBUG`).
 *
 * @module
 */

import { GiB, KiB, LARGE_HEAP, MAX_RESERVED_RATIO, MiB, SMALL_HEAP } from "./constants.ts";
import type { MemoryBudget } from "./budget.ts";
import type { AllocatorLimits } from "./device.ts";

/** Settings of the alloc conf string, e.g. `"roundup_power2_divisions:4,caching:0"`. */
export interface AllocConf {
  /** Round requests above 1 MiB up to one of N steps per power of two (0: off). */
  roundupPower2Divisions: number;
  /** Keep freed memory cached for reuse (false: release a heap as soon as it is empty). */
  caching: boolean;
  /** Size of small heaps in bytes. */
  smallHeap: number;
  /** Size of large heaps in bytes. */
  largeHeap: number;
  /** Size of extra-large heaps in bytes (0: the adapter's default). */
  xlargeHeap: number;
  /**
   * Before making a heap, release cached heaps so that reserved bytes stay
   * within this multiple of the peak of live bytes (0: keep every cached heap).
   */
  maxReservedRatio: number;
  /**
   * Requests larger than this many bytes get a heap of their own at their own
   * aligned size, never a new shared one (0: only those of half an extra-large
   * heap or more, rounded to 2 MiB). See Note [max_split_size] in size_classes.ts.
   */
  maxSplitSize: number;
}

/** Debug output switches, as `PYTORCH_DEBUG_MPS_ALLOCATOR` has them. */
export interface DebugFlags {
  /** Print each new heap and each block handed out from fresh memory. */
  allocations: boolean;
  /** Print each block handed out from cached memory. */
  reuses: boolean;
  /** Print each heap released to the device. */
  releases: boolean;
  /** Report each block garbage-collected without being freed, with its label and size. */
  leaks: boolean;
}

const UNITS = new Map<string, number>([
  ["", 1],
  ["b", 1],
  ["kb", 1000],
  ["mb", 1000 ** 2],
  ["gb", 1000 ** 3],
  ["kib", KiB],
  ["mib", MiB],
  ["gib", GiB],
  ["k", KiB],
  ["m", MiB],
  ["g", GiB],
]);
/** Longest byte string read: longer ones are no size anyone means. */
const MAX_BYTES_TEXT = 1000;

/**
 * Reads a byte count: a non-negative integer, or a string such as `"512MiB"`,
 * `"1.5 GiB"` or `"1000000"` that comes to a whole number of bytes (decimal
 * fractions are exact: `"1.1kb"` is 1100) of at most 2^53 - 1.
 *
 * @throws {RangeError} not a whole number of bytes, too large, or not a size
 * @throws {TypeError} neither a number nor a string
 */
export function parseBytes(value: number | string, what: string): number {
  if (typeof value === "number") {
    if (Number.isSafeInteger(value) && value >= 0) return value;
    throw new RangeError(`Invalid ${what}: expected a non-negative integer of bytes, got ${value}`);
  }
  if (typeof value !== "string") {
    throw new TypeError(`Invalid ${what}: expected bytes as a number or string, got ${value}`);
  }
  const m = value.length <= MAX_BYTES_TEXT
    ? /^\s*(\d+)(?:\.(\d+))?\s*([a-z]*)\s*$/i.exec(value)
    : null;
  const unit = m ? UNITS.get(m[3].toLowerCase()) : undefined;
  if (!m || unit === undefined) {
    const shown = value.length <= MAX_BYTES_TEXT ? value : `${value.slice(0, MAX_BYTES_TEXT)}…`;
    throw new RangeError(`Invalid ${what}: cannot read "${shown}" as bytes (try "512MiB")`);
  }
  // Exact decimal arithmetic: "1.1kb" is 1100 bytes, not 1100.0000000000002.
  const fraction = m[2] ?? "";
  const scale = 10n ** BigInt(fraction.length);
  const scaled = BigInt(m[1] + fraction) * BigInt(unit);
  if (scaled % scale !== 0n) {
    const digits = (scaled % scale).toString().padStart(fraction.length, "0").replace(/0+$/, "");
    throw new RangeError(
      `Invalid ${what}: "${value}" is ${scaled / scale}.${digits} bytes, not a whole number`,
    );
  }
  const bytes = scaled / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(
      `Invalid ${what}: "${value}" is too large (at most ${Number.MAX_SAFE_INTEGER} bytes)`,
    );
  }
  return Number(bytes);
}

/** The default alloc conf. */
export const DEFAULT_ALLOC_CONF: Readonly<AllocConf> = {
  roundupPower2Divisions: 0,
  caching: true,
  smallHeap: SMALL_HEAP,
  largeHeap: LARGE_HEAP,
  xlargeHeap: 0,
  maxReservedRatio: MAX_RESERVED_RATIO,
  maxSplitSize: 0,
};

const CONF_KEYS: Record<string, (conf: AllocConf, v: string, key: string) => void> = {
  roundup_power2_divisions(conf, v, key) {
    const n = /^\d{1,3}$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < 0 || (n & (n - 1)) !== 0 || n > 64) {
      throw new RangeError(
        `Invalid alloc conf: ${key} must be 0 or a power of two <= 64, got ${v}`,
      );
    }
    conf.roundupPower2Divisions = n;
  },
  caching(conf, v, key) {
    if (!/^(0|1|true|false)$/.test(v)) {
      throw new RangeError(`Invalid alloc conf: ${key} must be 0, 1, true or false, got ${v}`);
    }
    conf.caching = v === "1" || v === "true";
  },
  small_heap(conf, v, key) {
    conf.smallHeap = parseBytes(v, `alloc conf ${key}`);
  },
  large_heap(conf, v, key) {
    conf.largeHeap = parseBytes(v, `alloc conf ${key}`);
  },
  max_reserved_ratio(conf, v, key) {
    const r = /^\d{1,9}(\.\d{1,9})?$/.test(v) ? Number(v) : NaN;
    if (!Number.isFinite(r) || (r !== 0 && r < 1)) {
      throw new RangeError(`Invalid alloc conf: ${key} must be 0 or a number >= 1, got ${v}`);
    }
    conf.maxReservedRatio = r;
  },
  xlarge_heap(conf, v, key) {
    conf.xlargeHeap = parseBytes(v, `alloc conf ${key}`);
  },
  max_split_size(conf, v, key) {
    conf.maxSplitSize = parseBytes(v, `alloc conf ${key}`);
  },
};

/**
 * Reads an alloc conf string: comma-separated `key:value` pairs with keys
 * `roundup_power2_divisions`, `caching`, `small_heap`, `large_heap`, `xlarge_heap`,
 * `max_reserved_ratio`, `max_split_size`.
 */
export function parseAllocConf(text: string): AllocConf {
  const conf = { ...DEFAULT_ALLOC_CONF };
  for (const part of text.split(",")) {
    if (part.trim() === "") continue;
    const [key, value, extra] = part.split(":").map((s) => s.trim());
    // Own keys only: "constructor" or "toString" are no settings of ours.
    const set = Object.hasOwn(CONF_KEYS, key) ? CONF_KEYS[key] : undefined;
    if (!set || value === undefined || extra !== undefined) {
      throw new RangeError(
        `Invalid alloc conf "${text}": cannot read "${part}" (known keys: ${
          Object.keys(CONF_KEYS).join(", ")
        }, each as key:value)`,
      );
    }
    set(conf, value, key);
  }
  if (conf.smallHeap < MiB || conf.largeHeap < conf.smallHeap) {
    throw new RangeError(
      `Invalid alloc conf "${text}": need 1 MiB <= small_heap <= large_heap, got ${conf.smallHeap} and ${conf.largeHeap}`,
    );
  }
  return conf;
}

/**
 * Writes an alloc conf as the string {@linkcode parseAllocConf} reads back,
 * every key spelled out (sizes in bytes).
 */
export function formatAllocConf(conf: Readonly<AllocConf>): string {
  return `roundup_power2_divisions:${conf.roundupPower2Divisions},caching:${
    conf.caching ? 1 : 0
  },small_heap:${conf.smallHeap},large_heap:${conf.largeHeap},xlarge_heap:${conf.xlargeHeap},max_reserved_ratio:${conf.maxReservedRatio},max_split_size:${conf.maxSplitSize}`;
}

/** The settings an allocator runs with, as snapshots and traces record them. */
export interface AllocatorSettings {
  /** The alloc conf, every key spelled out (see {@linkcode formatAllocConf}). */
  allocConf: string;
  /** Hard limit on reserved bytes (0: none). */
  highWatermark: number;
  /** Soft limit on reserved bytes (0: none). */
  lowWatermark: number;
  /** Alignment of every block's offset and size. */
  alignment: number;
  /** The device limits the allocator reads. */
  limits: AllocatorLimits;
  /** Whether the adapter is a fallback (CPU) one: it gets larger extra-large heaps. */
  fallbackAdapter: boolean;
}

/**
 * Reads debug flags: `true`/`"1"`/`"all"` for everything, or a comma-separated
 * subset of `alloc`, `reuse`, `release`, `leak`; `false`, `""` or `"0"` for silence.
 */
export function parseDebug(value: boolean | string | undefined): DebugFlags {
  if (value === undefined || value === false) {
    return { allocations: false, reuses: false, releases: false, leaks: false };
  }
  if (value === true) return { allocations: true, reuses: true, releases: true, leaks: true };
  const words = value.split(",").map((s) => s.trim().toLowerCase()).filter((s) =>
    s !== "" && s !== "0"
  );
  const all = words.includes("1") || words.includes("all") || words.includes("true");
  const flags = {
    allocations: all || words.includes("alloc"),
    reuses: all || words.includes("reuse"),
    releases: all || words.includes("release"),
    leaks: all || words.includes("leak"),
  };
  for (const w of words) {
    if (!["1", "all", "true", "alloc", "reuse", "release", "leak"].includes(w)) {
      throw new RangeError(
        `Invalid debug flags "${value}": unknown flag "${w}" (use alloc, reuse, release, leak or all)`,
      );
    }
  }
  return flags;
}

/**
 * Reads an environment variable, or undefined where it is unset or env
 * permission was not granted (never prompts, never throws).
 */
export function readEnv(name: string): string | undefined {
  try {
    const state = Deno.permissions.querySync({ name: "env", variable: name }).state;
    return state === "granted" ? Deno.env.get(name) : undefined;
  } catch {
    return undefined;
  }
}

/** Options of a {@linkcode HeapAllocator}; each falls back to its environment variable. */
export interface HeapAllocatorOptions {
  /** Hard limit on reserved bytes, as a number or `"512MiB"` (0: none). `GPUHEAP_HIGH_WATERMARK`. */
  highWatermark?: number | string;
  /**
   * Soft limit on reserved bytes (0: none): above it, cached memory is released
   * oldest first and no extra-large heaps are made. `GPUHEAP_LOW_WATERMARK`.
   */
  lowWatermark?: number | string;
  /** Alloc conf, e.g. `"roundup_power2_divisions:4"`. `GPUHEAP_ALLOC_CONF`. */
  allocConf?: string;
  /** Debug output: `true`, or flags `"alloc,reuse,release,leak"`. `GPUHEAP_DEBUG`. */
  debug?: boolean | string;
  /** Where debug lines go (default: `console.error`). */
  log?: (line: string) => void;
  /** A budget shared with other allocators (e.g. across Workers). */
  budget?: MemoryBudget;
  /**
   * Submit to reuse memory rather than make a heap (default false; no
   * environment variable): when a request finds no room, blocks freed since
   * the last submit could hold it, and a new heap would take reserved bytes
   * past twice the peak of live bytes (or past its share of a shared
   * budget; while an iteration is recorded, at once), the allocator calls
   * its own `submit()` (the `beforeSubmit` hooks send their work first) and
   * reuses them. Safe only where every encoder that reads freed blocks is a
   * `beforeSubmit` hook, as the kernels' command batch is: work recorded
   * elsewhere and submitted later could read a block handed out again.
   */
  submitWhenShort?: boolean;
}

/** @internal the options of an allocator once read: checked, the environment applied. */
export interface ReadOptions {
  highWatermark: number;
  lowWatermark: number;
  allocConf: AllocConf;
  debug: DebugFlags;
  log: (line: string) => void;
}

/**
 * @internal reads an allocator's options, each unset one from its environment variable.
 *
 * @throws {RangeError} a malformed value, or a low watermark above the high one
 */
export function readOptions(options: HeapAllocatorOptions): ReadOptions {
  const highWatermark = optionOrEnv(
    options.highWatermark,
    "highWatermark",
    "GPUHEAP_HIGH_WATERMARK",
  );
  const lowWatermark = optionOrEnv(options.lowWatermark, "lowWatermark", "GPUHEAP_LOW_WATERMARK");
  checkWatermarks(highWatermark, lowWatermark);
  return {
    highWatermark,
    lowWatermark,
    allocConf: options.allocConf !== undefined
      ? parseAllocConf(options.allocConf)
      : naming("GPUHEAP_ALLOC_CONF", () => parseAllocConf(readEnv("GPUHEAP_ALLOC_CONF") ?? "")),
    debug: options.debug !== undefined
      ? parseDebug(options.debug)
      : naming("GPUHEAP_DEBUG", () => parseDebug(readEnv("GPUHEAP_DEBUG"))),
    log: options.log ?? ((line) => console.error(line)),
  };
}

/** Runs `read`; a `RangeError` it throws names the environment variable read. */
function naming<T>(env: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof RangeError) throw new RangeError(`${env}: ${error.message}`);
    throw error;
  }
}

/**
 * A byte option, else its environment variable, else 0; an error names
 * whichever was read, so a bad variable is found where it was set.
 */
function optionOrEnv(value: number | string | undefined, option: string, env: string): number {
  if (value !== undefined) return parseBytes(value, option);
  const text = readEnv(env);
  return text === undefined ? 0 : parseBytes(text, env);
}

/**
 * @internal checks that the low watermark is not above the high one.
 *
 * @throws {RangeError} it is
 */
export function checkWatermarks(high: number, low: number): void {
  if (high > 0 && low > high) {
    throw new RangeError(`Invalid watermarks: lowWatermark ${low} is above highWatermark ${high}`);
  }
}
