// The model of a trace's heaps: bytes per pool follow the events, a pending
// free waits for a submit, and events a recording cannot hold are refused.
import assert from "node:assert/strict";
import { HeapModel, NEVER, total } from "../allocator/tools/heap_model.ts";
import { TraceError } from "../allocator/tools/read_trace.ts";
import type { TraceEvent } from "../allocator/trace.ts";

/** Applies events in order. */
function model(events: unknown[]): HeapModel {
  const m = new HeapModel();
  events.forEach((e, i) => m.apply(e as TraceEvent, i));
  return m;
}

Deno.test("HeapModel.apply() follows bytes per pool through alloc, free, submit and release", () => {
  const placed = (
    id: number,
    offset: number,
  ) => ["a", id, 60, "storage", 0, "small", 1, offset, 64];
  const m = model([["heap", 1, 1024, "small", true], placed(1, 0), placed(2, 64), ["f", 1, true]]);
  assert.equal(m.allocated.small, 64);
  assert.equal(m.reserved.small, 1024);
  assert.equal(m.requested, 60);
  assert.deepEqual(m.snapshotHeaps()[0].blocks.map((b) => [b.offset, b.state]), [
    [0, "pending"],
    [64, "live"],
    [128, "free"],
  ]);
  // Freeing twice, or a block it never saw, changes nothing.
  for (const e of [["f", 1], ["f", 1, true], ["f", 77]]) m.apply(e as TraceEvent, 9);
  assert.equal(m.allocated.small, 64);
  m.apply(["submit"], 10);
  assert.deepEqual(m.snapshotHeaps()[0].blocks.map((b) => b.state), ["free", "live", "free"]);
  m.apply(["release", 1], 11);
  assert.equal(total(m.allocated), 0, "a released heap takes its blocks along");
  assert.equal(total(m.reserved), 0);
  assert.deepEqual(m.snapshotHeaps(), []);
});

Deno.test("HeapModel.apply() keeps one block in an unsplit heap, cached once freed", () => {
  const m = model([
    ["heap", 5, 4096, "large", false],
    ["a", 1, 4000, "storage", 0, "large", 5, 0, 4096],
    ["f", 1],
    ["a", 2, 3000, "storage", 0, "large", 5, 0, 4096],
  ]);
  assert.equal(m.allocated.large, 4096);
  assert.deepEqual(m.snapshotHeaps()[0].blocks.map((b) => [b.id, b.state]), [[2, "live"]]);
});

Deno.test("HeapModel.apply() refuses a heap made twice and a block outside its heap", () => {
  assert.throws(
    () => model([["heap", 1, 64, "small", true], ["heap", 1, 64, "small", true]]),
    (e: unknown) =>
      e instanceof TraceError && e.index === 1 && /heap 1 is made twice/.test(e.message),
  );
  assert.throws(
    () => model([["heap", 1, 64, "small", true], ["s", 3, 0, 1, 48, 32]]),
    /event 1: block 3 of 32 bytes at offset 48 lies outside heap 1 of 64 bytes/,
  );
});

Deno.test("HeapModel.history keeps each block's placing, free, recycling and end, and each heap's life", () => {
  const m = new HeapModel({ history: true, blocks: 1 });
  const events = [
    ["heap", 1, 1024, "small", true], // 0
    ["a", 1, 60, "storage", 0, "small", 1, 0, 64, "x.py:1 f"], // 1
    ["f", 1, true], // 2: pending
    ["submit"], // 3: recycled, gone
    ["heap", 2, 4096, "large", false], // 4
    ["a", 2, 4000, "storage", 0, "large", 2, 0, 4096], // 5
    ["f", 2], // 6: cached in its unsplit heap
    ["a", 3, 3000, "storage", 0, "large", 2, 0, 4096], // 7: replaces it
    ["split", 2], // 8: block 3 is live, so nothing is cached to drop
    ["release", 1], // 9
    ["a", 4, 64, "storage", 0, "small", 9, 0, 64], // 10: a heap it does not hold: skipped
  ];
  events.forEach((e, i) => m.apply(e as TraceEvent, i));
  const h = m.history!;
  assert.equal(h.blocks, 3, "grows past the room it was given");
  const lives = [0, 1, 2].map((k) => [
    h.id[k],
    h.placedAt[k],
    h.freedAt[k],
    h.recycledAt[k],
    h.goneAt[k],
    h.label(k),
  ]);
  assert.deepEqual(lives, [
    [1, 1, 2, 3, 3, "x.py:1 f"],
    [2, 5, 6, 6, 7, null],
    [3, 7, 8, 8, 8, null], // live when its heap became split: dropped there
  ]);
  assert.deepEqual([h.heapId, h.madeAt, h.releasedAt, h.splitAt], [
    [1, 2],
    [0, 4],
    [9, NEVER],
    [0, 8],
  ]);
});
