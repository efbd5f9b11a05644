// PyTorch snapshots as traces: the real ones in tests/testdata/pytorch replay to PyTorch's
// own peak allocated and reserved; blocks live before recording; frees, streams, segments,
// devices and labels as Note [PyTorch snapshots] decides; the loader on pickles and JSON;
// contradictions refused; and a seeded fuzzer over snapshots and their pickled bytes.
import assert from "node:assert/strict";
import {
  DEFAULT_MAX_BYTES,
  loadTraceFile,
  parseTraceBytes,
} from "../allocator/tools/load_trace.ts";
import { memvizFile } from "../allocator/tools/memviz_command.ts";
import {
  BEFORE_RECORDING,
  type PytorchTrace,
  readPytorchSnapshot,
  SNAPSHOT_LIMITS,
} from "../allocator/tools/pytorch_snapshot.ts";
import { readTrace, TraceError } from "../allocator/tools/read_trace.ts";
import { replay } from "../allocator/tools/replay.ts";
import type { TraceEvent } from "../allocator/trace.ts";
import { writePickle } from "./_pickle.ts";
import { rng } from "./_util.ts";

const MiB = 1 << 20;
const TESTDATA = new URL("./testdata/pytorch/", import.meta.url);
const BASE = 0x7f00_0000_0000;

interface Facts {
  peak_allocated: number;
  peak_reserved: number;
  events: number;
  segments: number;
}

async function facts(): Promise<Record<string, Facts>> {
  return JSON.parse(await Deno.readTextFile(new URL("facts.json", TESTDATA))).workloads;
}

/** A trace event of a snapshot (the fields PyTorch writes). */
function ev(action: string, addr: number, size: number, more: Record<string, unknown> = {}) {
  return { action, addr, size, stream: 0, time_us: 1000, frames: [], ...more };
}

/** A segment at `address` tiled by `blocks` ([size, state, requested?]). */
function seg(address: number, blocks: [number, string, number?][], device = 0, stream = 0) {
  let at = address;
  return {
    device,
    address,
    total_size: blocks.reduce((n, [size]) => n + size, 0),
    stream,
    blocks: blocks.map(([size, state, requested]) => {
      const b = { address: at, size, requested_size: requested ?? size, state, frames: [] };
      at += size;
      return b;
    }),
  };
}

/** The events with their times and placement items dropped: kind, id/size, pending or label. */
function shape(events: readonly TraceEvent[]): unknown[] {
  return events.map((e) => {
    if (e[0] === "a") return e[9] === undefined ? ["a", e[1], e[2]] : ["a", e[1], e[2], e[9]];
    if (e[0] === "f") return ["f", e[1], e[2]];
    if (e[0] === "oom") return ["oom", e[1], e[2]];
    return [e[0]];
  });
}

Deno.test("readPytorchSnapshot() replays the real traces to PyTorch's own peak allocated (±1%) and reserved", async () => {
  for (const [name, f] of Object.entries(await facts())) {
    const trace = await loadTraceFile(new URL(`${name}.pickle.gz`, TESTDATA)) as PytorchTrace;
    assert.equal(trace.pytorch.events, f.events, name);
    assert.equal(trace.pytorch.segments, f.segments, name);
    assert.equal(trace.pytorch.peakReserved, f.peak_reserved, name);
    assert.ok(trace.pytorch.blocksBeforeRecording > 0, "weights were live before recording");
    const r = replay(trace);
    assert.equal(r.ooms + r.skippedFrees, 0);
    for (const peak of [r.peakRequested, r.peakAllocated]) {
      // facts.json says why where the replay cannot see PyTorch's peak (and then it is off).
      const error = Math.abs(peak / f.peak_allocated - 1);
      assert.equal(
        error > 0.01,
        "peak_not_replayed" in f,
        `${name}: ${peak} vs PyTorch's ${f.peak_allocated} (${error})`,
      );
    }
  }
});

Deno.test("readPytorchSnapshot() opens the trace with the blocks live before recording", () => {
  const trace = readPytorchSnapshot({
    segments: [
      seg(BASE, [[2 * MiB, "active_allocated", 2 * MiB - 100], [MiB, "active_allocated"], [
        MiB,
        "inactive",
      ]]),
    ],
    device_traces: [[
      ev("alloc", BASE + 2 * MiB, MiB), // live at the end: not before recording
      ev("free_requested", BASE + 8 * MiB, 3 * MiB), // freed, never allocated: before recording
      ev("free_completed", BASE + 8 * MiB, 3 * MiB),
    ]],
  });
  // In address order, labelled; ids as they were met (the free's block first).
  assert.deepEqual(shape(trace.events), [
    ["a", 3, 2 * MiB - 100, BEFORE_RECORDING],
    ["a", 2, 3 * MiB, BEFORE_RECORDING],
    ["a", 1, MiB],
    ["f", 2, false],
  ]);
  assert.equal(trace.pytorch.blocksBeforeRecording, 2);
  assert.equal(trace.pytorch.bytesBeforeRecording, 5 * MiB - 100);
  const r = replay(trace);
  assert.equal(r.peakRequested, 6 * MiB - 100);
});

