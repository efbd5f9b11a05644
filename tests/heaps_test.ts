// The heaps of one allocator on the fake device: made within the watermarks,
// released when idle (oldest first), retried, refused.
import assert from "node:assert/strict";
import { type FakeBuffer, FakeDevice, OutOfMemoryError } from "../mod.ts";
import { type AllocRequest, newPool, type Pool } from "../allocator/block.ts";
import { parseAllocConf, parseDebug } from "../allocator/config.ts";
import { Heaps } from "../allocator/heaps.ts";
import { POOL_NAMES, type PoolName } from "../allocator/size_classes.ts";
import { emptyPoolCounters } from "../allocator/stats.ts";

const MiB = 1 << 20;

function setup(options: { high?: number; low?: number; conf?: string; memory?: number } = {}) {
  const device = new FakeDevice({ memory: options.memory });
  const pools = Object.fromEntries(
    POOL_NAMES.map((n) => [n, newPool(n, 32, n !== "readback" && n !== "upload")]),
  ) as Record<PoolName, Pool>;
  const lines: string[] = [];
  const heaps = new Heaps(pools, emptyPoolCounters(), {
    device,
    budget: undefined,
    conf: parseAllocConf(options.conf ?? "max_reserved_ratio:0"),
    highWatermark: options.high ?? 0,
    lowWatermark: options.low ?? 0,
    debug: parseDebug("alloc,release"),
    say: (line) => lines.push(line),
  });
  const request = (pool: PoolName, size: number): AllocRequest => ({
    pool,
    requestedSize: size,
    size,
  });
  return { device, pools, heaps, request, lines };
}

Deno.test("Heaps.obtain() makes a heap, counts it and names it in the debug lines", () => {
  const { device, heaps, request, lines, pools } = setup();
  const heap = heaps.obtain(request("small", 4096), 8 * MiB, true);
  assert.deepEqual([heap.id, heap.size, heap.isSplit, heap.region?.size], [
    1,
    8 * MiB,
    true,
    8 * MiB,
  ]);
  assert.equal(heaps.totals.reserved.current, 8 * MiB);
  assert.equal(pools.small.counters.heaps, 1);
  assert.equal(device.liveBytes, 8 * MiB);
  assert.match(lines[0], /^new heap #1 of 8\.00 MiB on small pool/);
  const unsplit = heaps.obtain(request("large", 70 * MiB), 70 * MiB, false);
  assert.equal(unsplit.region, null);
  assert.match(lines[1], /^new unsplit heap #2/);
});

Deno.test("Heaps.obtain() at the high watermark releases the pool's idle heaps first, then all", () => {
  const { heaps, request, pools } = setup({ high: 48 * MiB });
  const small = heaps.obtain(request("small", 4096), 8 * MiB, true);
  const large = heaps.obtain(request("large", 2 * MiB), 32 * MiB, true);
  heaps.emptied(small);
  heaps.emptied(large);
  heaps.obtain(request("large", 2 * MiB), 32 * MiB, true);
  assert.equal(heaps.retries, 1, "one retry, after releasing the large pool's idle heap");
  assert.deepEqual([pools.small.heaps.size, pools.large.heaps.size], [1, 1]);
  heaps.obtain(request("uniform", 256), 16 * MiB, true);
  assert.equal(heaps.retries, 2, "the small heap went too");
  assert.equal(pools.small.heaps.size, 0);
});

Deno.test("Heaps.obtain() tries a heap just large enough, then throws OutOfMemoryError", () => {
  const { heaps, request } = setup({ high: 38 * MiB });
  heaps.obtain(request("large", 30 * MiB), 32 * MiB, true);
  const fit = heaps.obtain(request("small", 4 * MiB), 8 * MiB, true);
  assert.equal(fit.size, 4 * MiB, "8 MiB did not fit beside 32 MiB; 4 MiB does");
  assert.throws(() => heaps.obtain(request("small", 3 * MiB), 8 * MiB, true), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError);
    assert.deepEqual([e.limit, e.requested, e.pool, e.device], [38 * MiB, 3 * MiB, "small", false]);
    return true;
  });
  assert.equal(heaps.ooms, 1);
});

Deno.test("Heaps.emptied() keeps a heap idle, or releases it with caching:0", () => {
  const cached = setup();
  const a = cached.heaps.obtain(cached.request("small", 64), 8 * MiB, true);
  cached.heaps.emptied(a);
  assert.equal(cached.heaps.totals.reserved.current, 8 * MiB);
  assert.equal(cached.heaps.releaseIdle(null, 0), 8 * MiB);
  assert.equal(cached.device.liveBytes, 0);
  const nocache = setup({ conf: "caching:0" });
  const b = nocache.heaps.obtain(nocache.request("small", 64), 8 * MiB, true);
  nocache.heaps.emptied(b);
  assert.equal(nocache.heaps.totals.reserved.current, 0);
});

