// The shared budget on its own (reserve/release, slots, pressure, published
// figures), across real Worker threads, and under HeapAllocators on the fake
// device: no GPU needed.
import assert from "node:assert/strict";
import { AllocatorError, FakeDevice, HeapAllocator, OutOfMemoryError } from "../mod.ts";
import {
  type BudgetShare,
  SharedBudget,
  SharedBudgetError,
} from "../kernels/workers/shared_budget.ts";
import { BUDGET_RELIEVE_MS, MiB } from "../allocator/constants.ts";
import type { BudgetWorkerTask } from "./testdata/budget_worker.ts";
import { rng } from "./_util.ts";

function startWorker(task: BudgetWorkerTask): { worker: Worker; messages: AsyncIterator<unknown> } {
  const worker = new Worker(new URL("./testdata/budget_worker.ts", import.meta.url), {
    type: "module",
  });
  const queue: unknown[] = [];
  const waiting: ((v: IteratorResult<unknown>) => void)[] = [];
  worker.onmessage = (e) => {
    const next = waiting.shift();
    if (next) next({ value: e.data, done: false });
    else queue.push(e.data);
  };
  worker.postMessage(task);
  return {
    worker,
    messages: {
      next: () =>
        queue.length > 0
          ? Promise.resolve({ value: queue.shift(), done: false })
          : new Promise((resolve) => waiting.push(resolve)),
    },
  };
}

Deno.test("SharedBudget.reserve() and release() are exact, and the limit refuses what does not fit", () => {
  const budget = new SharedBudget({ limit: "10MiB" });
  const a = budget.claim("a");
  const b = budget.claim("b");
  assert.equal(budget.limit, 10 * MiB);
  assert.ok(a.reserve(4 * MiB));
  assert.ok(b.reserve(6 * MiB));
  assert.equal(budget.reserved, 10 * MiB);
  assert.equal(a.reserve(1), false, "one byte over the limit");
  assert.equal(budget.refusals, 1);
  assert.equal(budget.reserved, 10 * MiB, "a refusal takes nothing");
  a.release(4 * MiB);
  assert.ok(b.reserve(3 * MiB));
  assert.deepEqual(
    budget.shares().map((s) => [s.label, s.reserved, s.peakReserved]),
    [["a", 0, 4 * MiB], ["b", 9 * MiB, 9 * MiB]],
  );
  b.release(9 * MiB);
  assert.equal(budget.reserved, 0);
  assert.equal(budget.peakReserved, 10 * MiB);
  assert.throws(() => a.reserve(-1), RangeError);
  assert.throws(() => a.reserve(1.5), RangeError);
  a.detach();
  b.detach();
});

Deno.test("SharedBudget.reserve() keeps byte counts past 2^32 exact", () => {
  const budget = new SharedBudget({ limit: 2 ** 40 });
  const a = budget.claim();
  assert.ok(a.reserve(2 ** 33 + 7));
  assert.ok(a.reserve(2 ** 35));
  assert.equal(budget.reserved, 2 ** 33 + 7 + 2 ** 35);
  a.release(2 ** 35);
  assert.equal(budget.reserved, 2 ** 33 + 7);
  a.detach();
  assert.equal(budget.reserved, 0);
});

