// Replays: record → replay giving the same peaks and createBuffer calls as the
// original run, plain lists, options over the trace's settings, and events a
// replay cannot follow; replay fidelity: device memory refuses heaps when they
// are made, labels reach the allocator, and the replay command takes a PyTorch
// snapshot like any trace (--json with the same fields, --memory, --max-binding-size).
import assert from "node:assert/strict";
import {
  type Block,
  FakeDevice,
  HeapAllocator,
  type HeapAllocatorOptions,
  OutOfMemoryError,
  type Usage,
} from "../mod.ts";
import type { Trace } from "../allocator/trace.ts";
import { readTrace, TraceError } from "../allocator/tools/read_trace.ts";
import { replay } from "../allocator/tools/replay.ts";
import { rng } from "./_util.ts";

const MiB = 1 << 20;
const SNAPSHOT = "tests/testdata/pytorch/bert_train_varseq.pickle.gz";

/** A seeded run on the fake device, recorded; returns the trace and the run's figures. */
function recordedRun(seed: number, options: HeapAllocatorOptions, ops: number) {
  const random = rng(seed);
  const device = new FakeDevice({
    limits: { maxBufferSize: 2 ** 32, minUniformBufferOffsetAlignment: 256 },
  });
  const allocator = new HeapAllocator(device, options);
  allocator.startRecording();
  const live: Block[] = [];
  const usages: Usage[] = [
    "storage",
    "storage",
    "storage",
    "storage",
    "uniform",
    "readback",
    "upload",
  ];
  for (let i = 0; i < ops; i++) {
    const r = random();
    if (r < 0.45 && live.length < 64) {
      const usage = usages[Math.floor(random() * usages.length)];
      const size = Math.max(1, Math.floor(2 ** (random() * (usage === "uniform" ? 16 : 27))));
      try {
        const b = allocator.alloc(size, { usage });
        if (random() < 0.6) void b.buffer;
        live.push(b);
      } catch (e) {
        assert.ok(e instanceof OutOfMemoryError);
      }
    } else if (r < 0.5) {
      live.push(allocator.scalar(i));
    } else if (r < 0.9 && live.length > 0) {
      const j = Math.floor(random() * live.length);
      allocator.free(live[j]);
      live[j] = live[live.length - 1];
      live.pop();
    } else if (r < 0.99) {
      allocator.submit();
    } else {
      allocator.emptyCache();
    }
  }
  const trace = allocator.stopRecording();
  const stats = allocator.memoryStats();
  allocator.destroy();
  return { trace, stats, createBufferCalls: device.createBufferCalls };
}

for (
  const [name, options] of [
    ["default", {}],
    ["rounding, low watermark", {
      allocConf: "roundup_power2_divisions:4",
      lowWatermark: "512MiB",
    }],
    ["max_reserved_ratio, no caching of staging", { allocConf: "max_reserved_ratio:1.1" }],
    ["caching:0", { allocConf: "caching:0" }],
    ["tight high watermark: retries and OOMs", { highWatermark: "200MiB" }],
  ] as [string, HeapAllocatorOptions][]
) {
  Deno.test(`replay() of a recording reproduces its peaks and createBuffer calls (${name})`, () => {
    const run = recordedRun(7, options, 6000);
    const trace = readTrace(JSON.stringify(run.trace)); // through JSON, as a file would
    const r = replay(trace);
    assert.equal(r.peakAllocated, run.stats.allocatedBytes.peak);
    assert.equal(r.peakRequested, run.stats.requestedBytes.peak);
    assert.equal(r.peakReserved, run.stats.reservedBytes.peak);
    assert.equal(r.createBufferCalls, run.createBufferCalls);
    assert.equal(r.retries, run.stats.numAllocRetries);
    assert.equal(r.ooms, run.stats.numOoms);
    assert.equal(r.cacheHits, run.stats.cacheHits);
    // Replaying the replay's own recording gives the same again.
    const again = replay(replay(trace, { record: true }).trace!);
    assert.equal(again.peakReserved, r.peakReserved);
    assert.equal(again.createBufferCalls, r.createBufferCalls);
  });
}

Deno.test("replay() of a recording started on a busy allocator begins with its state", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  // The small heap first: the replay makes heaps pool by pool, and a heap's size
  // follows the bytes held when it is made.
  const b = allocator.alloc(1000);
  const a = allocator.alloc(3 * MiB, { label: "old" });
  void b.buffer;
  allocator.free(b); // pending when the recording starts
  const c = allocator.alloc(100 * MiB);
  allocator.free(c); // cached dedicated heap
  allocator.startRecording();
  allocator.free(a);
  allocator.submit();
  const trace = allocator.stopRecording();
  assert.deepEqual(trace.events.slice(0, 3).map((e) => e[0]), ["heap", "heap", "heap"]);
  assert.ok(trace.events.some((e) => e[0] === "a" && e[1] === a.id && e[9] === "old"));
  assert.ok(trace.events.some((e) => e[0] === "f" && e[1] === b.id && e[2] === true));
  assert.ok(trace.events.some((e) => e[0] === "f" && e[1] === c.id && e[2] === false));
  const r = replay(trace);
  assert.equal(r.peakReserved, allocator.memoryStats().reservedBytes.current);
  allocator.destroy();
});

