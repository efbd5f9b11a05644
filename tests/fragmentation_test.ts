// What keeps reserved bytes near live bytes: a dedicated-size request takes a
// free range of a split heap, a cached dedicated heap becomes a split heap
// rather than a new GPUBuffer being made, and max_reserved_ratio bounds the cache. The
// fragmentation command replays the real PyTorch traces with PyTorch's figures beside,
// each within 1.10 × its peak live; a fixed training loop stops making heaps.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { formatAllocConf, parseAllocConf } from "../allocator/config.ts";
import { replay } from "../allocator/tools/replay.ts";
import { MAX_RESERVED_RATIO } from "../allocator/constants.ts";
import { memvizHtml } from "../allocator/tools/memviz.ts";
import {
  CREATE_BUFFER_COST,
  createBufferMs,
  fnv1a,
  formatCorpus,
  formatRows,
  measureCorpus,
  measureReal,
  REAL_TRACES_DIR,
  splitCorpus,
  TUNED_BEFORE,
} from "../bench/commands/fragmentation.ts";
import { rng } from "./_util.ts";
import { BIG_GPU_LIMITS, generate } from "../bench/commands/trace_gen.ts";

const MiB = 1 << 20;

Deno.test("a dedicated-size request takes a free range of a split heap first", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  const a = allocator.alloc(20 * MiB); // a 64 MiB extra-large heap
  const b = allocator.alloc(32 * MiB); // dedicated size, but 44 MiB are free beside `a`
  assert.equal(b.heapId, a.heapId);
  assert.equal(device.createBufferCalls, 1);
  const c = allocator.alloc(32 * MiB); // no room left: a heap of its own
  assert.notEqual(c.heapId, a.heapId);
  assert.equal(allocator.snapshot().heaps.find((h) => h.id === c.heapId)!.isSplit, false);
  allocator.destroy();
});

