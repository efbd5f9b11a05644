import assert from "node:assert/strict";
import { type Block, FakeDevice, HeapAllocator } from "../mod.ts";
import { rng } from "./_util.ts";

/** Live blocks of a test, checked after every step: no two share a byte of one heap. */
class Live {
  blocks = new Set<Block>();
  /** Sees every free, if set. */
  model: WriteModel | null = null;
  add(b: Block): Block {
    assert.ok(
      b.size >= b.requestedSize,
      `block #${b.id} of ${b.size} bytes for ${b.requestedSize}`,
    );
    for (const o of this.blocks) {
      const overlap = o.heapId === b.heapId && o.offset < b.offset + b.size &&
        b.offset < o.offset + o.size;
      assert.ok(!overlap, `block #${b.id} at ${b.offset} overlaps live #${o.id} at ${o.offset}`);
    }
    this.blocks.add(b);
    return b;
  }
  free(allocator: HeapAllocator, b: Block): void {
    this.blocks.delete(b);
    if (this.model) this.model.free(allocator, b);
    else allocator.free(b);
  }
}

/**
 * One iteration of a random but fixed program: allocations and frees of
 * storage blocks, `sizes` asked in order. Everything is freed by its end.
 */
function program(allocator: HeapAllocator, live: Live, sizes: number[], seed: number): Block[] {
  const random = rng(seed);
  const mine: Block[] = [];
  const made: Block[] = [];
  for (const size of sizes) {
    if (mine.length > 0 && random() < 0.4) {
      live.free(allocator, mine.splice(Math.floor(random() * mine.length), 1)[0]);
    }
    const b = live.add(allocator.alloc(size));
    mine.push(b);
    made.push(b);
  }
  for (const b of mine) live.free(allocator, b);
  return made;
}

function sizesOf(seed: number, n: number): number[] {
  const random = rng(seed);
  return Array.from({ length: n }, () => 4 * (1 + Math.floor(random() ** 2 * 60000)));
}

function allocatedSum(live: Live): number {
  return [...live.blocks].reduce((n, b) => n + b.size, 0);
}

Deno.test("beginIteration() places later runs at their planned offsets, with no createBuffer", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  const live = new Live();
  const sizes = sizesOf(1, 60);
  let offsets: number[] | null = null;
  let calls = 0;
  for (let run = 0; run < 5; run++) {
    allocator.beginIteration("shape A");
    const made = program(allocator, live, sizes, 7);
    allocator.endIteration();
    assert.equal(allocator.currentAllocatedMemory(), allocatedSum(live));
    if (run === 1) {
      offsets = made.map((b) => b.offset);
      calls = device.createBufferCalls;
      assert.equal(new Set(made.map((b) => b.heapId)).size, 1, "one arena");
    }
    if (run > 1) {
      assert.deepEqual(made.map((b) => b.offset), offsets);
      assert.equal(device.createBufferCalls, calls, "a planned run makes no GPUBuffer");
    }
  }
  const [plan] = allocator.plans();
  assert.equal(plan.runs, 5);
  assert.equal(plan.departures, 0);
  assert.equal(plan.blocks, 60);
  assert.ok(plan.size >= plan.peakLive);
  assert.ok(plan.ratio <= 1.1, `plan ${plan.ratio} × peak live`);
  const stats = allocator.memoryStats();
  assert.equal(stats.pools.large.reservedBytes.current >= plan.size, true);
  allocator.destroy();
});

/** Runs of a recorded program that depart from it in one way, at a random point. */
const DEPARTURES: [string, (sizes: number[], at: number) => number[]][] = [
  ["another size", (s, at) => s.map((v, i) => i === at ? v + 4096 : v)],
  ["an extra allocation", (s, at) => [...s.slice(0, at), 8192, ...s.slice(at)]],
  ["a missing allocation", (s, at) => s.filter((_, i) => i !== at)],
];

for (const [what, change] of DEPARTURES) {
  Deno.test(`beginIteration() falls back to the online allocator on ${what}, and stays correct`, () => {
    const lines: string[] = [];
    const allocator = new HeapAllocator(new FakeDevice(), { log: (l) => lines.push(l) });
    const live = new Live();
    const sizes = sizesOf(2, 40);
    for (let run = 0; run < 6; run++) {
      allocator.beginIteration("k");
      // Runs 2 and 4 depart; the others follow the plan.
      const departs = run === 2 || run === 4;
      program(allocator, live, departs ? change(sizes, 5 + run * 3) : sizes, 3);
      allocator.endIteration();
      assert.equal(allocator.currentAllocatedMemory(), 0);
      assert.equal(allocator.memoryStats().blocks, 0, "no block lost");
    }
    const [plan] = allocator.plans();
    assert.equal(plan.departures, 2);
    assert.equal(lines.filter((l) => l.includes("departed from its plan")).length, 1);
    allocator.destroy();
  });
}

