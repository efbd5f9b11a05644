// The memory diff: peaks and the bytes at each peak by site, old against new,
// on our traces and snapshots and on PyTorch's; the command's exit status.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import {
  formatMemoryDiff,
  memoryDiff,
  memoryProfile,
  NO_LABEL,
} from "../allocator/tools/memdiff.ts";
import { memdiffFiles } from "../allocator/tools/memdiff_command.ts";
import { loadTraceFile } from "../allocator/tools/load_trace.ts";
import { TraceError } from "../allocator/tools/read_trace.ts";
import type { Trace } from "../allocator/trace.ts";
import { rng } from "./_util.ts";

const ROOT = new URL("..", import.meta.url);
const PYTORCH = "tests/testdata/pytorch";

/**
 * Records a run on the fake device: `extra` more bytes of "activations" at
 * the peak than the base run. Returns the trace and what the test knows was
 * live at the peak, by label (block sizes as placed).
 */
function run(extra: number): { trace: Trace; atPeak: Record<string, number>; peak: number } {
  const heap = new HeapAllocator(new FakeDevice());
  heap.startRecording();
  const w = heap.alloc(3 << 20, { label: "weights" });
  const a = heap.alloc((5 << 20) + extra, { label: "activations" });
  const t = heap.alloc(1 << 20); // no label
  const atPeak = { weights: w.size, activations: a.size, [NO_LABEL]: t.size };
  const peak = w.size + a.size + t.size;
  heap.free(a);
  heap.free(t);
  heap.alloc(1 << 20, { label: "after" }); // after the peak: not in it
  const trace = heap.stopRecording();
  heap.destroy();
  return { trace, atPeak, peak };
}

/** Writes `value` as JSON to a temporary file; returns its path. */
function tempJson(value: unknown): string {
  const path = Deno.makeTempFileSync({ suffix: ".json" });
  Deno.writeTextFileSync(path, JSON.stringify(value));
  return path;
}

Deno.test("memoryProfile() finds the peaks of a trace and what was live at each, by label", () => {
  const { trace, atPeak, peak } = run(0);
  const p = memoryProfile(trace);
  assert.equal(p.peakAllocated, peak);
  assert.deepEqual(p.atPeakAllocated, atPeak);
  assert.equal(p.reservedFrom, "trace");
  const heaps = trace.events.filter((e) => e[0] === "heap").map((e) => e[2] as number);
  assert.equal(p.peakReserved, heaps.reduce((s, h) => s + h, 0)); // nothing released
  // Both heaps are held from the peak on: the fullest moment of peak reserved is the peak.
  assert.deepEqual(p.atPeakReserved, atPeak);
  // The same events without heaps: allocated from the requests, reserved by a replay.
  const plain = trace.events.filter((e) => e[0] === "a" || e[0] === "f").map((e) =>
    e[0] === "a" ? ["a", e[1], e[2], e[3], 0, null, null, null, null, e[9]] : e
  );
  const q = memoryProfile(plain);
  assert.equal(q.reservedFrom, "replay");
  assert.equal(q.atPeakReserved, null);
  assert.equal(q.peakAllocated, (3 << 20) + (5 << 20) + (1 << 20));
});

Deno.test("memoryDiff() fails a peak grown past maxGrowth and passes one within it", () => {
  const base = memoryProfile(run(0).trace);
  const grown = run(1 << 20); // activations +1 MiB of a 9 MiB peak: +11%
  const next = memoryProfile(grown.trace);
  const d = memoryDiff(base, next, 0.05);
  assert.equal(d.allocatedGrowth, next.peakAllocated / base.peakAllocated - 1);
  assert.ok(d.allocatedGrowth > 0.05 && d.allocatedGrowth < 0.2);
  assert.equal(d.passed, false);
  assert.equal(memoryDiff(base, next, 0.2).passed, true);
  assert.equal(memoryDiff(base, base, 0).passed, true);
  assert.equal(memoryDiff(next, base, 0).passed, true); // shrinking passes
  // The site that grew comes first, with both sides.
  assert.deepEqual(d.allocatedSites[0], {
    site: "activations",
    old: base.atPeakAllocated.activations,
    new: grown.atPeak.activations,
  });
  const text = formatMemoryDiff(d, ["base.json", "pr.json"]);
  assert.match(text, /^old: base\.json, new: pr\.json$/m);
  assert.match(text, /^peak allocated .* \+\d+\.\d%$/m);
  assert.match(text, /activations$/m);
  assert.match(text, /^FAIL: peak allocated grew \d+\.\d%, more than 5\.0%$/m);
  assert.throws(() => memoryDiff(base, next, -1), RangeError);
});

Deno.test("memoryDiff() fails a reserved peak grown past maxGrowth with the same allocated", () => {
  // The same block in a heap twice as large.
  const inHeap = (heapSize: number) =>
    memoryProfile([
      ["heap", 1, heapSize, "large", true],
      ["a", 1, 1 << 20, "storage", 0, "large", 1, 0, 1 << 20, "x"],
    ]);
  const d = memoryDiff(inHeap(32 << 20), inHeap(64 << 20), 0.05);
  assert.equal(d.allocatedGrowth, 0);
  assert.equal(d.reservedGrowth, 1);
  assert.equal(d.passed, false);
  assert.match(formatMemoryDiff(d), /^FAIL: peak reserved grew 100\.0%, more than 5\.0%$/m);
});

