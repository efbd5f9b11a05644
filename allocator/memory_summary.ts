/**
 * The memory summary: {@linkcode MemoryStats} as a table a person reads, in
 * the shape of PyTorch's `torch.cuda.memory_summary()` — bytes now, at their
 * peak, allocated and freed in total, for all pools and each pool used.
 *
 * @module
 */

import { formatBytes } from "./format.ts";
import type { MemoryStats, PoolStats, Stat } from "./stats.ts";

const POOLS = ["small", "large", "uniform", "scalar", "readback", "upload"] as const;
/** Widths of the columns: metric, then four values (`"1023.99 TiB"` fits). */
const METRIC = 24;
const VALUE = 13;
const WIDTH = METRIC + 4 * (VALUE + 1) + 2;

/**
 * Writes memory statistics as a table: allocated, requested and reserved
 * bytes (current, peak, allocated and freed in total; each used pool on a
 * line of its own), cached and pending bytes, the largest free range, and
 * the counts — heaps, live blocks, allocations, cache hits, createBuffer
 * calls, retries and OOMs — with the watermarks. Pools never used are left
 * out.
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
 * assert.doesNotMatch(table, /large pool/);
 * heap.destroy();
 * ```
 *
 * @param stats what `HeapAllocator.memoryStats()` returns
 * @returns the table, lines joined by `"\n"`
 */
export function formatMemorySummary(stats: MemoryStats): string {
  const used = POOLS.filter((name) => {
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
  const byteStat = (title: string, pick: (p: PoolStats) => Stat) => {
    lines.push(row(title, statCells(pick(stats))));
    for (const name of used) {
      lines.push(row(`  from ${name} pool`, statCells(pick(stats.pools[name]))));
    }
    lines.push(light);
  };
  byteStat("Allocated memory", (p) => p.allocatedBytes);
  byteStat("Requested memory", (p) => p.requestedBytes);
  byteStat("Reserved memory", (p) => p.reservedBytes);
  const now = (title: string, value: string) => lines.push(row(title, [value, "", "", ""]));
  now("Cached memory", formatBytes(stats.cachedBytes));
  now("Pending free memory", formatBytes(stats.pendingFreeBytes));
  now("Largest free range", formatBytes(stats.largestFreeRange));
  lines.push(light);
  now("Heaps", String(stats.heaps));
  now("Live blocks", String(stats.blocks));
  const total = (title: string, value: number) =>
    lines.push(row(title, ["", "", String(value), ""]));
  total("Allocations", stats.allocations);
  total("Cache hits", stats.cacheHits);
  total("createBuffer calls", stats.createBufferCalls);
  lines.push(heavy);
  return lines.join("\n");
}

function statCells(s: Stat): string[] {
  return [s.current, s.peak, s.allocated, s.freed].map(formatBytes);
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
