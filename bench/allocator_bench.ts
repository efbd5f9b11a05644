// Cached alloc+free against createBuffer+destroy on the real adapter, per size;
// alloc+free cost with 10^2, 10^4 and 10^6 live blocks on the fake device; and
// the live path of a block (reading its buffer checks that it is still live).
// Each bench iteration does REPEAT operations, so the harness's own per-call
// overhead does not blur sub-microsecond figures.
// Run: deno task bench (or deno bench --allow-env --allow-read bench/allocator_bench.ts)
import { FakeDevice, HeapAllocator, requestDevice } from "../mod.ts";

const device = await requestDevice();
const allocator = new HeapAllocator(device);
const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
const adapter = info?.description || info?.vendor || "unknown adapter";

const REPEAT = 100;
const sizes: [string, number][] = [
  ["256 B", 256],
  ["4 KiB", 4 << 10],
  ["64 KiB", 64 << 10],
  ["1 MiB", 1 << 20],
  ["16 MiB", 16 << 20],
  ["64 MiB", 64 << 20],
];
for (const [name, size] of sizes) {
  allocator.free(allocator.alloc(size)); // warm: the heap exists, as in a steady-state loop
  // The adapter names the group, not each row: a long adapter name would push rows past the table.
  const group = `${name}, ${adapter}`;
  Deno.bench(`${REPEAT}x createBuffer+destroy ${name}`, { group, baseline: true }, () => {
    for (let i = 0; i < REPEAT; i++) device.createBuffer({ size, usage: USAGE }).destroy();
  });
  Deno.bench(`${REPEAT}x gpuheap alloc+free ${name}`, { group }, () => {
    for (let i = 0; i < REPEAT; i++) allocator.free(allocator.alloc(size));
  });
}

// Placement cost must not grow with the number of live blocks (TLSF is O(1)).
function liveHeap(count: number) {
  const h = new HeapAllocator(new FakeDevice());
  // Heaps grow with the bytes an allocator holds: holding 64 MiB while the blocks are
  // placed gives every row the same 8 MiB small heaps, so no row runs in a full one.
  const big = h.alloc(64 << 20);
  let x = 12345;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    h.alloc(64 + (x % 4032));
  }
  h.free(big);
  h.emptyCache();
  return h;
}
for (const count of [1e2, 1e4, 1e6]) {
  // Made when its row runs, not before: a million live blocks in memory would slow
  // the garbage collector during the rows above.
  let h: HeapAllocator | null = null;
  let x = 777;
  Deno.bench(`${REPEAT}x alloc+free with ${count.toExponential()} live blocks (fake device)`, {
    group: "live blocks",
    baseline: count === 1e2,
  }, (b) => {
    if (h === null) {
      h = liveHeap(count);
      // Warm, as the rows above are, and long enough for the garbage collector to move
      // the new blocks out of the way.
      for (let i = 0; i < 2_000_000; i++) h.free(h.alloc(64 + (i % 4032)));
    }
    b.start();
    for (let i = 0; i < REPEAT; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      h.free(h.alloc(64 + (x % 4032)));
    }
    b.end();
  });
}

// The live path of a block: `buffer` checks the block is live (a freed one throws).
// Two different operations: no group, so no ratio is printed between them.
{
  const h = new HeapAllocator(new FakeDevice());
  const block = h.alloc(4096);
  let sink = 0;
  const READS = 10_000;
  Deno.bench(`${READS}x block.buffer and block.offset (fake device)`, () => {
    for (let i = 0; i < READS; i++) sink += block.buffer === null ? 1 : block.offset;
  });
  Deno.bench(
    `${REPEAT}x alloc, binding() and free, a submit every 64 (fake device)`,
    () => {
      for (let i = 0; i < REPEAT; i++) {
        const b = h.alloc(4096);
        sink += b.binding().offset ?? 0;
        h.free(b);
        if ((i & 63) === 63) h.submit();
      }
      h.submit();
    },
  );
  if (sink < 0) console.log(sink);
}
