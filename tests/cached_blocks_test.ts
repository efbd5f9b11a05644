// The cache of freed unsplit blocks on plain records: smallest fit within a
// bound, first cached first among equal sizes, deletes, and a cost per
// operation that does not grow with the number of blocks cached.
import assert from "node:assert/strict";
import { CachedBlocks } from "../allocator/cached_blocks.ts";
import { rng } from "./_util.ts";

/** A record as the cache sees it: an id and a size. */
interface Rec {
  id: number;
  size: number;
}
const rec = (id: number, size: number): Rec => ({ id, size });

Deno.test("CachedBlocks.take() returns the smallest block within the bound, first cached first", () => {
  const cache = new CachedBlocks<Rec>();
  const blocks = [rec(1, 30), rec(2, 10), rec(3, 20), rec(4, 20), rec(5, 40)];
  for (const b of blocks) cache.add(b);
  assert.equal(cache.size, 5);
  assert.deepEqual([...cache].map((r) => r.id), [2, 3, 4, 1, 5]);
  assert.equal(cache.largest(), 40);
  assert.equal(cache.take(11, 19), null, "no size between");
  assert.equal(cache.take(11, 20)?.id, 3);
  assert.equal(cache.take(11, 20)?.id, 4);
  assert.equal(cache.take(11, 20), null, "both taken");
  assert.equal(cache.take(11, Infinity)?.id, 1);
  assert.equal(cache.take(0, 100, (r) => r.id !== 2)?.id, 5, "passes over what is not usable");
  assert.equal(cache.largest(), 10);
  assert.deepEqual([...cache].map((r) => r.id), [2]);
});

Deno.test("CachedBlocks.delete() removes one block, once", () => {
  const cache = new CachedBlocks<Rec>();
  const [a, b, c] = [rec(1, 64), rec(2, 64), rec(3, 128)];
  for (const r of [a, b, c]) cache.add(r);
  assert.equal(cache.delete(b), true);
  assert.equal(cache.delete(b), false);
  assert.equal(cache.delete(rec(9, 64)), false, "a record never cached");
  assert.equal(cache.delete(c), true);
  assert.equal(cache.largest(), 64);
  assert.equal(cache.size, 1);
  assert.equal(cache.take(0, Infinity), a);
  assert.equal(cache.largest(), 0);
  assert.equal(cache.size, 0);
});

Deno.test("CachedBlocks agrees with a sorted list through random adds, deletes and takes", () => {
  const random = rng(7);
  const cache = new CachedBlocks<Rec>();
  let model: Rec[] = [];
  for (let step = 0; step < 5000; step++) {
    const x = random();
    if (x < 0.5 || model.length === 0) {
      const r = rec(step, 256 * (1 + Math.floor(random() * 16)));
      cache.add(r);
      model.push(r);
    } else if (x < 0.75) {
      const r = model[Math.floor(random() * model.length)];
      assert.equal(cache.delete(r), true);
      model = model.filter((m) => m !== r);
    } else {
      const min = 256 * Math.floor(random() * 17);
      const max = min + 256 * Math.floor(random() * 4);
      const fits = model.filter((m) => m.size >= min && m.size <= max);
      // The smallest size, and among equal sizes the one cached first (lowest id).
      fits.sort((p, q) => p.size - q.size || p.id - q.id);
      const got = cache.take(min, max);
      assert.equal(got, fits[0] ?? null);
      if (got) model = model.filter((m) => m !== got);
    }
    assert.equal(cache.size, model.length);
    assert.equal(cache.largest(), Math.max(0, ...model.map((m) => m.size)));
  }
});
