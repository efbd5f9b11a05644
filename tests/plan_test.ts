import assert from "node:assert/strict";
import { type ArenaPlan, planArena, type PlanBlock } from "../allocator/plan.ts";
import { rng } from "./_util.ts";

/**
 * A random iteration: allocations, frees, submits and writes, as operation
 * counts. Each block is freed within the iteration.
 */
function randomIteration(seed: number, n: number, writtenShare: number) {
  const random = rng(seed);
  const blocks: PlanBlock[] = [];
  const submits: number[] = [];
  const live: number[] = [];
  let op = 0;
  while (blocks.length < n || live.length > 0) {
    const r = random();
    if (r < 0.1) {
      if (submits.at(-1) !== op) submits.push(op);
    } else if (blocks.length < n && (live.length === 0 || r < 0.55)) {
      const size = 32 * (1 + Math.floor(random() ** 3 * 64));
      live.push(blocks.length);
      blocks.push({ size, start: op++, end: -1, written: random() < writtenShare });
    } else {
      const [i] = live.splice(Math.floor(random() * live.length), 1);
      blocks[i].end = op++;
    }
  }
  return { blocks, submits, ops: op };
}

/**
 * Checks a plan by replaying its iteration twice in a row, as a loop does:
 * no two live blocks share a byte, and no block `writeBuffer` fills shares a
 * byte with a block freed since the last submit (trap 1), across the
 * boundary between the runs too.
 */
function checkPlan(blocks: PlanBlock[], submits: number[], ops: number, plan: ArenaPlan) {
  const offsets = plan.offsets;
  const overlap = (i: number, j: number) =>
    offsets[i] < offsets[j] + blocks[j].size && offsets[j] < offsets[i] + blocks[i].size;
  const live = new Set<number>();
  let pending = new Set<number>();
  for (let run = 0; run < 2; run++) {
    for (let op = 0; op < ops; op++) {
      if (submits.includes(op)) pending = new Set();
      const made = blocks.findIndex((b) => b.start === op);
      if (made >= 0) {
        for (const j of live) {
          assert.ok(!overlap(made, j), `run ${run}: ${made} overlaps live ${j}`);
        }
        if (blocks[made].written) {
          for (const j of pending) {
            assert.ok(!overlap(made, j), `run ${run}: written ${made} overlaps ${j}, unsubmitted`);
          }
        }
        live.add(made);
      } else {
        const freed = blocks.findIndex((b) => b.end === op);
        live.delete(freed);
        pending.add(freed);
      }
    }
    if (submits.includes(ops) || plan.submitFirst) pending = new Set();
  }
}

Deno.test("planArena() shares bytes only where lifetimes and trap 1 allow, on random iterations", () => {
  for (let seed = 1; seed <= 60; seed++) {
    const { blocks, submits, ops } = randomIteration(seed, 40, seed % 3 === 0 ? 0 : 0.3);
    const plan = planArena(blocks, submits);
    checkPlan(blocks, submits, ops, plan);
    assert.ok(plan.size >= plan.peakLive, "no plan beats the peak of live bytes");
    assert.equal(plan.ratio, plan.size / plan.peakLive);
    for (const [i, b] of blocks.entries()) {
      assert.equal(plan.offsets[i] % 32, 0);
      assert.ok(plan.offsets[i] + b.size <= plan.size);
    }
  }
});

Deno.test("planArena() reaches the peak of live bytes when nothing is written", () => {
  // A chain: each block lives while the next is made (a layer reads x, writes y).
  const blocks: PlanBlock[] = [];
  for (let i = 0; i < 10; i++) {
    blocks.push({ size: 1024, start: 2 * i, end: 2 * i + 3, written: false });
  }
  blocks.at(-1)!.end = 2 * 9 + 2;
  const plan = planArena(blocks, []);
  assert.equal(plan.size, plan.peakLive);
  assert.equal(plan.size, 2048, "two blocks live at once");
  // Written blocks with no submit at all may not take any freed bytes.
  const strict = planArena(blocks.map((b) => ({ ...b, written: true })), []);
  assert.equal(strict.size, blocks.reduce((n, b) => n + b.size, 0));
});

Deno.test("planArena() keeps a written block off bytes freed after the previous run's last submit", () => {
  // b is freed after the only submit; a (written) is made before the next run's first submit.
  const blocks: PlanBlock[] = [
    { size: 256, start: 0, end: 1, written: true },
    { size: 256, start: 2, end: 3, written: false },
  ];
  const plan = planArena(blocks, [2]);
  checkPlan(blocks, [2], 4, plan);
  assert.equal(plan.size, 512);
  assert.equal(
    planArena(blocks, [2, 4]).size,
    256,
    "a submit at the end frees them for the next run",
  );
});

Deno.test("planArena() rejects bad blocks with a message naming them", () => {
  const bad: unknown[] = [
    { size: 0, start: 0, end: 1, written: false },
    { size: 32, start: 2, end: 2, written: false },
    { size: 1.5, start: 0, end: 1, written: false },
    { size: 32, start: -1, end: 1, written: false },
    null,
    "block",
  ];
  for (const b of bad) {
    assert.throws(() => planArena([b as PlanBlock], []), (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /Cannot plan: block 0/);
      return true;
    });
  }
  assert.deepEqual(planArena([], []), {
    offsets: [],
    size: 0,
    peakLive: 0,
    ratio: 1,
    order: "size",
    submitFirst: false,
  });
});
