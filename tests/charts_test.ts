// The chart pieces: round axis steps for any finite number of bytes, a few
// ticks whatever the range, labels in binary units; marks whose lines cross
// no label, offsets inside the picture, narrow bands seen, a colour per
// listed block.
import assert from "node:assert/strict";
import {
  areaChart,
  bandColor,
  emptySeries,
  heapMap,
  LISTED_COLORS,
  MIN_BAND_PX,
  niceMax,
  niceStep,
  timelineChart,
  WIDTH,
  xLabel,
  xTicks,
} from "../allocator/tools/charts.ts";
import { byteLabel } from "../allocator/format.ts";

Deno.test("niceMax() gives 1 to 12 round steps for any finite size", () => {
  for (let e = 0; e <= 90; e += 0.7) {
    const bytes = 2 ** e;
    const max = niceMax(bytes);
    const step = niceStep(bytes / 5);
    assert.ok(max >= bytes, `${max} >= ${bytes}`);
    const steps = max / step;
    assert.ok(Number.isInteger(steps) && steps >= 1 && steps <= 12, `${steps} steps for 2^${e}`);
    assert.ok(Number.isFinite(max));
  }
  assert.equal(niceMax(1), 1);
  assert.equal(niceStep(3 << 20), 5 << 20);
  assert.equal(niceStep(700 << 20), 1 << 30, "1 GiB rather than 1000 MiB");
  assert.equal(niceStep(1000 << 20), 1 << 30);
  assert.equal(niceStep(2 ** 95), 2 ** 95, "past the largest unit, a power of two");
});

Deno.test("byteLabel() writes bytes in binary units up to YiB", () => {
  assert.equal(byteLabel(0), "0");
  assert.equal(byteLabel(512), "512 B");
  assert.equal(byteLabel(1536 << 20), "1.5 GiB");
  assert.equal(byteLabel(2 ** 80), "1 YiB");
  assert.equal(byteLabel(2 ** 90), "1024 YiB");
});

Deno.test("xLabel() writes times in the unit of the ticks' step, and events as counts", () => {
  assert.equal(xLabel(3500, "ms", 500), "3.5 s");
  assert.equal(xLabel(1150, "ms", 50), "1150 ms");
  assert.equal(xLabel(3.5, "ms", 0.5), "3.5 ms");
  assert.equal(xLabel(3.25, "ms", 0.05), "3.25 ms");
  assert.equal(xLabel(0.004, "ms", 0.002), "4 µs");
  assert.equal(xLabel(12000, "events", 2000), "12,000");
});

Deno.test("xTicks() gives a few round ticks inside any range", () => {
  for (const [from, to] of [[0, 1], [5, 15], [1077.3, 1339.2], [0, 1e9], [2.0001, 2.0002]]) {
    const { values, step } = xTicks({ from, to, unit: "ms" });
    assert.ok(
      values.length >= 2 && values.length <= 13,
      `${values.length} ticks on ${from}..${to}`,
    );
    for (const v of values) assert.ok(v >= from - 1e-9 && v <= to + 1e-9, `${v} in ${from}..${to}`);
    assert.ok(values.every((v, i) => i === 0 || Math.abs(v - values[i - 1] - step) < step * 1e-6));
  }
  assert.deepEqual(xTicks({ from: 0, to: 3, unit: "events" }).values, [0, 1, 2, 3]);
});

/** The marks' labels and lines of a chart: x, row (y) and extent of each. */
function markParts(svg: string) {
  const labels = [...svg.matchAll(
    /<text class="mark (\w+)" x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)">([^<]*)<\/text><line class="mark \1" x1="([\d.]+)" x2="[\d.]+" y1="([\d.]+)"/g,
  )].map(([, kind, x, y, anchor, text, line, lineTop]) => {
    // Narrower than any font draws them: a crossing found here is a real one.
    const w = text.length * 5;
    const left = anchor === "start" ? Number(x) : Number(x) - w;
    return {
      kind,
      y: Number(y),
      from: left,
      to: left + w,
      line: Number(line),
      lineTop: Number(lineTop),
    };
  });
  return labels;
}

