// Seeded random sequences of alloc/free/scalar/submit/emptyCache on the fake
// device, with and without injected faults (heaps refused and answered late,
// the device lost at a random call, maps that fail, a tight budget). After
// every step: nothing crashed or rejected unhandled, no two placed blocks
// overlap, offsets are aligned, every stat equals a recount built from what
// the test did, and the budget equals the bytes of the heaps held.
// GPUHEAP_FUZZ_OPS sets the operations of the plain runs (default 10^5 in all).
import assert from "node:assert/strict";
import {
  AllocatorError,
  type Block,
  DeviceLostError,
  type FakeBuffer,
  FakeDevice,
  type FakeDeviceOptions,
  HeapAllocator,
  type HeapAllocatorOptions,
  OutOfMemoryError,
  POOL_NAMES,
  type PoolName,
  type Usage,
} from "../mod.ts";
import { rng } from "./_util.ts";
import { CountingBudget } from "./_budget.ts";
import { readEnv } from "../allocator/config.ts";

const TOTAL_OPS = Number(readEnv("GPUHEAP_FUZZ_OPS") ?? 100_000);
const MiB = 1 << 20;

/** What the test did, and so what the allocator must report. */
interface Model {
  live: Set<Block>;
  /** Live blocks whose buffer the test read: freeing them makes them pending. */
  touched: Set<Block>;
  pending: Set<Block>;
  peaks: Map<string, number>;
  /** Requests the allocator refused (watermark or budget), and heaps the device refused. */
  ooms: number;
  /** The same, not cleared by resetAccumulatedStats(). */
  allOoms: number;
  /** At the last resetAccumulatedStats(): bytes allocated, and the device's createBuffer calls. */
  allocatedAtReset: number;
  callsAtReset: number;
  /** Reserved bytes at the last check. */
  lastReserved: number;
}