Deno.test("SharedBudget.claim() hands a slot out once; detach() or reclaim() gives it back for reuse", () => {
  const budget = new SharedBudget({ slots: 3 });
  const views = [budget.claim("w1"), budget.claim("w2"), budget.claim("w3")];
  assert.deepEqual(views.map((v) => v.slot), [0, 1, 2]);
  assert.throws(() => budget.claim("w4"), AllocatorError);
  views[1].reserve(5000);
  // A Worker that died: the main thread gives its slot back, reservation and all.
  assert.equal(budget.reclaim(1), 5000);
  assert.equal(budget.reserved, 0);
  assert.equal(budget.reclaim(1), 0, "reclaiming a free slot does nothing");
  assert.throws(() => views[1].reserve(1), /was given back/);
  views[1].release(5000); // a late release from the dead sharer is ignored
  assert.equal(budget.reserved, 0);
  const again = budget.claim("w5");
  assert.equal(again.slot, 1);
  assert.deepEqual(
    budget.shares().map((s) => [s.slot, s.label, s.reserved]),
    [[0, "w1", 0], [1, "w5", 0], [2, "w3", 0]],
  );
  views[0].detach();
  views[0].detach(); // twice: nothing
  assert.throws(() => budget.reclaim(3), RangeError);
  const last = budget.claim();
  assert.equal(last.slot, 0, "the detached slot");
  assert.throws(() => budget.claim(), /all 3 are taken/);
  for (const v of [again, views[2], last]) v.detach();
  assert.deepEqual(budget.shares(), []);
});

Deno.test("SharedBudget.from() rebuilds a view from the buffer, and checks it", () => {
  const budget = new SharedBudget({ limit: 1 << 20 });
  const slot = budget.claim("worker").slot;
  const view = SharedBudget.from(budget.buffer, slot);
  assert.equal(view.slot, slot);
  assert.equal(view.limit, 1 << 20);
  assert.ok(view.reserve(100));
  assert.equal(budget.shares()[0].reserved, 100);
  assert.throws(() => SharedBudget.from(new SharedArrayBuffer(4096)), TypeError);
  assert.throws(() => SharedBudget.from(budget.buffer, slot + 1), /not claimed/);
  const unbound = SharedBudget.from(budget.buffer);
  assert.throws(() => unbound.reserve(1), /has no slot/);
  assert.throws(() => new SharedBudget({ slots: 0 }), RangeError);
  assert.throws(() => new SharedBudget({ limit: "lots" }), RangeError);
  view.detach();
  assert.equal(budget.reserved, 0);
});

Deno.test("SharedBudget.claim() cuts a long label at a character boundary", () => {
  const budget = new SharedBudget();
  const v = budget.claim("é".repeat(40)); // 80 bytes of UTF-8
  const label = budget.shares()[0].label;
  assert.ok(label.length > 0 && [...label].every((c) => c === "é"));
  v.detach();
});

Deno.test("SharedBudget.pressured() sees each raise once in every other sharer, not in the one that raised it", () => {
  const budget = new SharedBudget({ limit: 8 * MiB });
  const [a, b, c] = [budget.claim("a"), budget.claim("b"), budget.claim("c")];
  assert.ok(a.reserve(8 * MiB));
  assert.equal(b.pressured(), false);
  // Nobody releases (this thread is the only one): relieve waits its bounded time and gives up.
  const t0 = performance.now();
  assert.equal(c.relieve(MiB), false);
  const waited = performance.now() - t0;
  assert.ok(
    waited >= BUDGET_RELIEVE_MS - 5 && waited < BUDGET_RELIEVE_MS + 200,
    `waited ${waited} ms`,
  );
  assert.ok(budget.pressureEvents > 0);
  assert.equal(a.pressured(), true);
  assert.equal(a.pressured(), false, "once per raise");
  assert.equal(b.pressured(), true);
  assert.equal(c.pressured(), false, "the raiser is not asked");
  a.release(8 * MiB);
  for (const v of [a, b, c]) v.detach();
});

Deno.test("SharedBudget.relieve() returns at once when nobody else holds memory or there is no limit", () => {
  const unlimited = new SharedBudget().claim();
  assert.equal(unlimited.relieve(MiB), false, "no limit");
  unlimited.detach();
  const budget = new SharedBudget({ limit: MiB });
  const alone = budget.claim();
  const t0 = performance.now();
  assert.equal(alone.relieve(2 * MiB), false, "nobody else holds anything");
  assert.ok(performance.now() - t0 < 50);
  alone.detach();
});

