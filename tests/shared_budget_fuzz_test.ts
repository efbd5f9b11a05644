// Seeded scribbles into a shared budget's memory between the calls of several
// sharers attached to one SharedArrayBuffer (as Workers would be, on one
// thread here so that every step can be checked): random 1, 4 and 8-byte
// writes anywhere, of integers, NaN, infinities, fractions and huge values.
// After every step: nothing but our typed errors was thrown, no sharer holds
// more than the limit and all of them together neither, and a dead sharer's
// slot, reclaimed, can be claimed again. Once the scribbling stops and each
// sharer has made one call (which mends its own slot) and the dead slots are
// reclaimed, the totals equal what the sharers hold, exactly, at every step.
// GPUHEAP_BUDGET_FUZZ_STEPS sets the steps per seed (default 20,000).
import assert from "node:assert/strict";
import { AllocatorError } from "../mod.ts";
import { SharedBudget } from "../kernels/workers/shared_budget.ts";
import { emptyPoolCounters, type PoolCounters } from "../allocator/stats.ts";
import { readEnv } from "../allocator/config.ts";
import { rng } from "./_util.ts";

const STEPS = Number(readEnv("GPUHEAP_BUDGET_FUZZ_STEPS") ?? 20_000);
const MiB = 1 << 20;
const LIMIT = 64 * MiB;
const SLOTS = 6;
const SHARERS = 4;

interface Sharer {
  /** The claimer's view (the pool's), which detaches the slot when the sharer ends. */
  pool: SharedBudget;
  /** The sharer's own view, as a Worker rebuilds it. */
  view: SharedBudget;
  slot: number;
  /** Bytes its reservations were granted and not yet released: the truth the budget must hold. */
  held: number;
  /** What it last published as allocated. */
  allocated: number;
}

/** Typed errors seen: the scribbles reached the figures. */
let refusedGarbage = 0;

/** Runs `act`; our typed errors are expected answers to garbage, anything else fails the test. */
function typed<T>(act: () => T, where: string): T | undefined {
  try {
    return act();
  } catch (error) {
    assert.ok(error instanceof AllocatorError, `${where}: untyped ${error}`);
    refusedGarbage++;
    return undefined;
  }
}

function counters(allocated: number): PoolCounters {
  const c = emptyPoolCounters();
  c.allocated.current = allocated;
  c.allocated.peak = allocated;
  c.blocks = allocated > 0 ? 1 : 0;
  return c;
}

/**
 * One random write of 1, 4 or 8 bytes: half of them at a word the sharers' calls were seen
 * to change (`hot`, found without knowing the layout), the others anywhere.
 */
function scribble(buffer: SharedArrayBuffer, hot: number[], random: () => number): string {
  const pick = <T>(values: T[]) => values[Math.floor(random() * values.length)];
  const word = () =>
    hot.length > 0 && random() < 0.5 ? pick(hot) : Math.floor(random() * (buffer.byteLength / 8));
  const kind = Math.floor(random() * 4);
  if (kind === 0) {
    const at = word();
    const value = pick([
      0n,
      -1n,
      -(2n ** 62n),
      2n ** 62n,
      BigInt(Math.floor(random() * 2 ** 30)),
      BigInt(LIMIT),
      BigInt.asIntN(64, BigInt(Math.floor(random() * 2 ** 32)) << 32n | 12345n),
    ]);
    new BigInt64Array(buffer)[at] = value;
    return `BigInt64[${at}] = ${value}`;
  }
  if (kind === 1) {
    const at = word();
    const value = pick([1.5, NaN, -Infinity, Infinity, -3, 2 ** 53, random() * 1e9, 0]);
    new Float64Array(buffer)[at] = value;
    return `Float64[${at}] = ${value}`;
  }
  if (kind === 2) {
    const at = word() * 2 + Math.floor(random() * 2);
    const value = pick([0, -1, -2, -5, 2 ** 31 - 1, 1 + Math.floor(random() * 100)]);
    new Int32Array(buffer)[at] = value;
    return `Int32[${at}] = ${value}`;
  }
  const at = word() * 8 + Math.floor(random() * 8);
  const value = Math.floor(random() * 256);
  new Uint8Array(buffer)[at] = value;
  return `Uint8[${at}] = ${value}`;
}

