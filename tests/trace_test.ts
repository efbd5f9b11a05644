// Traces: recording, the packed recorder's decoding, record → replay giving the
// same peaks and createBuffer calls as the original run, plain lists, errors,
// and the replay command.
import assert from "node:assert/strict";
import {
  AllocatorError,
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

Deno.test("recording: events name blocks, heaps, pools, offsets and times", () => {
  const heap = new HeapAllocator(new FakeDevice());
  assert.throws(() => heap.stopRecording(), AllocatorError);
  heap.startRecording();
  assert.equal(heap.recording, true);
  const a = heap.alloc(4000, { label: "weights" });
  void a.buffer;
  heap.free(a);
  const s = heap.scalar(1);
  heap.submit();
  heap.emptyCache();
  heap.resetPeakStats();
  const trace = heap.stopRecording();
  assert.equal(heap.recording, false);
  assert.equal(trace.format, "gpuheap-trace");
  assert.equal(trace.version, 1);
  assert.deepEqual(trace.settings, heap.settings());
  const strip = trace.events.map((e) => e.filter((_, i) => !isTime(e[0], i)));
  assert.deepEqual(strip, [
    ["heap", 1, 128 * 1024, "small", true],
    ["a", a.id, 4000, "storage", "small", 1, 0, a.size, "weights"],
    ["f", a.id, true],
    ["heap", 2, 4 * 1024, "scalar", true],
    ["s", s.id, 2, 0, s.size],
    ["submit"],
    ["emptyCache"],
    ["release", 1],
    ["resetPeak"],
  ]);
  const times = trace.events.map((e) => e.find((_, i) => isTime(e[0], i)) as number);
  for (let i = 1; i < times.length; i++) assert.ok(times[i] >= times[i - 1], "times ascend");
  assert.ok(trace.durationMs >= times[times.length - 1]);
  heap.destroy();
});

/** Whether item `i` of an event of `kind` is its time. */
function isTime(kind: string, i: number): boolean {
  const at: Record<string, number> = {
    a: 4,
    f: 3,
    s: 2,
    submit: 1,
    emptyCache: 1,
    heap: 5,
    release: 2,
    split: 2,
    oom: 3,
    resetPeak: 1,
  };
  return at[kind] === i;
}

Deno.test("recording: wide values, many labels and long recordings decode exactly", () => {
  const device = new FakeDevice({ limits: { maxBufferSize: 2 ** 34 } });
  const heap = new HeapAllocator(device);
  heap.startRecording();
  const huge = heap.alloc(5 * 2 ** 30 + 3, { usage: "readback", label: "huge" }); // > 2^32
  const expected: unknown[][] = [];
  const blocks: Block[] = [];
  // Past several 1 MiB chunks of the recording: 200 000 events.
  for (let i = 0; i < 100_000; i++) {
    const b = heap.alloc(64 + (i % 1000) * 32, { label: i % 7 === 0 ? `l${i % 13}` : undefined });
    blocks.push(b);
    if (i % 2 === 0) void b.buffer;
    heap.free(b);
  }
  const trace = heap.stopRecording();
  const first = trace.events.findIndex((e) => e[0] === "a");
  assert.deepEqual(trace.events[first].filter((_, i) => i !== 4), [
    "a",
    huge.id,
    5 * 2 ** 30 + 3,
    "readback",
    "readback",
    huge.heapId,
    0,
    huge.size,
    "huge",
  ]);
  for (const [i, b] of blocks.entries()) {
    const e: unknown[] = [
      "a",
      b.id,
      b.requestedSize,
      "storage",
      "small",
      b.heapId,
      b.offset,
      b.size,
    ];
    if (b.label !== undefined) e.push(b.label);
    expected.push(e, ["f", b.id, i % 2 === 0]);
  }
  const got = trace.events.filter((e) => e[0] === "a" || e[0] === "f").slice(1)
    .map((e) => e.filter((_, i) => !isTime(e[0], i)));
  assert.equal(got.length, expected.length);
  assert.deepEqual(got, expected);
  heap.destroy();
});

/** A seeded run on the fake device, recorded; returns the trace and the run's figures. */
function recordedRun(seed: number, options: HeapAllocatorOptions, ops: number) {
  const random = rng(seed);
  const device = new FakeDevice({
    limits: { maxBufferSize: 2 ** 32, minUniformBufferOffsetAlignment: 256 },
  });
  const heap = new HeapAllocator(device, options);
  heap.startRecording();
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
        const b = heap.alloc(size, { usage });
        if (random() < 0.6) void b.buffer;
        live.push(b);
      } catch (e) {
        assert.ok(e instanceof OutOfMemoryError);
      }
    } else if (r < 0.5) {
      live.push(heap.scalar(i));
    } else if (r < 0.9 && live.length > 0) {
      const j = Math.floor(random() * live.length);
      heap.free(live[j]);
      live[j] = live[live.length - 1];
      live.pop();
    } else if (r < 0.99) {
      heap.submit();
    } else {
      heap.emptyCache();
    }
  }
  const trace = heap.stopRecording();
  const stats = heap.memoryStats();
  heap.destroy();
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
  Deno.test(`record → replay reproduces peaks and createBuffer calls (${name})`, () => {
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

Deno.test("record → replay: a recording started on a busy allocator begins with its state", () => {
  const heap = new HeapAllocator(new FakeDevice());
  // The small heap first: the replay makes heaps pool by pool, and a heap's size
  // follows the bytes held when it is made.
  const b = heap.alloc(1000);
  const a = heap.alloc(3 * MiB, { label: "old" });
  void b.buffer;
  heap.free(b); // pending when the recording starts
  const c = heap.alloc(100 * MiB);
  heap.free(c); // cached dedicated heap
  heap.startRecording();
  heap.free(a);
  heap.submit();
  const trace = heap.stopRecording();
  assert.deepEqual(trace.events.slice(0, 3).map((e) => e[0]), ["heap", "heap", "heap"]);
  assert.ok(trace.events.some((e) => e[0] === "a" && e[1] === a.id && e[9] === "old"));
  assert.ok(trace.events.some((e) => e[0] === "f" && e[1] === b.id && e[2] === true));
  assert.ok(trace.events.some((e) => e[0] === "f" && e[1] === c.id && e[2] === false));
  const r = replay(trace);
  assert.equal(r.peakReserved, heap.memoryStats().reservedBytes.current);
  heap.destroy();
});

Deno.test('replay: plain lists of ["a", id, size] and ["f", id], frees immediate', () => {
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

Deno.test("replay: options override the trace's settings; OOMs are counted", () => {
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

Deno.test("replay: bad input is a TraceError naming the event", () => {
  const cases: [unknown, RegExp, number][] = [
    ['[["a", 1, 10],', /malformed JSON/, -1],
    ['{"format": "other"}', /format "gpuheap-trace", got format "other"/, -1],
    ['{"format": "gpuheap-trace", "version": 2, "events": []}', /unsupported version 2/, -1],
    [[["a", 1, 10], ["x", 1]], /event 1: unknown event "x"/, 1],
    [[["a", 1, 10], ["f", 2]], /event 1: frees block id 2, which is not live/, 1],
    [[["a", 1, 10], ["f", 1], ["f", 1]], /event 2: frees block id 1, which is not live/, 2],
    [[["a", 1, 10], ["a", 1, 10]], /event 1: allocates block id 1, which is live/, 1],
    [[["a", 1, -5]], /event 0: size must be a positive integer, got -5/, 0],
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

Deno.test("replay command: a table, policies side by side, --json for scripts", async () => {
  const trace = recordedRun(3, {}, 800).trace;
  const run = async (...args: string[]) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        "allocator/tools/replay_command.ts",
        "-",
        ...args,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      cwd: new URL("..", import.meta.url),
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(trace)));
    await writer.close();
    const out = await child.output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  };
  const direct = replay(trace);
  const one = await run("--json");
  assert.equal(one.code, 0, one.stderr);
  const json = JSON.parse(one.stdout);
  assert.equal(json.peakAllocated, direct.peakAllocated);
  assert.equal(json.peakReserved, direct.peakReserved);
  assert.equal(json.createBufferCalls, direct.createBufferCalls);
  for (const key of ["ratio", "heapsCreated", "retries", "ooms", "peakInUse"]) {
    assert.ok(key in json);
  }
  const table = await run("--conf", "", "--conf", "caching:0");
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /peak allocated .* peak reserved .* createBuffer/);
  assert.match(table.stdout, /\ndefault +\S/);
  assert.match(table.stdout, /\ncaching:0 +\S/);
  const bad = await run("--conf", "caching:maybe");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /caching must be 0, 1, true or false, got maybe/);
});