Deno.test("SharedBudget.relieve() neither waits nor raises pressure when the bytes fit", () => {
  const budget = new SharedBudget({ limit: 16 * MiB });
  const other = budget.claim("other");
  const me = budget.claim("me");
  assert.ok(other.reserve(8 * MiB)); // another sharer holds memory: waiting could help, were it the budget
  // It fits: one retry, in case a release made the room; then no more.
  assert.equal(me.relieve(MiB), true);
  assert.equal(me.relieve(MiB), false, "fits, and nothing released since the retry");
  assert.equal(me.pressured(), false);
  assert.equal(budget.pressureEvents, 0);
  assert.equal(other.pressured(), false, "nobody's cache is emptied for nothing");
  other.release(8 * MiB);
  for (const v of [other, me]) v.detach();
});

Deno.test("SharedBudget.relieve() lets an allocator's own watermark refusal fail fast, and leaves the others' caches alone", () => {
  const budget = new SharedBudget({ limit: "64MiB" });
  const keep = "max_reserved_ratio:0";
  const other = new HeapAllocator(new FakeDevice(), {
    budget: budget.claim("other"),
    allocConf: keep,
  });
  other.free(other.alloc(4096)); // a cached small heap
  const cached = other.memoryStats().pools.small.reservedBytes.current;
  assert.ok(cached > 0);
  const capped = new HeapAllocator(new FakeDevice(), {
    budget: budget.claim("capped"),
    highWatermark: "2MiB",
  });
  // A small heap sized to what it holds would cross the watermark as it grows (the budget has
  // room): a heap just large enough serves.
  const blocks = Array.from({ length: 10 }, () => capped.alloc(64 * 1024));
  assert.equal(capped.memoryStats().reservedBytes.current, 10 * 64 * 1024);
  assert.equal(budget.pressureEvents, 0, "no sharer was asked to release");
  assert.equal(other.memoryStats().pools.small.reservedBytes.current, cached);
  other.scalar(1); // its next allocation: no pressure seen, the cache stays
  assert.equal(other.memoryStats().pools.small.reservedBytes.current, cached);
  for (const b of blocks) capped.free(b);
  capped.destroy();
  other.destroy();
  assert.equal(budget.reserved, 0);
});

Deno.test("SharedBudget.available and sharers say what an allocator sizing heaps to the budget can count on", () => {
  assert.equal(new SharedBudget().available, Infinity);
  const budget = new SharedBudget({ limit: 10 * MiB, slots: 4 });
  assert.equal(budget.sharers, 0);
  const a = budget.claim("a");
  const b = budget.claim("b");
  assert.equal(budget.sharers, 2);
  assert.ok(a.reserve(3 * MiB));
  assert.equal(budget.available, 7 * MiB);
  assert.equal(b.available, 7 * MiB, "the same from every view");
  assert.ok(b.reserve(7 * MiB));
  assert.equal(budget.available, 0);
  a.detach();
  assert.equal(budget.sharers, 1);
  assert.equal(budget.available, 3 * MiB, "a detached slot's reservation comes back");
  b.detach();
  assert.equal(budget.sharers, 0);
  assert.equal(budget.available, 10 * MiB);
});

Deno.test("SharedBudget.detach() gives back only its own claim, so an owner and its Worker may both call it", () => {
  const budget = new SharedBudget({ slots: 1 });
  const owner = budget.claim("worker 1");
  const worker = SharedBudget.from(budget.buffer, owner.slot); // the Worker's view of the same claim
  assert.ok(worker.reserve(4096));
  assert.equal(worker.detach(), 4096, "the Worker gives its slot back first");
  const next = budget.claim("worker 2"); // the slot is claimed again
  assert.equal(next.slot, owner.slot);
  assert.ok(next.reserve(100));
  assert.equal(owner.detach(), 0, "the owner's late detach leaves the new claim alone");
  assert.deepEqual(budget.shares().map((s) => [s.label, s.reserved]), [["worker 2", 100]]);
  assert.equal(next.detach(), 100);
  assert.deepEqual(budget.shares(), []);
});

