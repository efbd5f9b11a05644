// What a replay costs as its staging blocks multiply: every iteration replays 80,000
// readback and upload blocks of 4 KiB–1 MiB (all live at once, half freed and allocated
// again, then all freed), as 16 replays of 5,000 blocks up to 1 replay of 80,000. Linear
// replay: the same time in every row (the baseline is the smallest replay). The cache
// of freed staging buffers is searched by size, not scanned: tens of thousands of
// them cost no more per block than a few.
// Run: deno bench --allow-env --allow-read bench/replay_bench.ts
import { replay } from "../allocator/tools/replay.ts";

const TOTAL = 80_000;

/** n staging blocks live at once, half of them replaced, then all freed. */
function staging(n: number): unknown[] {
  const events: unknown[] = [];
  const size = (i: number) => 4096 + (i * 7919) % (1 << 20);
  const usage = (i: number) => i % 2 ? "readback" : "upload";
  for (let i = 0; i < n; i++) events.push(["a", i, size(i), usage(i)]);
  for (let i = 0; i < n; i += 2) events.push(["f", i]);
  for (let i = 0; i < n; i += 2) events.push(["a", i, size(i + 1), usage(i)]);
  for (let i = 0; i < n; i++) events.push(["f", i]);
  return events;
}

for (const n of [5_000, 20_000, 80_000]) {
  const events = staging(n);
  Deno.bench(`replay ${TOTAL} staging blocks as ${TOTAL / n} × ${n}`, {
    group: "replay, staging blocks",
    baseline: n === 5_000,
  }, () => {
    for (let k = 0; k < TOTAL / n; k++) replay(events);
  });
}