Deno.test("Heaps.obtain() and emptied() above the low watermark release idle heaps oldest first", () => {
  const { heaps, request, pools } = setup({ low: 44 * MiB });
  const big = heaps.obtain(request("large", 16 * MiB), 16 * MiB, false);
  big.live = 1;
  const [old, mid, young] = [1, 2, 3].map(() => heaps.obtain(request("small", 64), 8 * MiB, true));
  for (const heap of [old, mid, young]) heaps.emptied(heap);
  assert.equal(heaps.totals.reserved.current, 40 * MiB, "below the low watermark: all cached");
  const next = heaps.obtain(request("small", 64), 8 * MiB, true);
  assert.deepEqual([...pools.small.heaps], [mid, young, next], "the oldest idle heap went");
  heaps.setWatermarks(heaps.high, 36 * MiB);
  heaps.emptied(next);
  assert.deepEqual([...pools.small.heaps], [young, next], "then the next oldest");
  assert.equal(heaps.totals.reserved.current, 32 * MiB);
});

Deno.test("Heaps.obtain() bounds the cache by max_reserved_ratio, releasing the pool's own idle heaps first", () => {
  const { heaps, request, pools } = setup({ conf: "max_reserved_ratio:1.04" });
  const large = heaps.obtain(request("large", 2 * MiB), 32 * MiB, true); // the older
  const small = heaps.obtain(request("small", 64), 8 * MiB, true);
  heaps.emptied(large);
  heaps.emptied(small);
  heaps.totals.allocated.peak = 40 * MiB;
  // Made: 8 MiB; allowed: 1.04 × 40 MiB. The small idle heap makes room; the large stays.
  const next = heaps.obtain(request("small", 64), 8 * MiB, true);
  assert.deepEqual([...pools.small.heaps], [next]);
  assert.deepEqual([...pools.large.heaps], [large]);
  // A large one made next goes past the bound: the other pool's idle heap goes too.
  heaps.obtain(request("large", 2 * MiB), 32 * MiB, true);
  assert.equal(pools.large.heaps.size, 1, "the idle large heap made room");
  assert.equal(heaps.totals.reserved.current, 40 * MiB);
});

Deno.test("Heaps.releaseIdle() skips a staging buffer whose map is pending, and stops at the target", () => {
  const { heaps, request } = setup();
  const staging = heaps.obtain(request("readback", 4096), 4096, false);
  const small = heaps.obtain(request("small", 64), 8 * MiB, true);
  heaps.emptied(staging);
  heaps.emptied(small);
  (staging.buffer as unknown as FakeBuffer).mapState = "pending";
  assert.equal(heaps.releaseIdle(null, 8 * MiB + 4096), 0, "already at the target");
  assert.equal(heaps.releaseIdle(null, 0), 8 * MiB, "the map-pending buffer stays");
  (staging.buffer as unknown as FakeBuffer).mapState = "unmapped";
  assert.equal(heaps.releaseIdle("small", 0), 0, "only the small pool");
  assert.equal(heaps.releaseIdle("readback", 0), 4096);
});

Deno.test("Heaps.takeDeviceError() hands a refusal over once; the refused idle heap is released", async () => {
  const { heaps, request, device } = setup({ memory: 12 * MiB });
  heaps.obtain(request("small", 64), 8 * MiB, true).live = 1;
  heaps.obtain(request("small", 64), 8 * MiB, true);
  await heaps.settle();
  const error = heaps.takeDeviceError();
  assert.ok(error instanceof OutOfMemoryError && error.device);
  assert.match(error.message, /Heap #2 is unusable: Not enough memory/);
  assert.equal(heaps.takeDeviceError(), null);
  assert.equal(heaps.ooms, 1);
  assert.equal(device.liveBytes, 8 * MiB, "the refused heap held nothing: released");
});

Deno.test("Heaps.destroy() releases every heap, live ones too", () => {
  const { heaps, request, device } = setup();
  heaps.obtain(request("small", 64), 8 * MiB, true).live = 1;
  heaps.obtain(request("upload", 4096), 4096, false);
  heaps.destroy();
  assert.equal(device.liveBytes, 0);
  assert.equal(heaps.totals.heaps, 0);
});

Deno.test("Heaps verdicts: a refusal after the heap was released is counted and harmless", async () => {
  const { heaps, request, device } = setup({ memory: 4 * MiB });
  const heap = heaps.obtain(request("small", 64), 8 * MiB, true);
  heaps.emptied(heap);
  heaps.release(heap); // released before the device's answer
  heaps.release(heap); // and a second release does nothing
  await heaps.settle();
  assert.equal(heaps.totals.reserved.current, 0);
  assert.equal(heaps.totals.heaps, 0);
  assert.equal(device.liveBytes, 0);
  assert.ok(heaps.takeDeviceError() instanceof OutOfMemoryError, "the refusal is still reported");
  assert.equal(heaps.ooms, 1);
});

Deno.test("Heaps keeps its state behind methods: its only fields are the pools and totals it was given", () => {
  const { heaps, request } = setup({ high: 24 * MiB });
  assert.deepEqual(Object.keys(heaps).sort(), ["pools", "totals"]);
  const heap = heaps.obtain(request("small", 64), 8 * MiB, true);
  heaps.emptied(heap);
  heaps.setWatermarks(4 * MiB, 0);
  assert.deepEqual([heaps.high, heaps.low, heap.released], [4 * MiB, 0, true], "lowered: released");
  assert.throws(() => heaps.obtain(request("large", 6 * MiB), 8 * MiB, false), OutOfMemoryError);
  assert.equal(heaps.ooms, 1);
  heaps.resetCounts();
  assert.deepEqual([heaps.ooms, heaps.retries], [0, 0]);
});
