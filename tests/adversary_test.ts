// The adversary's mutations keep a trace valid (every free names a live block of its own
// step), its search only ever reports a workload at least as bad as where it started, and
// its account of the waste at the peak adds up to the peak, naming the heaps converted before it.
import assert from "node:assert/strict";
import {
  cuts,
  MUTATIONS,
  type Op,
  score,
  search,
  startingWorkloads,
  toOps,
  varyingSequence,
  waste,
} from "../bench/commands/adversary.ts";
import { BIG_GPU_LIMITS, generate } from "../bench/commands/trace_gen.ts";
import { replay } from "../allocator/tools/replay.ts";
import { rng } from "./_util.ts";

/** Throws unless every free names a block allocated earlier and not yet freed. */
function checkValid(ops: readonly Op[]): void {
  const live = new Set<number>();
  for (const [i, op] of ops.entries()) {
    if (op[0] === "a") {
      assert.ok(!live.has(op[1]), `op ${i}: block ${op[1]} allocated twice`);
      assert.ok(Number.isInteger(op[2]) && op[2] > 0, `op ${i}: size ${op[2]}`);
      live.add(op[1]);
    } else if (op[0] === "f") {
      assert.ok(live.delete(op[1]), `op ${i}: block ${op[1]} freed while not live`);
    }
  }
}

Deno.test("cuts() are moments when every live block lives to the end", () => {
  const ops = toOps(generate("training", { seed: 3, steps: 4 }).events);
  const freedAt = new Map<number, number>();
  ops.forEach((op, i) => op[0] === "f" && freedAt.set(op[1], i));
  const c = cuts(ops);
  assert.ok(c.length >= 4, `${c.length} cuts`);
  for (const at of c) {
    for (let i = 0; i < at; i++) {
      const op = ops[i];
      if (op[0] === "a" && freedAt.has(op[1])) {
        assert.ok(freedAt.get(op[1])! < at, `block ${op[1]} crosses the cut at ${at}`);
      }
    }
  }
});

Deno.test("every mutation of real and generated traces is a valid trace", async () => {
  const random = rng(11);
  const starts = (await startingWorkloads()).filter((_, i) => i % 2 === 0);
  let applied = 0;
  for (const start of starts) {
    let ops = start.ops;
    for (let k = 0; k < 6; k++) {
      const names = Object.keys(MUTATIONS);
      const next = MUTATIONS[names[Math.floor(random() * names.length)]](ops, random);
      if (next === null) continue;
      checkValid(next);
      ops = next;
      applied++;
    }
    assert.doesNotThrow(() => replay(ops, { limits: BIG_GPU_LIMITS }), start.name);
  }
  assert.ok(applied >= starts.length * 4, `${applied} mutations applied`);
});

Deno.test("search() reports the worst workload it replayed, from the worst start up", () => {
  const starts = [1, 2, 3].map((seed) => ({ name: `v${seed}`, ops: varyingSequence(seed, 8) }));
  const options = { tries: 20, seed: 5, conf: "", minPeak: 1 };
  const result = search(starts, options);
  const worstStart = Math.max(...result.starts.map((s) => s.ratio));
  assert.ok(result.worst.ratio >= worstStart);
  assert.equal(score(result.worst, "").ratio, result.worst.ratio);
  assert.equal(search(starts, options).worst.name, result.worst.name, "the seed decides");
  assert.throws(() => search(starts, { ...options, minPeak: 2 ** 50 }), /--min-peak/);
});

Deno.test("waste() takes the peak apart: live, pending, idle, free ranges and slack add up to it", () => {
  const cases: [string, Op[]][] = [1, 2, 3, 4].map((s) => [`seed ${s}`, varyingSequence(s, 10)]);
  // Frees that wait for submits: pending bytes are a part of their own.
  cases.push(["random", toOps(generate("random", { seed: 2, steps: 2 }).events)]);
  for (const [name, ops] of cases) {
    const w = waste(ops, "");
    const parts = w.live + w.pending + w.idle + w.splitFree + w.dedicatedSlack;
    assert.equal(parts, w.peakReserved, name);
    assert.equal(w.peakReserved, replay(ops, { limits: BIG_GPU_LIMITS }).peakReserved, name);
  }
  assert.ok(waste(cases[4][1], "").pending > 0, "the random workload has frees waiting");
});

Deno.test("waste() counts the free bytes of heaps converted before the peak, not after", () => {
  const MiB = 2 ** 20;
  // Two 20 MiB blocks share a 64 MiB heap (24 MiB left); a one-block heap of 66 MiB is cached,
  // then split for a 30 MiB block that fits nowhere else (Note [a cached heap becomes a split
  // heap]).
  const converted: Op[] = [
    ["a", 1, 20 * MiB],
    ["a", 2, 20 * MiB],
    ["a", 3, 64 * MiB + 1],
    ["f", 3, false],
    ["a", 4, 30 * MiB],
  ];
  const before = waste([...converted, ["a", 5, 70 * MiB]], "");
  assert.equal(before.splitFree, (24 + 36) * MiB);
  assert.equal(before.convertedFree, 36 * MiB, "the converted heap's, not the shared one's");
  assert.equal(before.newestFree, 0, "the peak came with a heap of its own");
  // The peak is the 66 MiB heap while still one block's: its conversion comes later.
  const after = waste(converted, "");
  assert.equal(after.peakReserved, (64 + 66) * MiB);
  assert.equal(after.convertedFree, 0);
});