Deno.test('replay() reads plain lists of ["a", id, size] and ["f", id], frees immediate', () => {
  const r = replay([["a", 1, 4096], ["a", 2, 5 * MiB], ["f", 1], ["a", 3, 4096], ["f", 2], [
    "f",
    3,
  ]]);
  assert.equal(r.allocations, 3);
  assert.equal(r.frees, 3);
  assert.equal(r.peakRequested, 4096 + 5 * MiB);
  assert.equal(r.peakReserved, 128 * 1024 + 32 * MiB);
  assert.equal(r.createBufferCalls, 2);
  assert.equal(r.cacheHits, 1, "the freed 4 KiB was reused at once");
  // Ids may be reused once freed, as addresses are in other allocators' traces.
  assert.equal(replay([["a", 7, 10], ["f", 7], ["a", 7, 20], ["f", 7]]).allocations, 2);
  // A pending free waits for a submit: the second block cannot take the first's memory.
  const pending = replay([["a", 1, 32 * MiB - 4], ["f", 1, true], ["a", 2, 32 * MiB - 4]]);
  const immediate = replay([["a", 1, 32 * MiB - 4], ["f", 1], ["a", 2, 32 * MiB - 4]]);
  assert.equal(pending.createBufferCalls, 2);
  assert.equal(immediate.createBufferCalls, 1);
  assert.equal(
    replay([["a", 1, 32 * MiB - 4], ["f", 1, 1], ["submit"], ["a", 2, 32 * MiB - 4]])
      .createBufferCalls,
    1,
  );
});

Deno.test("replay() options override the trace's settings; OOMs are counted", () => {
  const events = [["a", 1, 20 * MiB], ["a", 2, 20 * MiB], ["f", 1], ["f", 2], ["a", 3, 40 * MiB]];
  assert.equal(replay(events).createBufferCalls, 1, "one 64 MiB heap holds all");
  assert.equal(replay(events, { allocConf: "caching:0" }).createBufferCalls, 2);
  const tight = replay(events, { highWatermark: "30MiB" });
  assert.equal(tight.ooms, 2, "neither the second 20 MiB nor the 40 MiB fit in 30 MiB");
  assert.equal(tight.skippedFrees, 1, "the free of the block that could not be allocated");
  assert.equal(replay(events, { limits: { maxStorageBufferBindingSize: 64 * MiB } }).ooms, 0);
  assert.throws(
    () => replay(events, { limits: { maxStorageBufferBindingSize: 16 * MiB } }),
    /event 0: Cannot allocate 20971520 bytes .* maxStorageBufferBindingSize/,
  );
});

Deno.test("replay() refuses bad input with a TraceError naming the event", () => {
  const cases: [unknown, RegExp, number][] = [
    ['[["a", 1, 10],', /malformed JSON/, -1],
    ['{"format": "other"}', /format "gpuheap-trace", got format "other"/, -1],
    ['{"format": "gpuheap-trace", "version": 2, "events": []}', /unsupported version 2/, -1],
    [[["a", 1, 10], ["x", 1]], /event 1: unknown event "x"/, 1],
    [[["a", 1, 10], ["f", 2]], /event 1: frees block id 2, which is not live/, 1],
    [[["a", 1, 10], ["f", 1], ["f", 1]], /event 2: frees block id 1, which is not live/, 2],
    [[["a", 1, 10], ["a", 1, 10]], /event 1: allocates block id 1, which is live/, 1],
    [[["a", 1, -5]], /event 0: size must be a positive integer \(at most 2\^53 - 1\), got -5/, 0],
    [[["a", 1, 10, "texture"]], /event 0: unknown usage "texture"/, 0],
    [[["a", "one", 10]], /event 0: block id must be an integer, got "one"/, 0],
    [[["f"]], /event 0: "f" takes 2 to 4 items/, 0],
    [[42], /event 0: expected an array/, 0],
    [[["f", 1, "yes"]], /event 0: pending must be true, false, 0 or 1/, 0],
  ];
  for (const [input, message, index] of cases) {
    assert.throws(
      () => replay(input as Trace),
      (e: unknown) => {
        assert.ok(e instanceof TraceError, String(e));
        assert.match(e.message, message);
        assert.equal(e.index, index);
        return true;
      },
    );
  }
});

Deno.test("replay() refuses heaps beyond the device memory", () => {
  // 20 MiB blocks: three fill a 64 MiB extra-large heap; a fourth one fits only in a heap
  // of its size, and then nothing fits.
  const events = Array.from({ length: 10 }, (_, i) => ["a", i, 20 * MiB]);
  const unlimited = replay(events);
  assert.equal(unlimited.ooms, 0);
  assert.ok(unlimited.peakReserved >= 200 * MiB);
  const bounded = replay(events, { memory: 100 * MiB });
  assert.equal(bounded.ooms, 6);
  assert.equal(bounded.peakAllocated, 80 * MiB);
  assert.ok(bounded.peakReserved <= 100 * MiB, `${bounded.peakReserved}`);
});

