/**
 * The memory summary: {@linkcode MemoryStats} as a table a person reads, in
 * the shape of PyTorch's `torch.cuda.memory_summary()` — bytes and counts
 * now, at their peak, allocated and freed in total, for all pools and each
 * pool used — and as a flat record with `torch.cuda.memory_stats()`'s key
 * names.
 *
 * @module
 */

import { formatBytes } from "./format.ts";
import { POOL_NAMES } from "./size_classes.ts";
import { type HeapFacts, heapFacts, type Snapshot } from "./snapshot.ts";
import type { MemoryStats, PoolStats, Stat } from "./stats.ts";

/** Widths of the columns: metric, then four values (`"1023.99 TiB"` fits). */
const METRIC = 24;
const VALUE = 13;
const WIDTH = METRIC + 4 * (VALUE + 1) + 2;

/**
 * Writes memory statistics as a table, with PyTorch's rows where ours mean
 * the same: allocated, active, requested and reserved bytes and the counts
 * of blocks (allocations) and heaps (segments) — current, peak, allocated
 * and freed in total; each used pool on a line of its own — then cached and
 * pending bytes, the largest free range, cache hits and createBuffer calls,
 * with the watermarks, retries and OOMs. From a snapshot (what
 * `HeapAllocator.memorySummary()` passes) also the rows a walk over the
 * heaps finds: non-releasable bytes and ranges, and oversize blocks and
 * heaps. Pools never used are left out.
 *
 * @example
 * ```ts
 * import { FakeDevice, formatMemorySummary, HeapAllocator } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const heap = new HeapAllocator(new FakeDevice());
 * heap.alloc(1 << 20);
 * const table = formatMemorySummary(heap.memoryStats());
 * assert.match(table, /\| Allocated memory +\| +1\.00 MiB \| +1\.00 MiB \| +1\.00 MiB \| +0 B \|/);
 * assert.match(table, /\|   from small pool +\| +1\.00 MiB \|/);
 * assert.match(table, /\| Allocations +\| +1 \| +1 \| +1 \| +0 \|/);
 * assert.doesNotMatch(table, /large pool/);
 * assert.doesNotMatch(table, /Non-releasable/); // a walk over the heaps: from a snapshot
 * assert.match(formatMemorySummary(heap.snapshot()), /\| Non-releasable memory +\|/);
 * heap.destroy();
 * ```
 *
 * @param source what `HeapAllocator.memoryStats()` or `snapshot()` returns
 * @returns the table, lines joined by `"\n"`
 */
export function formatMemorySummary(source: MemoryStats | Snapshot): string {
  const [stats, facts] = statsAndFacts(source);
  const used = POOL_NAMES.filter((name) => {
    const p = stats.pools[name];
    return p.reservedBytes.peak > 0 || p.allocations > 0;
  });
  const heavy = "|" + "=".repeat(WIDTH - 2) + "|";
  const light = "|" + "-".repeat(WIDTH - 2) + "|";
  const limit = (bytes: number) => bytes > 0 ? formatBytes(bytes) : "none";
  const lines = [
    heavy,
    text("gpuheap memory summary", true),
    light,
    text(
      `high watermark: ${limit(stats.highWatermark)}   low watermark: ${
        limit(stats.lowWatermark)
      }   retries: ${stats.numAllocRetries}   OOMs: ${stats.numOoms}`,
    ),
    heavy,
    row("Metric", ["Cur Usage", "Peak Usage", "Tot Alloc", "Tot Freed"]),
    light,
  ];
  const byPool = (
    title: string,
    pick: (p: PoolStats) => Stat | undefined,
    cells: (s: Stat) => string[],
  ) => {
    // Snapshots read from files before a figure existed lack it: no row.
    if (pick(stats) === undefined) return;
    lines.push(row(title, cells(pick(stats)!)));
    for (const name of used) {
      lines.push(row(`  from ${name} pool`, cells(pick(stats.pools[name])!)));
    }
    lines.push(light);
  };
  byPool("Allocated memory", (p) => p.allocatedBytes, byteCells);
  byPool("Active memory", (p) => p.activeBytes, byteCells);
  byPool("Requested memory", (p) => p.requestedBytes, byteCells);
  byPool("Reserved memory", (p) => p.reservedBytes, byteCells);
  const now = (title: string, value: string) => lines.push(row(title, [value, "", "", ""]));
  if (facts) now("Non-releasable memory", formatBytes(facts.nonReleasableBytes));
  now("Cached memory", formatBytes(stats.cachedBytes));
  now("Pending free memory", formatBytes(stats.pendingFreeBytes));
  now("Largest free range", formatBytes(stats.largestFreeRange));
  lines.push(light);
  byPool("Allocations", (p) => p.blockCount, countCells);
  byPool("Heaps (segments)", (p) => p.heapCount, countCells);
  if (facts) {
    now("Non-releasable ranges", String(facts.nonReleasableRanges));
    now("Oversize allocations", String(facts.oversizeBlocks));
    now("Oversize heaps", String(facts.oversizeHeaps));
    lines.push(light);
  }
  const total = (title: string, value: number) =>
    lines.push(row(title, ["", "", String(value), ""]));
  total("Cache hits", stats.cacheHits);
  total("createBuffer calls", stats.createBufferCalls);
  lines.push(heavy);
  return lines.join("\n");
}

