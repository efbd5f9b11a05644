// Run with --v8-flags=--expose-gc. Drops blocks in every way a program can and
// prints what the allocators logged: a block garbage-collected while live is
// reported (debug flag "leak"), freed ones and other allocators' are not.
import { FakeDevice, HeapAllocator } from "../../mod.ts";

const gc = (globalThis as unknown as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const lines: string[] = [];
const quiet: string[] = [];
const heap = new HeapAllocator(new FakeDevice(), { debug: "leak", log: (l) => lines.push(l) });
const silent = new HeapAllocator(new FakeDevice(), { log: (l) => quiet.push(l) });

function dropSome(): void {
  heap.alloc(4096, { label: "lost weights" });
  heap.alloc(100_000, { usage: "readback" });
  heap.free(heap.alloc(100, { label: "freed" }));
  {
    using _scoped = heap.alloc(200, { label: "scoped" });
  }
  silent.alloc(300, { label: "silent" });
}
dropSome();
const kept = heap.alloc(500, { label: "kept" });
for (let i = 0; i < 10; i++) {
  gc();
  await new Promise((r) => setTimeout(r, 5));
}
console.log(JSON.stringify({
  lines,
  quiet,
  allocated: heap.currentAllocatedMemory(),
  kept: kept.isLive,
}));