Deno.test("readPytorchSnapshot() frees at free_requested; a later free_completed becomes a submit", () => {
  const a = BASE;
  const b = BASE + 64 * MiB;
  const trace = readPytorchSnapshot({
    segments: [seg(a, [[128 * MiB, "inactive"]])],
    device_traces: [[
      ev("alloc", a, 40 * MiB),
      ev("free_requested", a, 40 * MiB), // used on another stream: completes later
      ev("alloc", b, 40 * MiB),
      ev("free_completed", a, 40 * MiB),
      ev("free_requested", b, 40 * MiB),
      ev("free_completed", b, 40 * MiB), // at once: one free
      ev("alloc", a, 8 * MiB),
      ev("free", a, 8 * MiB), // old snapshots: one event
      ev("alloc", b, 8 * MiB),
      ev("free_completed", b, 8 * MiB), // no request recorded: a free
      ev("free_completed", BASE + 999 * MiB, 8 * MiB), // requested before recording: nothing
    ]],
  });
  assert.deepEqual(shape(trace.events), [
    ["a", 1, 40 * MiB],
    ["f", 1, true],
    ["a", 2, 40 * MiB],
    ["submit"],
    ["f", 2, false],
    ["a", 3, 8 * MiB],
    ["f", 3, false],
    ["a", 4, 8 * MiB],
    ["f", 4, false],
  ]);
  assert.equal(trace.pytorch.deferredFrees, 1);
  assert.equal(trace.pytorch.blocksBeforeRecording, 0);
  const r = replay(trace);
  assert.equal(r.peakRequested, 40 * MiB, "allocated bytes drop at the request");
  assert.equal(r.peakInUse, 80 * MiB, "the memory waits for the completion");
});

Deno.test("readPytorchSnapshot() walks PyTorch's reserved bytes back from the segments", () => {
  const trace = readPytorchSnapshot({
    segments: [seg(BASE, [[60 * MiB, "inactive"]]), seg(BASE + 2 ** 30, [[40 * MiB, "inactive"]])],
    device_traces: [[
      ev("segment_alloc", BASE + 2 ** 31, 30 * MiB),
      ev("segment_map", BASE + 2 ** 32, 50 * MiB),
      ev("segment_free", BASE + 2 ** 31, 30 * MiB),
      ev("segment_unmap", BASE + 2 ** 32, 10 * MiB),
    ]],
  });
  const p = trace.pytorch;
  assert.equal(p.reservedAtEnd, 100 * MiB);
  assert.equal(p.reservedAtStart, 60 * MiB);
  assert.equal(p.peakReserved, 140 * MiB);
  assert.deepEqual(trace.events, [], "segment events are not replayed");
  assert.throws(
    () =>
      readPytorchSnapshot({
        segments: [seg(BASE, [[10 * MiB, "inactive"]])],
        device_traces: [[ev("segment_alloc", BASE + 2 ** 31, 30 * MiB)]],
      }),
    /segments hold 10485760 bytes, fewer than its segment events add \(31457280\)/,
  );
});

Deno.test("readPytorchSnapshot() reads one device and merges its streams", () => {
  const snapshot = {
    segments: [
      seg(BASE, [[MiB, "active_allocated"]], 0, 0),
      seg(BASE + 2 ** 30, [[2 * MiB, "active_allocated"]], 2, 7),
    ],
    device_traces: [
      [ev("alloc", BASE + 2 ** 31, 4096, { stream: 5 })],
      [],
      [ev("alloc", BASE + 2 ** 32, 8192, { stream: 9 })],
    ],
  };
  const first = readPytorchSnapshot(snapshot);
  assert.equal(first.pytorch.device, 0);
  assert.deepEqual(first.pytorch.devices, [0, 2]);
  assert.equal(first.pytorch.streams, 2);
  assert.deepEqual(shape(first.events), [["a", 2, MiB, BEFORE_RECORDING], ["a", 1, 4096]]);
  const other = readPytorchSnapshot(snapshot, { device: 2 });
  assert.deepEqual(shape(other.events), [["a", 2, 2 * MiB, BEFORE_RECORDING], ["a", 1, 8192]]);
  assert.equal(other.pytorch.streams, 2);
  assert.throws(
    () => readPytorchSnapshot(snapshot, { device: 1 }),
    (e) => e instanceof TraceError && /holds no device 1 \(devices: 0, 2\)/.test(e.message),
  );
  assert.throws(() => readPytorchSnapshot(snapshot, { device: -1 }), RangeError);
});