const heapIds = new WeakMap<FakeBuffer, number>();
function heapIdOf(buf: FakeBuffer): number {
  let id = heapIds.get(buf);
  if (id === undefined) heapIds.set(buf, id = Number(/#(\d+)$/.exec(buf.label)![1]));
  return id;
}

/** Recounts every figure from the model and the fake device, and checks placement. */
function check(
  allocator: HeapAllocator,
  device: FakeDevice,
  m: Model,
  budget: CountingBudget | undefined,
): void {
  const stats = allocator.memoryStats();
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
  assert.equal(stats.createBufferCalls, device.createBufferCalls - m.callsAtReset);
  assert.equal(stats.numOoms, m.ooms, "OOMs");
  if (budget) assert.equal(budget.reserved, device.liveBytes, "budget = bytes of heaps held");
  assert.equal(
    stats.allocatedBytes.allocated - stats.allocatedBytes.freed,
    stats.allocatedBytes.current - m.allocatedAtReset,
  );
  // Above the high watermark (lowered while blocks were live), reserved bytes never grow.
  const high = allocator.highWatermark;
  if (high > 0 && device.liveBytes > high) {
    assert.ok(device.liveBytes <= m.lastReserved, "high watermark held");
  }
  m.lastReserved = device.liveBytes;
  // Placement: aligned, inside a live buffer, no two placed blocks overlapping.
  // Heaps are found by their label: reading block.buffer would mark blocks as used.
  const buffers = new Map<number, FakeBuffer>();
  for (const buf of device.liveBuffers) buffers.set(heapIdOf(buf), buf);
  const byBuffer = new Map<FakeBuffer, Block[]>();
  // Plain ifs in these hot loops: assert.ok costs more than the allocator itself.
  for (const set of [m.live, m.pending]) {
    for (const b of set) {
      const buf = buffers.get(b.heapId);
      if (!buf || buf.destroyed) assert.fail(`block #${b.id} lies in a released buffer`);
      if (b.offset % allocator.alignment !== 0) assert.fail(`block #${b.id} unaligned`);
      if (b.size < b.requestedSize) assert.fail(`block #${b.id} smaller than requested`);
      if (b.offset + b.size > buf.size) assert.fail(`block #${b.id} runs past its buffer`);
      let list = byBuffer.get(buf);
      if (!list) byBuffer.set(buf, list = []);
      list.push(b);
    }
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
  device: FakeDeviceOptions;
  options: HeapAllocatorOptions;
  /** A budget shared with nobody, of this limit (0: unlimited; undefined: no budget). */
  budget?: number;
  maxLive: number;
  maxLog2: number;
  /** Inject faults: refused heaps answered late, device loss, failed maps. */
  faults?: boolean;
}

interface FuzzResult {
  ooms: number;
  reuses: number;
  refused: number;
  lost: boolean;
  deviceErrors: number;
}

async function fuzz(c: FuzzCase): Promise<FuzzResult> {
  const random = rng(c.seed);
  const rejections: unknown[] = [];
  const onRejection = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    rejections.push(e.reason);
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  // Faults are drawn from the same seed: each run is its own mix.
  let refusedSoFar = 0;
  const refuseRate = c.faults ? random() * 0.3 : 0;
  const failMapRate = c.faults ? random() * 0.5 : 0;
  const device = new FakeDevice({
    ...c.device,
    holdVerdicts: c.faults,
    refuse: c.faults ? () => random() < refuseRate && ++refusedSoFar > 0 : undefined,
    failMap: c.faults ? () => random() < failMapRate : undefined,
    loseAtCall: c.faults && random() < 0.5 ? 1 + Math.floor(random() * c.ops / 4) : 0,
  });
  const budget = c.budget === undefined ? undefined : new CountingBudget(c.budget);
  const allocator = new HeapAllocator(device, { ...c.options, budget });
  const m: Model = {
    live: new Set(),
    touched: new Set(),
    pending: new Set(),
    peaks: new Map(),
    ooms: 0,
    allOoms: 0,
    allocatedAtReset: 0,
    callsAtReset: 0,
    lastReserved: 0,
  };
  const usages: Usage[] = ["storage", "storage", "storage", "uniform", "readback", "upload"];
  let refusedCounted = 0;
  let deviceErrorDue = false; // a refusal was delivered and not yet thrown
  let lossKnown = false; // the test has waited since the device was lost
  let deviceErrors = 0;
  const pick = (set: Set<Block>) => {
    let i = Math.floor(random() * set.size);
    for (const b of set) if (i-- === 0) return b;
    throw new Error("empty");
  };
  /** Checks what a call of alloc, scalar or submit threw (or that it threw nothing). */
  const outcome = (error: unknown, mayRunOutOfMemory: boolean): void => {
    if (lossKnown) {
      assert.ok(error instanceof DeviceLostError, `expected DeviceLostError, got ${error}`);
    } else if (deviceErrorDue) {
      assert.ok(error instanceof OutOfMemoryError && error.device, `expected a refusal: ${error}`);
      deviceErrorDue = false;
      deviceErrors++;
    } else if (error !== undefined) {
      assert.ok(mayRunOutOfMemory, `unexpected ${error}`);
      assert.ok(error instanceof OutOfMemoryError && !error.device, String(error));
      assert.match(error.message, /allocated: .*cached: .*max allowed: .*Tried to allocate/);
      m.ooms++;
      m.allOoms++;
    }
  };
  const place = (make: () => Block, touch: boolean): void => {
    let block: Block | undefined;
    let error: unknown;
    try {
      block = make();
    } catch (e) {
      error = e;
    }
    outcome(error, true);
    if (!block) return;
    m.live.add(block);
    if (touch) {
      void block.buffer; // as if recorded into a pass
      m.touched.add(block);
    }
  };
  /** One random operation; returns true when time should pass (faults only). */
  const step = (): boolean => {
    const r = random();
    if (r < 0.42 && m.live.size < c.maxLive) {
      const usage = usages[Math.floor(random() * usages.length)];
      const limit = usage === "uniform"
        ? device.limits.maxUniformBufferBindingSize
        : device.limits.maxStorageBufferBindingSize;
      const size = Math.min(limit, Math.max(1, Math.floor(2 ** (random() * c.maxLog2))));
      const longLived = random() < 0.1;
      place(() => allocator.alloc(size, { usage, longLived }), random() < 0.5);
    } else if (r < 0.47) {
      place(() => allocator.scalar(random(), "f32"), random() < 0.2);
    } else if (r < 0.9 && m.live.size > 0) {
      const b = pick(m.live);
      allocator.free(b);
      m.live.delete(b);
      if (m.touched.delete(b)) m.pending.add(b);
      if (random() < 0.02) {
        assert.throws(() => allocator.free(b), AllocatorError);
        assert.throws(() => b.buffer, /Cannot use block .*: it was freed/);
      }
    } else if (r < 0.97) {
      let error: unknown;
      try {
        allocator.submit([]);
      } catch (e) {
        error = e;
      }
      outcome(error, false);
      if (error === undefined) m.pending.clear();
    } else if (r < 0.975) {
      allocator.emptyCache();
      if (m.live.size === 0 && m.pending.size === 0) {
        assert.equal(allocator.driverAllocatedMemory(), 0);
      }
    } else if (r < 0.98) {
      allocator.resetPeakStats();
      m.peaks.clear();
    } else if (r < 0.985) {
      allocator.resetAccumulatedStats();
      m.ooms = 0;
      m.allocatedAtReset = allocator.currentAllocatedMemory();
      m.callsAtReset = device.createBufferCalls;
    } else if (r < 0.99 && c.faults) {
      const low = allocator.lowWatermark;
      const limits = [0, 32 * MiB, 96 * MiB, 256 * MiB].filter((v) => v === 0 || v >= low);
      allocator.setHighWatermark(limits[Math.floor(random() * limits.length)]);
    }
    if (c.faults && random() < 0.05) {
      // A staging block mapped (the map may fail), and maybe freed while it is pending.
      for (const b of m.live) {
        if (b.pool !== "readback" && b.pool !== "upload") continue;
        const buffer = b.buffer;
        m.touched.add(b);
        if (buffer.mapState === "unmapped") buffer.mapAsync(GPUMapMode.READ).catch(() => {});
        break;
      }
    }
    check(allocator, device, m, budget);
    return c.faults === true && random() < 0.05;
  };
  // The loop only calls and waits: a long loop inside an async function is not
  // optimized as well as the plain function it calls.
  for (let i = 0; i < c.ops; i++) {
    if (!step()) continue;
    // Time passes: the device answers for every heap made so far.
    await device.deliverVerdicts();
    if (refusedSoFar > refusedCounted) {
      m.ooms += refusedSoFar - refusedCounted;
      m.allOoms += refusedSoFar - refusedCounted;
      refusedCounted = refusedSoFar;
      deviceErrorDue = true;
    }
    lossKnown = device.isLost;
    assert.deepEqual(rejections, [], "no unhandled rejection");
    check(allocator, device, m, budget);
  }
  // Everything freed, submitted if the device lives, emptied, destroyed: nothing left.
  await device.deliverVerdicts();
  for (const b of m.live) allocator.free(b);
  try {
    allocator.submit([]);
  } catch (error) {
    assert.ok(error instanceof AllocatorError || error instanceof OutOfMemoryError, String(error));
  }
  allocator.emptyCache();
  const reuses = allocator.memoryStats().cacheHits;
  const blocks = [...m.live, ...m.pending];
  allocator.destroy();
  assert.equal(device.liveBytes, 0);
  if (budget) assert.equal(budget.reserved, 0, "the budget ends at zero");
  for (const b of blocks) assert.equal(b.isLive, false);
  await new Promise((r) => setTimeout(r, 0));
  globalThis.removeEventListener("unhandledrejection", onRejection);
  assert.deepEqual(rejections, [], "no unhandled rejection");
  return { ooms: m.allOoms, reuses, refused: refusedSoFar, lost: device.isLost, deviceErrors };
}

Deno.test("alloc() and free() in random sequences keep stats exact: software-adapter limits, sizes 1 B to 128 MiB", async () => {
  const r = await fuzz({
    seed: 1,
    ops: Math.round(TOTAL_OPS * 0.4),
    device: {},
    options: {},
    maxLive: 60,
    maxLog2: 27,
  });
  assert.ok(r.reuses > 0);
});

Deno.test("alloc() and free() in random sequences keep stats exact: GPU limits (4 GiB buffers, 256 B alignment), sizes up to 512 MiB", async () => {
  const r = await fuzz({
    seed: 2,
    ops: Math.round(TOTAL_OPS * 0.3),
    device: {
      limits: {
        maxBufferSize: 4 * 1024 * MiB,
        maxStorageBufferBindingSize: 2048 * MiB - 4,
        minStorageBufferOffsetAlignment: 32,
        minUniformBufferOffsetAlignment: 256,
      },
    },
    options: { lowWatermark: "1GiB", allocConf: "roundup_power2_divisions:4" },
    maxLive: 40,
    maxLog2: 29,
  });
  assert.ok(r.reuses > 0);
});

Deno.test("alloc() and free() in random sequences keep stats exact: a tight high watermark, release-and-retry and OOM", async () => {
  const r = await fuzz({
    seed: 3,
    ops: Math.round(TOTAL_OPS * 0.3),
    device: {},
    options: { highWatermark: 96 * MiB, lowWatermark: 64 * MiB },
    maxLive: 80,
    maxLog2: 26,
  });
  assert.ok(r.ooms > 0, "the watermark was reached");
});

Deno.test("alloc(), free() and submit() under random faults: no crash, stats and budget exact", async () => {
  const confs = [
    "",
    "caching:0",
    "max_reserved_ratio:0",
    "roundup_power2_divisions:4",
    "max_split_size:3MiB",
  ];
  const totals = { ops: 0, refused: 0, lost: 0, deviceErrors: 0, ooms: 0 };
  for (let seed = 100; seed < 124; seed++) {
    const pick = rng(seed);
    const ops = 800;
    const r = await fuzz({
      seed,
      ops,
      device: {},
      options: {
        allocConf: confs[Math.floor(pick() * confs.length)],
        highWatermark: pick() < 0.3 ? 96 * MiB : 0,
      },
      budget: pick() < 0.5 ? 0 : Math.round((64 + pick() * 192) * MiB),
      maxLive: 40,
      maxLog2: 26,
      faults: true,
    });
    totals.ops += ops;
    totals.refused += r.refused;
    totals.lost += r.lost ? 1 : 0;
    totals.deviceErrors += r.deviceErrors;
    totals.ooms += r.ooms;
  }
  assert.ok(totals.ops >= 10_000);
  // Every kind of fault happened, or the test proves little.
  assert.ok(totals.refused > 20, `refused heaps: ${totals.refused}`);
  assert.ok(totals.lost >= 5, `devices lost: ${totals.lost}`);
  assert.ok(totals.deviceErrors > 5, `refusals reported: ${totals.deviceErrors}`);
  assert.ok(totals.ooms > totals.refused, `OOMs besides refusals: ${totals.ooms}`);
});
