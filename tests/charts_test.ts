// The chart pieces: round axis steps for any finite number of bytes, a few
// ticks whatever the range, labels in binary units.
import assert from "node:assert/strict";
import { byteLabel, niceMax, niceStep } from "../allocator/tools/charts.ts";

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
