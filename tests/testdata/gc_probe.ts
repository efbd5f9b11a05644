// Run with --v8-flags=--expose-gc. Drops blocks in every way a program can and
// prints what the allocators logged: a block garbage-collected while live is
// reported (debug flag "leak"), freed ones and other allocators' are not. Also
// drops an allocator whose device lives on, and says whether it was collected.
import { FakeDevice, HeapAllocator } from "../../mod.ts";

const gc = (globalThis as unknown as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const lines: string[] = [];
const quiet: string[] = [];
const allocator = new HeapAllocator(new FakeDevice(), { debug: "leak", log: (l) => lines.push(l) });
const silent = new HeapAllocator(new FakeDevice(), { log: (l) => quiet.push(l) });

function dropSome(): void {
  allocator.alloc(4096, { label: "lost weights" });
  allocator.alloc(100_000, { usage: "readback" });
  allocator.free(allocator.alloc(100, { label: "freed" }));
  {
    using _scoped = allocator.alloc(200, { label: "scoped" });
  }
  silent.alloc(300, { label: "silent" });
}
dropSome();
const kept = allocator.alloc(500, { label: "kept" });

// An allocator dropped while its device lives: the device's lost promise must not hold it.
const device = new FakeDevice();
let allocatorCollected = false;
const collected = new FinalizationRegistry(() => allocatorCollected = true);
(() => {
  const dropped = new HeapAllocator(device);
  dropped.free(dropped.alloc(64));
  collected.register(dropped, "dropped");
})();
for (let i = 0; i < 10; i++) {
  gc();
  await new Promise((r) => setTimeout(r, 5));
}
console.log(JSON.stringify({
  lines,
  quiet,
  allocated: allocator.currentAllocatedMemory(),
  kept: kept.isLive,
  allocatorCollected,
  deviceAlive: device.isLost === false,
}));
