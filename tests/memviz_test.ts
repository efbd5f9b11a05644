// The memory picture: its SVG holds a band per block over time, the series of
// every pool used and one row per heap at the peak, with the blocks the trace
// placed there; the page references nothing outside itself, and its one
// script is ours. Rendered in headless Chromium where it is installed.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { memvizHtml } from "../allocator/tools/memviz.ts";
import { PAGE_SCRIPT } from "../allocator/tools/memviz_script.ts";
import { PLOT, POOL_COLORS } from "../allocator/tools/charts.ts";
import { TraceError } from "../allocator/tools/read_trace.ts";
import { replay } from "../allocator/tools/replay.ts";
import { SnapshotError } from "../allocator/tools/read_snapshot.ts";
import { loadTraceFile } from "../allocator/tools/load_trace.ts";
import { readPytorchSnapshot } from "../allocator/tools/pytorch_snapshot.ts";
import type { Snapshot } from "../allocator/snapshot.ts";
import { inkedRows, readPng } from "./_png.ts";
import { rng } from "./_util.ts";

const MiB = 1 << 20;
const TESTDATA = new URL("./testdata/pytorch/", import.meta.url);

/** The page without its script, once checked that the script is ours and the only one. */
function withoutScript(html: string): string {
  const script = String(PAGE_SCRIPT);
  assert.equal(html.split("<script").length, 2, "one script");
  assert.ok(html.includes(script), "the script is ours, as written");
  return html.replace(script, "");
}