Deno.test("beginIteration() falls back when a block is freed later than recorded", () => {
  const allocator = new HeapAllocator(new FakeDevice(), { log: () => {} });
  const live = new Live();
  for (let run = 0; run < 3; run++) {
    allocator.beginIteration("late");
    const a = live.add(allocator.alloc(4096));
    const b = live.add(allocator.alloc(4096));
    // Recorded: free a, then c takes a's bytes, then free b. Run 2 frees b first, a after c.
    const [first, second] = run === 2 ? [b, a] : [a, b];
    live.free(allocator, first);
    const c = live.add(allocator.alloc(4096));
    live.free(allocator, second);
    live.free(allocator, c);
    allocator.endIteration();
  }
  assert.equal(allocator.plans()[0].departures, 1);
  allocator.destroy();
});

Deno.test("beginIteration() falls back when blocks are freed in another order", () => {
  const allocator = new HeapAllocator(new FakeDevice(), { log: () => {} });
  const live = new Live();
  for (let run = 0; run < 3; run++) {
    allocator.beginIteration("order");
    const a = live.add(allocator.alloc(4096));
    if (run === 2) {
      // Recorded: free a, then c takes its bytes. Here a is still live when c comes.
      const c = live.add(allocator.alloc(4096));
      live.free(allocator, a);
      live.free(allocator, c);
    } else {
      live.free(allocator, a);
      live.free(allocator, live.add(allocator.alloc(4096)));
    }
    allocator.endIteration();
  }
  assert.equal(allocator.plans()[0].departures, 1);
  allocator.destroy();
});

/**
 * Trap 1, as the test sees it: a block filled by `writeBuffer` must not share
 * a byte with a block freed since the last submit the device saw.
 */
class WriteModel {
  #freed: { buffer: GPUBuffer; offset: number; size: number; id: number }[] = [];
  #submits = 0;
  /** Checks each write as it lands on the device (under the allocator's watch of the queue). */
  constructor(readonly device: FakeDevice) {
    const land = device.queue.writeBuffer;
    device.queue.writeBuffer =
      ((buffer: GPUBuffer, offset: number, data: Uint8Array<ArrayBuffer>) => {
        this.#sync();
        for (const o of this.#freed) {
          const overlap = o.buffer === buffer && o.offset < offset + data.byteLength &&
            offset < o.offset + o.size;
          assert.ok(!overlap, `a write at ${offset} meets block #${o.id}, freed unsubmitted`);
        }
        land(buffer, offset, data);
      }) as GPUQueue["writeBuffer"];
  }
  #sync(): void {
    if (this.device.submits !== this.#submits) {
      this.#submits = this.device.submits;
      this.#freed = [];
    }
  }
  write(b: Block): void {
    this.device.queue.writeBuffer(b.buffer, b.offset, new Uint8Array(b.size));
  }
  free(allocator: HeapAllocator, b: Block): void {
    this.#sync();
    this.#freed.push({ buffer: b.buffer, offset: b.offset, size: b.size, id: b.id });
    allocator.free(b);
  }
}

Deno.test("beginIteration() keeps trap 1: a written block never takes bytes freed before the submit", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  const model = new WriteModel(device);
  const offsets: number[][] = [];
  for (let run = 0; run < 4; run++) {
    allocator.beginIteration("t1");
    const a = allocator.alloc(1 << 16);
    model.write(a);
    void a.buffer; // a dispatch reads a
    model.free(allocator, a);
    const b = allocator.alloc(1 << 16); // filled by a dispatch only: may take a's bytes
    void b.buffer;
    model.free(allocator, b);
    const c = allocator.alloc(1 << 16); // filled by writeBuffer: may not
    model.write(c);
    void c.buffer;
    model.free(allocator, c);
    allocator.submit();
    allocator.endIteration();
    offsets.push([a.offset, b.offset, c.offset]);
  }
  const [plan] = allocator.plans();
  assert.equal(plan.departures, 0);
  assert.equal(plan.safetySubmits, 0);
  assert.equal(offsets[3][1], offsets[3][0], "a block filled by dispatches shares freely");
  assert.equal(plan.size, 2 << 16, "the written block alone is kept apart");
  allocator.destroy();
});

