// Planned alloc+free against the front cache's, on the real adapter: the same
// iteration of REPEAT storage blocks run online (front cache hits: the blocks
// are small and freed untouched) and planned (each block at its planned
// offset, begin/endIteration counted in). Two shapes: one block at a time,
// and a chain (each block freed after the next is made, as a layer's input
// after its output). The ratio of each pair is measured in the same run.
// Run: deno bench --allow-env --allow-read bench/plan_bench.ts
import { HeapAllocator, requestDevice } from "../mod.ts";

const device = await requestDevice();
const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
const adapter = info?.description || info?.vendor || "unknown adapter";

const REPEAT = 100;
const SIZE = 4 << 10;

/** One block at a time. */
function single(allocator: HeapAllocator): void {
  for (let i = 0; i < REPEAT; i++) allocator.free(allocator.alloc(SIZE));
}

/** A chain: each block lives until the next is made. */
function chain(allocator: HeapAllocator): void {
  let x = allocator.alloc(SIZE);
  for (let i = 1; i < REPEAT; i++) {
    const y = allocator.alloc(SIZE);
    allocator.free(x);
    x = y;
  }
  allocator.free(x);
}

for (const [shape, body] of [["one at a time", single], ["chain", chain]] as const) {
  const online = new HeapAllocator(device);
  body(online); // warm: the heap exists and the front cache holds the block
  Deno.bench(`${REPEAT}x alloc+free, front cache, ${shape} (${adapter})`, {
    group: shape,
    baseline: true,
  }, () => body(online));

  const planned = new HeapAllocator(device);
  for (let run = 0; run < 2; run++) {
    // Recorded, then one planned run to make the arena.
    planned.beginIteration(shape);
    body(planned);
    planned.endIteration();
  }
  Deno.bench(`${REPEAT}x alloc+free, planned, ${shape} (${adapter})`, { group: shape }, () => {
    planned.beginIteration(shape);
    body(planned);
    planned.endIteration();
  });
}