Deno.test("a cached dedicated heap becomes a split heap instead of a new GPUBuffer", () => {
  const lines: string[] = [];
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device, { debug: "alloc", log: (l) => lines.push(l) });
  allocator.startRecording();
  const big = allocator.alloc(64 * MiB + 1); // a dedicated heap, rounded to 66 MiB
  allocator.free(big); // cached whole
  const x = allocator.alloc(30 * MiB); // wants a new 64 MiB heap: the cached 66 MiB one serves
  const y = allocator.alloc(30 * MiB); // beside x
  assert.equal(big.size, 66 * MiB);
  assert.equal(device.createBufferCalls, 1);
  assert.equal(x.heapId, big.heapId);
  assert.equal(y.heapId, big.heapId);
  const [h] = allocator.snapshot().heaps;
  assert.equal(h.isSplit, true);
  assert.deepEqual(h.blocks.map((b) => [b.id, b.offset, b.state]), [
    [x.id, 0, "live"],
    [y.id, x.size, "live"],
    [null, x.size + y.size, "free"],
  ]);
  assert.ok(lines.some((l) => /^gpuheap: split heap #1 of 66\.00 MiB on large pool/.test(l)));
  const z = allocator.alloc(70 * MiB); // a later peak of live bytes, for the picture
  const trace = allocator.stopRecording();
  assert.ok(trace.events.some((e) => e[0] === "split" && e[1] === h.id));
  // The picture follows the heap from unsplit to split: at the peak, x and y share it.
  const html = memvizHtml(trace);
  assert.match(html, /#1 large heap 66 MiB/);
  assert.match(html, new RegExp(`block #${y.id} live: 30\\.00 MiB at offset ${x.size}`));
  assert.equal(replay(trace).createBufferCalls, 2);
  allocator.free(z);
  allocator.free(x);
  allocator.free(y);
  assert.equal(allocator.emptyCache(), 136 * MiB, "released as any idle heap");
  allocator.destroy();
});

Deno.test("max_reserved_ratio: reads, writes back, and bounds the cache", () => {
  assert.equal(parseAllocConf("max_reserved_ratio:1.1").maxReservedRatio, 1.1);
  assert.equal(parseAllocConf("").maxReservedRatio, MAX_RESERVED_RATIO);
  assert.equal(parseAllocConf("max_reserved_ratio:0").maxReservedRatio, 0);
  for (const bad of ["0.5", "x", "", "-1"]) {
    assert.throws(
      () => parseAllocConf(`max_reserved_ratio:${bad}`),
      /max_reserved_ratio must be 0 or a number >= 1, got/,
    );
  }
  const conf = parseAllocConf("max_reserved_ratio:1.25,caching:0,small_heap:4MiB");
  assert.deepEqual(parseAllocConf(formatAllocConf(conf)), conf);
  // Dedicated sizes that grow every step: no cached heap ever fits the next one.
  const events: unknown[] = [];
  for (let i = 0; i < 16; i++) events.push(["a", i, (64 + 4 * i) * MiB], ["f", i]);
  const kept = replay(events, { allocConf: "max_reserved_ratio:0" });
  const bounded = replay(events, { allocConf: "max_reserved_ratio:1.1" });
  assert.equal(kept.createBufferCalls, 16);
  assert.equal(bounded.createBufferCalls, 16);
  assert.ok(kept.peakReserved > 10 * kept.peakAllocated, "every size stays cached");
  assert.equal(bounded.peakAllocated, kept.peakAllocated);
  assert.ok(
    bounded.peakReserved <= 1.1 * bounded.peakAllocated,
    `${bounded.peakReserved} <= 1.1 × ${bounded.peakAllocated}`,
  );
});

Deno.test("measureReal() replays the real traces with PyTorch's own figures beside", async () => {
  const facts = JSON.parse(
    await Deno.readTextFile(new URL("facts.json", REAL_TRACES_DIR)),
  ).workloads as Record<string, { peak_allocated: number; peak_reserved: number }>;
  const rows = await measureReal(["", "caching:0"]);
  assert.deepEqual(
    rows.map((r) => [r.workload, r.policy]),
    Object.keys(facts).flatMap((w) => [[w, ""], [w, "caching:0"]]),
  );
  for (const r of rows) {
    const f = facts[r.workload];
    assert.deepEqual(r.pytorch, {
      peakAllocated: f.peak_allocated,
      peakReserved: f.peak_reserved,
      ratio: f.peak_reserved / f.peak_allocated,
    });
    // Within 1% of PyTorch's peak, unless facts.json says why the replay cannot see it (and
    // then it is off by more: the note is still needed).
    const off = Math.abs(r.peakRequested / f.peak_allocated - 1);
    assert.equal(off > 0.01, "peak_not_replayed" in f, `${r.workload}: ${off}`);
    assert.ok(r.alloc.mean >= 1 && r.alloc.mean === r.alloc.max, "one trace, no spread");
    assert.ok(r.createBufferCalls.mean > 0);
  }
  const cached = rows.filter((r) => r.policy === "");
  // The tune half is held to 1.10; the held-out half is measured, not tuned for (Note [the split]).
  const halves = splitCorpus(Object.keys(facts));
  for (const r of cached.filter((r) => halves.get(r.workload) === "tune")) {
    assert.ok(r.alloc.mean <= 1.10, `${r.workload}: peak reserved ÷ peak live ${r.alloc.mean}`);
  }
  const uncached = rows.filter((r) => r.policy === "caching:0");
  for (let i = 0; i < cached.length; i++) {
    assert.ok(uncached[i].createBufferCalls.mean > cached[i].createBufferCalls.mean);
  }
  const text = formatRows(rows);
  const name = Object.keys(facts)[0];
  const ratio = (facts[name].peak_reserved / facts[name].peak_allocated).toFixed(3);
  assert.match(
    text,
    new RegExp(`${name} .*\\nPyTorch: .*reserved/alloc ${ratio}; our peak requested`),
  );
});

Deno.test("a fixed training loop makes no heap after its first steps", () => {
  // Seeds 10, 25, 40 and 56 sit just above the cache bound (Note [a repeating loop widens
  // the bound]); the others, below it.
  for (let seed = 1; seed <= 60; seed++) {
    const calls = [3, 30].map((steps) =>
      replay(generate("training", { seed, steps })).createBufferCalls
    );
    assert.equal(calls[1], calls[0], `seed ${seed}: ${calls}`);
  }
});

Deno.test("splitCorpus() halves by names alone: the earlier traces tune, the rest alternate by hash", () => {
  // FNV-1a's published test vectors.
  assert.equal(fnv1a(""), 0x811c9dc5);
  assert.equal(fnv1a("a"), 0xe40c292c);
  assert.equal(fnv1a("foobar"), 0xbf9cf968);
  const random = rng(7);
  const names = Array.from(
    { length: 15 },
    (_, i) => `trace_${i}_${random().toString(36).slice(2)}`,
  );
  const all = [...names, ...TUNED_BEFORE];
  const halves = splitCorpus(all);
  assert.deepEqual([...halves.keys()].sort(), [...all].sort());
  for (const name of TUNED_BEFORE) assert.equal(halves.get(name), "tune");
  const held = names.filter((n) => halves.get(n) === "held-out");
  assert.equal(held.length, Math.floor(names.length / 2));
  // Ranked by hash, the new traces alternate: tune, held-out, tune, …
  const ranked = [...names].sort((a, b) => fnv1a(a) - fnv1a(b));
  ranked.forEach((n, i) => assert.equal(halves.get(n), i % 2 ? "held-out" : "tune", n));
  // Names alone decide: the order they come in does not.
  for (let k = 0; k < 5; k++) {
    const shuffled = [...all].sort(() => random() - 0.5);
    assert.deepEqual(new Map([...splitCorpus(shuffled)].sort()), new Map([...halves].sort()));
  }
});

Deno.test("createBufferMs() follows the measured table, log-log between its rows", () => {
  for (const [bytes, ms] of CREATE_BUFFER_COST) {
    assert.ok(Math.abs(createBufferMs(bytes) - ms) < 1e-9);
  }
  for (let i = 1; i < CREATE_BUFFER_COST.length; i++) {
    const [b0, t0] = CREATE_BUFFER_COST[i - 1];
    const [b1, t1] = CREATE_BUFFER_COST[i];
    const mid = createBufferMs(Math.sqrt(b0 * b1));
    assert.ok(Math.abs(mid - Math.sqrt(t0 * t1)) <= 1e-9 * Math.max(1, mid), `${b0}…${b1}`);
  }
  const [first, last] = [CREATE_BUFFER_COST[0], CREATE_BUFFER_COST[CREATE_BUFFER_COST.length - 1]];
  assert.equal(createBufferMs(first[0] / 4), first[1]);
  assert.ok(Math.abs(createBufferMs(last[0] * 3) - 3 * last[1]) < 1e-9);
});

Deno.test("measureCorpus() gives every trace its half, its cost and its recorded duration", async () => {
  const rows = await measureCorpus([""]);
  const facts = JSON.parse(await Deno.readTextFile(new URL("facts.json", REAL_TRACES_DIR)))
    .workloads as Record<string, unknown>;
  const halves = splitCorpus(Object.keys(facts));
  assert.deepEqual(rows.map((r) => r.trace).sort(), Object.keys(facts).sort());
  for (const r of rows) {
    assert.equal(r.half, halves.get(r.trace));
    // Live bytes count what blocks hold, as PyTorch's allocated bytes do.
    if (!("peak_not_replayed" in (facts[r.trace] as object))) {
      const live = r.peakAllocated / r.pytorch.peakAllocated;
      assert.ok(Math.abs(live - 1) <= 0.01, `${r.trace}: peak live ${live} × PyTorch's`);
    }
    assert.ok(r.createBufferCalls > 0 && r.createBufferMs >= r.createBufferCalls * 0.001);
    assert.ok(r.durationMs > 0, `${r.trace}: recorded duration`);
  }
  const text = formatCorpus(rows);
  assert.match(text, /\ntune half: \d+ traces, mean \d\.\d{3}, worst \d\.\d{3} \(/);
  assert.match(text, /\nall: \d+ traces/);
});

Deno.test("a loop widens the cache bound while it makes its heaps again, and a new size narrows it", () => {
  // Note [a repeating loop widens the bound]: 400 MiB live, then a step of 100 MiB and of
  // 40 MiB (heaps of their own): both cached need 540 MiB, 1.08 x the peak in use of 500.
  const heap = new HeapAllocator(new FakeDevice({ limits: BIG_GPU_LIMITS }));
  const base = heap.alloc(400 * MiB);
  const step = () => {
    for (const size of [100 * MiB, 40 * MiB]) {
      heap.free(heap.alloc(size));
      heap.submit();
    }
  };
  for (let i = 0; i < 3; i++) step();
  const calls = heap.memoryStats().createBufferCalls;
  for (let i = 0; i < 5; i++) step();
  assert.equal(heap.memoryStats().createBufferCalls, calls, "the loop made its heaps again");
  assert.equal(heap.memoryStats().reservedBytes.current, 540 * MiB);
  // 86 MiB is no size the loop made (nor served by its cached 100 MiB heap): the bound is
  // 1.04 x 500 MiB again, so both idle heaps go.
  const other = heap.alloc(86 * MiB);
  assert.equal(heap.memoryStats().createBufferCalls, calls + 1);
  assert.equal(heap.memoryStats().reservedBytes.current, 486 * MiB);
  heap.free(other);
  heap.free(base);
  heap.destroy();
});