Deno.test("beginIteration() begins a run with a submit where a written block spans every submit", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  const model = new WriteModel(device);
  for (let run = 0; run < 4; run++) {
    allocator.beginIteration("span");
    const a = allocator.alloc(1 << 16);
    model.write(a); // written before the submit, freed after it: meets its own last copy
    void a.buffer;
    allocator.submit();
    model.free(allocator, a);
    allocator.endIteration();
  }
  const [plan] = allocator.plans();
  assert.equal(plan.departures, 0);
  assert.equal(plan.safetySubmits, 2, "runs 2 and 3 begin with a submit (run 1 has a new arena)");
  allocator.destroy();
});

Deno.test("beginIteration() lets a run leave out a recorded submit with no write after it, not one with", () => {
  for (const writeAfter of [false, true]) {
    const device = new FakeDevice();
    const heap = new HeapAllocator(device, { log: () => {} });
    const model = new WriteModel(device);
    for (let run = 0; run < 4; run++) {
      heap.beginIteration("s");
      const a = heap.alloc(1 << 16);
      model.write(a);
      const b = heap.alloc(1 << 16); // filled by a dispatch that reads a
      void b.buffer;
      model.free(heap, a);
      // The recording submits here (as an allocator short of memory would); later runs do not.
      if (run === 0) heap.submit();
      const c = heap.alloc(1 << 16); // may take a's bytes: a was freed before the submit
      if (writeAfter) model.write(c);
      else void c.buffer;
      model.free(heap, b);
      model.free(heap, c);
      heap.submit();
      heap.endIteration();
    }
    const [plan] = heap.plans();
    // Written, c over a's bytes needs the submit: a run without it departs (and the
    // model sees no write meet a's bytes unsubmitted).
    assert.equal(plan.departures, writeAfter ? 3 : 0, `write after the submit: ${writeAfter}`);
    heap.destroy();
  }
});

Deno.test("beginIteration() submits before a write the recording did not see, and counts it", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device, { log: () => {} });
  const model = new WriteModel(device);
  for (let run = 0; run < 3; run++) {
    allocator.beginIteration("w");
    const a = allocator.alloc(1 << 16);
    void a.buffer;
    model.free(allocator, a);
    const b = allocator.alloc(1 << 16);
    // Recorded without a write: b takes a's bytes; run 2 writes it.
    if (run === 2) model.write(b);
    else void b.buffer;
    allocator.submit();
    model.free(allocator, b);
    allocator.endIteration();
  }
  const [plan] = allocator.plans();
  assert.equal(plan.unplannedWrites, 1);
  assert.equal(plan.safetySubmits, 1);
  assert.equal(plan.departures, 1);
  allocator.destroy();
});

Deno.test("beginIteration() and endIteration() reject misuse with our own errors", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  assert.throws(() => allocator.endIteration(), /Cannot end iteration: no iteration was begun/);
  for (const key of ["", 3, null, undefined]) {
    assert.throws(() => allocator.beginIteration(key as string), TypeError);
  }
  allocator.beginIteration("a");
  assert.throws(() => allocator.beginIteration("b"), /iteration "a" has not ended/);
  allocator.endIteration();
  assert.throws(() => allocator.endIteration(), /no iteration was begun/);
  allocator.destroy();
  assert.throws(() => allocator.beginIteration("a"), /destroyed/);
});

Deno.test("beginIteration() plans nothing past maxBufferSize, and its runs go online", () => {
  const allocator = new HeapAllocator(new FakeDevice({ limits: { maxBufferSize: 1 << 20 } }), {
    log: () => {},
  });
  const live = new Live();
  for (let run = 0; run < 3; run++) {
    allocator.beginIteration("big");
    const a = live.add(allocator.alloc(600 << 10));
    const b = live.add(allocator.alloc(600 << 10));
    live.free(allocator, a);
    live.free(allocator, b);
    allocator.endIteration();
  }
  const [plan] = allocator.plans();
  assert.match(plan.unplannable ?? "", /passes maxBufferSize/);
  assert.equal(plan.departures, 2);
  allocator.destroy();
});