Deno.test("readPytorchSnapshot() labels allocations with their innermost frame outside PyTorch", () => {
  const frame = (filename: string, line: number, name: string) => ({ filename, line, name });
  const torch = "/venv/lib/python3.12/site-packages/torch/nn/modules/module.py";
  const trace = readPytorchSnapshot({
    segments: [],
    device_traces: [[
      ev("alloc", 1 * MiB, 512, {
        frames: [
          frame(torch, 1790, "_call_impl"),
          frame("/venv/site-packages/torchvision/models/resnet.py", 269, "_forward_impl"),
          frame("/work/train.py", 12, "main"),
        ],
      }),
      ev("alloc", 2 * MiB, 512, {
        frames: [frame("??", 0, "at::native::empty"), frame(torch, 1790, "_call_impl")],
      }),
      ev("alloc", 3 * MiB, 512, { frames: [frame("CUDACachingAllocator.cpp", 99, "malloc")] }),
      ev("alloc", 4 * MiB, 512, { frames: [] }),
      ev("alloc", 5 * MiB, 512, { frames: [{ line: "x" }, 7] }),
    ]],
  });
  assert.deepEqual(trace.events.map((e) => e[9]), [
    "resnet.py:269 _forward_impl",
    "module.py:1790 _call_impl",
    "CUDACachingAllocator.cpp:99 malloc",
    undefined,
    undefined,
  ]);
  // The labels reach the allocator: a recorded replay and its picture carry them.
  const recorded = replay(trace, { record: true }).trace!;
  assert.equal(recorded.events.find((e) => e[0] === "a")![9], "resnet.py:269 _forward_impl");
});

Deno.test("readPytorchSnapshot() turns oom into an oom event and skips other actions", () => {
  const trace = readPytorchSnapshot({
    segments: [],
    device_traces: [[
      { action: "oom", size: 3 * MiB, device_free: 1024, stream: 0 },
      { action: "oom", addr: 5, size: 512, stream: 0 },
      { action: "snapshot", addr: 0, size: 0, stream: 0 },
      { action: "user_defined" },
    ]],
  });
  assert.deepEqual(shape(trace.events), [["oom", 3 * MiB, "large"], ["oom", 512, "small"]]);
  assert.equal(trace.pytorch.skippedEvents, 2);
});

