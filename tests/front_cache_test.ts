// The front cache: on plain ranges (last in, first out, bounded by depth, bytes and
// TLSF's free bytes), and in the allocator: hits counted, trap 1 kept (a block that
// waits for a submit is not handed back before it), flushed by emptyCache, before a
// heap is made and under a budget's pressure, bypassed above the low watermark, blocks
// of a refused heap dropped, and shown as cached in snapshots.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator, OutOfMemoryError } from "../mod.ts";
import { FRONT_CACHE_BYTES, FRONT_CACHE_DEPTH } from "../allocator/constants.ts";
import { FrontCache } from "../allocator/front_cache.ts";
import { type Range, Tlsf } from "../allocator/tlsf.ts";
import { CountingBudget } from "./_budget.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

Deno.test("FrontCache.take() returns the range of that size put last, or null", () => {
  const tlsf = new Tlsf(32);
  tlsf.addRegion(1 * MiB);
  const cache = new FrontCache(32, 64 * KiB);
  const [a, b, c] = [tlsf.alloc(4096)!, tlsf.alloc(4096)!, tlsf.alloc(8192)!];
  for (const r of [a, b, c]) assert.equal(cache.put(r, tlsf.freeBytes), true);
  assert.deepEqual([cache.size, cache.bytes], [3, 16384]);
  assert.equal(cache.take(4096), b);
  assert.equal(cache.take(4096), a);
  assert.equal(cache.take(4096), null);
  assert.equal(cache.take(4064), null, "exact sizes only");
  assert.equal(cache.take(8192), c);
  assert.deepEqual([cache.size, cache.bytes], [0, 0]);
});

Deno.test("FrontCache.put() keeps within its depth, its bytes, TLSF's free bytes and its largest size", () => {
  const tlsf = new Tlsf(32);
  tlsf.addRegion(64 * MiB);
  const cache = new FrontCache(32, 64 * KiB);
  const small = Array.from({ length: FRONT_CACHE_DEPTH + 1 }, () => tlsf.alloc(256)!);
  const kept = small.map((r) => cache.put(r, tlsf.freeBytes));
  assert.deepEqual(kept, [...small.map(() => true).slice(1), false], "depth");
  assert.equal(cache.put(tlsf.alloc(64 * KiB + 32)!, Infinity), false, "past its largest size");
  const held = cache.bytes; // FRONT_CACHE_DEPTH × 256
  assert.equal(cache.put(tlsf.alloc(1024)!, held - 1), false, "it holds more than TLSF has free");
  const one = tlsf.alloc(1024)!;
  assert.equal(cache.put(one, held), true, "as much: one more");
  assert.equal(cache.take(1024), one);
  let bytes = cache.bytes;
  let full = false;
  for (let i = 0; i < FRONT_CACHE_BYTES / (64 * KiB) + 8 && !full; i++) {
    const r = tlsf.alloc(64 * KiB - 32 * (i % FRONT_CACHE_DEPTH === 0 ? 0 : i))!;
    full = !cache.put(r, Infinity);
    if (!full) bytes += r.size;
  }
  assert.ok(full, "the byte bound was reached");
  assert.equal(cache.bytes, bytes);
  assert.ok(cache.bytes <= FRONT_CACHE_BYTES);
});

Deno.test("FrontCache.flush() hands every range over once, after emptying itself", () => {
  const tlsf = new Tlsf(32);
  tlsf.addRegion(1 * MiB);
  const cache = new FrontCache(32, 64 * KiB);
  const ranges = [tlsf.alloc(256)!, tlsf.alloc(512)!, tlsf.alloc(256)!];
  for (const r of ranges) cache.put(r, Infinity);
  const seen: Range[] = [];
  cache.flush((r) => {
    assert.equal(cache.bytes, 0, "already empty when the first range is handed over");
    seen.push(r);
    tlsf.free(r);
  });
  assert.deepEqual(new Set(seen), new Set(ranges));
  assert.equal(seen.length, 3);
  assert.equal(tlsf.largestFree(), 1 * MiB);
  cache.flush(() => assert.fail("nothing left"));
  assert.deepEqual([...cache], []);
});

Deno.test("alloc() takes a block of the same size freed just before from the front cache", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const keep = heap.alloc(100);
  const a = heap.alloc(4000);
  heap.free(a);
  const b = heap.alloc(3990); // rounds to a's size (4000, a multiple of 32)
  assert.deepEqual([b.heapId, b.offset, b.size], [a.heapId, a.offset, a.size]);
  assert.notEqual(b.id, a.id, "a new block");
  assert.equal(a.isLive, false);
  const stats = heap.memoryStats();
  assert.deepEqual([stats.frontCacheHits, stats.pools.small.frontCacheHits], [1, 1]);
  assert.equal(stats.cacheHits, 2, "every front cache hit is a cache hit");
  heap.free(b);
  heap.alloc(2048); // another size: placed by TLSF
  assert.equal(heap.memoryStats().frontCacheHits, 1);
  const u = heap.alloc(64, { usage: "uniform" });
  heap.free(u);
  assert.equal(heap.alloc(64, { usage: "uniform" }).offset, u.offset);
  assert.equal(heap.memoryStats().pools.uniform.frontCacheHits, 1);
  heap.free(heap.scalar(1));
  heap.scalar(2);
  assert.equal(heap.memoryStats().pools.scalar.frontCacheHits, 0, "scalars have none");
  heap.free(keep);
  heap.destroy();
});

