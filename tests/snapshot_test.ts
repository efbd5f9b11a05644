// Snapshots: the fields of the format, agreement with memoryStats() and with
// the blocks the caller holds after every step of seeded random sequences, and
// agreement with what the debug lines say exists.
import assert from "node:assert/strict";
import { type Block, FakeDevice, HeapAllocator, POOL_NAMES, type Usage } from "../mod.ts";
import type { Snapshot } from "../allocator/snapshot.ts";
import { rng } from "./_util.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

Deno.test("snapshot() lists the format, heaps and blocks in every state", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  const a = allocator.alloc(4000, { label: "a" });
  const b = allocator.alloc(8192);
  const c = allocator.alloc(100);
  void b.buffer; // as if recorded into a pass: its free waits for a submit
  allocator.free(b);
  const big = allocator.alloc(100 * MiB, { label: "dedicated" }); // half an xlarge heap or more: its own
  allocator.free(big); // cached whole
  const r = allocator.alloc(1000, { usage: "readback" });
  const s = allocator.scalar(2, "u32");
  const snap = allocator.snapshot();
  assert.equal(snap.format, "gpuheap-snapshot");
  assert.equal(snap.version, 1);
  assert.equal(snap.settings.alignment, allocator.alignment);
  assert.match(snap.settings.allocConf, /^roundup_power2_divisions:0,caching:1,/);
  assert.deepEqual(snap.stats, allocator.memoryStats());
  assert.deepEqual(
    snap.heaps.map((h) => [h.pool, h.isSplit]),
    [["small", true], ["large", false], ["scalar", true], ["readback", false]],
  );
  const small = snap.heaps[0];
  assert.equal(small.id, a.heapId);
  assert.equal(small.size, 128 * KiB);
  assert.equal(small.lost, false);
  assert.ok(small.ageMs >= 0);
  assert.deepEqual(small.blocks.map((x) => [x.id, x.offset, x.state]), [
    [a.id, 0, "live"],
    [b.id, a.size, "pending"],
    [c.id, a.size + b.size, "live"],
    [null, a.size + b.size + c.size, "free"],
  ]);
  assert.deepEqual(small.blocks[0], {
    id: a.id,
    offset: 0,
    size: a.size,
    requestedSize: 4000,
    state: "live",
    usage: "storage",
    label: "a",
    // Allocs, scalars and frees since `a` was handed out: b, c, free b, big, free big, r, s.
    ageOps: 7,
  });
  assert.deepEqual(snap.heaps[1].blocks.map((x) => [x.id, x.state, x.label]), [
    [big.id, "cached", "dedicated"],
  ]);
  assert.deepEqual(snap.heaps[2].blocks[0].id, s.id);
  assert.deepEqual(snap.heaps[3].blocks.map((x) => [x.id, x.usage, x.state]), [
    [r.id, "readback", "live"],
  ]);
  // Plain JSON: survives a round trip unchanged.
  assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap);
  allocator.submit();
  const after = allocator.snapshot().heaps[0].blocks[1];
  assert.deepEqual([after.id, after.state], [b.id, "cached"], "the submit released b: front cache");
  allocator.emptyCache();
  assert.equal(allocator.snapshot().heaps[0].blocks[1].state, "free", "emptyCache() flushed it");
  allocator.destroy();
});

Deno.test("snapshot() shows the free tail of a dedicated heap past the binding limit", () => {
  const device = new FakeDevice({ limits: { maxStorageBufferBindingSize: 100 * MiB - 32 } });
  const allocator = new HeapAllocator(device);
  const x = allocator.alloc(100 * MiB - 64);
  const [h] = allocator.snapshot().heaps;
  assert.equal(h.size, 100 * MiB);
  assert.deepEqual(h.blocks.map((b) => [b.id, b.offset, b.size, b.state]), [
    [x.id, 0, x.size, "live"],
    [null, x.size, 100 * MiB - x.size, "free"],
  ]);
  allocator.destroy();
});

/** Checks a snapshot against the stats it carries and the blocks the caller holds. */
function checkSnapshot(snap: Snapshot, live: Set<Block>, pending: Set<Block>): void {
  const held = new Map<number, Block>();
  for (const b of [...live, ...pending]) held.set(b.id, b);
  const sums = new Map<string, { live: number; pending: number; idle: number; reserved: number }>();
  for (const p of [...POOL_NAMES, "total"]) {
    sums.set(p, { live: 0, pending: 0, idle: 0, reserved: 0 });
  }
  let blocks = 0;
  let seen = 0;
  for (const h of snap.heaps) {
    let at = 0;
    for (const b of h.blocks) {
      assert.equal(b.offset, at, `heap #${h.id}: ranges cover it without gaps or overlaps`);
      at += b.size;
      for (const p of [h.pool, "total"]) {
        const s = sums.get(p)!;
        if (b.state === "live") s.live += b.size;
        else if (b.state === "pending") s.pending += b.size;
        else s.idle += b.size;
      }
      if (b.state === "live" || b.state === "pending") {
        const block = held.get(b.id!);
        assert.ok(block, `block #${b.id} in heap #${h.id} is one the caller holds`);
        assert.equal(block.heapId, h.id);
        assert.equal(block.offset, b.offset);
        assert.equal(block.size, b.size);
        assert.equal(block.requestedSize, b.requestedSize);
        assert.equal(b.state, live.has(block) ? "live" : "pending", `block #${b.id} state`);
        seen++;
      }
      if (b.state === "live") blocks++;
    }
    assert.equal(at, h.size, `heap #${h.id}: ranges end at its size`);
    sums.get(h.pool)!.reserved += h.size;
    sums.get("total")!.reserved += h.size;
  }
  assert.equal(seen, held.size, "every block the caller holds is in the snapshot");
  let waiting = 0;
  for (const b of pending) waiting += b.size;
  assert.equal(snap.stats.pendingFreeBytes, waiting, "the blocks the caller read, freed, wait");
  for (const p of [...POOL_NAMES, "total"] as const) {
    const st = p === "total" ? snap.stats : snap.stats.pools[p];
    const s = sums.get(p)!;
    assert.equal(s.live, st.allocatedBytes.current, `${p}: live = allocatedBytes.current`);
    assert.equal(s.pending, st.pendingFreeBytes, `${p}: pending = pendingFreeBytes`);
    assert.equal(s.idle, st.cachedBytes, `${p}: cached + free = cachedBytes`);
    assert.equal(s.reserved, st.reservedBytes.current, `${p}: heaps = reservedBytes.current`);
  }
  assert.equal(blocks, snap.stats.blocks);
  assert.equal(snap.heaps.length, snap.stats.heaps);
}