Deno.test("readPytorchSnapshot() refuses malformed snapshots and events that contradict the segments", () => {
  const cases: [unknown, RegExp][] = [
    [[], /not a PyTorch memory snapshot/],
    [{ segments: {}, device_traces: [] }, /not a PyTorch memory snapshot/],
    [{ segments: [7], device_traces: [] }, /segments\[0\] must be a dict, got 7/],
    [
      { segments: [{ device: 0, address: -1 }], device_traces: [] },
      /segments\[0\]\.address must be a non-negative integer, got -1/,
    ],
    [
      { segments: [{ ...seg(0, [[512, "x"]]), blocks: [{ size: "big" }] }], device_traces: [] },
      /segments\[0\]\.blocks\[0\]\.size must be/,
    ],
    [
      { segments: [{ ...seg(0, []), blocks: [{ size: 1, state: 3 }] }], device_traces: [] },
      /state must be a string, got 3/,
    ],
    [{ segments: [], device_traces: [7] }, /device_traces\[0\] must be a list, got 7/],
    [{ segments: [], device_traces: [[null]] }, /device_traces\[0\]\[0\] must be a dict, got null/],
    [
      { segments: [], device_traces: [[{ addr: 1 }]] },
      /device_traces\[0\]\[0\]\.action must be a string/,
    ],
    [
      { segments: [], device_traces: [[ev("alloc", 1.5, 64)]] },
      /\[0\]\.addr must be a non-negative integer, got 1\.5/,
    ],
    [
      { segments: [], device_traces: [[ev("alloc", 1, 2 ** 60)]] },
      /\[0\]\.size must be a non-negative integer/,
    ],
    [
      { segments: [], device_traces: [[ev("alloc", 1, 64, { time_us: "now" })]] },
      /time_us must be a number, got "now"/,
    ],
    [
      { segments: [], device_traces: [[ev("alloc", 1, 0)]] },
      /device_traces\[0\]\[0\]: alloc of 0 bytes/,
    ],
    [
      { segments: [], device_traces: [[ev("alloc", 16, 64), ev("alloc", 16, 64)]] },
      /device_traces\[0\]\[1\]: alloc at 0x10, where a block is live/,
    ],
    [
      { segments: [seg(16, [[64, "active_allocated"]])], device_traces: [[ev("free", 16, 64)]] },
      /segments list the block at 0x10 as allocated, but its trace freed it last/,
    ],
  ];
  for (const [snapshot, pattern] of cases) {
    assert.throws(() => readPytorchSnapshot(snapshot), (e: unknown) => {
      assert.ok(e instanceof TraceError, `${e}`);
      assert.match(e.message, pattern);
      return true;
    });
  }
});

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("parseTraceBytes() reads a snapshot pickled or as JSON, gzipped or not", async () => {
  const snapshot = {
    segments: [seg(BASE, [[MiB, "active_allocated"]])],
    device_traces: [[ev("alloc", BASE + MiB, 4096), ev("free", BASE + MiB, 4096)]],
    allocator_settings: { expandable_segments: false, roundup_power2_divisions: { "1": 0 } },
  };
  const expected = readPytorchSnapshot(snapshot);
  const pickled = writePickle(snapshot);
  const json = new TextEncoder().encode(JSON.stringify(snapshot));
  for (const bytes of [pickled, await gzip(pickled), json, await gzip(json)]) {
    const trace = await parseTraceBytes(bytes) as PytorchTrace;
    assert.deepEqual(trace, expected);
    assert.deepEqual(trace.settings!.limits, SNAPSHOT_LIMITS);
  }
  await assert.rejects(
    () => parseTraceBytes(writePickle([1, 2])),
    /a pickle, but not a PyTorch memory snapshot/,
  );
  await assert.rejects(() => parseTraceBytes(writePickle({ segments: [] })), TraceError);
  // A trace read from a snapshot survives JSON: its unset placement items become null.
  assert.deepEqual(replay(JSON.stringify(expected)), replay(expected));
});

Deno.test("memviz draws a snapshot pickle, with its labels", async () => {
  const html = await memvizFile(new URL("resnet50_infer_varbatch.pickle.gz", TESTDATA).pathname);
  assert.match(html, /<svg/);
  assert.match(html, /before recording/);
  assert.match(html, /\.py:\d+ /, "a call site labels a block");
});

Deno.test("readPytorchSnapshot() fuzzed: 10,000 seeded snapshots and their pickled bytes give a trace or a TraceError", async () => {
  const random = rng(909);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const addrs = [0, 512, 4096, 2 * MiB, BASE, BASE + 512];
  const odd = [-1, 1.5, "x", null, 2 ** 60, [], {}, true, undefined, 7n];
  const value = (good: () => unknown) => random() < 0.04 ? pick(odd) : good();
  const actions = [
    "alloc",
    "free_requested",
    "free_completed",
    "free",
    "segment_alloc",
    "segment_free",
    "segment_map",
    "segment_unmap",
    "oom",
    "snapshot",
    "other",
  ];
  const snapshot = () => {
    const segments = Array.from({ length: int(4) }, () => {
      let at = pick(addrs);
      return value(() => ({
        device: value(() => int(2)),
        address: at,
        total_size: value(() => int(8) * MiB),
        stream: value(() => int(3)),
        blocks: value(() =>
          Array.from({ length: int(4) }, () => {
            const size = value(() => pick([0, 512, MiB, 3 * MiB]));
            const b = {
              address: value(() => at),
              size,
              requested_size: value(() => int(2) * 100),
              state: value(() => pick(["active_allocated", "inactive", "active_pending_free"])),
              frames: value(() => [{ filename: "x.py", line: int(9), name: "f" }]),
            };
            at += typeof size === "number" ? size : 0;
            return b;
          })
        ),
      }));
    });
    const trace = () =>
      Array.from({ length: int(12) }, () =>
        value(() => ({
          action: value(() => pick(actions)),
          addr: value(() => pick(addrs)),
          size: value(() => pick([0, 4, 512, MiB, 200 * MiB])),
          stream: value(() => int(2)),
          time_us: value(() => 1e6 + int(1000)),
          frames: value(() => []),
        })));
    return {
      segments: value(() => segments),
      device_traces: value(() => Array.from({ length: int(3) }, trace)),
    };
  };
  let traces = 0;
  let errors = 0;
  const expectTraceError = (e: unknown, what: string) => {
    assert.ok(e instanceof TraceError, `${what}: not a TraceError: ${e}`);
    errors++;
  };
  let inputs = 0;
  for (; inputs < 10_000; inputs++) {
    const s = snapshot();
    if (inputs % 8 === 0) {
      // Through the loader: pickled (bigints and undefined as the writer has them), mutated.
      const bytes = [...writePickle(s)];
      for (let m = int(3); m > 0; m--) bytes[int(bytes.length)] = int(256);
      try {
        await parseTraceBytes(new Uint8Array(bytes));
        traces++;
      } catch (e) {
        expectTraceError(e, `pickled input ${inputs}`);
      }
      continue;
    }
    let trace: PytorchTrace;
    try {
      trace = readPytorchSnapshot(s);
    } catch (e) {
      expectTraceError(e, `input ${inputs}`);
      continue;
    }
    traces++;
    // What it reads is a valid trace, and replays (or names the event a limit refuses).
    readTrace(trace);
    try {
      replay(trace, { limits: { maxStorageBufferBindingSize: 128 * MiB } });
    } catch (e) {
      expectTraceError(e, `replay of input ${inputs}`);
    }
  }
  assert.ok(inputs >= 10_000);
  assert.ok(traces > 1000 && errors > 1000, `traces ${traces}, errors ${errors}`);
});

