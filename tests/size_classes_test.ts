// The size classes on plain numbers: pools, rounding, heap sizes, limits.
import assert from "node:assert/strict";
import { DEFAULT_ALLOC_CONF, parseAllocConf } from "../allocator/config.ts";
import {
  alignDown,
  alignUp,
  type HeapDemand,
  isStaging,
  poolFor,
  roundPower2Divisions,
  SizeClasses,
  type SizeLimits,
} from "../allocator/size_classes.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** The software adapter's limits. */
const SOFTWARE: SizeLimits = {
  maxBufferSize: 2 * GiB - 1,
  maxStorageBufferBindingSize: 128 * MiB,
  maxUniformBufferBindingSize: 64 * KiB,
  alignment: 32,
};

function sizes(conf = "", limits: Partial<SizeLimits> = {}, unified = false) {
  return new SizeClasses(parseAllocConf(conf), { ...SOFTWARE, ...limits }, unified);
}

Deno.test("alignUp() and alignDown() round to multiples", () => {
  assert.deepEqual([alignUp(0, 32), alignUp(1, 32), alignUp(32, 32), alignUp(33, 32)], [
    0,
    32,
    32,
    64,
  ]);
  assert.deepEqual([alignDown(31, 32), alignDown(2 * GiB - 1, 256)], [0, 2 * GiB - 256]);
});

Deno.test("roundPower2Divisions() rounds to equal steps between powers of two", () => {
  assert.equal(roundPower2Divisions(1, 4), 4, "at least 4 bytes");
  assert.equal(roundPower2Divisions(1 * MiB, 4), 1 * MiB, "a power of two stays");
  assert.equal(roundPower2Divisions(1200 * KiB, 4), 1280 * KiB);
  assert.equal(roundPower2Divisions(1280 * KiB + 1, 4), 1536 * KiB);
  assert.equal(roundPower2Divisions(5 * MiB, 1), 8 * MiB, "1 division: next power of two");
  assert.equal(roundPower2Divisions(5 * MiB, 0), 8 * MiB);
  assert.equal(roundPower2Divisions(9, 64), 9, "steps never below one byte");
});

Deno.test("poolFor() sends storage by size and other usages to their own pools", () => {
  assert.equal(poolFor("storage", 1 * MiB), "small");
  assert.equal(poolFor("storage", 1 * MiB + 1), "large");
  assert.equal(poolFor("uniform", 16), "uniform");
  assert.equal(poolFor("readback", 64 * MiB), "readback");
  assert.equal(poolFor("upload", 4), "upload");
  assert.deepEqual(
    (["small", "large", "uniform", "scalar", "readback", "upload"] as const).filter(isStaging),
    ["readback", "upload"],
  );
});

Deno.test("SizeClasses.round() aligns, rounds staging and large requests, and scalars are fixed", () => {
  const s = sizes();
  assert.equal(s.round("small", 1), 32);
  assert.equal(s.round("small", 1000), 1024);
  assert.equal(s.round("large", 1200 * KiB), 1200 * KiB, "no divisions by default");
  assert.equal(s.round("scalar", 4), 32, "one aligned slot of 8 bytes");
  assert.equal(s.round("readback", 1), 256, "staging: at least 256 bytes");
  assert.equal(s.round("readback", 10_000), 10_240, "staging: 4 steps per power of two");
  const r = sizes("roundup_power2_divisions:4");
  assert.equal(r.round("large", 1200 * KiB), 1280 * KiB);
  assert.equal(r.round("small", 1000), 1024, "small requests are never rounded by divisions");
  assert.equal(r.round("readback", 10_000), 10_240);
  const bound = sizes("roundup_power2_divisions:1", { maxStorageBufferBindingSize: 100 * MiB });
  assert.equal(bound.round("large", 70 * MiB), 100 * MiB, "rounding stops at the binding limit");
  assert.equal(bound.round("large", 100 * MiB), 100 * MiB);
});

/** What a heap's size follows when the allocator holds `reserved` bytes (`pool` of them in the pool). */
function holding(reserved: number, pressure = false, limit = Infinity, pool = 0): HeapDemand {
  return { reserved, poolReserved: pool, pressure, limit };
}

