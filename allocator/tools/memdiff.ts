/**
 * Comparing the memory of two runs: peak allocated and reserved bytes, and
 * the bytes live at each peak by label or call site, old against new, with
 * a verdict on growth — so a change that grows memory fails a build. Reads
 * what the other tools read: gpuheap traces and snapshots, plain lists of
 * events, PyTorch memory snapshots (as `loadTraceFile` parses them).
 *
 * Where the figures come from, by input:
 * - a trace with heap events: allocated and reserved as recorded;
 * - a trace without them (a plain list, a PyTorch snapshot): allocated from
 *   its blocks' sizes; reserved is PyTorch's own peak for a PyTorch
 *   snapshot, else the peak of a replay under gpuheap's policy;
 * - a gpuheap snapshot: the peaks of its statistics, and the blocks live
 *   when it was taken (a snapshot keeps no history of its peak).
 *
 * @module
 */

import type { Snapshot } from "../snapshot.ts";
import type { TraceEvent } from "../trace.ts";
import { formatBytes } from "../format.ts";
import { readTrace, TraceError } from "./read_trace.ts";
import { readSnapshot } from "./read_snapshot.ts";
import { replay } from "./replay.ts";
import { pytorchFacts } from "./pytorch_snapshot.ts";

/** The key of blocks without a label. */
export const NO_LABEL = "(no label)";

/** Where a profile's figures come from. */
export type ProfileSource = "trace" | "replay" | "pytorch" | "snapshot";

/** What {@linkcode memoryProfile} finds in one trace or snapshot. */
export interface MemoryProfile {
  /** Peak of bytes in live blocks. */
  peakAllocated: number;
  /** Peak of bytes in heaps (GPUBuffers, or PyTorch's segments). */
  peakReserved: number;
  /** Where `peakReserved` comes from: recorded heaps, a replay, PyTorch's figure, or a snapshot. */
  reservedFrom: ProfileSource;
  /** Bytes live at the allocated peak, by label or call site. */
  atPeakAllocated: Record<string, number>;
  /** Bytes live at the reserved peak, by label or call site; null where unknown. */
  atPeakReserved: Record<string, number> | null;
}

/** One label or call site in a {@linkcode MemoryDiff}. */
export interface SiteChange {
  /** The label or call site. */
  site: string;
  /** Bytes live there at the old peak (0 if none). */
  old: number;
  /** Bytes live there at the new peak (0 if none). */
  new: number;
}

/** What {@linkcode memoryDiff} finds. */
export interface MemoryDiff {
  /** The old run's profile. */
  old: MemoryProfile;
  /** The new run's profile. */
  new: MemoryProfile;
  /** Growth of peak allocated: new / old - 1 (0 when both are 0; Infinity from 0). */
  allocatedGrowth: number;
  /** Growth of peak reserved, likewise. */
  reservedGrowth: number;
  /** The growth allowed, as a fraction (0.05 for 5%). */
  maxGrowth: number;
  /** True when neither peak grew past `maxGrowth`. */
  passed: boolean;
  /** Sites at the allocated peaks, largest change first. */
  allocatedSites: SiteChange[];
  /** Sites at the reserved peaks, largest change first; null where either side has none. */
  reservedSites: SiteChange[] | null;
}

/**
 * The peaks of a trace or snapshot (an object as `loadTraceFile` returns it,
 * or JSON text) and the bytes live at each by label or call site.
 *
 * @example
 * ```ts
 * import { memoryProfile } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const p = memoryProfile([["a", 1, 1024, "storage", 0, null, null, null, null, "x"],
 *   ["a", 2, 512], ["f", 1], ["a", 3, 256]]);
 * assert.equal(p.peakAllocated, 1536);
 * assert.deepEqual(p.atPeakAllocated, { x: 1024, "(no label)": 512 });
 * ```
 *
 * @param input a trace or snapshot
 * @throws {TraceError} neither a readable trace nor a readable snapshot
 */
export function memoryProfile(input: unknown): MemoryProfile {
  const value = typeof input === "string" ? parseJson(input) : input;
  if (isSnapshot(value)) return snapshotProfile(readSnapshot(value));
  const trace = readTrace(value);
  const allocated = peakOf(trace.events, (w) => w.allocated);
  const placed = trace.events.some((e) => e[0] === "heap");
  if (placed) {
    const reserved = peakOf(trace.events, (w) => w.reserved, (w) => w.allocated);
    return {
      peakAllocated: allocated.peak,
      peakReserved: reserved.peak,
      reservedFrom: "trace",
      atPeakAllocated: allocated.sites,
      atPeakReserved: reserved.sites,
    };
  }
  const facts = pytorchFacts(value);
  return {
    peakAllocated: allocated.peak,
    peakReserved: facts ? facts.peakReserved : replay(trace).peakReserved,
    reservedFrom: facts ? "pytorch" : "replay",
    atPeakAllocated: allocated.sites,
    atPeakReserved: null,
  };
}

