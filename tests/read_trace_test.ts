// Reading traces: every item of every event checked, names looked up among
// our own only, sizes a double holds exactly, settings within what a device
// can have, and messages that stay short however deep the input is nested.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { describe, readTrace, TraceError } from "../allocator/tools/read_trace.ts";
import { replay } from "../allocator/tools/replay.ts";
import type { Trace } from "../allocator/trace.ts";

/** Asserts that reading `input` fails with a TraceError matching `message` at `index`. */
function refuses(input: unknown, message: RegExp, index = -1): TraceError {
  try {
    readTrace(input);
  } catch (error) {
    assert.ok(error instanceof TraceError, String(error));
    assert.match(error.message, message);
    assert.equal(error.index, index, error.message);
    assert.ok(error.message.length < 400, `a short message: ${error.message.length} characters`);
    return error;
  }
  assert.fail(`no error for ${describe(input)}`);
}

/** A trace object around `events` with `settings`, unchecked. */
function traceWith(settings: unknown, events: unknown[] = []): Trace {
  return { format: "gpuheap-trace", version: 1, settings, durationMs: 1, events } as Trace;
}

Deno.test("readTrace() refuses Object.prototype names as event kinds", () => {
  for (const kind of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
    refuses([["a", 1, 8], [kind]], new RegExp(`event 1: unknown event "${kind}"`), 1);
    refuses(`[["${kind}", 1, 2, 3]]`, /event 0: unknown event/, 0);
  }
  // A list whose text is "a" is no kind either.
  refuses([[["a"], 1, 10]], /event 0: unknown event \["a"\]/, 0);
});

Deno.test("readTrace() refuses sizes a double cannot hold exactly", () => {
  const cases: [unknown[], RegExp][] = [
    [["heap", 1, 1e300, "small", true], /heap size must be a positive integer .*got 1e\+300/],
    [["heap", 1, 2 ** 80, "small", true], /heap size must be .*got 1\.2089258196146292e\+24/],
    [["heap", 1, 0, "small", true], /heap size must be a positive integer/],
    [["a", 1, 2 ** 53], /size must be a positive integer \(at most 2\^53 - 1\)/],
    [["a", 1, 64, "storage", 0, "small", 1, 1e300, 64], /offset must be an integer >= 0/],
    [["a", 1, 64, "storage", 0, "small", 1, 0, 1.5], /block size must be a positive integer/],
    [["s", 1, 0, 1, -32, 32], /offset must be an integer >= 0/],
    [["oom", Infinity, "small"], /size must be a positive integer/],
  ];
  for (const [event, message] of cases) refuses([event], message, 0);
});

Deno.test("readTrace() checks every item of every event", () => {
  const cases: [unknown[], RegExp][] = [
    [["heap", 1, 64, "constructor", true], /pool must be one of small, large, uniform, scalar/],
    [["heap", 1, 64, "small", "yes"], /isSplit must be true or false, got "yes"/],
    [["heap", "1", 64, "small", true], /heap id must be an integer, got "1"/],
    [["a", 1, 64, "storage", "x"], /time must be a finite number, got "x"/],
    [["a", 1, 64, "storage", 0, "bogus"], /pool must be one of/],
    [["a", 1, 64, "storage", 0, "small", 1, 0, 64, 5], /label must be a string, got 5/],
    [["a", 1, 64, 7], /usage must be a string, got 7/],
    [["release", null], /heap id must be an integer, got null/],
    [["oom", 64, "toString"], /pool must be one of/],
    [["submit", {}], /time must be a finite number, got \{\}/],
  ];
  for (const [event, message] of cases) refuses([["submit"], event], message, 1);
  // An optional item may be null (absent) so that a later one can be given.
  const labelled = ["a", 1, 64, "storage", 0, null, null, null, null, "x"];
  assert.deepEqual(readTrace([labelled]).events, [labelled]);
  // What the recorder writes passes, every optional item included.
  const heap = new HeapAllocator(new FakeDevice());
  heap.startRecording();
  const b = heap.alloc(100, { label: "x" });
  heap.free(heap.scalar(1));
  heap.free(b);
  heap.emptyCache();
  const recorded = heap.stopRecording();
  heap.destroy();
  assert.deepEqual(readTrace(JSON.stringify(recorded)).events, recorded.events);
});

Deno.test("readTrace() reads JSON nested 10^5 deep into a short TraceError", () => {
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  refuses(deep, /event 0: unknown event \[\[1 items\]\]/, 0);
  refuses(`[["a", ${deep}, 10]]`, /event 0: block id must be an integer, got \[\[1 items\]\]$/, 0);
  refuses(`[["a", 1, 10], ${deep}]`, /event 1: unknown event/, 1);
  refuses(`{"format": ${deep}}`, /got format \[\[1 items\]\]$/);
  refuses(
    `{"format": "gpuheap-trace", "version": 1, "events": [], "settings": ${deep}}`,
    /settings/,
  );
  const objects = '{"a":'.repeat(100_000) + "1" + "}".repeat(100_000);
  refuses(
    `[${objects}]`,
    /event 0: expected an array such as \["a", id, size\], got \{a: \{…\}\}/,
    0,
  );
});

