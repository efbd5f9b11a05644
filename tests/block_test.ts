// Blocks as a caller holds them: their fields, disposal with `using`, and the
// report of a block garbage-collected without being freed.
import assert from "node:assert/strict";
import { AllocatorError, type Block, FakeDevice, HeapAllocator } from "../mod.ts";
import { blockRecord } from "../allocator/block.ts";
import { gcProbe } from "./_gc_probe.ts";

Deno.test("Block fields describe the placement and the request", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const a = heap.alloc(1000, { label: "a" });
  const b = heap.alloc(100, { usage: "uniform" });
  assert.deepEqual(
    [a.offset, a.size, a.requestedSize, a.usage, a.pool, a.label, a.isLive],
    [0, 1024, 1000, "storage", "small", "a", true],
  );
  assert.deepEqual([b.pool, b.usage, b.label, b.size], ["uniform", "uniform", undefined, 128]);
  assert.notEqual(a.heapId, b.heapId, "uniforms live in heaps of their own");
  assert.notEqual(a.id, b.id);
  heap.free(a);
  assert.equal(a.isLive, false);
  heap.destroy();
});

Deno.test("Block.binding() rounds the requested size up to 4 and marks the block used", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const a = heap.alloc(4000);
  heap.alloc(10); // a neighbour, so a's range is not merged back at once
  const b = heap.alloc(10);
  const binding = b.binding();
  assert.equal(binding.offset, b.offset);
  assert.equal(binding.size, 12);
  assert.equal(binding.buffer, b.buffer);
  heap.free(b);
  assert.equal(heap.memoryStats().pendingFreeBytes, b.size, "bound: waits for a submit");
  heap.free(a);
  assert.equal(heap.memoryStats().pendingFreeBytes, b.size, "never bound: free at once");
  heap.destroy();
});

Deno.test("Block[Symbol.dispose]() frees the block at the end of a using scope", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const keep = heap.alloc(64);
  const before = heap.currentAllocatedMemory();
  let inner: Block | undefined;
  {
    using a = heap.alloc(4096);
    using _b = heap.alloc(3 << 20, { usage: "readback" });
    inner = a;
    assert.equal(heap.currentAllocatedMemory(), before + a.size + (3 << 20));
  }
  assert.equal(heap.currentAllocatedMemory(), before);
  assert.equal(inner.isLive, false);
  assert.equal(heap.memoryStats().blocks, 1);
  heap.free(keep);
  heap.destroy();
});

Deno.test("Block[Symbol.dispose]() does nothing once freed or destroyed", () => {
  const heap = new HeapAllocator(new FakeDevice());
  {
    using a = heap.alloc(100);
    heap.free(a); // freed by hand: the scope's end must not free it again
  }
  assert.equal(heap.memoryStats().allocations, 1);
  const b = heap.alloc(100);
  heap.destroy();
  b[Symbol.dispose](); // the allocator is gone, and its memory with it
  assert.throws(() => heap.free(b), AllocatorError);
});

Deno.test("Block[Symbol.dispose]() frees when the scope ends by an exception", () => {
  const heap = new HeapAllocator(new FakeDevice());
  assert.throws(() => {
    using _a = heap.alloc(100);
    throw new Error("boom");
  }, /boom/);
  assert.equal(heap.currentAllocatedMemory(), 0);
  heap.destroy();
});

Deno.test("blockRecord() rejects what is not a Block", () => {
  assert.throws(() => blockRecord({} as Block), TypeError);
});

Deno.test('new HeapAllocator({ debug: "leak" }) reports a block garbage-collected while live, once', async () => {
  const result = await gcProbe();
  assert.equal(result.lines.length, 2, result.lines.join("\n"));
  const [weights, staging] = [...result.lines].sort();
  assert.match(
    weights,
    /^gpuheap: block #1 of 4\.00 KiB \("lost weights", small pool, heap #1\) was garbage-collected without being freed/,
  );
  assert.match(staging, /^gpuheap: block #2 of 112\.00 KiB \(no label, readback pool, heap #2\)/);
  assert.deepEqual(result.quiet, [], "debug off: nothing reported");
  assert.equal(result.kept, true);
  assert.equal(result.allocated, 4096 + 112 * 1024 + 512, "a leaked block stays allocated");
});

Deno.test("Block.buffer and binding() of a freed block throw AllocatorError naming it", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const a = heap.alloc(4096, { label: "weights" });
  heap.free(a);
  const b = heap.alloc(4096); // takes a's memory: a stale handle must not reach it
  assert.equal(b.offset, a.offset);
  for (const use of [() => a.buffer, () => a.binding()]) {
    assert.throws(use, (e: unknown) => {
      assert.ok(e instanceof AllocatorError);
      assert.equal(
        e.message,
        `Cannot use block #1 (4.00 KiB, small pool, "weights"): it was freed`,
      );
      return true;
    });
  }
  assert.equal(b.binding().size, 4096);
  heap.destroy();
});

Deno.test("Block.isLive is false after destroy(), and its buffer throws", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const blocks = [heap.alloc(100), heap.alloc(70 << 20), heap.alloc(5000, { usage: "upload" })];
  const pending = heap.alloc(100);
  void pending.buffer;
  heap.free(pending);
  heap.destroy();
  for (const b of [...blocks, pending]) {
    assert.equal(b.isLive, false);
    assert.throws(() => b.buffer, /Cannot use block #\d+ .*: its allocator was destroyed/);
  }
});
