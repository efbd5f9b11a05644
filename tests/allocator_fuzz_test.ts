// Seeded random sequences of alloc/free/scalar/submit/emptyCache on the fake
// device, checking after every step: no two placed blocks overlap, offsets are
// aligned, every stat equals a recount, and nothing placed is ever released.
// The model is what the test did: a block whose buffer it read (as recorded
// work would) waits for a submit once freed, so it stays placed until then;
// any other freed block is free at once.
// GPUHEAP_FUZZ_OPS sets the number of operations per run (default 10^5 in all).
import assert from "node:assert/strict";
import {
  AllocatorError,
  type Block,
  type FakeBuffer,
  FakeDevice,
  HeapAllocator,
  OutOfMemoryError,
  POOL_NAMES,
  type PoolName,
  type Usage,
} from "../mod.ts";
import { rng } from "./_util.ts";
import { readEnv } from "../allocator/config.ts";

const TOTAL_OPS = Number(readEnv("GPUHEAP_FUZZ_OPS") ?? 100_000);
const MiB = 1 << 20;

interface Model {
  live: Set<Block>;
  /** Blocks whose buffer the test read: recorded work may use them. */
  touched: Set<Block>;
  /** Touched blocks freed since the last submit: still placed. */
  pending: Set<Block>;
  peaks: Map<string, number>;
}