Deno.test("SharedBudget.relieve() wakes when another thread releases", async () => {
  const budget = new SharedBudget({ limit: 16 * MiB });
  const slot = budget.claim("holder").slot;
  const { worker, messages } = startWorker({
    mode: "hold",
    budget: budget.buffer,
    slot,
    bytes: 12 * MiB,
  });
  try {
    assert.deepEqual((await messages.next()).value, { holding: 12 * MiB });
    const me = budget.claim("main");
    assert.equal(me.reserve(8 * MiB), false);
    const t0 = performance.now();
    // Blocks this thread; the Worker, on its own thread, sees the flag and releases.
    assert.equal(me.relieve(8 * MiB), true);
    assert.ok(performance.now() - t0 < BUDGET_RELIEVE_MS, "woken by the release, not the timeout");
    assert.ok(me.reserve(8 * MiB));
    assert.deepEqual((await messages.next()).value, { released: 12 * MiB });
    me.release(8 * MiB);
    me.detach();
    assert.equal(budget.reserved, 0);
  } finally {
    worker.terminate();
  }
});

Deno.test("SharedBudget.reserve() from 4 Workers at random never crosses the limit, and everything comes back", async () => {
  const limit = MiB;
  const budget = new SharedBudget({ limit });
  const runs = [0, 1, 2, 3].map((i) =>
    startWorker({
      mode: "random",
      budget: budget.buffer,
      slot: budget.claim(`w${i}`).slot,
      steps: 20000,
      seed: i + 1,
    })
  );
  try {
    const results = await Promise.all(runs.map((r) => r.messages.next()));
    const refused = results.reduce((a, r) => a + (r.value as { refused: number }).refused, 0);
    assert.ok(refused > 0, "the limit was reached");
    assert.ok(budget.peakReserved <= limit, `peak ${budget.peakReserved} > limit ${limit}`);
    assert.equal(budget.reserved, 0);
    assert.deepEqual(budget.shares(), []);
  } finally {
    for (const r of runs) r.worker.terminate();
  }
});

Deno.test("SharedBudget.publish() shows an allocator's live figures in its slot", () => {
  const budget = new SharedBudget();
  const view = budget.claim("heap");
  const heap = new HeapAllocator(new FakeDevice(), { budget: view });
  const a = heap.alloc(1000);
  const b = heap.alloc(3 * MiB);
  heap.free(a);
  const c = heap.alloc(1000); // from the cache
  const stats = heap.memoryStats();
  const share: BudgetShare = budget.shares()[0];
  assert.equal(share.allocated, stats.allocatedBytes.current);
  assert.equal(share.peakAllocated, stats.allocatedBytes.peak);
  assert.equal(share.reserved, stats.reservedBytes.current);
  assert.equal(share.heaps, stats.heaps);
  assert.equal(share.blocks, 2);
  assert.equal(share.allocations, 3);
  assert.equal(share.cacheHits, stats.cacheHits);
  assert.equal(budget.allocated, stats.allocatedBytes.current);
  assert.equal(budget.reserved, heap.driverAllocatedMemory());
  heap.free(b);
  heap.free(c);
  assert.equal(budget.allocated, 0);
  heap.destroy();
  view.detach();
  assert.equal(budget.reserved, 0);
  assert.equal(budget.peakAllocated, stats.allocatedBytes.peak);
});