Deno.test("SizeClasses.splitHeapSize() follows the MPS heap table at its largest", () => {
  const s = sizes();
  const big = holding(4 * GiB, false, Infinity, 4 * GiB);
  assert.equal(s.splitHeapSize("small", 1 * MiB, big), 8 * MiB);
  assert.equal(s.splitHeapSize("uniform", 256, big), 1 * MiB);
  assert.equal(s.splitHeapSize("scalar", 32, big), 64 * KiB);
  assert.equal(s.splitHeapSize("large", 2 * MiB, big), 32 * MiB);
  assert.equal(s.splitHeapSize("large", 10 * MiB, big), 128 * MiB, "extra-large");
  assert.equal(
    s.splitHeapSize("large", 10 * MiB, holding(4 * GiB, true)),
    0,
    "none under pressure",
  );
  assert.equal(
    s.splitHeapSize("large", 2 * MiB, holding(0, true)),
    32 * MiB,
    "large ones are made",
  );
  assert.equal(s.splitHeapSize("large", 64 * MiB, big), 0, "xlarge/2 and up: its own heap");
  assert.ok(
    s.isDedicated("large", 64 * MiB, 4 * GiB) && !s.isDedicated("large", 64 * MiB - 32, 4 * GiB),
  );
  assert.ok(!s.isDedicated("small", 1 * MiB, 0));
  assert.equal(sizes("small_heap:16MiB").splitHeapSize("small", 1024, big), 16 * MiB);
  const wide = sizes("", { maxUniformBufferBindingSize: 4 * MiB });
  assert.equal(wide.splitHeapSize("uniform", 2 * MiB, big), 2 * MiB, "a heap holds its request");
});

Deno.test("SizeClasses.splitHeapSize() grows heaps with the bytes the allocator holds", () => {
  const s = sizes();
  // Small heaps: an eighth of reserved bytes, from their smallest.
  assert.equal(s.splitHeapSize("small", 64, holding(0)), 128 * KiB);
  assert.equal(s.splitHeapSize("small", 64, holding(16 * MiB)), 2 * MiB);
  assert.equal(s.splitHeapSize("small", 64, holding(16 * MiB + 1)), 2 * MiB + KiB, "whole KiB");
  assert.equal(s.splitHeapSize("small", 700 * KiB, holding(0)), 700 * KiB, "at least the request");
  // Uniform and scalar heaps: as large as their pool's heaps together, whatever the rest.
  assert.equal(s.splitHeapSize("uniform", 16, holding(4 * GiB)), 16 * KiB);
  assert.equal(s.splitHeapSize("uniform", 16, holding(0, false, Infinity, 48 * KiB)), 48 * KiB);
  assert.equal(s.splitHeapSize("uniform", 16, holding(0, false, Infinity, 4 * MiB)), 1 * MiB);
  assert.equal(s.splitHeapSize("scalar", 8, holding(4 * GiB)), 4 * KiB);
  assert.equal(s.splitHeapSize("scalar", 8, holding(0, false, Infinity, 8 * KiB)), 8 * KiB);
  // Extra-large heaps: a sixteenth of reserved bytes, in 2 MiB steps, from 64 MiB.
  assert.equal(s.xlargeHeapSize(0), 64 * MiB);
  assert.equal(s.xlargeHeapSize(1536 * MiB + 1), 98 * MiB);
  assert.equal(s.splitHeapSize("large", 10 * MiB, holding(1536 * MiB)), 96 * MiB);
  // Blocks of half an extra-large heap get their own, so the line moves with it.
  assert.equal(s.splitHeapSize("large", 40 * MiB, holding(0)), 0);
  assert.equal(s.splitHeapSize("large", 40 * MiB, holding(1536 * MiB)), 96 * MiB);
  assert.ok(s.isDedicated("large", 32 * MiB, 0) && !s.isDedicated("large", 32 * MiB - 32, 0));
  // The large heap stays at large_heap: it holds 1–10 MiB blocks at every scale.
  assert.equal(s.splitHeapSize("large", 2 * MiB, holding(0)), 32 * MiB);
  // A conf's extra-large size is the largest one; below 64 MiB it is the only one.
  assert.equal(sizes("xlarge_heap:256MiB").xlargeHeapSize(8 * GiB), 256 * MiB);
  assert.equal(sizes("xlarge_heap:32MiB").xlargeHeapSize(0), 32 * MiB);
});

Deno.test("SizeClasses.splitHeapSize() keeps within the demand's limit, down to the request", () => {
  const s = sizes();
  assert.equal(s.splitHeapSize("small", 64, holding(16 * MiB, false, 300 * KiB)), 300 * KiB);
  assert.equal(s.splitHeapSize("small", 64, holding(16 * MiB, false, 100)), 128, "aligned");
  assert.equal(s.splitHeapSize("small", 64 * KiB, holding(0, false, 0)), 64 * KiB);
  assert.equal(s.splitHeapSize("large", 2 * MiB, holding(0, false, 5 * MiB)), 5 * MiB);
});

Deno.test("SizeClasses: max_split_size gives larger requests a heap of their own, aligned", () => {
  const s = sizes("max_split_size:20MiB");
  // 21 MiB is below half an extra-large heap: shared by default, its own above the setting.
  assert.equal(sizes().splitHeapSize("large", 21 * MiB, holding(0)), 64 * MiB);
  assert.equal(s.splitHeapSize("large", 21 * MiB, holding(0)), 0);
  assert.ok(s.isDedicated("large", 20 * MiB + 32, 0) && !s.isDedicated("large", 20 * MiB, 0));
  assert.ok(!s.isDedicated("small", 1 * MiB, 0), "small blocks stay in small heaps");
  assert.equal(s.dedicatedHeapSize(21 * MiB + 32), 21 * MiB + 32, "no 2 MiB rounding");
  assert.equal(s.dedicatedHeapSize(70 * MiB + 32), 70 * MiB + 32);
  assert.equal(s.dedicatedHeapSize(20 * MiB - 32), 20 * MiB, "not above the setting: rounded");
});

