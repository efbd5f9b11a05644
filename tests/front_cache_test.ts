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
  const allocator = new HeapAllocator(new FakeDevice());
  const keep = allocator.alloc(100);
  const a = allocator.alloc(4000);
  allocator.free(a);
  const b = allocator.alloc(3990); // rounds to a's size (4000, a multiple of 32)
  assert.deepEqual([b.heapId, b.offset, b.size], [a.heapId, a.offset, a.size]);
  assert.notEqual(b.id, a.id, "a new block");
  assert.equal(a.isLive, false);
  const stats = allocator.memoryStats();
  assert.deepEqual([stats.frontCacheHits, stats.pools.small.frontCacheHits], [1, 1]);
  assert.equal(stats.cacheHits, 2, "every front cache hit is a cache hit");
  allocator.free(b);
  allocator.alloc(2048); // another size: placed by TLSF
  assert.equal(allocator.memoryStats().frontCacheHits, 1);
  const u = allocator.alloc(64, { usage: "uniform" });
  allocator.free(u);
  assert.equal(allocator.alloc(64, { usage: "uniform" }).offset, u.offset);
  assert.equal(allocator.memoryStats().pools.uniform.frontCacheHits, 1);
  allocator.free(allocator.scalar(1));
  allocator.scalar(2);
  assert.equal(allocator.memoryStats().pools.scalar.frontCacheHits, 0, "scalars have none");
  allocator.free(keep);
  allocator.destroy();
});

Deno.test("alloc() does not take a block from the front cache before the submit its free waits for", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  const a = allocator.alloc(4096);
  void a.buffer; // as if recorded into a pass
  allocator.free(a);
  const b = allocator.alloc(4096);
  assert.notEqual(b.offset, a.offset, "a's memory waits for the submit");
  assert.equal(allocator.memoryStats().frontCacheHits, 0);
  allocator.submit();
  const c = allocator.alloc(4096);
  assert.equal(c.offset, a.offset, "after the submit it is in the front cache");
  assert.equal(allocator.memoryStats().frontCacheHits, 1);
  allocator.destroy();
});

Deno.test("emptyCache() flushes the front cache and releases heaps only it kept busy", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  allocator.free(allocator.alloc(4096));
  assert.equal(allocator.snapshot().heaps[0].blocks[0].state, "cached");
  assert.equal(allocator.emptyCache(), 128 * KiB);
  assert.equal(device.liveBytes, 0);
  allocator.destroy();
});

Deno.test("alloc() flushes the front cache before it makes a heap: merged, freed memory may serve", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  const blocks = [0, 1, 2, 3].map(() => allocator.alloc(32 * KiB)); // fill the first 128 KiB heap
  for (const b of blocks) allocator.free(b); // two go to TLSF, two to the front cache, alternating
  assert.equal(allocator.memoryStats().pools.small.largestFreeRange, 32 * KiB);
  const big = allocator.alloc(100 * KiB);
  assert.equal(device.createBufferCalls, 1, "the flush merged the heap whole: no new heap");
  assert.equal(big.heapId, blocks[0].heapId);
  allocator.destroy();
});

Deno.test("alloc() flushes the front cache before a heap is made in any pool: idle heaps go by max_reserved_ratio", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  allocator.free(allocator.alloc(4096)); // its heap is busy only with the front cache
  // A staging buffer of 2 MiB: the cache may hold 4% over it, not a 128 KiB heap.
  const r = allocator.alloc(2 * MiB, { usage: "readback" });
  assert.deepEqual(allocator.snapshot().heaps.map((h) => h.id), [r.heapId]);
  allocator.destroy();
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
  const allocator = new HeapAllocator(new FakeDevice(), { budget });
  allocator.free(allocator.alloc(4096)); // its heap is busy only with the front cache
  budget.press = true;
  allocator.alloc(100 * KiB);
  assert.deepEqual(budget.calls.filter((c) => c[0] !== "reserve"), [["release", 128 * KiB]]);
  assert.equal(allocator.memoryStats().frontCacheHits, 0);
  allocator.destroy();
});

Deno.test("free() above the low watermark gives memory to TLSF, where the watermark can release it", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device, { lowWatermark: 64 * KiB });
  const a = allocator.alloc(4096); // a 128 KiB heap: above the low watermark
  allocator.free(a);
  assert.equal(device.liveBytes, 0, "released as soon as it was idle");
  allocator.alloc(4096);
  assert.equal(allocator.memoryStats().frontCacheHits, 0);
  allocator.destroy();
});

Deno.test("alloc() drops a front cache block of a heap the device refused, and releases the heap", async () => {
  const device = new FakeDevice({ memory: 64 * KiB });
  const allocator = new HeapAllocator(device);
  const a = allocator.alloc(4096); // a 128 KiB heap: refused later
  allocator.free(a); // into the front cache
  await assert.rejects(() => allocator.checkDeviceErrors(), OutOfMemoryError);
  device.memory = 0;
  const b = allocator.alloc(4096);
  assert.notEqual(b.heapId, a.heapId, "nothing is placed in a refused heap");
  assert.equal(allocator.memoryStats().frontCacheHits, 0);
  assert.deepEqual(
    allocator.snapshot().heaps.map((h) => h.id),
    [b.heapId],
    "the refused heap is gone",
  );
  allocator.destroy();
});

Deno.test("snapshot() shows front cache blocks as cached, their bytes in cachedBytes", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  const [a, b, c] = [allocator.alloc(1000), allocator.alloc(2000), allocator.alloc(3000)];
  allocator.free(b);
  const snap = allocator.snapshot();
  assert.deepEqual(snap.heaps[0].blocks.map((x) => [x.id, x.state, x.size]), [
    [a.id, "live", a.size],
    [b.id, "cached", b.size],
    [c.id, "live", c.size],
    [null, "free", 128 * KiB - a.size - b.size - c.size],
  ]);
  assert.equal(snap.stats.cachedBytes, 128 * KiB - a.size - c.size);
  assert.equal(snap.stats.pools.small.cachedBytes, 128 * KiB - a.size - c.size);
  allocator.destroy();
});