Deno.test("SharedBudget.describe() names each sharer in an allocator's OOM, and pressure empties the other's cache", () => {
  const budget = new SharedBudget({ limit: 4 * MiB });
  const keep = "max_reserved_ratio:0"; // keep every cached heap, as MPS does
  const a = new HeapAllocator(new FakeDevice(), {
    budget: budget.claim("worker a"),
    allocConf: keep,
  });
  const b = new HeapAllocator(new FakeDevice(), {
    budget: budget.claim("worker b"),
    allocConf: keep,
  });
  a.free(a.alloc(1 * MiB)); // a keeps an idle 1 MiB small heap
  assert.equal(budget.reserved, 1 * MiB);
  // b needs 3.5 MiB: no heap fits beside a's cache, and a (on this thread) cannot release meanwhile.
  let message = "";
  try {
    b.alloc(3.5 * MiB);
  } catch (error) {
    assert.ok(error instanceof OutOfMemoryError);
    message = error.message;
  }
  assert.match(message, /max allowed: 4\.00 MiB/);
  assert.match(message, /worker a 1\.00 MiB reserved, 0 B allocated/);
  assert.match(message, /worker b \(this one\) 0 B reserved/);
  // a's next allocation sees the flag b raised and releases its cache first.
  const s = a.scalar(1);
  assert.equal(a.memoryStats().pools.small.reservedBytes.current, 0);
  const big = b.alloc(3.5 * MiB);
  assert.ok(budget.reserved <= 4 * MiB);
  a.free(s);
  b.free(big);
  a.destroy();
  b.destroy();
  assert.equal(budget.reserved, 0);
});

// ---- shared memory as untrusted input: any sharer may write anything into the buffer ----

/** The 8-byte words of the buffer that `act` changes: where its figures live, found without the layout. */
function wordsWrittenBy(buffer: SharedArrayBuffer, act: () => void): number[] {
  const before = new BigInt64Array(buffer).slice();
  act();
  const after = new BigInt64Array(buffer);
  return [...after.keys()].filter((i) => after[i] !== before[i]);
}

/** The same, 4 bytes at a time. */
function int32sWrittenBy(buffer: SharedArrayBuffer, act: () => void): number[] {
  const before = new Int32Array(buffer).slice();
  act();
  const after = new Int32Array(buffer);
  return [...after.keys()].filter((i) => after[i] !== before[i]);
}

function scribble(buffer: SharedArrayBuffer, words: number[], value: number | bigint): void {
  for (const i of words) {
    if (typeof value === "bigint") new BigInt64Array(buffer)[i] = value;
    else new Float64Array(buffer)[i] = value;
  }
}

Deno.test("SharedBudget.reclaim() and detach() free a slot whose published figures were overwritten with non-integers", () => {
  for (const bad of [1.5, NaN, -Infinity, -3]) {
    for (const end of ["reclaim", "detach"] as const) {
      const budget = new SharedBudget({ limit: 64 * MiB, slots: 2 });
      const owner = budget.claim("worker");
      const heap = new HeapAllocator(new FakeDevice(), {
        budget: SharedBudget.from(budget.buffer, owner.slot),
      });
      heap.alloc(4096); // makes the heap
      const held = budget.reserved;
      // A second block from the same heap: only the published figures change.
      scribble(budget.buffer, wordsWrittenBy(budget.buffer, () => heap.alloc(4096)), bad);
      const slot = owner.slot;
      const given = end === "reclaim" ? budget.reclaim(slot) : owner.detach();
      assert.equal(given, held, `${end} after ${bad}: the slot's reservation comes back`);
      assert.equal(budget.sharers, 0, `${end} after ${bad}: the slot is free`);
      assert.equal(budget.reserved, 0);
      assert.equal(budget.allocated, 0);
      const next = budget.claim("next");
      assert.equal(next.slot, slot, "and can be claimed again");
      assert.deepEqual(budget.shares().map((s) => [s.label, s.reserved, s.allocated]), [[
        "next",
        0,
        0,
      ]]);
      next.detach();
    }
  }
});

