// The memory picture: its SVG holds a band per block over time, the series of
// every pool used and one row per heap at the peak, with the blocks the trace
// placed there; the page references nothing outside itself, and its one
// script is ours. Rendered in headless Chromium where it is installed.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { memvizHtml } from "../allocator/tools/memviz.ts";
import { PAGE_SCRIPT } from "../allocator/tools/memviz_script.ts";
import { PLOT } from "../allocator/tools/charts.ts";
import { TraceError } from "../allocator/tools/read_trace.ts";
import { replay } from "../allocator/tools/replay.ts";
import { SnapshotError } from "../allocator/tools/read_snapshot.ts";
import { loadTraceFile } from "../allocator/tools/load_trace.ts";
import type { Snapshot } from "../allocator/snapshot.ts";
import { inkedRows, readPng } from "./_png.ts";

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
  const heap = new HeapAllocator(new FakeDevice());
  heap.startRecording();
  const a = heap.alloc(3 * MiB, { label: "w" });
  const b = heap.alloc(100 * MiB);
  const c = heap.alloc(4096);
  heap.alloc(256, { usage: "uniform" });
  const p = heap.alloc(8 * MiB);
  void p.buffer;
  heap.free(p); // pending at the peak
  const q = heap.alloc(9 * MiB);
  const peak = heap.snapshot();
  heap.free(b);
  heap.free(c);
  heap.free(q);
  heap.submit();
  const html = memvizHtml(heap.stopRecording());
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
  heap.destroy();
});

Deno.test("memvizHtml() of a snapshot draws bytes by pool and every heap", () => {
  // Keep every cached heap, so the picture has a cached block to show.
  const heap = new HeapAllocator(new FakeDevice(), { allocConf: "max_reserved_ratio:0" });
  heap.alloc(1000);
  heap.alloc(5 * MiB);
  heap.free(heap.alloc(70 * MiB));
  heap.alloc(100, { usage: "readback" });
  const snap = heap.snapshot();
  const html = memvizHtml(JSON.stringify(snap));
  assertSelfContained(html);
  assert.match(html, /data-series="reserved:large"/);
  assert.match(html, /data-series="allocated:readback"/);
  assert.deepEqual([...heapRows(html).keys()], snap.heaps.map((h) => h.id));
  assert.match(html, /class="block cached"/);
  heap.destroy();
});

Deno.test("memvizHtml() replays a plain list first; many blocks stay a small page", () => {
  const events: unknown[] = [];
  for (let i = 1; i <= 20_000; i++) events.push(["a", i, 256 + (i % 7) * 64]);
  for (let i = 1; i <= 20_000; i += 2) events.push(["f", i]);
  const html = memvizHtml(events, { at: "reserved" });
  assertSelfContained(html);
  assert.match(html, /replayed on the fake device/);
  assert.match(html, /Heaps <span id="memviz-map-when">at the peak reserved/);
  assert.ok(html.length < 2_000_000, `${html.length} characters`);
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
  const heap = new HeapAllocator(new FakeDevice());
  heap.startRecording();
  for (const label of HOSTILE) heap.alloc(1 << 20, { label }); // wide enough to carry a title
  const snapshot = heap.snapshot();
  const trace = heap.stopRecording();
  heap.destroy();
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
  const heap = new HeapAllocator(new FakeDevice());
  heap.alloc(1000);
  const good = heap.snapshot();
  heap.destroy();
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
  const heap = new HeapAllocator(new FakeDevice());
  heap.startRecording();
  heap.alloc(1000);
  const snapshot = heap.snapshot();
  const trace = heap.stopRecording();
  heap.destroy();
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
