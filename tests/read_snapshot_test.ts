// Reading snapshots: what snapshot() writes reads back the same; every field
// is checked and named by its path when wrong; only the format's fields are kept.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import type { Snapshot } from "../allocator/snapshot.ts";
import { readSnapshot, SnapshotError } from "../allocator/tools/read_snapshot.ts";
import { TraceError } from "../allocator/tools/read_trace.ts";

const MiB = 1 << 20;

/** A snapshot as JSON gives it: any field may be edited. */
// deno-lint-ignore no-explicit-any
type Loose = Record<string, any>;

/** A snapshot with every pool, every block state and a label. */
function busySnapshot(): Snapshot {
  const heap = new HeapAllocator(new FakeDevice(), { allocConf: "max_reserved_ratio:0" });
  heap.alloc(1000, { label: "weights" });
  heap.alloc(5 * MiB);
  heap.free(heap.alloc(70 * MiB)); // cached unsplit heap
  const p = heap.alloc(3000);
  void p.buffer;
  heap.free(p); // pending
  heap.scalar(2);
  heap.alloc(256, { usage: "uniform" });
  heap.alloc(100, { usage: "readback" });
  heap.alloc(100, { usage: "upload" });
  const snapshot = heap.snapshot();
  heap.destroy();
  return snapshot;
}

Deno.test("readSnapshot() reads back what snapshot() wrote", () => {
  const empty = new HeapAllocator(new FakeDevice());
  const snapshots = [empty.snapshot(), busySnapshot()];
  empty.destroy();
  for (const s of snapshots) {
    assert.deepEqual(readSnapshot(JSON.stringify(s)), s);
    assert.deepEqual(readSnapshot(s), s);
  }
  const states = new Set(snapshots[1].heaps.flatMap((h) => h.blocks.map((b) => b.state)));
  assert.deepEqual([...states].sort(), ["cached", "free", "live", "pending"]);
});

Deno.test("readSnapshot() names the field at fault", () => {
  const cases: [(s: Loose) => void, string, RegExp][] = [
    [(s) => delete s.stats, "stats", /must be an object, got nothing/],
    [(s) => s.stats.pools.small = 5, "stats.pools.small", /must be an object, got 5/],
    [(s) => s.stats.reservedBytes.peak = -1, "stats.reservedBytes.peak", /integer >= 0/],
    [(s) => s.stats.numOoms = "0", "stats.numOoms", /got "0"/],
    [(s) => s.stats.allocatedBytes.current = 2 ** 60, "stats.allocatedBytes.current", /2\^53/],
    [(s) => s.heaps = {}, "heaps", /must be a list, got \{\}/],
    [(s) => s.heaps[1] = [], "heaps[1]", /must be an object, got \[\]/],
    [(s) => s.heaps[0].pool = "constructor", "heaps[0].pool", /one of small, large/],
    [(s) => s.heaps[0].size = 0, "heaps[0].size", /positive integer/],
    [(s) => s.heaps[0].lost = 0, "heaps[0].lost", /true or false, got 0/],
    [(s) => s.heaps[0].ageMs = -1, "heaps[0].ageMs", /a number >= 0/],
    [(s) => s.heaps[0].blocks[0].state = "toString", "heaps[0].blocks[0].state", /one of live/],
    [(s) => s.heaps[0].blocks[0].label = 5, "heaps[0].blocks[0].label", /string or null/],
    [(s) => s.heaps[0].blocks[0].id = 1.5, "heaps[0].blocks[0].id", /an integer or null/],
    [(s) => s.heaps[0].blocks[1].offset = 0, "heaps[0].blocks[1]", /overlaps the block before/],
    [(s) => s.heaps[0].blocks.at(-1).size *= 2, "heaps[0].blocks[2]", /lies outside its heap/],
    [(s) => s.settings.allocConf = 5, "settings.allocConf", /must be a string, got 5/],
    [
      (s) => s.settings.limits.maxBufferSize = 100,
      "settings.limits.maxBufferSize",
      /below the heaps/,
    ],
  ];
  for (const [edit, path, message] of cases) {
    const s = structuredClone(busySnapshot()) as Loose;
    edit(s);
    assert.throws(() => readSnapshot(s), (e: unknown) => {
      assert.ok(e instanceof SnapshotError, String(e));
      assert.ok(e instanceof TraceError, "one catch handles every input the tools refuse");
      assert.equal(e.path, path, e.message);
      assert.match(e.message, new RegExp(`^Invalid snapshot: ${path.replace(/[.[\]]/g, "\\$&")} `));
      assert.match(e.message, message);
      return true;
    });
  }
  assert.throws(() => readSnapshot("[]"), /Invalid snapshot: must be an object, got \[\]/);
  assert.throws(
    () => readSnapshot('{"format": "gpuheap-trace"}'),
    /expected format "gpuheap-snapshot"/,
  );
  assert.throws(() => readSnapshot("{"), /Invalid trace: malformed JSON/);
});

Deno.test("readSnapshot() keeps only the fields of the format", () => {
  const base = busySnapshot();
  const s = structuredClone(base) as Loose;
  s.extra = 1;
  s.stats.extra = 2;
  s.heaps[0].extra = 3;
  s.heaps[0].blocks[0].extra = 4;
  s.settings.limits.extra = 5;
  assert.deepEqual(readSnapshot(s), base);
});