Deno.test("SharedBudget: a Worker's allocator bound to a slot with a NaN published figure still allocates, and republishes", () => {
  const budget = new SharedBudget({ limit: 64 * MiB });
  const slot = budget.claim("worker").slot;
  const first = new HeapAllocator(new FakeDevice(), {
    budget: SharedBudget.from(budget.buffer, slot),
  });
  first.alloc(4096);
  const words = wordsWrittenBy(budget.buffer, () => first.alloc(4096));
  first.destroy();
  scribble(budget.buffer, words, NaN);
  // A Worker that binds now, as a restarted one would, then allocates and frees.
  const heap = new HeapAllocator(new FakeDevice(), {
    budget: SharedBudget.from(budget.buffer, slot),
  });
  const block = heap.alloc(MiB);
  assert.equal(budget.shares()[0].allocated, block.size);
  assert.equal(budget.allocated, block.size);
  heap.free(block);
  assert.equal(budget.allocated, 0);
  heap.destroy();
  budget.reclaim(slot);
  assert.equal(budget.reserved, 0);
});

Deno.test("SharedBudget.allocated comes back to 0 when a dying sharer's late publish lands in a slot claimed again", () => {
  const budget = new SharedBudget({ slots: 2 });
  const old = budget.claim("old worker");
  const neighbour = budget.claim("neighbour");
  const [dying, other] = [old, neighbour].map((v) =>
    new HeapAllocator(new FakeDevice(), { budget: SharedBudget.from(budget.buffer, v.slot) })
  );
  dying.alloc(MiB);
  other.alloc(MiB);
  // The slot's own words: those a publish writes in it and not in the neighbour's.
  const theirs = new Set(wordsWrittenBy(budget.buffer, () => other.alloc(4096)));
  const words = wordsWrittenBy(budget.buffer, () => dying.alloc(5 * MiB))
    .filter((i) => !theirs.has(i));
  const late = new BigInt64Array(budget.buffer).slice();
  const oldSlot = old.slot;
  assert.ok(old.detach() > 0, "the pool gives the slot back");
  // The Worker was not yet stopped: its last publish lands after the slot was claimed again.
  const slot = budget.claim("new worker").slot;
  assert.equal(slot, oldSlot);
  for (const i of words) new BigInt64Array(budget.buffer)[i] = late[i];
  const heap = new HeapAllocator(new FakeDevice(), {
    budget: SharedBudget.from(budget.buffer, slot),
  });
  heap.free(heap.alloc(MiB));
  heap.destroy();
  budget.reclaim(slot);
  other.destroy();
  neighbour.detach();
  assert.equal(budget.allocated, 0, "no sharer left: nothing allocated");
  assert.equal(budget.reserved, 0);
});

Deno.test("SharedBudget: a total overwritten with -2^62 does not let a sharer past the limit", () => {
  const limit = 64 * MiB;
  const budget = new SharedBudget({ limit });
  const me = budget.claim("me");
  const words = wordsWrittenBy(budget.buffer, () => assert.ok(me.reserve(4 * MiB)));
  scribble(budget.buffer, words, -(2n ** 62n));
  let granted = 4 * MiB;
  for (let i = 0; i < 40; i++) {
    try {
      if (me.reserve(2 * MiB)) granted += 2 * MiB;
    } catch (error) {
      assert.ok(error instanceof AllocatorError, `untyped: ${error}`);
    }
    assert.ok(granted <= limit, `granted ${granted} of a ${limit} limit`);
  }
});