function fuzz(seed: number, steps: number): void {
  const random = rng(seed);
  const budget = new SharedBudget({ limit: LIMIT, slots: SLOTS });
  const sharers: Sharer[] = [];
  const start = (where: string) => {
    const pool = typed(() => budget.claim(`sharer ${sharers.length}`), where);
    if (!pool) return;
    const view = SharedBudget.from(budget.buffer, pool.slot);
    sharers.push({ pool, view, slot: pool.slot, held: 0, allocated: 0 });
  };
  /** The pool gives a dead sharer's slot back: its heaps are gone, and so must its bytes be. */
  const end = (s: Sharer, where: string) => {
    sharers.splice(sharers.indexOf(s), 1);
    if (random() < 0.5) s.pool.detach();
    else budget.reclaim(s.slot);
    // The slot is free again: a new sharer can always be started now.
    const before = sharers.length;
    start(`${where}: claim after reclaim`);
    assert.equal(sharers.length, before + 1, `${where}: the reclaimed slot could not be claimed`);
  };
  for (let i = 0; i < SHARERS; i++) start("start");
  const quiet = Math.floor(steps * 0.7); // scribbling stops here
  let last = "";
  const words = new BigInt64Array(budget.buffer);
  const hot = new Set<number>();
  for (let step = 0; step < steps; step++) {
    const where = `seed ${seed} step ${step} (last scribble: ${last})`;
    if (step === quiet) {
      // Each sharer makes one call, which mends its own slot; one that lost its slot to a
      // scribbled token ends. Then every slot no sharer holds is reclaimed.
      for (const s of sharers) {
        s.view.release(0);
        s.view.publish(counters(s.allocated));
      }
      const held = new Set(sharers.map((s) => s.slot));
      for (let slot = 0; slot < SLOTS; slot++) if (!held.has(slot)) budget.reclaim(slot);
      for (const s of [...sharers]) {
        if (typed(() => s.view.reserve(0), where) === undefined) end(s, where);
      }
    }
    const s = sharers[Math.floor(random() * sharers.length)];
    const op = random();
    const before = words.slice();
    if (step < quiet && op < 0.25) {
      last = scribble(budget.buffer, [...hot], random);
    } else if (op < 0.55) {
      const bytes = (1 + Math.floor(random() * 4096)) * 4096;
      if (typed(() => s.view.reserve(bytes), where)) s.held += bytes;
    } else if (op < 0.65) {
      const bytes = Math.floor(random() * (s.held + 1) * random());
      s.view.release(bytes);
      s.held -= bytes;
    } else if (op < 0.8) {
      s.allocated = Math.floor(random() * (s.held + 1));
      s.view.publish(counters(s.allocated));
    } else if (op < 0.95) {
      typed(() => budget.shares(), where);
      typed(() => budget.reserved + budget.allocated + budget.available, where);
      assert.equal(typeof budget.describe(), "string");
    } else {
      end(s, where);
    }
    if (op >= 0.25) { for (const [i, w] of words.entries()) if (w !== before[i]) hot.add(i); }
    let total = 0;
    for (const t of sharers) {
      assert.ok(t.held <= LIMIT, `${where}: a sharer holds ${t.held} of a ${LIMIT} limit`);
      total += t.held;
    }
    assert.ok(total <= LIMIT, `${where}: the sharers hold ${total} of a ${LIMIT} limit`);
    if (step >= quiet) {
      assert.equal(budget.reserved, total, `${where}: reserved`);
      const allocated = sharers.reduce((a, t) => a + t.allocated, 0);
      assert.equal(budget.allocated, allocated, `${where}: allocated`);
      assert.deepEqual(
        budget.shares().map((share) => [share.slot, share.reserved, share.allocated]),
        sharers.map((t) => [t.slot, t.held, t.allocated]).sort((a, b) => a[0] - b[0]),
        `${where}: shares`,
      );
    }
  }
  for (const s of [...sharers]) {
    s.view.release(s.held);
    s.pool.detach();
  }
  assert.equal(budget.reserved, 0);
  assert.equal(budget.sharers, 0);
}

for (const seed of [1, 2, 3, 4, 5, 6]) {
  Deno.test(`SharedBudget under ${STEPS} seeded scribbles and calls (seed ${seed}) keeps its limit and its totals`, () => {
    refusedGarbage = 0;
    fuzz(seed, STEPS);
    assert.ok(refusedGarbage > 0, "no scribble reached a figure");
  });
}