const heapIds = new WeakMap<FakeBuffer, number>();
function heapIdOf(buf: FakeBuffer): number {
  let id = heapIds.get(buf);
  if (id === undefined) heapIds.set(buf, id = Number(/#(\d+)$/.exec(buf.label)![1]));
  return id;
}

/** Recounts every figure from the model and the fake device, and checks placement. */
function check(heap: HeapAllocator, device: FakeDevice, m: Model): void {
  const stats = heap.memoryStats();
  const placed = [...m.live, ...m.pending];
  // Recount per pool from the blocks the test holds, in one pass.
  const zero = () => ({ allocated: 0, requested: 0, pending: 0, blocks: 0 });
  const totals = zero();
  const perPool = new Map<PoolName, ReturnType<typeof zero>>(POOL_NAMES.map((p) => [p, zero()]));
  for (const b of m.live) {
    for (const t of [totals, perPool.get(b.pool)!]) {
      t.allocated += b.size;
      t.requested += b.requestedSize;
      t.blocks++;
    }
  }
  for (const b of m.pending) {
    for (const t of [totals, perPool.get(b.pool)!]) t.pending += b.size;
  }
  for (const pool of [null, ...POOL_NAMES]) {
    const st = pool === null ? stats : stats.pools[pool];
    const want = pool === null ? totals : perPool.get(pool)!;
    const name = pool ?? "total";
    assert.equal(st.allocatedBytes.current, want.allocated, `${name} allocated`);
    assert.equal(st.requestedBytes.current, want.requested, `${name} requested`);
    assert.equal(st.pendingFreeBytes, want.pending, `${name} pending`);
    assert.equal(st.blocks, want.blocks, `${name} blocks`);
    assert.equal(st.cachedBytes, st.reservedBytes.current - want.allocated - want.pending);
    assert.ok(st.cachedBytes >= 0, `${name} cached >= 0`);
    const pa = Math.max(m.peaks.get(`${name}:a`) ?? 0, want.allocated);
    const pr = Math.max(m.peaks.get(`${name}:r`) ?? 0, st.reservedBytes.current);
    m.peaks.set(`${name}:a`, pa);
    m.peaks.set(`${name}:r`, pr);
    assert.equal(st.allocatedBytes.peak, pa, `${name} allocated peak`);
    assert.equal(st.reservedBytes.peak, pr, `${name} reserved peak`);
  }
  // Reserved bytes and heap counts against the device's own count of live buffers.
  assert.equal(stats.reservedBytes.current, device.liveBytes, "reserved = device bytes");
  assert.equal(stats.heaps, device.liveBuffers.size, "heaps = device buffers");
  assert.equal(stats.createBufferCalls, device.createBufferCalls);
  assert.equal(
    stats.allocatedBytes.allocated - stats.allocatedBytes.freed,
    stats.allocatedBytes.current,
  );
  if (heap.highWatermark > 0) {
    assert.ok(device.liveBytes <= heap.highWatermark, "high watermark held");
  }
  // Placement: aligned, inside a live buffer, no two placed blocks overlapping.
  // Heaps are found by their label: reading block.buffer would mark blocks as used.
  const buffers = new Map<number, FakeBuffer>();
  for (const buf of device.liveBuffers) buffers.set(heapIdOf(buf), buf);
  const byBuffer = new Map<FakeBuffer, Block[]>();
  // Plain ifs in these hot loops: assert.ok costs more than the allocator itself.
  for (const b of placed) {
    const buf = buffers.get(b.heapId);
    if (!buf || buf.destroyed) assert.fail(`block #${b.id} lies in a released buffer`);
    if (b.offset % heap.alignment !== 0) assert.fail(`block #${b.id} offset ${b.offset} unaligned`);
    if (b.size < b.requestedSize) assert.fail(`block #${b.id} smaller than requested`);
    if (b.offset + b.size > buf.size) assert.fail(`block #${b.id} runs past its buffer`);
    let list = byBuffer.get(buf);
    if (!list) byBuffer.set(buf, list = []);
    list.push(b);
  }
  for (const list of byBuffer.values()) {
    list.sort((x, y) => x.offset - y.offset);
    for (let i = 1; i < list.length; i++) {
      if (list[i - 1].offset + list[i - 1].size > list[i].offset) {
        assert.fail(`blocks #${list[i - 1].id} and #${list[i].id} overlap`);
      }
    }
  }
}

interface FuzzCase {
  seed: number;
  ops: number;
  device: FakeDevice;
  options: ConstructorParameters<typeof HeapAllocator>[1];
  maxLive: number;
  maxLog2: number;
}

function fuzz(c: FuzzCase): { ooms: number; reuses: number } {
  const random = rng(c.seed);
  const heap = new HeapAllocator(c.device, c.options);
  const m: Model = { live: new Set(), touched: new Set(), pending: new Set(), peaks: new Map() };
  const usages: Usage[] = ["storage", "storage", "storage", "uniform", "readback", "upload"];
  let ooms = 0;
  const pick = (set: Set<Block>) => {
    let i = Math.floor(random() * set.size);
    for (const b of set) if (i-- === 0) return b;
    throw new Error("empty");
  };
  for (let step = 0; step < c.ops; step++) {
    const r = random();
    if (r < 0.42 && m.live.size < c.maxLive) {
      const usage = usages[Math.floor(random() * usages.length)];
      const limit = usage === "uniform"
        ? c.device.limits.maxUniformBufferBindingSize
        : c.device.limits.maxStorageBufferBindingSize;
      const size = Math.min(limit, Math.max(1, Math.floor(2 ** (random() * c.maxLog2))));
      try {
        const b = heap.alloc(size, { usage });
        m.live.add(b);
        if (random() < 0.5) {
          void b.buffer; // as if recorded into a pass
          m.touched.add(b);
        }
      } catch (e) {
        assert.ok(e instanceof OutOfMemoryError, String(e));
        assert.match(e.message, /allocated: .*cached: .*max allowed: .*Tried to allocate/);
        ooms++;
      }
    } else if (r < 0.47) {
      try {
        m.live.add(heap.scalar(random(), "f32"));
      } catch (e) {
        assert.ok(e instanceof OutOfMemoryError, String(e));
        ooms++;
      }
    } else if (r < 0.9 && m.live.size > 0) {
      const b = pick(m.live);
      heap.free(b);
      m.live.delete(b);
      if (m.touched.delete(b)) m.pending.add(b);
      if (random() < 0.01) {
        assert.throws(() => heap.free(b), AllocatorError);
      }
    } else if (r < 0.97) {
      heap.submit([]);
      m.pending.clear();
    } else if (r < 0.975) {
      heap.emptyCache();
      if (m.live.size === 0 && m.pending.size === 0) assert.equal(heap.driverAllocatedMemory(), 0);
    } else if (r < 0.98) {
      heap.resetPeakStats();
      m.peaks.clear();
    }
    check(heap, c.device, m);
  }
  // Everything freed and submitted, then emptied: nothing left on the device.
  for (const b of m.live) heap.free(b);
  heap.submit([]);
  heap.emptyCache();
  assert.equal(heap.driverAllocatedMemory(), 0);
  assert.equal(c.device.liveBytes, 0);
  const reuses = heap.memoryStats().cacheHits;
  heap.destroy();
  return { ooms, reuses };
}

Deno.test("alloc() and free() in random sequences keep stats exact: software-adapter limits, sizes 1 B to 128 MiB", () => {
  const r = fuzz({
    seed: 1,
    ops: Math.round(TOTAL_OPS * 0.4),
    device: new FakeDevice(),
    options: {},
    maxLive: 60,
    maxLog2: 27,
  });
  assert.ok(r.reuses > 0);
});

Deno.test("alloc() and free() in random sequences keep stats exact: GPU limits (4 GiB buffers, 256 B alignment), sizes up to 512 MiB", () => {
  const r = fuzz({
    seed: 2,
    ops: Math.round(TOTAL_OPS * 0.3),
    device: new FakeDevice({
      limits: {
        maxBufferSize: 4 * 1024 * MiB,
        maxStorageBufferBindingSize: 2048 * MiB - 4,
        minStorageBufferOffsetAlignment: 32,
        minUniformBufferOffsetAlignment: 256,
      },
    }),
    options: { lowWatermark: "1GiB", allocConf: "roundup_power2_divisions:4" },
    maxLive: 40,
    maxLog2: 29,
  });
  assert.ok(r.reuses > 0);
});

Deno.test("alloc() and free() in random sequences keep stats exact: a tight high watermark, release-and-retry and OOM", () => {
  const r = fuzz({
    seed: 3,
    ops: Math.round(TOTAL_OPS * 0.3),
    device: new FakeDevice(),
    options: { highWatermark: 96 * MiB, lowWatermark: 64 * MiB },
    maxLive: 80,
    maxLog2: 26,
  });
  assert.ok(r.ooms > 0, "the watermark was reached");
});