Deno.test("readTrace() checks the recorded settings and keeps only their fields", () => {
  const cases: [unknown, RegExp][] = [
    [[], /settings must be an object or null, got \[\]/],
    [{ allocConf: 5 }, /settings\.allocConf must be a string, got 5/],
    [{ allocConf: ["caching:0"] }, /settings\.allocConf must be a string/],
    [
      { allocConf: "caching:maybe" },
      /settings\.allocConf cannot be read: caching must be 0, 1, true or false/,
    ],
    [{ allocConf: "x".repeat(10_000) + ":1" }, /settings\.allocConf cannot be read: .*…$/],
    [{ alignment: 1e308 }, /settings\.alignment must be a power of two <= 256, got 1e\+308/],
    [{ alignment: 48 }, /settings\.alignment must be a power of two/],
    [{ highWatermark: "lots" }, /settings\.highWatermark must be bytes/],
    [{ highWatermark: "99999999999999999999999GiB" }, /settings\.highWatermark must be bytes/],
    [{ highWatermark: -1 }, /settings\.highWatermark must be bytes/],
    [{ highWatermark: 10, lowWatermark: 20 }, /lowWatermark 20 is above highWatermark 10/],
    [{ fallbackAdapter: "yes" }, /settings\.fallbackAdapter must be true or false/],
    [{ limits: "big" }, /settings\.limits must be an object, got "big"/],
    [{ limits: { maxBufferSize: 100 } }, /maxBufferSize 100 is below the heaps of the alloc conf/],
    [
      { allocConf: "large_heap:64MiB", limits: { maxBufferSize: 48 << 20 } },
      /maxBufferSize 50331648 is below the heaps/,
    ],
    [{ limits: { maxBufferSize: 1e300 } }, /maxBufferSize must be a positive integer/],
    [{ limits: { minUniformBufferOffsetAlignment: 1e308 } }, /must be a power of two <= 256/],
    [{ limits: { minStorageBufferOffsetAlignment: 3 } }, /must be a power of two <= 256, got 3/],
    [{ limits: { maxStorageBufferBindingSize: "2GiB" } }, /must be a positive integer/],
  ];
  for (const [settings, message] of cases) refuses(traceWith(settings), message);
  const trace = readTrace(traceWith({
    allocConf: "large_heap:64MiB",
    highWatermark: "1GiB",
    limits: { maxBufferSize: 2 ** 32, minUniformBufferOffsetAlignment: 256, extra: 1 },
    extra: { deep: [1] },
  }));
  assert.deepEqual(trace.settings, {
    allocConf: "large_heap:64MiB",
    highWatermark: 2 ** 30,
    limits: { maxBufferSize: 2 ** 32, minUniformBufferOffsetAlignment: 256 },
  });
  refuses({ ...traceWith(null), durationMs: "1" }, /durationMs must be a number >= 0, got "1"/);
  refuses({ ...traceWith(null), durationMs: -1 }, /durationMs must be a number >= 0/);
});

Deno.test("replay() refuses settings no device has, rather than reserving Infinity", () => {
  const events = [["a", 1, 64], ["a", 2, 64]];
  assert.throws(() => replay(traceWith({ alignment: 1e308 }, events)), TraceError);
  assert.throws(
    () => replay(traceWith({ limits: { minStorageBufferOffsetAlignment: 1e308 } }, events)),
    TraceError,
  );
  assert.throws(() => replay(traceWith({ limits: { maxBufferSize: 100 } }, events)), TraceError);
  const ok = replay(traceWith({ limits: { minStorageBufferOffsetAlignment: 256 } }, events));
  assert.equal(ok.peakReserved, 128 << 10, "the first small heap");
});

Deno.test("describe() shows a few items one level deep, strings cut", () => {
  assert.equal(describe("x"), '"x"');
  assert.equal(describe(undefined), "nothing");
  assert.equal(describe([1, 2, 3, 4, 5, 6]), "[1, 2, 3, 4, … 2 more]");
  assert.equal(describe({ a: [1], b: { c: 1 } }), "{a: [1 items], b: {…}}");
  assert.equal(describe("y".repeat(1000)).length, 40);
  assert.equal(describe(() => 1), "function");
});

Deno.test("readTrace() refuses binding limits past 32 bits; replay() takes the largest a device reports", () => {
  const events = [["a", 1, 256, "uniform"], ["f", 1], ["a", 2, 256, "uniform"]];
  for (const name of ["maxUniformBufferBindingSize", "maxStorageBufferBindingSize"]) {
    refuses(
      traceWith({ limits: { [name]: 2 ** 32 } }, events),
      new RegExp(`settings\\.limits\\.${name} must be a positive integer of at most 2\\^32 - 1`),
    );
  }
  // 2^32 - 1 is what some drivers report for uniform bindings: the replay's memory must not
  // follow it (a table of the uniform pool's sizes once took 2 GB for 2^31).
  const r = replay(traceWith({ limits: { maxUniformBufferBindingSize: 2 ** 32 - 1 } }, events));
  assert.equal(r.allocations, 2);
});