Deno.test("alloc() does not take a block from the front cache before the submit its free waits for", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const a = heap.alloc(4096);
  void a.buffer; // as if recorded into a pass
  heap.free(a);
  const b = heap.alloc(4096);
  assert.notEqual(b.offset, a.offset, "a's memory waits for the submit");
  assert.equal(heap.memoryStats().frontCacheHits, 0);
  heap.submit();
  const c = heap.alloc(4096);
  assert.equal(c.offset, a.offset, "after the submit it is in the front cache");
  assert.equal(heap.memoryStats().frontCacheHits, 1);
  heap.destroy();
});

Deno.test("emptyCache() flushes the front cache and releases heaps only it kept busy", () => {
  const device = new FakeDevice();
  const heap = new HeapAllocator(device);
  heap.free(heap.alloc(4096));
  assert.equal(heap.snapshot().heaps[0].blocks[0].state, "cached");
  assert.equal(heap.emptyCache(), 128 * KiB);
  assert.equal(device.liveBytes, 0);
  heap.destroy();
});

Deno.test("alloc() flushes the front cache before it makes a heap: merged, freed memory may serve", () => {
  const device = new FakeDevice();
  const heap = new HeapAllocator(device);
  const blocks = [0, 1, 2, 3].map(() => heap.alloc(32 * KiB)); // fill the first 128 KiB heap
  for (const b of blocks) heap.free(b); // two go to TLSF, two to the front cache, alternating
  assert.equal(heap.memoryStats().pools.small.largestFreeRange, 32 * KiB);
  const big = heap.alloc(100 * KiB);
  assert.equal(device.createBufferCalls, 1, "the flush merged the heap whole: no new heap");
  assert.equal(big.heapId, blocks[0].heapId);
  heap.destroy();
});

Deno.test("alloc() flushes the front cache before a heap is made in any pool: idle heaps go by max_reserved_ratio", () => {
  const heap = new HeapAllocator(new FakeDevice());
  heap.free(heap.alloc(4096)); // its heap is busy only with the front cache
  // A staging buffer of 2 MiB: the cache may hold 4% over it, not a 128 KiB heap.
  const r = heap.alloc(2 * MiB, { usage: "readback" });
  assert.deepEqual(heap.snapshot().heaps.map((h) => h.id), [r.heapId]);
  heap.destroy();
});

Deno.test("alloc() under a shared budget's pressure flushes the front cache before releasing idle heaps", () => {
  class Pressing extends CountingBudget {
    press = false;
    override pressured(): boolean {
      const p = this.press;
      this.press = false;
      return p;
    }
  }
  const budget = new Pressing();
  const heap = new HeapAllocator(new FakeDevice(), { budget });
  heap.free(heap.alloc(4096)); // its heap is busy only with the front cache
  budget.press = true;
  heap.alloc(100 * KiB);
  assert.deepEqual(budget.calls.filter((c) => c[0] !== "reserve"), [["release", 128 * KiB]]);
  assert.equal(heap.memoryStats().frontCacheHits, 0);
  heap.destroy();
});

Deno.test("free() above the low watermark gives memory to TLSF, where the watermark can release it", () => {
  const device = new FakeDevice();
  const heap = new HeapAllocator(device, { lowWatermark: 64 * KiB });
  const a = heap.alloc(4096); // a 128 KiB heap: above the low watermark
  heap.free(a);
  assert.equal(device.liveBytes, 0, "released as soon as it was idle");
  heap.alloc(4096);
  assert.equal(heap.memoryStats().frontCacheHits, 0);
  heap.destroy();
});

Deno.test("alloc() drops a front cache block of a heap the device refused, and releases the heap", async () => {
  const device = new FakeDevice({ memory: 64 * KiB });
  const heap = new HeapAllocator(device);
  const a = heap.alloc(4096); // a 128 KiB heap: refused later
  heap.free(a); // into the front cache
  await assert.rejects(() => heap.checkDeviceErrors(), OutOfMemoryError);
  device.memory = 0;
  const b = heap.alloc(4096);
  assert.notEqual(b.heapId, a.heapId, "nothing is placed in a refused heap");
  assert.equal(heap.memoryStats().frontCacheHits, 0);
  assert.deepEqual(heap.snapshot().heaps.map((h) => h.id), [b.heapId], "the refused heap is gone");
  heap.destroy();
});

Deno.test("snapshot() shows front cache blocks as cached, their bytes in cachedBytes", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const [a, b, c] = [heap.alloc(1000), heap.alloc(2000), heap.alloc(3000)];
  heap.free(b);
  const snap = heap.snapshot();
  assert.deepEqual(snap.heaps[0].blocks.map((x) => [x.id, x.state, x.size]), [
    [a.id, "live", a.size],
    [b.id, "cached", b.size],
    [c.id, "live", c.size],
    [null, "free", 128 * KiB - a.size - b.size - c.size],
  ]);
  assert.equal(snap.stats.cachedBytes, 128 * KiB - a.size - c.size);
  assert.equal(snap.stats.pools.small.cachedBytes, 128 * KiB - a.size - c.size);
  heap.destroy();
});
