// The chart pieces: round axis steps for any finite number of bytes, a few
// ticks whatever the range, labels in binary units.
import assert from "node:assert/strict";
import { byteLabel, niceMax, niceStep, xLabel, xTicks } from "../allocator/tools/charts.ts";

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