Deno.test("areaChart() keeps every mark's line off the other marks' labels", () => {
  const axis = { from: 0, to: 100, unit: "ms" as const };
  const series = emptySeries();
  // Near each other either way round, the second label wide enough to reach past the first line.
  for (const [a, r] of [[12, 10], [10, 12], [50, 50], [97, 99]]) {
    const svg = String(areaChart("t", series, {
      axis,
      max: 1 << 20,
      marks: [
        { x: a, label: "peak allocated 1.00 MiB", kind: "allocated" },
        { x: r, label: "peak reserved 2.00 MiB, a long label", kind: "reserved" },
      ],
    }));
    const marks = markParts(svg);
    assert.deepEqual(marks.map((m) => m.kind), ["allocated", "reserved"]);
    for (const label of marks) {
      for (const other of marks) {
        if (other === label) continue;
        const through = other.lineTop < label.y && label.from < other.line && other.line < label.to;
        assert.ok(!through, `the ${other.kind} line crosses the ${label.kind} label (${a}, ${r})`);
        assert.ok(label.y !== other.y || label.to < other.from || other.to < label.from);
      }
    }
  }
});

Deno.test("heapMap() labels offsets inside the picture, none past the scale", () => {
  const MiB = 1 << 20;
  for (const size of [235 * MiB, 66 * MiB, 98 * MiB, 1000, 3 * 2 ** 30 + 5]) {
    const svg = String(heapMap([{
      id: 1,
      pool: "large",
      size,
      isSplit: false,
      lost: false,
      ageMs: 0,
      blocks: [],
    }]));
    const offsets = svg.slice(svg.indexOf('<g class="offsets">'), svg.indexOf('<g class="rows">'));
    const ticks = [
      ...offsets.matchAll(/<text x="([\d.]+)" y="[\d.]+" text-anchor="(\w+)">([^<]*)</g),
    ];
    assert.ok(ticks.length >= 2);
    for (const [, x, anchor, text] of ticks) {
      const right = Number(x) + (anchor === "middle" ? text.length * 3.5 : 0);
      assert.ok(right <= WIDTH, `${text} at ${x} runs past ${WIDTH} (heap of ${size} B)`);
    }
  }
});

Deno.test("timelineChart() draws a block shorter than a column MIN_BAND_PX wide, above the others", () => {
  const axis = { from: 0, to: 10, unit: "events" as const };
  const layout = {
    bands: [
      { block: 0, size: 100, x: [0], base: [0], end: 500 },
      { block: 1, size: 50, x: [200], base: [100], end: 200 }, // placed and freed in one column
      { block: 2, size: 50, x: [300], base: [100], end: 600 },
    ],
    hidden: 0,
    rest: { x: [], under: [], bytes: [] },
  };
  const svg = String(
    timelineChart(
      layout,
      { axis, max: 200, marks: [] },
      () => ({ color: "#000", tip: "" }),
      emptySeries(),
    ),
  );
  const drawn = [...svg.matchAll(/<polygon class="band" data-block="(\d+)"[^>]*points="([^"]*)"/g)]
    .map(([, block, points]) => {
      const xs = points.split(" ").map((p) => Number(p.split(",")[0]));
      return { block: Number(block), width: Math.max(...xs) - Math.min(...xs) };
    });
  assert.deepEqual(drawn.map((d) => d.block), [0, 2, 1], "the narrow band last, on top");
  assert.equal(drawn[2].width, MIN_BAND_PX);
  assert.equal(drawn[0].width, 500);
});

Deno.test("bandColor() gives each block the table lists a colour of its own, apart from the others", () => {
  // Blocks placed far apart, as the largest at a peak are.
  const listed = LISTED_COLORS.map((_, row) => bandColor(row * 12 + 5, row));
  assert.equal(new Set(listed).size, LISTED_COLORS.length);
  const others = new Set(Array.from({ length: 100 }, (_, k) => bandColor(k, -1)));
  for (const c of listed) assert.ok(!others.has(c), `${c} is also an unlisted band's`);
});
