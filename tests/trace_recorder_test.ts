// Recording: the events a recording holds, and the packed recorder's decoding
// of wide values, labels and long recordings.
import assert from "node:assert/strict";
import { AllocatorError, type Block, FakeDevice, HeapAllocator } from "../mod.ts";
import { TIME_ITEM, type TraceEvent } from "../allocator/trace.ts";
import { memvizHtml } from "../allocator/tools/memviz.ts";
import { replay } from "../allocator/tools/replay.ts";
import { readTrace } from "../allocator/tools/read_trace.ts";
import { tensor } from "../kernels/mod.ts";
import { randomValues, rng, withAllocator } from "./_kernels_util.ts";
import { twoLayers } from "./testdata/two_layer_model.ts";

Deno.test("startRecording() records events naming blocks, heaps, pools, offsets and times", () => {
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

Deno.test("a recording marks long-lived blocks, and its replay gives them buffers of their own", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const early = heap.alloc(8 << 10, { longLived: true }); // placed before the recording
  heap.startRecording();
  const w = heap.alloc(18 << 10, { longLived: true, label: "weight" });
  const b = heap.alloc(256, { longLived: true });
  const x = heap.alloc(4 << 10);
  for (const block of [x, b, w, early]) heap.free(block);
  const trace = heap.stopRecording();
  const allocs = trace.events.filter((e) => e[0] === "a");
  assert.deepEqual(
    allocs.map((e) => [e[1], e[9] ?? null, e[10] ?? false]),
    [[early.id, null, true], [w.id, "weight", true], [b.id, null, true], [x.id, null, false]],
  );
  // Read back from JSON and replayed: one heap per long-lived block beside the shared one.
  const replayed = replay(readTrace(JSON.stringify(trace)));
  assert.equal(replayed.createBufferCalls, 4);
  const plain = replay(
    trace.events.map((e) => e[0] === "a" ? ["a", e[1], e[2]] : e) as TraceEvent[],
  );
  assert.equal(plain.createBufferCalls, 1, "without the marks all four share one heap");
  assert.throws(
    () => readTrace([["a", 1, 64, null, null, null, null, null, null, null, 1]]),
    /longLived must be true or false, got 1/,
  );
  heap.destroy();
});

/** Whether item `i` of an event of `kind` is its time. */
function isTime(kind: string, i: number): boolean {
  return TIME_ITEM[kind as keyof typeof TIME_ITEM] === i;
}

Deno.test("stopRecording() decodes wide values, many labels and long recordings exactly", () => {
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

/** A function of this file that allocates: its frame is the call site. */
function makeWeights(heap: HeapAllocator, label?: string): Block {
  return heap.alloc(4096, { label });
}

Deno.test("startRecording({ stacks: true }) labels each allocation with its call site", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const before = heap.alloc(64, { label: "old" });
  heap.startRecording({ stacks: true });
  const a = makeWeights(heap);
  const b = makeWeights(heap, "weights");
  heap.scalar(1);
  const trace = heap.stopRecording();
  const labels = new Map(trace.events.filter((e) => e[0] === "a").map((e) => [e[1], e[9]]));
  assert.equal(labels.get(before.id), "old", "a block placed before the recording: no site");
  assert.match(
    labels.get(a.id)!,
    /^trace_recorder_test\.ts:\d+ makeWeights ← trace_recorder_test\.ts:\d+/,
  );
  assert.match(labels.get(b.id)!, /^weights @ trace_recorder_test\.ts:\d+ makeWeights ← /);
  assert.doesNotMatch(labels.get(a.id)!, /allocator\.ts|trace_recorder\.ts:/, "no frame of ours");
  // This file's two frames; the test runner's are the runtime's, not call sites.
  assert.equal(labels.get(a.id)!.split(" ← ").length, 2, "the frames outside the package");
  assert.doesNotMatch(labels.get(a.id)!, /ext:|\.js:/, "no frame of the runtime");
  heap.destroy();
});

Deno.test("startRecording() keeps the call sites of the latest maxEntries allocations", () => {
  const heap = new HeapAllocator(new FakeDevice());
  heap.startRecording({ stacks: true, maxEntries: 2 });
  const blocks = [makeWeights(heap, "w"), makeWeights(heap), makeWeights(heap), makeWeights(heap)];
  const trace = heap.stopRecording();
  const labels = trace.events.filter((e) => e[0] === "a").map((e) => e[9]);
  assert.equal(labels.length, blocks.length);
  assert.deepEqual(labels.slice(0, 2), ["w", undefined], "the earliest: their own labels");
  for (const l of labels.slice(2)) assert.match(l!, /makeWeights/);
  assert.throws(() => heap.startRecording({ maxEntries: -1 }), RangeError);
  assert.throws(() => heap.startRecording({ stacks: "yes" as unknown as boolean }), TypeError);
  heap.destroy();
});

Deno.test("startRecording({ stacks: true }) names the user's own lines: a two-layer model shows two call sites", async () => {
  await withAllocator((allocator) => {
    const x = tensor(allocator, randomValues(rng(5), 64), [1, 1, 8, 8]);
    allocator.startRecording({ stacks: true });
    const outputs = twoLayers(x);
    const trace = allocator.stopRecording();
    // The lines of the fixture that call a layer, read from its text.
    const fixture = Deno.readTextFileSync(
      new URL("./testdata/two_layer_model.ts", import.meta.url),
    );
    const layerLines = fixture.split("\n").flatMap((l, i) => /= relu\(/.test(l) ? [i + 1] : []);
    assert.equal(layerLines.length, 2);
    const sites = trace.events.filter((e) => e[0] === "a" && e[9]?.startsWith("relu"))
      .map((e) => e[9]);
    assert.equal(sites.length, 2, sites.join("\n"));
    for (const [k, site] of sites.entries()) {
      const innermost = `two_layer_model.ts:${layerLines[k]} twoLayers`;
      assert.equal(site!.split(" ← ")[0], `relu @ ${innermost}`);
      assert.match(site!, / ← trace_recorder_test\.ts:\d+/, "the caller's frame is kept too");
    }
    // The picture's table of bytes at the peak gives each layer its own row.
    const html = memvizHtml(trace);
    const table = html.slice(html.indexOf("At the peak, by label or call site"));
    // Each row is the layer's line, its whole kept stack under the pointer.
    for (const line of layerLines) {
      const row = new RegExp(
        `data-tip="relu @ two_layer_model\\.ts:${line} twoLayers\\n +← ` +
          `trace_recorder_test\\.ts:\\d+[^"]*">relu @ two_layer_model\\.ts:${line} twoLayers</span>`,
      );
      assert.match(table, row);
    }
    for (const t of outputs) t.dispose();
    x.dispose();
  }, { poison: false }); // poisoning wraps alloc in a frame of the test's own
});

Deno.test("stopRecording() spreads the events between two clock readings over their span", () => {
  const heap = new HeapAllocator(new FakeDevice());
  heap.startRecording();
  const wait = (ms: number) => {
    const until = performance.now() + ms;
    while (performance.now() < until) { /* the clock must move between events */ }
  };
  for (let i = 0; i < 40; i++) {
    const b = heap.alloc(4096);
    wait(0.05);
    heap.free(b);
    wait(0.05);
  }
  heap.submit(); // read the clock after the last of them
  const trace = heap.stopRecording();
  const times = trace.events.filter((e) => e[0] === "a" || e[0] === "f")
    .map((e) => e.find((_, i) => isTime(e[0], i)) as number);
  assert.equal(times.length, 80);
  for (let i = 1; i < times.length; i++) {
    assert.ok(times[i] > times[i - 1], `event ${i} at ${times[i]} ms, after ${times[i - 1]} ms`);
  }
  heap.destroy();
});
