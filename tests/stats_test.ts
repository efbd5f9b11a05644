// The statistics PyTorch users read: active bytes, counts of blocks and heaps
// with their peaks, the flat record under torch's keys, and blocks a caller
// keeps as a cache of its own (counted as cached, not allocated).
import assert from "node:assert/strict";
import { formatBytes } from "../allocator/format.ts";
import { FakeDevice, flatMemoryStats, formatMemorySummary, HeapAllocator } from "../mod.ts";

const MiB = 1 << 20;

/** The cells of the summary's row whose metric is `metric`. */
function cells(table: string, metric: string): string[] {
  const line = table.split("\n").find((l) => l.startsWith(`| ${metric} `));
  assert.ok(line, `no row ${metric}`);
  return line.split("|").slice(2, -1).map((c) => c.trim());
}

Deno.test("alloc({ cached: true }) counts the block as cached bytes, not allocated, until it is freed", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const before = heap.currentAllocatedMemory();
  const kept = heap.alloc(4096, { usage: "uniform", cached: true, label: "slots" });
  const stats = heap.memoryStats();
  assert.equal(heap.currentAllocatedMemory(), before);
  assert.equal(stats.blocks, 0);
  assert.equal(stats.allocatedBytes.peak, 0);
  assert.equal(stats.cachedBytes, stats.reservedBytes.current, "its bytes are cached");
  // It is live all the same: placed, in the snapshot, freed once.
  const [block] = heap.snapshot().heaps.flatMap((h) => h.blocks).filter((b) => b.id === kept.id);
  assert.equal(block.state, "live");
  const other = heap.alloc(4096, { usage: "uniform" });
  assert.notEqual(other.offset, kept.offset);
  heap.free(kept);
  assert.equal(heap.currentAllocatedMemory(), other.size);
  assert.equal(heap.memoryStats().allocatedBytes.freed, 0, "freeing it takes nothing off");
  assert.throws(() => heap.free(kept), /already freed/);
  heap.destroy();
});

Deno.test("memoryStats().activeBytes holds a block freed after its buffer was read until the submit", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const read = heap.alloc(4096);
  void read.buffer; // recorded work may use it: once freed it waits for a submit
  const unread = heap.alloc(8192);
  assert.equal(heap.memoryStats().activeBytes.current, read.size + unread.size);
  heap.free(unread); // never read: reusable at once
  assert.equal(heap.memoryStats().activeBytes.current, read.size);
  heap.free(read);
  const pending = heap.memoryStats();
  assert.equal(pending.allocatedBytes.current, 0);
  assert.equal(pending.activeBytes.current, read.size, "pending: still active");
  heap.submit();
  const after = heap.memoryStats();
  assert.deepEqual(after.activeBytes, {
    current: 0,
    peak: read.size + unread.size,
    allocated: read.size + unread.size,
    freed: read.size + unread.size,
  });
  assert.equal(after.pools.small.activeBytes.peak, read.size + unread.size);
  heap.destroy();
});

Deno.test("memoryStats() counts blocks and heaps with their peaks; resets move peaks and totals", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const blocks = [heap.alloc(1000), heap.alloc(2000), heap.alloc(40 * MiB)];
  heap.free(blocks[0]);
  heap.free(blocks[2]);
  let s = heap.memoryStats();
  assert.deepEqual(s.blockCount, { current: 1, peak: 3, allocated: 3, freed: 2 });
  assert.equal(s.heapCount.current, s.heaps);
  assert.equal(s.heapCount.allocated, s.createBufferCalls);
  assert.equal(heap.emptyCache() > 0, true);
  s = heap.memoryStats();
  assert.equal(s.heapCount.peak, s.createBufferCalls, "every heap was held at once");
  assert.equal(s.heapCount.freed, s.createBufferCalls - s.heaps);
  heap.resetPeakStats();
  heap.resetAccumulatedStats();
  s = heap.memoryStats();
  assert.deepEqual(s.blockCount, { current: 1, peak: 1, allocated: 0, freed: 0 });
  assert.deepEqual(s.heapCount, { current: s.heaps, peak: s.heaps, allocated: 0, freed: 0 });
  heap.free(blocks[1]);
  assert.deepEqual(heap.memoryStats().blockCount, { current: 0, peak: 1, allocated: 0, freed: 1 });
  heap.destroy();
});

Deno.test("memorySummary() shows non-releasable bytes and oversize blocks a walk over the heaps finds", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const a = heap.alloc(4096);
  const b = heap.alloc(4096);
  const big = heap.alloc(40 * MiB); // a heap of its own
  heap.free(a);
  const snapshot = heap.snapshot();
  const shared = snapshot.heaps.find((h) => h.blocks.some((x) => x.id === b.id))!;
  assert.equal(shared.isSplit, true);
  const table = heap.memorySummary();
  // All of b's heap but b itself is free, and b keeps the heap from being released.
  assert.equal(cells(table, "Non-releasable memory")[0], formatBytes(shared.size - b.size));
  assert.deepEqual(cells(table, "Oversize allocations"), ["1", "", "", ""]);
  assert.deepEqual(cells(table, "Oversize heaps"), ["1", "", "", ""]);
  assert.equal(cells(table, "Active memory")[0], formatBytes(b.size + big.size));
  heap.free(b);
  heap.free(big);
  assert.deepEqual(cells(heap.memorySummary(), "Non-releasable memory")[0], "0 B");
  assert.deepEqual(cells(heap.memorySummary(), "Oversize allocations"), ["0", "", "", ""]);
  heap.destroy();
});

Deno.test("memoryStatsFlat() keys every figure as torch.cuda.memory_stats() does", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const a = heap.alloc(1000);
  const big = heap.alloc(40 * MiB);
  heap.free(a);
  const nested = heap.memoryStats();
  const flat = heap.memoryStatsFlat();
  const pairs = [
    ["allocated_bytes", "allocatedBytes"],
    ["reserved_bytes", "reservedBytes"],
    ["requested_bytes", "requestedBytes"],
    ["active_bytes", "activeBytes"],
    ["allocation", "blockCount"],
    ["segment", "heapCount"],
  ] as const;
  for (const [torch, ours] of pairs) {
    for (const f of ["current", "peak", "allocated", "freed"] as const) {
      assert.equal(flat[`${torch}.all.${f}`], nested[ours][f], `${torch}.all.${f}`);
      assert.equal(flat[`${torch}.large_pool.${f}`], nested.pools.large[ours][f]);
      assert.equal(flat[`${torch}.small_pool.${f}`], nested.pools.small[ours][f]);
    }
  }
  assert.equal(flat["allocated_bytes.all.current"], big.size);
  assert.equal(flat["allocation.all.freed"], 1);
  assert.equal(flat["oversize_allocations.current"], 1);
  assert.equal(flat["oversize_segments.current"], 1);
  assert.equal(flat["num_ooms"], 0);
  assert.equal(flat["num_device_alloc"], nested.createBufferCalls);
  assert.equal(flat["cached_bytes.all.current"], nested.cachedBytes);
  // From the stats alone: no walk, so no figures of the walk.
  const cheap = flatMemoryStats(nested);
  assert.equal(cheap["inactive_split_bytes.all.current"], undefined);
  assert.equal(cheap["allocated_bytes.all.peak"], flat["allocated_bytes.all.peak"]);
  assert.doesNotMatch(formatMemorySummary(nested), /Oversize/);
  heap.destroy();
});