/** Every way a page could reach outside itself. */
function assertSelfContained(html: string): void {
  const page = withoutScript(html);
  assert.doesNotMatch(html, /https?:/i, "no http(s) URL");
  assert.doesNotMatch(page, /\b(?:src|href|xlink:href)\s*=/i, "no src= or href=");
  assert.doesNotMatch(page, /<script|<link|<iframe|<img|@import|url\((?!#)/i);
}

/** The heap rows of the map: id → [pool, size, number of blocks drawn]. */
function heapRows(html: string): Map<number, [string, number, number]> {
  const rows = new Map<number, [string, number, number]>();
  for (
    const m of html.matchAll(
      /<g class="heap" data-heap="(\d+)" data-pool="(\w+)" data-size="(\d+)">(.*?)<\/g>/g,
    )
  ) {
    const blocks = (m[4].match(/class="block /g) ?? []).length;
    rows.set(Number(m[1]), [m[2], Number(m[3]), blocks]);
  }
  return rows;
}

Deno.test("memvizHtml() of a trace draws both series by pool and the heaps at the peak", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  allocator.startRecording();
  const a = allocator.alloc(3 * MiB, { label: "w" });
  const b = allocator.alloc(100 * MiB);
  const c = allocator.alloc(4096);
  allocator.alloc(256, { usage: "uniform" });
  const p = allocator.alloc(8 * MiB);
  void p.buffer;
  allocator.free(p); // pending at the peak
  const q = allocator.alloc(9 * MiB);
  const peak = allocator.snapshot();
  allocator.free(b);
  allocator.free(c);
  allocator.free(q);
  allocator.submit();
  const html = memvizHtml(allocator.stopRecording());
  assertSelfContained(html);
  assert.match(html, /^<!DOCTYPE html>/);
  for (const chart of ["reserved", "allocated"]) {
    assert.match(html, new RegExp(`<svg class="chart time" id="chart-${chart}"`));
    for (const pool of ["small", "large", "uniform"]) {
      assert.match(html, new RegExp(`data-series="${chart}:${pool}"`), `${chart} of ${pool}`);
    }
    assert.doesNotMatch(html, new RegExp(`data-series="${chart}:readback"`), "unused pools");
  }
  assert.match(html, /data-series="allocated:reserved-total"/);
  assert.match(html, /peak allocated 112\.00 MiB/);
  assert.match(html, /\d+(\.\d)? MiB<\/text>/, "the byte axis has units");
  // The map shows the heaps held at the peak of allocated bytes, with their blocks.
  const rows = heapRows(html);
  assert.deepEqual(
    [...rows].map(([id, [pool, size]]) => [id, pool, size]),
    peak.heaps.map((h) => [h.id, h.pool, h.size]),
  );
  for (const h of peak.heaps) {
    const drawn = h.blocks.filter((x) => x.state !== "free").length;
    assert.equal(rows.get(h.id)![2], drawn, `heap #${h.id}: one rect per block`);
  }
  assert.match(html, /class="block pending"/);
  assert.match(
    html,
    new RegExp(
      `data-tip="block #${a.id} live: 3\\.00 MiB at offset 0 \\(requested ${3 * MiB} B, w\\)"`,
    ),
  );
  allocator.destroy();
});

Deno.test("memvizHtml() of a snapshot draws bytes by pool and every heap", () => {
  // Keep every cached heap, so the picture has a cached block to show.
  const allocator = new HeapAllocator(new FakeDevice(), { allocConf: "max_reserved_ratio:0" });
  allocator.alloc(1000);
  allocator.alloc(5 * MiB);
  allocator.free(allocator.alloc(70 * MiB));
  allocator.alloc(100, { usage: "readback" });
  const snap = allocator.snapshot();
  const html = memvizHtml(JSON.stringify(snap));
  assertSelfContained(html);
  assert.match(html, /data-series="reserved:large"/);
  assert.match(html, /data-series="allocated:readback"/);
  assert.deepEqual([...heapRows(html).keys()], snap.heaps.map((h) => h.id));
  assert.match(html, /class="block cached"/);
  allocator.destroy();
});

Deno.test("memvizHtml() replays a plain list first; many blocks stay a small page", () => {
  const events: unknown[] = [];
  for (let i = 1; i <= 20_001; i++) events.push(["a", i, 256 + (i % 7) * 64]);
  for (let i = 1; i <= 20_001; i += 2) events.push(["f", i]);
  const html = memvizHtml(events, { at: "reserved" });
  assertSelfContained(html);
  assert.match(html, /replayed on the fake device/);
  assert.match(html, /Heaps <span id="memviz-map-when">at the peak reserved/);
  assert.ok(html.length < 2_000_000, `${html.length} characters`);
  // Past 20,000 blocks the page carries no lives for the heap map to move through.
  assert.doesNotMatch(html, /id="memviz-data"/);
  assert.match(html, /too large for the heap map to move/);
  assert.throws(() => memvizHtml("{not json"), /malformed JSON/);
});

/** The strings an attacker would put in a label, a title, a pool or an id. */
const HOSTILE = [
  '<img src=x onerror="alert(1)">',
  "</title><script>alert(1)</script>",
  '" onload="alert(1)',
  "' onload='alert(1)",
  "]]><svg onload=alert(1)>",
];

/** The elements a page is made of (besides its script). */
const ELEMENTS = new Set(
  ("html head meta title style body h1 h2 h3 p table tr th td div span i b svg g line text " +
    "polygon polyline rect defs pattern label input output button").split(" "),
);

/** Every tag of the page is one of ours, with no handler or link among its attributes. */
function assertInert(html: string): void {
  assert.doesNotMatch(html, /https?:/i, "no http(s) URL");
  for (
    const [tag, name, attributes] of withoutScript(html).matchAll(/<\/?([a-zA-Z0-9]+)([^>]*)>/g)
  ) {
    assert.ok(ELEMENTS.has(name.toLowerCase()) || tag.startsWith("<!"), tag);
    // Values are quoted and escaped: what is inside one is text, not an attribute.
    const names = [...attributes.replace(/"[^"]*"/g, '""').matchAll(/\s([^\s=]+)=/g)]
      .map((m) => m[1].toLowerCase());
    for (const n of names) assert.ok(!/^on|^(src|href|xlink:href)$/.test(n), `${n} in ${tag}`);
  }
}

Deno.test("memvizHtml() escapes every string that comes from its input", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  allocator.startRecording();
  for (const label of HOSTILE) allocator.alloc(1 << 20, { label }); // wide enough to carry a title
  const snapshot = allocator.snapshot();
  const trace = allocator.stopRecording();
  allocator.destroy();
  for (const title of HOSTILE) {
    const fromTrace = memvizHtml(JSON.stringify(trace), { title });
    const fromSnapshot = memvizHtml(JSON.stringify(snapshot), { title });
    for (const html of [fromTrace, fromSnapshot]) {
      assertInert(html);
      assert.ok(
        html.includes("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"),
        "the label, escaped",
      );
    }
  }
});

Deno.test("memvizHtml() refuses markup where a trace or snapshot has an id, pool or state", () => {
  const img = HOSTILE[0];
  const traces: unknown[] = [
    [["heap", img, 8 << 20, "small", true]],
    [["heap", 1, 8 << 20, img, true]],
    [["heap", 1, 8 << 20, "small", true], ["a", 1, 64, "storage", 0, img, 1, 0, 64]],
  ];
  for (const t of traces) assert.throws(() => memvizHtml(t), TraceError);
  const allocator = new HeapAllocator(new FakeDevice());
  allocator.alloc(1000);
  const good = allocator.snapshot();
  allocator.destroy();
  const edits: ((s: Snapshot) => void)[] = [
    (s) => (s.heaps[0] as { id: unknown }).id = img,
    (s) => s.heaps[0].pool = img,
    (s) => (s.heaps[0].blocks[0] as { state: unknown }).state = img,
    (s) => (s.heaps[0].blocks[0] as { id: unknown }).id = img,
    (s) => (s.heaps[0].blocks[0] as { size: unknown }).size = img,
  ];
  for (const edit of edits) {
    const bad = structuredClone(good);
    edit(bad);
    assert.throws(() => memvizHtml(bad), SnapshotError);
  }
});

Deno.test("memvizHtml() refuses sizes no device has, at once", () => {
  for (const size of [1e300, 2 ** 80, 2 ** 53]) {
    assert.throws(() => memvizHtml([["heap", 1, size, "small", true]]), TraceError);
    assert.throws(() => memvizHtml(JSON.stringify([["a", 1, size]])), TraceError);
  }
});

Deno.test("memvizHtml() keeps its axes to a few ticks, however large the bytes", () => {
  // 2048 heaps of 2^52 bytes each: 2^63 bytes reserved at the peak.
  const events: unknown[] = [];
  for (let id = 1; id <= 2048; id++) {
    events.push(["heap", id, 2 ** 52, "large", true], [
      "a",
      id,
      64,
      "storage",
      0,
      "large",
      id,
      0,
      64,
    ]);
  }
  const html = memvizHtml(events);
  assertInert(html);
  for (const chart of html.match(/<svg class="chart[^]*?<\/svg>/g)!) {
    const grid = (chart.match(/class="grid"/g) ?? []).length;
    assert.ok(grid >= 3 && grid <= 13, `${grid} grid lines`);
  }
  assert.match(html, /\d+ [EZY]iB<\/text>/, "the axis speaks in large units");
  assert.doesNotMatch(html, /NaN|Infinity/);
});

Deno.test("memvizHtml() gives typed errors, never an internal TypeError", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  allocator.startRecording();
  allocator.alloc(1000);
  const snapshot = allocator.snapshot();
  const trace = allocator.stopRecording();
  allocator.destroy();
  const cases: [unknown, abstract new (...args: never[]) => Error, RegExp][] = [
    [
      { ...trace, settings: { ...trace.settings, allocConf: 5 } },
      TraceError,
      /allocConf must be a string/,
    ],
    [{ ...trace, settings: { ...trace.settings, allocConf: {} } }, TraceError, /allocConf must be/],
    [{ ...snapshot, stats: undefined }, SnapshotError, /stats must be an object, got nothing/],
    [
      { ...snapshot, stats: { ...snapshot.stats, pools: null } },
      SnapshotError,
      /stats\.pools must/,
    ],
    [{ ...snapshot, settings: null }, SnapshotError, /settings must be an object/],
    [
      { ...snapshot, heaps: [{ ...snapshot.heaps[0], size: "8388608" }] },
      SnapshotError,
      /size must/,
    ],
    [
      { ...snapshot, stats: { ...snapshot.stats, cachedBytes: "5" } },
      SnapshotError,
      /stats\.cachedBytes must be an integer >= 0 .*got "5"/,
    ],
    [{ format: "gpuheap-snapshot", version: 2 }, SnapshotError, /unsupported version 2/],
  ];
  for (const [input, type, message] of cases) {
    assert.throws(() => memvizHtml(input), (e: unknown) => {
      assert.ok(e instanceof type, `${String(e)}`);
      assert.match((e as Error).message, message);
      return true;
    });
  }
  assert.throws(() => memvizHtml([], { at: "peak" as "allocated" }), /at must be "allocated"/);
  assert.throws(() => memvizHtml([], { title: 5 as unknown as string }), TypeError);
});

Deno.test("memvizHtml() draws edge cases with finite coordinates only", () => {
  const pages = [
    memvizHtml([]),
    memvizHtml([["submit"]]),
    memvizHtml([["heap", 1, 32, "small", true]]),
    memvizHtml([["heap", 1, 32, "small", true], ["release", 1], ["release", 1], ["f", 9]]),
    memvizHtml([
      ["heap", 1, 64, "small", false],
      ["a", 1, 1, "storage", 0, "small", 1, 0, 64],
      [
        "f",
        1,
      ],
      ["f", 1],
      ["a", 2, 1, "storage", 0, "small", 1, 0, 64],
    ]),
  ];
  for (const html of pages) {
    assertInert(html);
    assert.doesNotMatch(html, /NaN|Infinity|undefined|\[object/);
  }
  assert.throws(
    () =>
      memvizHtml([["heap", 1, 64, "small", true], ["a", 1, 64, "storage", 0, "small", 1, 32, 64]]),
    /event 1: block 1 of 64 bytes at offset 32 lies outside heap 1 of 64 bytes/,
  );
  assert.throws(
    () => memvizHtml([["heap", 1, 64, "small", true], ["heap", 1, 64, "small", true]]),
    /event 1: heap 1 is made twice/,
  );
});

/** A band of the block timeline: its block, tip and the corners of its outline. */
interface DrawnBand {
  block: number;
  tip: string;
  points: [number, number][];
}

function bands(html: string): DrawnBand[] {
  return [
    ...html.matchAll(
      /<polygon class="band" data-block="(\d+)" fill="[^"]*" data-tip="([^"]*)" points="([^"]*)"/g,
    ),
  ].map((m) => ({
    block: Number(m[1]),
    tip: m[2],
    points: m[3].split(" ").map((p) => p.split(",").map(Number) as [number, number]),
  }));
}

/** The heights a band's corners stand at, in pixels per `unit` pixels, from the floor. */
function levels(band: DrawnBand, unit: number): number[] {
  const at = band.points.map(([, y]) => Math.round((300 - y) / unit * 100) / 100);
  return [...new Set(at)].sort((a, b) => a - b);
}

function xRange(band: DrawnBand): [number, number] {
  const xs = band.points.map(([x]) => x);
  return [Math.min(...xs), Math.max(...xs)];
}

Deno.test("memvizHtml() draws a band per block from its alloc to its free; those above slide down", () => {
  // Events 1..6 (no times): 1 MiB (block 1), 2 MiB (2), free 1, 1 MiB (3), free 2, free 3.
  const html = memvizHtml([
    ["a", 1, MiB],
    ["a", 2, 2 * MiB],
    ["f", 1],
    ["a", 3, MiB],
    ["f", 2],
    ["f", 3],
  ]);
  const drawn = bands(html);
  assert.equal(drawn.length, 3, "one band per block");
  const column = (events: number) => PLOT * events / 6;
  const near = ([a, b]: [number, number], [c, d]: [number, number]) =>
    Math.abs(a - c) <= 0.5 && Math.abs(b - d) <= 0.5;
  // Heights in MiB: the height of block 1's band.
  const mib = 300 - Math.min(...drawn[0].points.map(([, y]) => y));
  assert.ok(near(xRange(drawn[0]), [column(1), column(3)]), `${xRange(drawn[0])}`);
  assert.deepEqual(levels(drawn[0], mib), [0, 1]);
  // Block 2 sits on block 1 until 1 is freed, then on the floor.
  assert.ok(near(xRange(drawn[1]), [column(2), column(5)]));
  assert.deepEqual(levels(drawn[1], mib), [0, 1, 2, 3]);
  // Block 3 starts on block 2 (at 2 MiB) and slides to the floor when 2 is freed.
  assert.ok(near(xRange(drawn[2]), [column(4), column(6)]));
  assert.deepEqual(levels(drawn[2], mib), [0, 1, 2, 3]);
  assert.match(drawn[1].tip, /^block #2: 2\.00 MiB \(requested 2097152 B\)/);
  assert.match(html, /Every block is drawn: 3 bands/);
});

Deno.test("memvizHtml() draws the blocks at the peak, largest first, and sums the others", () => {
  const events: unknown[] = [];
  for (let i = 1; i <= 10; i++) events.push(["a", i, i * MiB]);
  for (let i = 1; i <= 10; i++) events.push(["f", i]);
  events.push(["a", 11, 40 * MiB], ["f", 11]); // the largest, but not live at the peak (55 MiB)
  const html = memvizHtml(events, { maxBands: 3 });
  const drawn = bands(html);
  assert.deepEqual(drawn.map((b) => b.tip.match(/^block #(\d+)/)![1]), ["8", "9", "10"]);
  assert.equal((html.match(/<polygon class="band-rest"/g) ?? []).length, 1);
  assert.match(html, /The 3 blocks live at the peak or largest are drawn one by one; the other 8/);
  assert.match(html, /data-tip="8 smaller blocks, summed"/);
  assert.throws(() => memvizHtml(events, { maxBands: -1 }), TypeError);
});

Deno.test("memvizHtml() puts the trace's times on the x axis, or its events where it has none", () => {
  const timed = [
    ["a", 1, MiB, "storage", 5],
    ["a", 2, MiB, "storage", 7],
    ["f", 1, false, 9],
    ["f", 2, false, 15],
  ];
  const html = memvizHtml(timed);
  assert.match(html, /id="chart-timeline" [^>]*data-from="5" data-to="15" data-unit="ms"/);
  assert.match(html, /time since the recording began/);
  assert.match(html, />10 ms<\/text>/, "a tick in milliseconds");
  const [first, second] = bands(html);
  const column = (ms: number) => PLOT * (ms - 5) / 10;
  const near = ([a, b]: [number, number], [c, d]: [number, number]) =>
    Math.abs(a - c) <= 0.5 && Math.abs(b - d) <= 0.5;
  assert.ok(near(xRange(first), [column(5), column(9)]));
  assert.ok(near(xRange(second), [column(7), column(15)]));
  assert.match(first.tip, /placed at 5 ms, freed at 9 ms/);
  const byEvents = memvizHtml(timed, { x: "events" });
  assert.match(byEvents, /id="chart-timeline" [^>]*data-from="0" data-to="4" data-unit="events"/);
  assert.match(byEvents, /the trace has no times/);
  assert.match(memvizHtml(timed.map((e) => e.slice(0, 3))), /data-unit="events"/);
  // A time earlier than the one before (another stream's clock) reads as the one before.
  const late = bands(
    memvizHtml([...timed.slice(0, 1), ["a", 3, MiB, "storage", 2], ...timed.slice(1)]),
  );
  assert.ok(Math.abs(xRange(late[1])[0]) <= 0.5, `${xRange(late[1])}`);
  assert.throws(() => memvizHtml(timed, { x: "ms" as "time" }), /x must be "time" or "events"/);
});

Deno.test("memvizHtml() counts the events of the trace, as replay does", async () => {
  const list = [["a", 1, 4096], ["oom", 9 * MiB, "large"], ["a", 2, 100 * MiB], ["f", 2], ["f", 1]];
  const pytorch = await loadTraceFile(new URL("resnet50_infer_varbatch.pickle.gz", TESTDATA));
  for (const trace of [list, pytorch]) {
    const html = memvizHtml(trace);
    const events = /<td>events<\/td><td>([\d,]+)/.exec(html)![1];
    assert.equal(events, replay(trace as unknown[]).events.toLocaleString("en-US"));
    assert.match(html, /the replay made \d+ heap events more/);
  }
});

Deno.test("memvizHtml() reads a trace once and replays it as read", () => {
  // An event whose size counts its reads: memviz reads it as often as replay(), which reads
  // the trace once and replays it.
  let reads = 0;
  const counted = () => {
    const alloc = ["a", 1, 0];
    Object.defineProperty(alloc, 2, { get: () => (reads++, 3 * MiB) });
    return [alloc, ["a", 2, 64], ["f", 1]];
  };
  replay(counted());
  const replayReads = reads;
  reads = 0;
  const html = memvizHtml(counted());
  assert.match(html, /replayed on the fake device/);
  assert.equal(reads, replayReads);
});

Deno.test("memvizHtml() lists the largest blocks at the peak, with their labels", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  allocator.startRecording();
  const w = allocator.alloc(3 * MiB, { label: "model.py:10 weights" });
  const g = allocator.alloc(2 * MiB, { label: "model.py:20 grad" });
  const a = [1, 2, 3].map(() => allocator.alloc(256 << 10, { label: "model.py:30 act" }));
  for (const b of [...a, g, w]) allocator.free(b);
  const html = memvizHtml(allocator.stopRecording());
  allocator.destroy();
  const top = html.slice(html.indexOf("Largest blocks at the peak"));
  const rows = [
    ...top.matchAll(
      /<tr><td><i class="swatch"[^>]*><\/i><\/td><td>([^<]*)<\/td><td>[^<]*<\/td><td>([^<]*)<\/td>/g,
    ),
  ]
    .map((m) => [m[1], m[2]]);
  assert.deepEqual(rows, [
    ["3.00 MiB", "model.py:10 weights"],
    ["2.00 MiB", "model.py:20 grad"],
    ["256.00 KiB", "model.py:30 act"],
    ["256.00 KiB", "model.py:30 act"],
    ["256.00 KiB", "model.py:30 act"],
  ]);
  assert.match(top, /<tr><td>model\.py:30 act<\/td><td>3<\/td><td>768\.00 KiB<\/td><\/tr>/);
});

Deno.test("memvizHtml() draws every heap on one byte scale, under an axis of offsets", () => {
  const allocator = new HeapAllocator(new FakeDevice());
  allocator.startRecording();
  allocator.alloc(2 * MiB); // a 32 MiB large heap
  allocator.alloc(1000); // a small heap, an eighth of what the allocator holds: 4 MiB
  const html = memvizHtml(allocator.stopRecording());
  allocator.destroy();
  const widths = [
    ...html.matchAll(
      /data-size="(\d+)"><text[^>]*>[^<]*<\/text><rect class="row" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g,
    ),
  ].map((m) => [Number(m[1]), Number(m[2])]);
  assert.equal(widths.length, 2);
  const [[small, smallW], [large, largeW]] = widths.sort((a, b) => a[0] - b[0]);
  assert.equal(large / small, 8);
  assert.ok(Math.abs(largeW / smallW - 8) < 0.01, `${largeW} / ${smallW}`);
  // Offsets 0, 5 … 30 MiB, evenly spaced on the same scale as the rows.
  const map = html.slice(html.indexOf('<g class="offsets">'));
  const ticks = [
    ...map.slice(0, map.indexOf("</g>")).matchAll(/<text x="([\d.]+)"[^>]*>([^<]*)</g),
  ];
  assert.deepEqual(ticks.map((t) => t[2]), [
    "0",
    "5 MiB",
    "10 MiB",
    "15 MiB",
    "20 MiB",
    "25 MiB",
    "30 MiB",
  ]);
  const [x0, x5] = ticks.map((t) => Number(t[1]));
  assert.ok(Math.abs((x5 - x0) - largeW * 5 / 32) < 0.2, `${x5 - x0}`);
});

Deno.test("memvizHtml() writes each peak's label above the plot, at its own line", () => {
  const html = memvizHtml([["a", 1, 3 * MiB], ["f", 1], ["a", 2, MiB], ["a", 3, 40 * MiB]]);
  for (
    const chart of html.match(
      /<svg class="chart time"[^]*?<svg class="plot" x="(\d+)" y="([\d.]+)"/g,
    )!
  ) {
    const [, left, top] = /<svg class="plot" x="(\d+)" y="([\d.]+)"/.exec(chart)!.map(Number);
    const labels = [
      ...chart.matchAll(
        /<text class="mark (\w+)" x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)">([^<]*)<\/text><line class="mark \1" x1="([\d.]+)"/g,
      ),
    ];
    assert.equal(labels.length, 2);
    assert.deepEqual(labels.map((l) => l[1]), ["allocated", "reserved"], "a style each");
    for (const [, , x, y, anchor, , line] of labels) {
      assert.ok(Number(y) < top, "above the plot: no label on the dashed line");
      assert.equal(Number(x) - Number(line), anchor === "start" ? 4 : -4, "beside its own line");
      assert.ok(Number(line) >= left);
    }
    assert.notEqual(labels[0][3], labels[1][3], "two labels near each other take two rows");
  }
});

Deno.test("legend() draws block states as the heap map draws them, in the pool it names", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const kept = heap.alloc(4096);
  heap.free(heap.alloc(4096)); // into the front cache: drawn as cached
  const html = memvizHtml(heap.snapshot());
  heap.free(kept);
  heap.destroy();
  const legend = html.slice(html.indexOf("<b>Heap map</b>"));
  assert.match(legend, /here the small pool's/);
  const live = /background:(#\w+)"><\/i>live block/.exec(legend)![1];
  assert.equal(live, POOL_COLORS.small);
  const cached = /background:(#\w+);opacity:([\d.]+)"><\/i>cached/.exec(legend)!;
  const drawn = /<rect class="block cached"[^>]*fill="(#\w+)" fill-opacity="([\d.]+)"/.exec(html)!;
  assert.deepEqual([cached[1], cached[2]], [drawn[1], drawn[2]], "as the map draws a cached block");
  assert.equal(drawn[1], POOL_COLORS.small);
});

Deno.test("memvizHtml() gives the script every block's life, within a bound", () => {
  const events: unknown[] = [["a", 1, 64], ["a", 2, 3 * MiB], ["f", 1]];
  const html = memvizHtml(events);
  const data = (name: string) =>
    JSON.parse(new RegExp(`data-${name}="([^"]*)"`).exec(html)![1].replaceAll("&quot;", '"'));
  assert.equal(data("blocks").length, 2 * 10);
  assert.equal(data("heaps").length, 2 * 6);
  // The replay's events: heap, a 1, heap, a 2, f 1. Block 1 lives from its event 1 to 4;
  // block 2 from 3 on. Moments: the trace's events done (1, 2, 3) and the last event at each.
  assert.deepEqual(data("blocks").slice(3, 7), [1, 4, 4, 4]);
  assert.deepEqual(data("blocks").slice(13, 17), [3, -1, -1, -1]);
  assert.deepEqual(data("moments"), [1, 1, 2, 3, 3, 4]);
  assert.match(html, /<input type="range" id="memviz-at" min="0" max="3" step="1" value="2">/);
  assert.match(html, /<button type="button" data-event="3" data-x="2">peak allocated<\/button>/);
});

/** True where Debian's `chromium` runs. */
function hasChromium(): boolean {
  try {
    return new Deno.Command("chromium", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

const CHROMIUM = hasChromium();
const NO_CHROMIUM = " (skipped: chromium is not installed; apt-get install chromium)";

/** Runs `tests/testdata/chromium_page.ts` (which may write where tests may not) on `input`. */
async function chromiumPage(input: string | Uint8Array, args: string[]): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./testdata/chromium_page.ts", import.meta.url).pathname, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(typeof input === "string" ? new TextEncoder().encode(input) : input);
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  assert.ok(success, new TextDecoder().decode(stderr));
  return new TextDecoder().decode(stdout);
}

/** The DOM of a page once Chromium ran its script, for each of `hashes` at the end of its address. */
async function dumpDoms(html: string, hashes: string[]): Promise<string[]> {
  return JSON.parse(await chromiumPage(html, ["dom", ...hashes]));
}

Deno.test({
  name: "memvizHtml() pages run their script in Chromium: one band per block, the heap map moves" +
    (CHROMIUM ? "" : NO_CHROMIUM),
  ignore: !CHROMIUM,
  async fn() {
    // Times in milliseconds: heap 1 is released at 6; block 2 lives from 4 to 7, then waits
    // for the submit at 7.8.
    const trace = [
      ["heap", 1, 8 * MiB, "small", true, 1],
      ["a", 1, 1000, "storage", 2, "small", 1, 0, 1024, "a.py:1 f"],
      ["heap", 2, 32 * MiB, "large", true, 3],
      ["a", 2, 2 * MiB, "storage", 4, "large", 2, 0, 2 * MiB, "b.py:2 g"],
      ["f", 1, false, 5],
      ["release", 1, 6],
      ["f", 2, true, 7],
      ["submit", 7.8],
      ["a", 3, 512, "storage", 8, "large", 2, 4096, 512],
    ];
    const [dom, at45, at65, at75, at79, zoomed] = await dumpDoms(memvizHtml(trace), [
      "",
      "#at=4.5",
      "#at=6.5",
      "#at=7.5",
      "#at=7.9",
      "#zoom=3,5",
    ]);
    assert.match(dom, /<html[^>]* data-ready="1"/, "the script ran to its end");
    assert.match(dom, /<html[^>]* data-height="\d+"/);
    assert.equal((dom.match(/<polygon class="band"/g) ?? []).length, 3, "one band per block");
    const heapsAt = (dom: string) =>
      [...dom.matchAll(/<g class="heap" data-heap="(\d+)"/g)].map((m) => Number(m[1]));
    const blocksAt = (dom: string) =>
      [...dom.matchAll(/data-tip="block #(\d+) (\w+):/g)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(heapsAt(at45), [1, 2]);
    assert.deepEqual(blocksAt(at45), ["2 live"], "block 1 is too small to be drawn alone");
    assert.match(at45, /1 live blocks, 1\.00 KiB/);
    assert.match(
      at45,
      /id="memviz-map-when">at 4\.5 ms: 2\.00 MiB allocated in 40\.00 MiB reserved/,
    );
    assert.deepEqual(heapsAt(at65), [2]);
    assert.deepEqual(blocksAt(at65), ["2 live"]);
    assert.deepEqual(blocksAt(at75), ["2 pending"]);
    assert.match(at75, /<g class="heap" data-heap="2"/);
    assert.deepEqual(blocksAt(at79), []);
    // Zoomed on 3 to 5 ms: every chart's plot shows that range, its axis ticks within it.
    const plots = [...zoomed.matchAll(/<svg class="plot" [^>]*viewBox="([^"]*)"/g)];
    assert.equal(plots.length, 3);
    for (const [, box] of plots) {
      const [x, , w] = box.split(" ").map(Number);
      assert.ok(Math.abs(x - PLOT * 2 / 7) < 0.01 && Math.abs(w - PLOT * 2 / 7) < 0.01, box);
    }
    const ticks = [...zoomed.matchAll(/<g class="xaxis">(.*?)<\/g>/g)][0][1];
    assert.deepEqual([...ticks.matchAll(/>([^<]+)<\/text>/g)].map((m) => m[1]), [
      "3 ms",
      "3.5 ms",
      "4 ms",
      "4.5 ms",
      "5 ms",
    ]);
  },
});

Deno.test({
  name: "memviz:png renders pages that are not blank, as tall as their content" +
    (CHROMIUM ? "" : NO_CHROMIUM),
  ignore: !CHROMIUM,
  async fn() {
    const allocator = new HeapAllocator(new FakeDevice(), { allocConf: "max_reserved_ratio:0" });
    allocator.startRecording();
    const blocks = Array.from({ length: 40 }, (_, i) => allocator.alloc((i % 7 + 1) * 300_000));
    for (let i = 0; i < 40; i += 3) allocator.free(blocks[i]);
    allocator.free(allocator.alloc(70 * MiB));
    const inputs: [string, Uint8Array][] = [
      ["snapshot.json", new TextEncoder().encode(JSON.stringify(allocator.snapshot()))],
      ["trace.json", new TextEncoder().encode(JSON.stringify(allocator.stopRecording()))],
      [
        "resnet50.pickle.gz",
        Deno.readFileSync(new URL("resnet50_infer_varbatch.pickle.gz", TESTDATA)),
      ],
    ];
    allocator.destroy();
    for (const [name, bytes] of inputs) {
      const base64 = (await chromiumPage(bytes, ["png", name])).trim();
      const png = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const rows = inkedRows(await readPng(png));
      const inked = rows.filter((r) => r).length;
      assert.ok(inked > rows.length * 0.4, `${name}: ${inked} of ${rows.length} rows inked`);
      const blankBelow = rows.length - 1 - rows.lastIndexOf(true);
      assert.ok(blankBelow < 80, `${name}: ${blankBelow} blank rows at the bottom`);
    }
  },
});

/** A seeded random trace: plain or placed, timed or not, now and then malformed. */
function randomTrace(random: () => number): unknown[] {
  const int = (n: number) => Math.floor(random() * n);
  const events: unknown[] = [];
  const live: number[] = [];
  const timed = random() < 0.5;
  let t = 0;
  let id = 1;
  const time = () => (t += random() < 0.3 ? 0 : random() * 3);
  const placed = random() < 0.3;
  if (placed) events.push(["heap", 1, 8 * MiB, "small", true, ...(timed ? [time()] : [])]);
  for (let n = int(120); n > 0; n--) {
    const r = random();
    const tail = timed ? [time()] : [];
    if (r < 0.45 || live.length === 0) {
      const size = 1 + int(2 ** (8 + int(16)));
      if (placed) {
        const offset = int(8) * MiB + int(4) * 256;
        events.push(["a", id, size, "storage", tail[0] ?? null, "small", 1, offset, 256]);
      } else {
        events.push(["a", id, size, "storage", ...tail]);
      }
      live.push(id++);
    } else if (r < 0.8) {
      const k = int(live.length);
      events.push(["f", live[k], random() < 0.5, ...tail]);
      live.splice(k, 1);
    } else if (r < 0.88) events.push(["submit", ...tail]);
    else if (r < 0.91) events.push(["emptyCache", ...tail]);
    else if (r < 0.94) events.push(["oom", 1 + int(40 * MiB), random() < 0.5 ? "small" : "large"]);
    else if (r < 0.97) events.push(["s", id++, ...tail]);
    else events.push(["resetPeak"]);
  }
  // Now and then, an item no trace has.
  if (random() < 0.1 && events.length > 0) {
    (events[int(events.length)] as unknown[])[1] = [-1, "x", null, 1.5][int(4)];
  }
  return events;
}

Deno.test("memvizHtml() fuzzed: 300 seeded traces give a page with a band per block, or a TraceError", () => {
  const random = rng(1212);
  let pages = 0;
  for (let k = 0; k < 300; k++) {
    const trace = randomTrace(random);
    const maxBands = 1 + Math.floor(random() * 40);
    let html: string;
    try {
      html = memvizHtml(trace, { maxBands });
    } catch (error) {
      assert.ok(error instanceof TraceError, `trace ${k}: ${error}`);
      continue;
    }
    pages++;
    assertInert(html);
    assert.doesNotMatch(html, /NaN|Infinity|undefined|\[object/, `trace ${k}`);
    const blocks = Number(/<td>blocks placed<\/td><td>([\d,]+)/.exec(html)![1].replace(",", ""));
    const drawn = bands(html).length;
    const rest = (html.match(/<polygon class="band-rest"/g) ?? []).length;
    assert.equal(drawn, Math.min(blocks, maxBands), `trace ${k}: bands`);
    assert.equal(rest, blocks > maxBands ? 1 : 0, `trace ${k}: the summed band`);
  }
  assert.ok(pages > 150, `${pages} pages drawn`);
});

Deno.test("memvizHtml() charts each pixel column's highest point, then its last, which holds", () => {
  // A 3 MiB spike and a fall to 1 MiB within the first millisecond, then nothing until 100 ms.
  const html = memvizHtml([
    ["a", 1, MiB, "storage", 0],
    ["a", 2, 2 * MiB, "storage", 0.01],
    ["f", 2, false, 0.02],
    ["f", 1, false, 100],
  ]);
  const chart = html.slice(html.indexOf('id="chart-allocated"'));
  const points = /data-series="allocated:large"[^>]*points="([^"]*)"/.exec(chart) ??
    /data-series="allocated:small"[^>]*points="([^"]*)"/.exec(chart)!;
  const upper = points[1].split(" ").map((p) => p.split(",").map(Number));
  const top = Math.min(...upper.map(([, y]) => y));
  // Halfway through the trace, the area stands at a third of the spike's height.
  const mid = upper.filter(([x]) => x > PLOT * 0.4 && x < PLOT * 0.6);
  assert.ok(mid.length === 0 || mid.every(([, y]) => Math.abs((240 - y) * 3 - (240 - top)) < 1));
  const at = (x: number) => {
    let y = NaN;
    for (const [px, py] of upper.slice(0, upper.length / 2)) if (px <= x) y = py;
    return y;
  };
  assert.ok(Math.abs((240 - at(PLOT / 2)) * 3 - (240 - top)) < 1, `${at(PLOT / 2)} vs ${top}`);
});

/**
 * A script a test appends to a page: it points, clicks and drags as a user
 * would, and writes what the page showed into `<body data-seen>`.
 */
const USER = `<script>
(function () {
  var seen = {};
  function fire(type, el, fx, fy) {
    var r = el.getBoundingClientRect();
    el.dispatchEvent(new MouseEvent(type, { bubbles: true,
      clientX: r.left + r.width * (fx === undefined ? 0.5 : fx), clientY: r.top + r.height * (fy === undefined ? 0.5 : fy) }));
  }
  var tip = document.getElementById("memviz-tip");
  var band = document.querySelector("polygon.band");
  fire("mouseover", band, 0.5, 0.5);
  seen.hover = tip.hidden ? "" : tip.textContent;
  fire("click", band);
  fire("mouseover", document.querySelector("h1"));
  seen.pinned = band.classList.contains("picked") && !tip.hidden;
  fire("click", document.querySelector("h1"));
  seen.unpinned = tip.hidden;
  var plot = document.querySelector("#chart-timeline svg.plot");
  fire("mousedown", plot, 0.25, 0.1);
  fire("mousemove", plot, 0.5, 0.1);
  fire("mouseup", plot, 0.5, 0.1);
  fire("click", plot, 0.5, 0.1);
  seen.zoomed = [].map.call(document.querySelectorAll("svg.plot"), function (p) { return p.getAttribute("viewBox"); });
  fire("mousedown", plot, 0.5, 0.1);
  fire("mouseup", plot, 0.5, 0.1);
  seen.clicked = document.getElementById("memviz-at").value;
  document.getElementById("memviz-unzoom").click();
  seen.unzoomed = document.querySelector("svg.plot").getAttribute("viewBox");
  document.querySelector("button[data-event]").click();
  seen.peak = document.getElementById("memviz-map-when").textContent;
  var slider = document.getElementById("memviz-at");
  slider.value = "2";
  slider.dispatchEvent(new Event("input"));
  var blocks = [].slice.call(document.querySelectorAll("svg.heapmap rect.block"));
  fire("mouseover", blocks.filter(function (b) { return /^block #1 /.test(b.getAttribute("data-tip")); })[0]);
  seen.mapTip = tip.textContent;
  seen.elements = document.querySelectorAll("img, iframe, script").length;
  seen.title = document.title;
  document.body.setAttribute("data-seen", JSON.stringify(seen));
})();
</script>`;

Deno.test({
  name: "memvizHtml() pages answer the pointer in Chromium: tips, pinning, zoom, moving the map" +
    (CHROMIUM ? "" : NO_CHROMIUM),
  ignore: !CHROMIUM,
  async fn() {
    // Events 1..8, no times: the peak (3 MiB) after event 5. Block 1's label is hostile.
    const hostile = '<img src=x onerror="document.title=1">';
    const html = memvizHtml([
      ["a", 1, MiB, "storage", null, null, null, null, null, hostile],
      ["a", 2, 2 * MiB],
      ["f", 1],
      ["a", 3, 512],
      ["a", 4, MiB],
      ["f", 2],
      ["f", 3],
      ["f", 4],
    ]);
    const [dom] = await dumpDoms(html.replace("</body>", `${USER}</body>`), []);
    const attribute = /<body data-seen="([^"]*)"/.exec(dom)![1];
    const text = attribute.replaceAll("&quot;", '"').replaceAll("&lt;", "<").replaceAll(
      "&gt;",
      ">",
    );
    const seen = JSON.parse(text.replaceAll("&amp;", "&"));
    assert.equal(
      seen.hover.split("\n").slice(0, 3).join("|"),
      `block #1: 1.00 MiB (requested 1048576 B)|${hostile}|placed at event 1, freed at event 3`,
    );
    assert.equal(seen.pinned, true, "a click pins the tip");
    assert.equal(seen.unpinned, true, "a click elsewhere unpins it");
    // Dragged from a quarter to a half of the timeline: every chart shows that range.
    for (const box of seen.zoomed) {
      assert.equal(box.split(" ").slice(0, 3).join(" "), `${PLOT / 4} 0 ${PLOT / 4}`);
    }
    // A click in the middle of the zoomed chart: 3/8 of the way, event 3 of 8.
    assert.equal(seen.clicked, "3");
    assert.match(seen.unzoomed, new RegExp(`^0 0 ${PLOT} `));
    // Reserved there is what the replay's heaps hold, sized to demand.
    assert.match(seen.peak, /^at event 5: 3\.00 MiB allocated in \d+\.\d\d MiB reserved$/);
    // The map the script drew names the label as text; nothing became an element.
    assert.ok(seen.mapTip.includes(hostile), seen.mapTip);
    assert.equal(seen.elements, 2, "the page's script and the test's, no other");
    assert.equal(seen.title, "gpuheap memory");
  },
});

Deno.test("memvizHtml() labels a PyTorch snapshot's blocks with the model's own line, past torch's and the standard library's files", () => {
  const frame = (filename: string, line: number, name: string) => ({ filename, line, name });
  const alloc = (addr: number, frames: unknown[]) => ({
    action: "alloc",
    addr,
    size: MiB,
    stream: 0,
    time_us: 1000 + addr,
    frames,
  });
  const snapshot = {
    segments: [],
    device_traces: [[
      // Names alone, as some snapshots keep them: conv.py and module.py are torch's.
      alloc(1 << 24, [
        frame("conv.py", 548, "_conv_forward"),
        frame("module.py", 1790, "_call_impl"),
        frame("model.py", 12, "forward"),
      ]),
      // Paths: torch's package and the standard library are passed over.
      alloc(2 << 24, [
        frame("/venv/lib/python3.12/site-packages/torch/nn/functional.py", 2846, "batch_norm"),
        frame("/usr/lib/python3.12/contextlib.py", 81, "inner"),
        frame("/home/me/train.py", 40, "step"),
      ]),
    ]],
  };
  const html = memvizHtml(readPytorchSnapshot(snapshot));
  assert.match(html, />model\.py:12 forward</);
  assert.match(html, />train\.py:40 step</);
  assert.doesNotMatch(html, />(conv|module|functional|contextlib)\.py:\d+/);
});
