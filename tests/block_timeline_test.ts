// The block timeline's layout: bands stacked in the order blocks were placed,
// sliding down when one below is freed; the blocks at the peak and the largest
// drawn one by one, the rest summed on top; every bound holds.
import assert from "node:assert/strict";
import { layoutBands, type TimelineBlocks } from "../allocator/tools/block_timeline.ts";
import { rng } from "./_util.ts";

/** Blocks from [size, placed, freed] triples. */
function blocks(list: [number, number, number][], events: number, peakAt = 0): TimelineBlocks {
  return {
    size: list.map(([s]) => s),
    placedAt: list.map(([, p]) => p),
    freedAt: list.map(([, , f]) => f),
    events,
    peakAt,
  };
}

const px = (e: number) => e * 10;

Deno.test("layoutBands() stacks bands in placing order; those above a freed block slide down", () => {
  // a: 0..4, b: 1..2, c: 2..6, d: 3..never. b's free drops c and d by 20.
  const layout = layoutBands(
    blocks([[10, 0, 4], [20, 1, 2], [30, 2, 6], [40, 3, 99]], 8),
    { maxBands: 10, maxSteps: 100, px },
  );
  assert.deepEqual(
    layout.bands.map((b) => [b.block, b.x, b.base, b.end]),
    [
      [0, [0], [0], 40],
      [1, [10], [10], 20],
      [2, [20, 40], [10, 0], 60], // on a (b is gone by then), on the floor once a is freed
      [3, [30, 40, 60], [40, 30, 0], 80],
    ],
  );
  assert.equal(layout.hidden, 0);
  assert.deepEqual(layout.rest, { x: [], under: [], bytes: [] });
});

Deno.test("layoutBands() draws the blocks live at the peak first, then the largest", () => {
  const list: [number, number, number][] = [[5, 0, 9], [50, 1, 2], [7, 3, 9], [40, 4, 5]];
  const layout = layoutBands(blocks(list, 10, 6), { maxBands: 3, maxSteps: 100, px });
  // 0 and 2 are live at event 6; of the others, 1 is the largest.
  assert.deepEqual(layout.bands.map((b) => b.block), [0, 1, 2]);
  assert.equal(layout.hidden, 1);
  const none = layoutBands(blocks(list, 10, 6), { maxBands: 0, maxSteps: 100, px });
  assert.deepEqual([none.bands.length, none.hidden], [0, 4]);
});

Deno.test("layoutBands() sums hidden blocks by column: its highest total, then its last", () => {
  // Columns: events 0..2 in column 0, event 3 at 100. Hidden: 10 (0..2) and 5 (1..never).
  const list: [number, number, number][] = [[1000, 0, 3], [10, 0, 2], [5, 1, 99]];
  const layout = layoutBands(blocks(list, 3, 0), {
    maxBands: 1,
    maxSteps: 100,
    px: (e) => (e < 3 ? 0 : 100),
  });
  assert.deepEqual(layout.bands.map((b) => b.block), [0]);
  // Column 0 peaks at 15 (10 + 5) and ends at 5, which holds until the trace ends at 100.
  assert.deepEqual(layout.rest, { x: [0, 0, 100], under: [1000, 1000, 0], bytes: [15, 5, 0] });
});

Deno.test("layoutBands() halves the bands drawn until their outlines fit maxSteps", () => {
  // Blocks freed in the order they were placed: each free slides every band above it.
  const n = 200;
  const list: [number, number, number][] = [];
  for (let k = 0; k < n; k++) list.push([1, k, n + k]);
  const all = layoutBands(blocks(list, 2 * n), { maxBands: n, maxSteps: Infinity, px });
  const steps = (l: typeof all) => l.bands.reduce((s, b) => s + b.x.length, 0);
  assert.ok(steps(all) > 1000, `${steps(all)} steps with every band`);
  const bounded = layoutBands(blocks(list, 2 * n), { maxBands: n, maxSteps: 1000, px });
  assert.ok(steps(bounded) <= 1000, `${steps(bounded)} steps`);
  // Halving: the count drawn is n / 2^k (floored at each step), the first such that fits.
  const halvings = [n];
  while (halvings.at(-1)! > 1) halvings.push(Math.floor(halvings.at(-1)! / 2));
  const k = halvings.indexOf(bounded.bands.length);
  assert.ok(k > 0, `${bounded.bands.length} bands is not ${n} halved`);
  const before = layoutBands(blocks(list, 2 * n), {
    maxBands: halvings[k - 1],
    maxSteps: Infinity,
    px,
  });
  assert.ok(steps(before) > 1000, `${halvings[k - 1]} bands fit, yet ${halvings[k]} were drawn`);
  assert.equal(bounded.hidden, n - bounded.bands.length);
});

Deno.test("layoutBands() fuzzed: the stack's top is the bytes live after every event", () => {
  const random = rng(77);
  for (let round = 0; round < 200; round++) {
    const events = 1 + Math.floor(random() * 60);
    const list: [number, number, number][] = [];
    for (let e = 0; e < events; e++) {
      if (random() < 0.5) {
        const freed = random() < 0.2 ? events + 5 : e + 1 + Math.floor(random() * (events - e));
        list.push([1 + Math.floor(random() * 100), e, freed]);
      }
    }
    const layout = layoutBands(blocks(list, events), {
      maxBands: 1 + Math.floor(random() * 8),
      maxSteps: 10_000,
      px,
    });
    // Where a band is, after each event: its base and size at that column.
    for (let e = 0; e < events; e++) {
      const live = list.filter(([, p, f]) => p <= e && e < f);
      const x = px(e) + 5; // inside the column of event e, before the next
      let top = 0;
      for (const band of layout.bands) {
        if (!(band.x[0] <= x && x < band.end)) continue;
        let j = 0;
        while (j + 1 < band.x.length && band.x[j + 1] <= x) j++;
        assert.equal(band.base[j], top, `round ${round}, event ${e}: bands touch`);
        top += band.size;
      }
      const r = layout.rest;
      let k = -1;
      while (k + 1 < r.x.length && r.x[k + 1] <= x) k++;
      const hidden = k >= 0 ? r.bytes[k] : 0;
      if (k >= 0) assert.equal(r.under[k], top, `round ${round}, event ${e}: rest on the bands`);
      assert.equal(
        top + hidden,
        live.reduce((s, [size]) => s + size, 0),
        `round ${round}, event ${e}`,
      );
    }
  }
});