Deno.test("memoryProfile() of a gpuheap snapshot takes its stats' peaks and its live blocks", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const a = heap.alloc(2 << 20, { label: "kept" });
  heap.free(heap.alloc(6 << 20, { label: "gone" }));
  const p = memoryProfile(JSON.stringify(heap.snapshot()));
  assert.equal(p.peakAllocated, a.size + (6 << 20));
  assert.equal(p.peakReserved, heap.memoryStats().reservedBytes.peak);
  assert.deepEqual(p.atPeakAllocated, { kept: a.size });
  assert.equal(p.reservedFrom, "snapshot");
  heap.destroy();
});

Deno.test("memdiffFiles() compares PyTorch snapshots: a larger peak fails, the same passes", async () => {
  const bert = `${PYTORCH}/bert_train_varseq.pickle.gz`;
  const fcn = `${PYTORCH}/fcn_train_largeact.pickle.gz`;
  const same = await memdiffFiles(bert, bert);
  assert.equal(same.passed, true);
  assert.equal(same.allocatedGrowth, 0);
  const old = await loadTraceFile(bert) as { pytorch: { peakReserved: number } };
  assert.equal(same.old.peakReserved, old.pytorch.peakReserved);
  assert.equal(same.old.reservedFrom, "pytorch");
  const grew = await memdiffFiles(bert, fcn);
  assert.equal(grew.passed, grew.allocatedGrowth <= 0.05 && grew.reservedGrowth <= 0.05);
  const shrank = await memdiffFiles(fcn, bert);
  // Whichever peak is larger, one direction fails and the other passes.
  assert.notEqual(grew.passed, shrank.passed);
});

Deno.test("memdiffFiles() reads each file under the cap it is given", async () => {
  const bert = `${PYTORCH}/bert_train_varseq.pickle.gz`;
  await assert.rejects(
    memdiffFiles(bert, bert, 0.05, { maxBytes: 1024 }),
    (e) => e instanceof TraceError && /--max-file-size/.test(e.message),
  );
  assert.equal((await memdiffFiles(bert, bert, 0.05, { maxBytes: 8 << 20 })).passed, true);
});

Deno.test("memoryProfile() of a PyTorch snapshot sums requests at the peak like a recount", async () => {
  const trace = await loadTraceFile(`${PYTORCH}/resnet50_infer_varbatch.pickle.gz`) as Trace;
  const p = memoryProfile(trace);
  // Recount: live request bytes after each event, the peak's maximum.
  const live = new Map<number, number>();
  let now = 0;
  let peak = 0;
  for (const e of trace.events) {
    if (e[0] === "a") {
      now += e[2] - (live.get(e[1]) ?? 0);
      live.set(e[1], e[2]);
    } else if (e[0] === "f" && live.has(e[1])) {
      now -= live.get(e[1])!;
      live.delete(e[1]);
    }
    peak = Math.max(peak, now);
  }
  assert.equal(p.peakAllocated, peak);
  assert.equal(Object.values(p.atPeakAllocated).reduce((s, b) => s + b, 0), peak);
});

Deno.test("memdiff command exits 1 past --max-growth, 0 within it, and writes JSON", async () => {
  const base = tempJson(run(0).trace);
  const grown = tempJson(run(1 << 20).trace);
  const cmd = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-env", "allocator/tools/memdiff_command.ts", ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  };
  try {
    const failed = await cmd(base, grown, "--max-growth", "5%");
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stdout, /^FAIL: peak allocated grew/m);
    const passed = await cmd(base, grown, "--max-growth", "20");
    assert.equal(passed.code, 0, passed.stderr);
    assert.match(passed.stdout, /^ok: no peak grew more than 20\.0%$/m);
    const json = await cmd(base, grown, "--json");
    assert.equal(json.code, 1);
    const d = JSON.parse(json.stdout);
    assert.equal(d.passed, false);
    assert.equal(d.maxGrowth, 0.05);
    assert.equal(d.allocatedSites[0].site, "activations");
    const pytorch = await cmd(
      `${PYTORCH}/resnet50_infer_varbatch.pickle.gz`,
      `${PYTORCH}/resnet50_infer_varbatch.pickle.gz`,
    );
    assert.equal(pytorch.code, 0, pytorch.stderr);
    const bad = await cmd(base, grown, "--max-growth", "lots");
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^memdiff: Flag --max-growth needs a percentage >= 0 such as 5%, got "lots"/,
    );
    const missing = await cmd(base, "tests/testdata/no-such-file.json");
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim().split("\n").length, 1, missing.stderr);
  } finally {
    Deno.removeSync(base);
    Deno.removeSync(grown);
  }
});

Deno.test("memoryProfile() of damaged traces throws a TraceError or reads them, never worse", () => {
  const random = rng(2101);
  const { trace } = run(0);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
  const junk = [-1, 1.5, "x", null, {}, [], 2 ** 60, NaN, true];
  for (let i = 0; i < 300; i++) {
    const t = structuredClone(trace) as unknown as { events: unknown[][] };
    for (let k = 0; k < 3; k++) {
      const e = pick(t.events);
      e[Math.floor(random() * (e.length + 1))] = pick(junk);
    }
    try {
      const p = memoryProfile(t);
      assert.ok(Number.isFinite(p.peakAllocated) && p.peakAllocated >= 0);
    } catch (error) {
      assert.ok(error instanceof TraceError, `case ${i}: ${error}`);
    }
  }
  assert.throws(() => memoryProfile("{"), TraceError);
  assert.throws(() => memoryProfile({ format: "gpuheap-snapshot" }), TraceError);
});