Deno.test("startRecording() writes iter events that a replay with plan replans", async () => {
  const { replay } = await import("../allocator/tools/replay.ts");
  const allocator = new HeapAllocator(new FakeDevice());
  allocator.startRecording();
  const live = new Live();
  for (let run = 0; run < 3; run++) {
    allocator.beginIteration("r");
    program(allocator, live, sizesOf(4, 30), 5);
    allocator.endIteration();
  }
  const trace = allocator.stopRecording();
  allocator.destroy();
  const iters = trace.events.filter((e) => e[0] === "iter");
  assert.deepEqual(iters.map((e) => e[1]), ["r", null, "r", null, "r", null]);
  const online = replay(trace);
  const planned = replay(trace, { plan: true });
  assert.deepEqual(online.plans, []);
  assert.equal(planned.plans.length, 1);
  assert.equal(planned.plans[0].departures, 0);
  assert.equal(planned.peakAllocated, online.peakAllocated);
});

Deno.test("beginIteration() plans of keys that take turns share one arena", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  const model = new WriteModel(device);
  const live = new Live();
  live.model = model;
  const heaps = new Set<number>();
  for (let run = 0; run < 8; run++) {
    const key = run % 2 === 0 ? "small" : "large";
    allocator.beginIteration(key);
    // Written before the submit and freed after it: the next key's first write may meet it.
    const x = live.add(allocator.alloc(run % 2 === 0 ? 4096 : 65536));
    model.write(x);
    void x.buffer;
    allocator.submit();
    const made = program(allocator, live, sizesOf(run % 2, 20), 9);
    live.blocks.delete(x);
    model.free(allocator, x);
    allocator.endIteration();
    if (run >= 2) { for (const b of [x, ...made]) heaps.add(b.heapId); }
  }
  assert.equal(heaps.size, 1, "both keys' planned runs use one arena");
  const plans = allocator.plans();
  assert.deepEqual(plans.map((p) => p.departures), [0, 0]);
  // Where one key's first write meets what the other freed unsubmitted, its run submits first.
  assert.ok(plans.some((p) => p.safetySubmits > 0));
  allocator.destroy();
});

Deno.test("snapshot() shows a plan's arena with its live blocks, and sums agree with the stats", async () => {
  const { readSnapshot } = await import("../allocator/tools/read_snapshot.ts");
  const { memvizHtml } = await import("../allocator/tools/memviz.ts");
  const allocator = new HeapAllocator(new FakeDevice());
  for (let run = 0; run < 3; run++) {
    allocator.beginIteration("snap");
    const a = allocator.alloc(4096, { label: "a" });
    const b = allocator.alloc(8192, { label: "b" });
    if (run === 2) {
      const snapshot = readSnapshot(allocator.snapshot());
      const arena = snapshot.heaps.find((h) => h.id === a.heapId)!;
      const live = arena.blocks.filter((x) => x.state === "live");
      assert.deepEqual(live.map((x) => x.label).sort(), ["a", "b"]);
      const liveBytes = snapshot.heaps.flatMap((h) => h.blocks)
        .filter((x) => x.state === "live").reduce((n, x) => n + x.size, 0);
      assert.equal(liveBytes, allocator.currentAllocatedMemory());
      assert.equal(arena.blocks.reduce((n, x) => n + x.size, 0), arena.size);
      assert.match(memvizHtml(snapshot), /<svg/);
    }
    allocator.free(a);
    allocator.free(b);
    allocator.endIteration();
  }
  allocator.destroy();
});

Deno.test("emptyCache() releases the arenas no run holds, and a later run makes its arena again", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  const live = new Live();
  const run = () => {
    allocator.beginIteration("e");
    program(allocator, live, sizesOf(5, 20), 11);
    allocator.endIteration();
  };
  run();
  run();
  allocator.submit();
  allocator.emptyCache();
  assert.equal(allocator.driverAllocatedMemory(), 0, "nothing live, nothing pending: nothing held");
  run();
  assert.equal(allocator.plans()[0].departures, 0);
  assert.ok(allocator.driverAllocatedMemory() >= allocator.plans()[0].size);
  allocator.destroy();
});