for (
  const [name, allocConf] of [
    ["default", ""],
    ["max_reserved_ratio:1.1", "max_reserved_ratio:1.1"],
    ["caching:0, rounding", "caching:0,roundup_power2_divisions:4"],
  ]
) {
  Deno.test(`snapshot() agrees with the stats and the blocks at every step (${name})`, () => {
    const random = rng(11);
    const allocator = new HeapAllocator(new FakeDevice(), { allocConf, lowWatermark: "1GiB" });
    const live = new Set<Block>();
    // What the test did decides what waits for a submit: a block whose buffer it read.
    const touched = new Set<Block>();
    const pending = new Set<Block>();
    const usages: Usage[] = ["storage", "storage", "storage", "uniform", "readback", "upload"];
    for (let step = 0; step < 1500; step++) {
      const r = random();
      if (r < 0.45 && live.size < 40) {
        const usage = usages[Math.floor(random() * usages.length)];
        const max = usage === "uniform" ? 16 : 27;
        const b = allocator.alloc(Math.max(1, Math.floor(2 ** (random() * max))), {
          usage,
          label: random() < 0.3 ? `t${step}` : undefined,
        });
        if (random() < 0.5) {
          void b.buffer;
          touched.add(b);
        }
        live.add(b);
      } else if (r < 0.5) {
        live.add(allocator.scalar(step, "u32"));
      } else if (r < 0.9 && live.size > 0) {
        const b = [...live][Math.floor(random() * live.size)];
        allocator.free(b);
        live.delete(b);
        if (touched.delete(b)) pending.add(b);
      } else if (r < 0.98) {
        allocator.submit();
        pending.clear();
      } else {
        allocator.emptyCache();
      }
      checkSnapshot(allocator.snapshot(), live, pending);
    }
    allocator.destroy();
  });
}

Deno.test("snapshot() agrees with the debug lines on heaps and blocks", () => {
  const lines: string[] = [];
  const allocator = new HeapAllocator(new FakeDevice(), { debug: true, log: (l) => lines.push(l) });
  const random = rng(5);
  const live = new Set<Block>();
  for (let step = 0; step < 400; step++) {
    if (random() < 0.55 || live.size === 0) {
      live.add(allocator.alloc(Math.floor(2 ** (6 + random() * 21)), { label: `x${step}` }));
    } else {
      const b = [...live][Math.floor(random() * live.size)];
      allocator.free(b);
      live.delete(b);
    }
    if (step % 97 === 96) allocator.emptyCache();
  }
  // What the debug lines say exists now: heaps made and not released, and the
  // blocks handed out (allocated or reused) that the caller still holds.
  const heaps = new Map<number, { pool: string; size: number }>();
  const blocks = new Map<number, { heap: number; offset: number; size: number }>();
  for (const line of lines) {
    let m = /^gpuheap: new (?:unsplit )?heap #(\d+) of .* on (\w+) pool \(size (\d+) B,/.exec(line);
    if (m) heaps.set(Number(m[1]), { pool: m[2], size: Number(m[3]) });
    m = /^gpuheap: released heap #(\d+) of .* \(size (\d+) B,/.exec(line);
    if (m) {
      assert.equal(heaps.get(Number(m[1]))?.size, Number(m[2]), line);
      heaps.delete(Number(m[1]));
    }
    m =
      /^gpuheap: (?:allocated|reused) block #(\d+) of .* \(size (\d+) B, .* from heap #(\d+) at offset (\d+) on/
        .exec(line);
    if (m) {
      blocks.set(Number(m[1]), { heap: Number(m[3]), offset: Number(m[4]), size: Number(m[2]) });
    }
  }
  assert.ok(lines.some((l) => l.includes("released heap")), "the sequence released heaps");
  const snap = allocator.snapshot();
  assert.deepEqual(
    new Map(snap.heaps.map((h) => [h.id, { pool: h.pool, size: h.size }])),
    heaps,
    "the snapshot's heaps are those the debug lines made and did not release",
  );
  const liveInSnapshot = new Map(
    snap.heaps.flatMap((h) =>
      h.blocks.filter((b) => b.state === "live").map((b) => [b.id!, {
        heap: h.id,
        offset: b.offset,
        size: b.size,
      }])
    ),
  );
  const liveInLines = new Map([...live].map((b) => [b.id, blocks.get(b.id)]));
  assert.deepEqual(liveInSnapshot, liveInLines, "live blocks: same ids, heaps, offsets, sizes");
  allocator.destroy();
});