Deno.test("SizeClasses.xlargeHeap is 128 MiB, 1 GiB on a CPU adapter, within maxBufferSize", () => {
  assert.equal(sizes().xlargeHeap, 128 * MiB);
  assert.equal(sizes("", {}, true).xlargeHeap, 1 * GiB);
  assert.equal(sizes("", { maxBufferSize: 20 * MiB + 5 }).xlargeHeap, 20 * MiB, "aligned down");
  assert.equal(sizes("xlarge_heap:256MiB").xlargeHeap, 256 * MiB);
  assert.equal(sizes("", {}, true).splitHeapSize("large", 100 * MiB, holding(16 * GiB)), 1 * GiB);
});

Deno.test("SizeClasses.dedicatedHeapSize() rounds to 2 MiB within maxBufferSize; staging is exact", () => {
  const s = sizes("", { maxBufferSize: 101 * MiB, maxStorageBufferBindingSize: 99 * MiB });
  assert.equal(s.dedicatedHeapSize(70 * MiB + 32), 72 * MiB);
  assert.equal(s.dedicatedHeapSize(99 * MiB), 100 * MiB);
  assert.equal(s.dedicatedHeapSize(100 * MiB + 32), 101 * MiB, "capped by maxBufferSize");
  assert.equal(s.dedicatedHeapSize(10_240, "readback"), 10_240);
  assert.equal(s.usableSize(100 * MiB), 99 * MiB, "a block never exceeds the binding limit");
  assert.equal(s.usableSize(72 * MiB), 72 * MiB);
  assert.equal(s.usableSize(100 * MiB, "readback"), 100 * MiB, "staging is not bound");
});

Deno.test("SizeClasses.check() names the limit a request exceeds", () => {
  const s = sizes();
  s.check(128 * MiB, "storage");
  s.check(64 * KiB, "uniform");
  s.check(1 * GiB, "readback");
  const cases: [number, "storage" | "uniform" | "readback", ErrorConstructor, RegExp][] = [
    [0, "storage", RangeError, /positive integer, got 0/],
    [1.5, "storage", RangeError, /got 1\.5/],
    [NaN, "storage", RangeError, /got NaN/],
    ["8" as unknown as number, "storage", TypeError, /got string/],
    [128 * MiB + 1, "storage", RangeError, /maxStorageBufferBindingSize 134217728/],
    [64 * KiB + 1, "uniform", RangeError, /maxUniformBufferBindingSize 65536/],
    [2 * GiB, "readback", RangeError, /maxBufferSize 2147483647/],
  ];
  for (const [size, usage, type, message] of cases) {
    assert.throws(() => s.check(size, usage), (e: unknown) => {
      return e instanceof type && message.test((e as Error).message);
    });
  }
});

Deno.test("new SizeClasses() rejects an alignment that is not a power of two", () => {
  assert.throws(() => sizes("", { alignment: 48 }), /power of two >= 4, got 48/);
  assert.equal(new SizeClasses(DEFAULT_ALLOC_CONF, SOFTWARE, false).alignment, 32);
});

Deno.test("new SizeClasses() rejects a conf's heap sizes unaligned or above maxBufferSize", () => {
  assert.throws(
    () => sizes("small_heap:1048577"),
    /small_heap 1048577 .* multiple of the alignment 32/,
  );
  assert.throws(() => sizes("large_heap:3GiB"), /large_heap 3221225472 .* maxBufferSize/);
  assert.throws(() => sizes("xlarge_heap:3GiB"), /xlarge_heap 3221225472/);
  assert.equal(sizes("small_heap:1MiB,large_heap:1MiB").largeHeap, 1 * MiB);
  // The defaults fit every real device; only a fake device's tiny limits cap them.
  const tiny = sizes("", { maxBufferSize: 20 * MiB });
  assert.deepEqual([tiny.smallHeap, tiny.largeHeap, tiny.xlargeHeap], [
    8 * MiB,
    20 * MiB,
    20 * MiB,
  ]);
});

Deno.test("SizeClasses.splitHeapSize() gives a heap that holds the request, whatever the conf", () => {
  const s = sizes("small_heap:1MiB,large_heap:2MiB");
  assert.equal(s.splitHeapSize("large", 5 * MiB, holding(0)), 5 * MiB);
  assert.equal(s.splitHeapSize("large", 1 * MiB + 32, holding(0)), 2 * MiB);
});
