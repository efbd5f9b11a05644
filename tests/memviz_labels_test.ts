// Labels come from the file drawn: a page shows each cut to MAX_LABEL_CHARS, in text and
// tooltips alike (a browser took minutes to lay out a page with a label of 1 MiB).
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { memvizHtml } from "../allocator/tools/memviz.ts";
import { cutLabel, MAX_LABEL_CHARS } from "../allocator/tools/markup.ts";

const HUGE = "call_site.py:1 " + "x".repeat(2 ** 20);

/** The longest run of `x` in the page: what is left of the label. */
function longestRun(page: string): number {
  return Math.max(0, ...(page.match(/x+/g) ?? []).map((run) => run.length));
}

Deno.test("memviz cuts a trace's label of 1 MiB in its text, tooltips and data", () => {
  const events = [
    ["a", 1, 4096, "storage", 0, null, null, null, null, HUGE],
    ["a", 2, 8192, "storage", 1, null, null, null, null, "small.py:2 g"],
    ["f", 1, false, 2],
    ["f", 2, false, 3],
  ];
  const page = memvizHtml({
    format: "gpuheap-trace",
    version: 1,
    settings: null,
    durationMs: 3,
    events,
  });
  assert.ok(page.length < 200_000, `a page of ${page.length} characters`);
  assert.ok(longestRun(page) <= MAX_LABEL_CHARS, `a run of ${longestRun(page)} characters`);
  assert.ok(page.includes("call_site.py:1 xxx"), "the label's start is shown");
  assert.ok(page.includes("more characters)"), "the page says the label was cut");
});

Deno.test("memviz cuts a snapshot's label of 1 MiB in its table and heap map", () => {
  const heap = new HeapAllocator(new FakeDevice());
  heap.alloc(4096, { label: HUGE });
  heap.alloc(8192, { label: "small.py:2 g" });
  const page = memvizHtml(heap.snapshot());
  heap.destroy();
  assert.ok(page.length < 200_000, `a page of ${page.length} characters`);
  assert.ok(longestRun(page) <= MAX_LABEL_CHARS, `a run of ${longestRun(page)} characters`);
  assert.ok(page.includes("call_site.py:1 xxx"), "the label's start is shown");
});

Deno.test("cutLabel() keeps short labels and never splits a character in two", () => {
  assert.equal(cutLabel("a".repeat(MAX_LABEL_CHARS)), "a".repeat(MAX_LABEL_CHARS));
  // An emoji (two UTF-16 units) across the cut is dropped whole.
  const cut = cutLabel("a".repeat(MAX_LABEL_CHARS - 1) + "😀" + "b".repeat(10));
  assert.equal(cut, `${"a".repeat(MAX_LABEL_CHARS - 1)}… (12 more characters)`);
});