Deno.test("beginIteration() keeps trap 1 on random runs of keys that take turns, stray and write unplanned", () => {
  const seen = { runs: 0, departures: 0, unplannedWrites: 0, safetySubmits: 0 };
  for (let seed = 1; seed <= 24; seed++) {
    const device = new FakeDevice();
    const allocator = new HeapAllocator(device, { log: () => {} });
    const model = new WriteModel(device);
    const live = new Live();
    live.model = model;
    const random = rng(seed);
    for (let run = 0; run < 40; run++) {
      const key = Math.floor(random() * 3);
      // A key's program is fixed by its own seed; a straying run leaves out submits and
      // writes blocks its recording did not write.
      const program = rng(1000 * seed + key);
      const strays = random() < 0.2;
      const mine: Block[] = [];
      allocator.beginIteration(`key ${key}`);
      for (let step = 0; step < 24; step++) {
        const r = program();
        if (r < 0.12) {
          if (!strays || random() < 0.5) allocator.submit();
        } else if (r < 0.45 && mine.length > 0) {
          live.free(allocator, mine.splice(Math.floor(program() * mine.length), 1)[0]);
        } else {
          const b = live.add(allocator.alloc(4 * (1 + Math.floor(program() * 4000))));
          mine.push(b);
          if (program() < 0.4 || (strays && random() < 0.3)) model.write(b);
          else void b.buffer;
        }
      }
      for (const b of mine) live.free(allocator, b);
      if (random() < 0.5) allocator.submit();
      allocator.endIteration();
    }
    for (const p of allocator.plans()) {
      seen.runs += p.runs;
      seen.departures += p.departures;
      seen.unplannedWrites += p.unplannedWrites;
      seen.safetySubmits += p.safetySubmits;
    }
    allocator.destroy();
  }
  // The model checked every write; these say the runs took every path.
  assert.ok(seen.departures > 0 && seen.departures < seen.runs / 2, JSON.stringify(seen));
  assert.ok(seen.unplannedWrites > 0 && seen.safetySubmits > 0, JSON.stringify(seen));
});

Deno.test("beginIteration() takes blocks the recording kept (packed weights) whether or not they come again", () => {
  // As a kernel packs a weight on first use: the recording allocates the packed copy, kept
  // past its end, just before a block of the same size or another that the iteration frees.
  // Run 3 packs again (a new job's weights); the others do not.
  for (const keptSize of [4096, 8192]) {
    const allocator = new HeapAllocator(new FakeDevice(), { log: () => {} });
    const kept: Block[] = [];
    for (let run = 0; run < 6; run++) {
      allocator.beginIteration("packed");
      const x = allocator.alloc(8192);
      if (run === 0 || run === 3) kept.push(allocator.alloc(keptSize));
      const y = allocator.alloc(8192);
      const z = allocator.alloc(2048);
      for (const b of [x, y, z]) allocator.free(b);
      allocator.endIteration();
    }
    const [plan] = allocator.plans();
    // A block of the kept one's size right after it stays online: a run cannot tell them apart.
    const online = keptSize === 8192 ? 2 : 1;
    assert.deepEqual(
      [plan.runs, plan.unplanned, plan.departures],
      [6, online, 0],
      `kept ${keptSize}`,
    );
    for (const b of kept) allocator.free(b);
    allocator.destroy();
  }
});

Deno.test("beginIteration() records with submits, not heaps grown to twice the peak", () => {
  const KiB = 1024;
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device, { submitWhenShort: true });
  allocator.beginIteration("recorded");
  // Each round's blocks are read by recorded work: their bytes come back at a submit.
  for (let round = 0; round < 3; round++) {
    const blocks = [0, 1, 2, 3].map(() => allocator.alloc(32 * KiB));
    for (const b of blocks) {
      void b.buffer;
      allocator.free(b);
    }
  }
  allocator.endIteration();
  // Online, the second round would take a second heap (within twice the peak) and no submit.
  assert.equal(device.createBufferCalls, 1, "one heap: each round reuses the last one's bytes");
  assert.equal(device.submits, 2);
  allocator.destroy();
});

Deno.test("beginIteration() releases idle arenas when a new key records", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  const live = new Live();
  const run = (key: string, seed: number) => {
    allocator.beginIteration(key);
    program(allocator, live, sizesOf(seed, 20), 11);
    allocator.endIteration();
  };
  run("a", 1);
  allocator.emptyCache(); // the recording's own heaps: what stays is the arena alone
  run("a", 1);
  allocator.submit();
  const arena = allocator.plans()[0].size;
  assert.ok(allocator.driverAllocatedMemory() >= arena);
  allocator.beginIteration("b");
  assert.equal(allocator.driverAllocatedMemory(), 0, "the arena went before the recording");
  program(allocator, live, sizesOf(2, 20), 11);
  allocator.endIteration();
  run("a", 1);
  run("b", 2);
  assert.deepEqual(allocator.plans().map((p) => p.departures), [0, 0]);
  allocator.destroy();
});