Deno.test("SharedBudget: a slot whose token was zeroed gives its bytes back when its owner detaches", () => {
  const budget = new SharedBudget({ limit: 64 * MiB, slots: 2 });
  let worker!: SharedBudget;
  const claimed = int32sWrittenBy(budget.buffer, () => worker = budget.claim("worker"));
  const inWorker = SharedBudget.from(budget.buffer, worker.slot);
  const reserving = new Set(int32sWrittenBy(budget.buffer, () => inWorker.reserve(14 * MiB)));
  // Everything the claim wrote (its token first) but the reservation's own bytes.
  for (const i of claimed) if (!reserving.has(i)) new Int32Array(budget.buffer)[i] = 0;
  // Nobody else may take the 14 MiB while the owner still holds it: refused, or an error naming
  // the slot.
  const other = budget.claim("other");
  let granted = false;
  try {
    granted = other.reserve(60 * MiB);
  } catch (error) {
    assert.ok(error instanceof SharedBudgetError, `untyped: ${error}`);
    assert.equal(error.slot, worker.slot);
  }
  assert.equal(granted, false, "the zeroed slot's bytes still count");
  worker.detach(); // the pool, once the Worker ended
  assert.ok(other.reserve(60 * MiB), "its bytes came back");
  other.release(60 * MiB);
  other.detach();
  assert.equal(budget.reserved, 0);
  assert.equal(budget.sharers, 0);
});

Deno.test("SharedBudget: sharers keep the limit and get only typed errors while a Worker scribbles over the budget's memory", async () => {
  const limit = 64 * MiB;
  const budget = new SharedBudget({ limit, slots: 6 });
  let sharers = [0, 1, 2].map((i) => {
    const pool = budget.claim(`sharer ${i}`);
    return { pool, view: SharedBudget.from(budget.buffer, pool.slot), held: 0 };
  });
  const control = new Int32Array(new SharedArrayBuffer(8)); // [stop, scribbles so far]
  const { worker, messages } = startWorker({
    mode: "scribble",
    budget: budget.buffer,
    seed: 11,
    control: control.buffer,
  });
  try {
    await messages.next(); // scribbling from now on, on its own thread
    const random = rng(5);
    let refused = 0;
    // Until 300 scribbles have landed (or 10 s, on a starved machine).
    for (const t0 = performance.now(); Atomics.load(control, 1) < 300;) {
      assert.ok(performance.now() - t0 < 10_000, "the scribbling Worker did not run");
      const s = sharers[Math.floor(random() * sharers.length)];
      if (random() < 0.6) {
        const bytes = (1 + Math.floor(random() * 4096)) * 4096;
        try {
          if (s.view.reserve(bytes)) s.held += bytes;
        } catch (error) {
          assert.ok(error instanceof AllocatorError, `untyped: ${error}`);
          refused++;
        }
      } else {
        const bytes = Math.floor(random() * (s.held + 1));
        s.view.release(bytes);
        s.held -= bytes;
      }
      assert.ok(s.held <= limit, `a sharer holds ${s.held} of a ${limit} limit`);
      const total = sharers.reduce((a, t) => a + t.held, 0);
      assert.ok(total <= limit, `the sharers hold ${total} of a ${limit} limit`);
    }
    Atomics.store(control, 0, 1);
    const { scribbles } = (await messages.next()).value as { scribbles: number };
    assert.ok(scribbles > 0 && refused > 0, `${scribbles} scribbles, ${refused} typed errors`);
    // The scribbling over: each sharer's next call mends its slot; the rest are reclaimed, and
    // a sharer that lost its slot ends (its pool detaches it).
    for (const s of sharers) s.view.release(0);
    const held = new Set(sharers.map((s) => s.pool.slot));
    for (let slot = 0; slot < budget.slots; slot++) if (!held.has(slot)) budget.reclaim(slot);
    sharers = sharers.filter((s) => {
      try {
        s.view.reserve(0);
        return true;
      } catch (error) {
        assert.ok(error instanceof AllocatorError, `untyped: ${error}`);
        s.pool.detach();
        return false;
      }
    });
    assert.equal(budget.reserved, sharers.reduce((a, s) => a + s.held, 0));
    assert.deepEqual(
      budget.shares().map((share) => share.reserved),
      sharers.map((s) => s.held),
    );
    for (const s of sharers) {
      s.view.release(s.held);
      s.pool.detach();
    }
    assert.equal(budget.reserved, 0);
    assert.equal(budget.sharers, 0);
  } finally {
    worker.terminate();
  }
});
