// The memory summary: a table a person reads, whose every figure is the stats'.
import assert from "node:assert/strict";
import { formatBytes } from "../allocator/format.ts";
import { FakeDevice, formatMemorySummary, HeapAllocator } from "../mod.ts";

const MiB = 1 << 20;

/** The cells of the row whose metric is `metric`. */
function cells(table: string, metric: string): string[] {
  const line = table.split("\n").find((l) => l.startsWith(`| ${metric} `));
  assert.ok(line, `no row ${metric}`);
  return line.split("|").slice(2, -1).map((c) => c.trim());
}

Deno.test("formatMemorySummary() shows current, peak and total bytes for all pools and each used one", () => {
  const device = new FakeDevice();
  const heap = new HeapAllocator(device, { highWatermark: "1GiB" });
  const big = heap.alloc(3 * MiB);
  const small = heap.alloc(1000);
  heap.free(big);
  const table = formatMemorySummary(heap.memoryStats());
  assert.equal(small.size, 1024);
  assert.deepEqual(cells(table, "Allocated memory"), [
    "1.00 KiB",
    "3.00 MiB",
    "3.00 MiB",
    "3.00 MiB",
  ]);
  assert.deepEqual(cells(table, "  from large pool"), ["0 B", "3.00 MiB", "3.00 MiB", "3.00 MiB"]);
  assert.deepEqual(cells(table, "Requested memory"), [
    "1000 B",
    "3.00 MiB",
    "3.00 MiB",
    "3.00 MiB",
  ]);
  // A 32 MiB large heap, and a small heap sized to what the allocator held then.
  const reserved = formatBytes(device.liveBytes);
  assert.ok(device.liveBytes > 32 * MiB && device.liveBytes <= 40 * MiB, reserved);
  assert.deepEqual(cells(table, "Reserved memory"), [reserved, reserved, reserved, "0 B"]);
  // Counts: now, at their peak, made and gone.
  assert.deepEqual(cells(table, "Heaps (segments)"), ["2", "2", "2", "0"]);
  assert.deepEqual(cells(table, "Allocations"), ["1", "2", "2", "1"]);
  assert.match(table, /high watermark: 1\.00 GiB +low watermark: none +retries: 0 +OOMs: 0/);
  assert.doesNotMatch(
    table,
    /from (uniform|scalar|readback|upload) pool/,
    "unused pools are left out",
  );
  const widths = new Set(table.split("\n").map((l) => l.length));
  assert.equal(widths.size, 1, "every line as wide as the others");
  heap.destroy();
});

Deno.test("formatMemorySummary() keeps its columns for the widest sizes", () => {
  const stats = new HeapAllocator(new FakeDevice()).memoryStats();
  stats.reservedBytes.peak = 1023.99 * 1024 * 1024 * MiB; // "1023.99 TiB"
  const table = formatMemorySummary(stats);
  assert.deepEqual(cells(table, "Reserved memory"), ["0 B", "1023.99 TiB", "0 B", "0 B"]);
  assert.equal(new Set(table.split("\n").map((l) => l.length)).size, 1);
});
