// The model of a trace's heaps: bytes per pool follow the events, a pending
// free waits for a submit, and events a recording cannot hold are refused.
import assert from "node:assert/strict";
import { HeapModel, total } from "../allocator/tools/heap_model.ts";
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
