// The memory picture: its SVG holds the series of every pool used and one row
// per heap at the peak, with the blocks the trace placed there, and the page
// references nothing outside itself.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { memvizHtml } from "../allocator/tools/memviz.ts";

const MiB = 1 << 20;

/** Every way a page could reach outside itself. */
function assertSelfContained(html: string): void {
  assert.doesNotMatch(html, /https?:/i, "no http(s) URL");
  assert.doesNotMatch(html, /\b(?:src|href|xlink:href)\s*=/i, "no src= or href=");
  assert.doesNotMatch(html, /<script|<link|<iframe|<img|@import|url\((?!#)/i);
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

Deno.test("memviz: a trace gives both series by pool and the heaps at the peak", () => {
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
    assert.match(html, new RegExp(`<svg class="chart" id="chart-${chart}"`));
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
    new RegExp(`block #${a.id} live: 3\\.00 MiB at offset 0 \\(requested ${3 * MiB} B, w\\)`),
  );
  heap.destroy();
});

Deno.test("memviz: a snapshot gives bytes by pool and every heap", () => {
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

Deno.test("memviz: a plain list is replayed first; many blocks stay a small page", () => {
  const events: unknown[] = [];
  for (let i = 1; i <= 20_000; i++) events.push(["a", i, 256 + (i % 7) * 64]);
  for (let i = 1; i <= 20_000; i += 2) events.push(["f", i]);
  const html = memvizHtml(events, { at: "reserved" });
  assertSelfContained(html);
  assert.match(html, /replayed on the fake device/);
  assert.match(html, /Heaps at the peak reserved/);
  assert.ok(html.length < 2_000_000, `${html.length} characters`);
  assert.throws(() => memvizHtml("{not json"), /malformed JSON/);
});