Deno.test("readPytorchSnapshot() finds the label of a frame list shared by many blocks and events once", () => {
  // 200 frames all inside PyTorch (a search walks them all), shared by 300 allocations and
  // 300 blocks; a proxy counts the frames read.
  const frame = { filename: "/site-packages/torch/nn/module.py", line: 7, name: "forward" };
  let reads = 0;
  const frames = new Proxy(Array(200).fill(frame), {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver);
    },
  });
  const allocs = Array.from(
    { length: 300 },
    (_, i) => ev("alloc", BASE + 4096 * i, 512, { frames }),
  );
  const segment = seg(BASE + 2 ** 30, Array(300).fill([512, "active_allocated"]));
  for (const b of segment.blocks) (b as { frames: unknown }).frames = frames;
  const trace = readPytorchSnapshot({ segments: [segment], device_traces: [allocs] });
  assert.equal(trace.events.length, 600);
  assert.ok(trace.events.every((e) => e[0] === "a" && e[9] === "module.py:7 forward"));
  assert.ok(reads <= 2 * 200, `${reads} frames read for one list of 200`);
});

Deno.test("readPytorchSnapshot() refuses a block list that a memo reference puts in two segments", async () => {
  const shared = seg(BASE, [[MiB, "active_allocated"]]);
  const other = { ...seg(BASE + 4 * MiB, []), blocks: shared.blocks };
  const cases: [unknown, RegExp][] = [
    [
      { segments: [shared, shared], device_traces: [] },
      /segments\[1\]\.blocks is the list of segments\[0\] again/,
    ],
    [
      { segments: [shared, other], device_traces: [] },
      /segments\[1\]\.blocks is the list of segments\[0\] again/,
    ],
  ];
  for (const [snapshot, message] of cases) {
    assert.throws(() => readPytorchSnapshot(snapshot), message);
    // And as a pickle, where the sharing is a memo reference.
    await assert.rejects(() => parseTraceBytes(writePickle(snapshot)), message);
  }
  // Empty block lists may be shared: they place nothing.
  const empty: unknown[] = [];
  const two = [{ ...seg(BASE, []), blocks: empty }, { ...seg(BASE + MiB, []), blocks: empty }];
  assert.equal(readPytorchSnapshot({ segments: two, device_traces: [] }).pytorch.segments, 2);
});

Deno.test("the real snapshots load under caps scaled to their size: a snapshot of 50 MB loads under the defaults", async () => {
  // The defaults hold 64 MiB; scaled to each file as 50 MB is to that, each still loads, so
  // a snapshot of 50 MB built as these are (same values a byte) loads under the defaults.
  for (const name of Object.keys(await facts())) {
    const gz = await Deno.readFile(new URL(`${name}.pickle.gz`, TESTDATA));
    const stream = new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip"));
    const size = (await new Response(stream).arrayBuffer()).byteLength;
    const maxBytes = Math.ceil(size * DEFAULT_MAX_BYTES / 50e6);
    const trace = await parseTraceBytes(gz, { maxBytes }) as PytorchTrace;
    assert.ok(trace.events.length > 0, name);
    await assert.rejects(
      () => parseTraceBytes(gz, { maxBytes: Math.floor(size / 2) }),
      /raise it with --max-file-size/,
    );
  }
});