/**
 * Compares two profiles: growth of each peak, the verdict against
 * `maxGrowth`, and the sites at the peaks.
 *
 * @example
 * ```ts
 * import { memoryDiff, memoryProfile } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const old = memoryProfile([["a", 1, 1000]]);
 * const grown = memoryProfile([["a", 1, 1000], ["a", 2, 100]]);
 * assert.equal(memoryDiff(old, grown, 0.05).passed, false); // +10%
 * assert.equal(memoryDiff(old, grown, 0.10).passed, true);
 * ```
 *
 * @param old the old run
 * @param next the new run
 * @param maxGrowth growth allowed, as a fraction (default 0.05)
 * @throws {RangeError} `maxGrowth` is not a number >= 0
 */
export function memoryDiff(
  old: MemoryProfile,
  next: MemoryProfile,
  maxGrowth = 0.05,
): MemoryDiff {
  if (typeof maxGrowth !== "number" || !(maxGrowth >= 0)) {
    throw new RangeError(`Cannot compare: maxGrowth must be a number >= 0, got ${maxGrowth}`);
  }
  const allocatedGrowth = growth(old.peakAllocated, next.peakAllocated);
  const reservedGrowth = growth(old.peakReserved, next.peakReserved);
  return {
    old,
    new: next,
    allocatedGrowth,
    reservedGrowth,
    maxGrowth,
    // A little slack for float rounding of a ratio equal to the bound.
    passed: allocatedGrowth <= maxGrowth + 1e-12 && reservedGrowth <= maxGrowth + 1e-12,
    allocatedSites: siteChanges(old.atPeakAllocated, next.atPeakAllocated),
    reservedSites: old.atPeakReserved && next.atPeakReserved
      ? siteChanges(old.atPeakReserved, next.atPeakReserved)
      : null,
  };
}

/**
 * The diff as text: the peaks old and new, the sites that changed most at
 * each peak (`top` of them), and the verdict.
 *
 * @example
 * ```ts
 * import { formatMemoryDiff, memoryDiff, memoryProfile } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * const d = memoryDiff(memoryProfile([["a", 1, 1000]]), memoryProfile([["a", 1, 2000]]));
 * assert.match(formatMemoryDiff(d), /peak allocated +1000 B +1.95 KiB +\+100\.0%/);
 * assert.match(formatMemoryDiff(d), /FAIL: peak allocated grew 100\.0%, more than 5\.0%/);
 * ```
 *
 * @param diff the diff
 * @param names the two inputs' names, for the first line
 * @param top rows per table of sites (default 10)
 */
export function formatMemoryDiff(
  diff: MemoryDiff,
  names: [string, string] = ["old", "new"],
  top = 10,
): string {
  const rows: string[][] = [
    ["", "old", "new", "change"],
    [
      "peak allocated",
      formatBytes(diff.old.peakAllocated),
      formatBytes(diff.new.peakAllocated),
      percent(diff.allocatedGrowth),
    ],
    [
      "peak reserved",
      formatBytes(diff.old.peakReserved),
      formatBytes(diff.new.peakReserved),
      percent(diff.reservedGrowth),
    ],
  ];
  const out = [`old: ${names[0]}, new: ${names[1]}`, columns(rows, "lrrr")];
  const from = new Set([diff.old.reservedFrom, diff.new.reservedFrom]);
  if (from.has("replay")) out.push("(reserved of a trace without heaps: replayed under gpuheap)");
  if (from.has("pytorch")) out.push("(reserved of a PyTorch snapshot: PyTorch's own peak)");
  const sites = (title: string, changes: SiteChange[] | null) => {
    if (!changes || changes.length === 0) return;
    const shown = changes.slice(0, top);
    out.push("", `${title}, by label or call site (largest changes first):`);
    out.push(columns([
      ["old", "new", "change", "site"],
      ...shown.map((c) => [
        formatBytes(c.old),
        formatBytes(c.new),
        signedBytes(c.new - c.old),
        c.site,
      ]),
    ], "rrrl"));
    if (changes.length > top) out.push(`… and ${changes.length - top} more`);
  };
  sites("At peak allocated", diff.allocatedSites);
  sites("At peak reserved", diff.reservedSites);
  out.push("", verdict(diff));
  return out.join("\n");
}

// ---- internals ----

interface Walk {
  allocated: number;
  reserved: number;
}

/**
 * The peak of `measure` over the events (ties broken by `tie`, larger
 * first: the fullest moment of a peak of reserved) and the bytes live then
 * by label. Two passes: the first finds the peak's event, the second stops
 * there to name what is live.
 */