/**
 * Memory statistics as one flat record, keyed as PyTorch's
 * `torch.cuda.memory_stats()` where a figure means the same
 * (`"allocated_bytes.all.current"`, `"reserved_bytes.small_pool.peak"`,
 * `"allocation.all.freed"`, `"segment.all.current"`, `"num_ooms"`; pools
 * named `<pool>_pool`), in the same style where PyTorch has none
 * (`"cached_bytes.all.current"`, `"cache_hits"`). From a snapshot also
 * `"inactive_split_bytes.all.current"`, `"inactive_split.all.current"`,
 * `"oversize_allocations.current"` and `"oversize_segments.current"`.
 *
 * @example
 * ```ts
 * import { flatMemoryStats } from "@gpuheap/gpuheap";
 * import { FakeDevice, HeapAllocator } from "@gpuheap/gpuheap";
 * import assert from "node:assert/strict";
 *
 * const heap = new HeapAllocator(new FakeDevice());
 * heap.free(heap.alloc(1 << 20));
 * const stats = flatMemoryStats(heap.memoryStats());
 * assert.equal(stats["allocated_bytes.all.current"], 0);
 * assert.equal(stats["allocated_bytes.small_pool.peak"], 1 << 20);
 * assert.equal(stats["allocation.all.allocated"], 1);
 * assert.equal(stats["allocation.all.freed"], 1);
 * assert.equal(stats["segment.all.current"], 1);
 * heap.destroy();
 * ```
 *
 * @param source what `HeapAllocator.memoryStats()` or `snapshot()` returns
 * @returns every figure under its key
 */
export function flatMemoryStats(source: MemoryStats | Snapshot): Record<string, number> {
  const [stats, facts] = statsAndFacts(source);
  const out: Record<string, number> = {};
  const stat = (key: string, pick: (p: PoolStats) => Stat | undefined) => {
    const groups: [string, PoolStats][] = [
      ["all", stats],
      ...POOL_NAMES.map((p) => [`${p}_pool`, stats.pools[p]] as [string, PoolStats]),
    ];
    for (const [group, p] of groups) {
      const s = pick(p);
      if (s === undefined) return;
      for (const f of ["current", "peak", "allocated", "freed"] as const) {
        out[`${key}.${group}.${f}`] = s[f];
      }
    }
  };
  stat("allocated_bytes", (p) => p.allocatedBytes);
  stat("active_bytes", (p) => p.activeBytes);
  stat("requested_bytes", (p) => p.requestedBytes);
  stat("reserved_bytes", (p) => p.reservedBytes);
  stat("allocation", (p) => p.blockCount);
  stat("segment", (p) => p.heapCount);
  if (facts) {
    out["inactive_split_bytes.all.current"] = facts.nonReleasableBytes;
    out["inactive_split.all.current"] = facts.nonReleasableRanges;
    out["oversize_allocations.current"] = facts.oversizeBlocks;
    out["oversize_segments.current"] = facts.oversizeHeaps;
  }
  out["num_alloc_retries"] = stats.numAllocRetries;
  out["num_ooms"] = stats.numOoms;
  out["num_device_alloc"] = stats.createBufferCalls;
  if (stats.heapCount) out["num_device_free"] = stats.heapCount.freed;
  out["cached_bytes.all.current"] = stats.cachedBytes;
  out["pending_free_bytes.all.current"] = stats.pendingFreeBytes;
  out["largest_free_range"] = stats.largestFreeRange;
  out["cache_hits"] = stats.cacheHits;
  out["front_cache_hits"] = stats.frontCacheHits ?? 0;
  out["high_watermark"] = stats.highWatermark;
  out["low_watermark"] = stats.lowWatermark;
  return out;
}

/** The statistics of either source, and the heap walk's figures where it is a snapshot. */
function statsAndFacts(source: MemoryStats | Snapshot): [MemoryStats, HeapFacts | null] {
  if ((source as Snapshot).format === "gpuheap-snapshot") {
    const snapshot = source as Snapshot;
    return [snapshot.stats, heapFacts(snapshot)];
  }
  return [source as MemoryStats, null];
}

function byteCells(s: Stat): string[] {
  return [s.current, s.peak, s.allocated, s.freed].map(formatBytes);
}

function countCells(s: Stat): string[] {
  return [s.current, s.peak, s.allocated, s.freed].map(String);
}

function row(metric: string, cells: string[]): string {
  return `| ${metric.padEnd(METRIC - 1)}|` +
    cells.map((c) => ` ${c.padStart(VALUE - 2)} |`).join("");
}

function text(line: string, center = false): string {
  const inner = WIDTH - 4;
  const cut = line.length > inner ? line.slice(0, inner) : line;
  const left = center ? Math.floor((inner - cut.length) / 2) : 0;
  return `| ${" ".repeat(left)}${cut.padEnd(inner - left)} |`;
}