Deno.test("replay() releases cached heaps to fit the device memory, and retries", () => {
  // Dedicated heaps (past half an extra-large heap), kept cached without a bound on the cache.
  const events = [["a", 1, 70 * MiB], ["f", 1], ["a", 2, 100 * MiB]];
  const options = { allocConf: "max_reserved_ratio:0" };
  assert.equal(replay(events, options).peakReserved, 170 * MiB, "the cached 70 MiB heap is kept");
  const r = replay(events, { ...options, memory: 150 * MiB });
  assert.equal(r.ooms, 0);
  assert.equal(r.retries, 1);
  assert.equal(r.peakReserved, 100 * MiB);
});

Deno.test("replay() passes labels to the allocator", () => {
  const events = [
    ["a", 1, 4096, "storage", 0, null, null, null, null, "train.py:12 main"],
    ["a", 2, 4096],
  ];
  const recorded = replay(events, { record: true }).trace!;
  const allocs = recorded.events.filter((e) => e[0] === "a");
  assert.deepEqual(allocs.map((e) => e[9]), ["train.py:12 main", undefined]);
});

Deno.test("replay() with record gives each recorded event the replayed event it came from", () => {
  const events = [
    ["a", 1, 3 * MiB],
    ["f", 1, true],
    ["submit"],
    ["a", 2, 3 * MiB],
    ["f", 2],
    ["oom", 9 * MiB, "large"],
    ["a", 3, 64],
    ["emptyCache"],
  ];
  const cases = [
    // Without caching, every allocation makes a heap, and what empties a heap releases it: the
    // submit that made block 1's free count, block 2's free, the oom's own free.
    { events, allocConf: "caching:0", heaps: [0, 3, 5, 6], releases: [2, 4, 5] },
    // With caching, the heap stays until emptyCache releases it.
    { events: [events[0], events[1], events[2], events[7]], heaps: [0], releases: [3] },
  ];
  for (const c of cases) {
    const r = replay(c.events, { record: true, allocConf: c.allocConf });
    const recorded = r.trace!.events;
    assert.equal(r.source!.length, recorded.length);
    for (let j = 0; j < recorded.length; j++) {
      const kind = recorded[j][0];
      const from = c.events[r.source![j]][0];
      // The replayed oom fits now: an allocation freed at once.
      const expected = kind === "heap" || kind === "release" ||
        (from === "oom" ? kind === "a" || kind === "f" : kind === from);
      assert.ok(expected, `${kind} from ${from} (event ${r.source![j]})`);
      if (j > 0) assert.ok(r.source![j] >= r.source![j - 1], "in order");
    }
    const from = (kind: string) =>
      [...recorded.keys()].filter((j) => recorded[j][0] === kind).map((j) => r.source![j]);
    assert.deepEqual(from("heap"), c.heaps);
    assert.deepEqual(from("release"), c.releases);
  }
  assert.equal(replay(events).source, undefined);
});

async function command(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "allocator/tools/replay_command.ts", ...args],
    stdout: "piped",
    stderr: "piped",
    cwd: new URL("..", import.meta.url),
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("replay command: a PyTorch snapshot replays with --json, --memory and the limit flags", async () => {
  const plain = replay([["a", 1, 64]]);
  const json = await command(SNAPSHOT, "--json");
  assert.equal(json.code, 0, json.stderr);
  const result = JSON.parse(json.stdout);
  assert.deepEqual(Object.keys(result).sort(), [...Object.keys(plain), "policy", "pytorch"].sort());
  assert.equal(result.pytorch.peakReserved, 2682257408);
  assert.equal(result.ooms, 0);

  const text = await command(SNAPSHOT);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /PyTorch reserved 2\.50 GiB at peak \(1\.177 × peak requested\)/);
  assert.match(text.stdout, /110 blocks \(288\.54 MiB\) live before recording/);

  const small = await command(SNAPSHOT, "--json", "--memory", "2GiB");
  assert.equal(small.code, 0, small.stderr);
  const refused = JSON.parse(small.stdout);
  assert.ok(refused.ooms > 0);
  assert.ok(refused.peakReserved <= 2 * 2 ** 30);

  const binding = await command(SNAPSHOT, "--max-binding-size", "128MiB");
  assert.equal(binding.code, 1);
  assert.match(
    binding.stderr,
    /event \d+: .*larger than the device's maxStorageBufferBindingSize 134217728/,
  );
  // A block lies in one GPUBuffer: one past maxBufferSize is refused, not cut short.
  const buffer = await command(SNAPSHOT, "--max-buffer-size", "200MiB");
  assert.equal(buffer.code, 1);
  assert.match(buffer.stderr, /event \d+: .*larger than the device's maxBufferSize 209715200/);
});