function peakOf(
  events: readonly TraceEvent[],
  measure: (w: Walk) => number,
  tie: (w: Walk) => number = () => 0,
): { peak: number; sites: Record<string, number> } {
  let peak = 0;
  let peakTie = 0;
  let at = -1;
  walk(events, events.length, (w, i) => {
    const m = measure(w);
    if (m > peak || (m === peak && at >= 0 && tie(w) > peakTie)) {
      [peak, peakTie, at] = [m, tie(w), i];
    }
  });
  const sites: Record<string, number> = {};
  if (at >= 0) {
    for (const [size, label] of walk(events, at + 1, () => {}).values()) {
      const key = label ?? NO_LABEL;
      sites[key] = (sites[key] ?? 0) + size;
    }
  }
  return { peak, sites };
}

/**
 * Follows the first `n` events, calling `see` after each with the bytes
 * allocated and reserved; returns the live blocks then (id → size, label).
 */
function walk(
  events: readonly TraceEvent[],
  n: number,
  see: (w: Walk, i: number) => void,
): Map<number, [number, string | null]> {
  const live = new Map<number, [number, string | null]>();
  const heaps = new Map<number, number>();
  const w: Walk = { allocated: 0, reserved: 0 };
  const place = (id: number, size: number, label: string | null) => {
    const before = live.get(id);
    if (before) w.allocated -= before[0]; // never freed: the new block replaces it
    live.set(id, [size, label]);
    w.allocated += size;
  };
  for (let i = 0; i < n; i++) {
    const e = events[i];
    switch (e[0]) {
      case "a":
        place(e[1], e[8] ?? e[2], e[9] ?? null);
        break;
      case "s":
        place(e[1], e[5] ?? 4, "scalar");
        break;
      case "f": {
        const b = live.get(e[1]);
        if (b) {
          w.allocated -= b[0];
          live.delete(e[1]);
        }
        break;
      }
      case "heap":
        if (!heaps.has(e[1])) {
          heaps.set(e[1], e[2]);
          w.reserved += e[2];
        }
        break;
      case "release":
        w.reserved -= heaps.get(e[1]) ?? 0;
        heaps.delete(e[1]);
        break;
    }
    see(w, i);
  }
  return live;
}

function snapshotProfile(s: Snapshot): MemoryProfile {
  const sites: Record<string, number> = {};
  for (const heap of s.heaps) {
    for (const b of heap.blocks) {
      if (b.state !== "live") continue;
      const key = b.label ?? NO_LABEL;
      sites[key] = (sites[key] ?? 0) + b.size;
    }
  }
  return {
    peakAllocated: s.stats.allocatedBytes.peak,
    peakReserved: s.stats.reservedBytes.peak,
    reservedFrom: "snapshot",
    atPeakAllocated: sites,
    atPeakReserved: null,
  };
}

function siteChanges(old: Record<string, number>, next: Record<string, number>): SiteChange[] {
  const keys = new Set([...Object.keys(old), ...Object.keys(next)]);
  return [...keys].map((site) => ({ site, old: old[site] ?? 0, new: next[site] ?? 0 }))
    .sort((p, q) =>
      Math.abs(q.new - q.old) - Math.abs(p.new - p.old) || q.new - p.new ||
      (p.site < q.site ? -1 : 1)
    );
}

function growth(old: number, next: number): number {
  if (old === next) return 0;
  return old === 0 ? Infinity : next / old - 1;
}

function percent(g: number): string {
  if (g === Infinity) return "new";
  return `${g > 0 ? "+" : ""}${(g * 100).toFixed(1)}%`;
}

function signedBytes(n: number): string {
  return n === 0 ? "0" : `${n > 0 ? "+" : "-"}${formatBytes(Math.abs(n))}`;
}

function verdict(d: MemoryDiff): string {
  const allowed = `${(d.maxGrowth * 100).toFixed(1)}%`;
  const grew =
    ([["peak allocated", d.allocatedGrowth], ["peak reserved", d.reservedGrowth]] as const)
      .filter(([, g]) => g > d.maxGrowth + 1e-12)
      .map(([what, g]) => `${what} grew ${g === Infinity ? "from 0" : percent(g).slice(1)}`);
  return grew.length === 0
    ? `ok: no peak grew more than ${allowed}`
    : `FAIL: ${grew.join(", ")}, more than ${allowed}`;
}

/** Rows as columns, each aligned as `align` says: `l`eft or `r`ight, a letter per column. */
function columns(rows: string[][], align: string): string {
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows.map((r) =>
    r.map((cell, j) => align[j] === "l" ? cell.padEnd(widths[j]) : cell.padStart(widths[j]))
      .join("  ").trimEnd()
  ).join("\n");
}

function isSnapshot(value: unknown): boolean {
  return !!value && typeof value === "object" && !Array.isArray(value) &&
    (value as { format?: unknown }).format === "gpuheap-snapshot";
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TraceError(`malformed JSON (${(error as Error).message})`);
  }
}
