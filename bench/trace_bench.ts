// What recording a trace costs: alloc+free on the fake device with and without
// allocator.startRecording(), in the same run (group + baseline). Each bench
// iteration does REPEAT operations, so the harness's own per-call overhead does
// not blur sub-microsecond figures. A recording is restarted every 2^20 events
// so memory stays bounded (the restart's cost is part of the figure; turning a
// recording into a Trace at stopRecording() is a one-time cost, not measured).
// Run: deno bench --allow-env --allow-read bench/trace_bench.ts
import { FakeDevice, HeapAllocator } from "../mod.ts";

const REPEAT = 100;
const MAX_EVENTS = 1 << 20;

function makeAllocator(record: boolean): HeapAllocator {
  const allocator = new HeapAllocator(new FakeDevice(), { debug: false });
  allocator.free(allocator.alloc(4096)); // warm: the heap exists, as in a steady-state loop
  if (record) allocator.startRecording();
  return allocator;
}

/** Keeps a recording's memory bounded: starts over once it holds MAX_EVENTS events. */
function bound(allocator: HeapAllocator, events: { n: number }): void {
  events.n += 2 * REPEAT;
  if (events.n >= MAX_EVENTS) {
    allocator.startRecording(); // starts over, dropping the events so far
    events.n = 0;
  }
}

for (const record of [false, true]) {
  const allocator = makeAllocator(record);
  const events = { n: 0 };
  Deno.bench(`${REPEAT}x alloc+free 4 KiB, recording ${record ? "on" : "off"}`, {
    group: "alloc+free 4 KiB",
    baseline: !record,
  }, () => {
    for (let i = 0; i < REPEAT; i++) allocator.free(allocator.alloc(4096));
    if (record) bound(allocator, events);
  });
}

// A busier pattern: 256 live blocks of 256 B to 4 MiB, each op frees one and
// allocates another, half of them used by GPU work (pending until a submit),
// a submit every 16 ops.
for (const record of [false, true]) {
  const allocator = makeAllocator(record);
  const events = { n: 0 };
  let x = 12345;
  const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
  const live = Array.from({ length: 256 }, () => allocator.alloc(256 << (next() % 15)));
  let op = 0;
  Deno.bench(`${REPEAT}x mixed free+alloc, recording ${record ? "on" : "off"}`, {
    group: "mixed, 256 live",
    baseline: !record,
  }, () => {
    for (let i = 0; i < REPEAT; i++) {
      const j = next() % live.length;
      if (next() & 1) void live[j].buffer; // as if bound in a recorded pass
      allocator.free(live[j]);
      live[j] = allocator.alloc(256 << (next() % 15));
      if (++op % 16 === 0) allocator.submit();
    }
    if (record) bound(allocator, events);
  });
}
