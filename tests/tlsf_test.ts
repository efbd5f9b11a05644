import assert from "node:assert/strict";
import { Tlsf } from "../allocator/tlsf.ts";
import { rng } from "./_util.ts";

Deno.test("Tlsf.alloc() places, splits, and free() coalesces within one region", () => {
  const t = new Tlsf(32);
  const r = t.addRegion(1024);
  const a = t.alloc(64)!;
  const b = t.alloc(128)!;
  const c = t.alloc(32)!;
  assert.deepEqual([a.offset, b.offset, c.offset], [0, 64, 192]);
  assert.equal(t.freeBytes, 1024 - 224);
  t.free(b);
  assert.equal(t.alloc(96)!.offset, 64, "the hole left by b is reused");
  t.free(a);
  t.free(c);
  assert.equal(r.usedBytes, 96);
  assert.throws(() => t.removeRegion(r), /still allocated/);
});

Deno.test("Tlsf.alloc() ranges never cross or merge across regions", () => {
  const t = new Tlsf(32);
  const r1 = t.addRegion(256);
  const r2 = t.addRegion(256);
  const a = t.alloc(256)!;
  const b = t.alloc(256)!;
  assert.notEqual(a.region, b.region);
  assert.equal(t.alloc(32), null);
  t.free(a);
  t.free(b);
  assert.equal(t.largestFree(), 256, "two free regions stay two ranges");
  t.removeRegion(r1);
  t.removeRegion(r2);
  assert.equal(t.freeBytes, 0);
  assert.equal(t.alloc(32), null);
});

Deno.test("Tlsf.retireRegion() stops a region from handing out ranges", () => {
  const t = new Tlsf(32);
  const r = t.addRegion(1024);
  const a = t.alloc(64)!;
  t.retireRegion(r);
  assert.equal(t.alloc(32), null);
  t.free(a);
  assert.equal(t.freeBytes, 0);
  t.removeRegion(r);
});

Deno.test("Tlsf.alloc() and free() reject bad sizes and foreign ranges", () => {
  const t = new Tlsf(32);
  assert.throws(() => new Tlsf(24), /power of two, got 24/);
  assert.throws(() => t.alloc(33), /positive multiple of 32, got 33/);
  assert.throws(() => t.alloc(0), /got 0/);
  const other = new Tlsf(32);
  other.addRegion(64);
  const x = other.alloc(32)!;
  assert.throws(() => t.free(x), /does not belong/);
  other.free(x);
  assert.throws(() => other.free(x), /already free/);
});

for (const fullestFirst of [false, true]) {
  Deno.test(
    `Tlsf.alloc() and free() in random order keep ranges disjoint and bytes exact${
      fullestFirst ? ", fullest first" : ""
    }`,
    () => {
      randomOrder(new Tlsf(256, fullestFirst));
    },
  );
}

Deno.test("Tlsf.alloc() fullest first takes the fullest region among those that fit", () => {
  const place = (fullestFirst: boolean) => {
    const t = new Tlsf(1, fullestFirst);
    const sparse = t.addRegion(1000);
    const x = t.alloc(100)!;
    t.alloc(150);
    t.free(x); // sparse: 100 free, 150 used, 750 free
    const full = t.addRegion(1000);
    assert.equal(t.alloc(800)!.region, full); // full: 800 used, 200 free
    const r = t.alloc(80)!;
    return r.region === full ? "full" : r.region === sparse ? "sparse" : "?";
  };
  assert.equal(place(false), "sparse", "the first good fit: the 100-unit range");
  assert.equal(place(true), "full", "80% used against 15%");
});

function randomOrder(t: Tlsf): void {
  const random = rng(7);
  const regions = [t.addRegion(8 << 20), t.addRegion(32 << 20), t.addRegion(1 << 20)];
  const total = regions.reduce((s, r) => s + r.size, 0);
  const live: { offset: number; size: number; region: unknown }[] = [];
  const handles: ReturnType<Tlsf["alloc"]>[] = [];
  let used = 0;
  for (let step = 0; step < 20000; step++) {
    if (live.length > 0 && random() < 0.45) {
      const i = Math.floor(random() * live.length);
      t.free(handles[i]!);
      used -= live[i].size;
      live.splice(i, 1);
      handles.splice(i, 1);
    } else {
      const size = Math.ceil((2 ** (random() * 22)) / 256) * 256;
      const h = t.alloc(size);
      if (h) {
        assert.equal(h.offset % 256, 0);
        assert.ok(h.offset + h.size <= (h.region as { size: number }).size);
        live.push({ offset: h.offset, size: h.size, region: h.region });
        handles.push(h);
        used += h.size;
      } else {
        assert.ok(t.largestFree() < size, `alloc of ${size} failed with ${t.largestFree()} free`);
      }
    }
    assert.equal(t.freeBytes, total - used);
  }
  for (const r of regions) {
    const ranges = [...t.ranges(r)];
    let at = 0;
    for (const range of ranges) {
      assert.equal(range.offset, at, "ranges tile the region");
      at += range.size;
    }
    assert.equal(at, r.size);
    for (let i = 1; i < ranges.length; i++) {
      assert.ok(!(ranges[i].isFree && ranges[i - 1].isFree), "free neighbours are merged");
    }
  }
}
