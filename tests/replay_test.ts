// Replay fidelity: device memory refuses heaps when they are made, labels reach the
// allocator, and the replay command takes a PyTorch snapshot like any trace (--json with
// the same fields, --memory, --max-binding-size).
import assert from "node:assert/strict";
import { replay } from "../allocator/tools/replay.ts";

const MiB = 1 << 20;
const SNAPSHOT = "tests/testdata/pytorch/bert_train_varseq.pickle.gz";

Deno.test("replay() refuses heaps beyond the device memory", () => {
  // 20 MiB blocks: three fill a 64 MiB extra-large heap; a fourth one fits only in a heap
  // of its size, and then nothing fits.
  const events = Array.from({ length: 10 }, (_, i) => ["a", i, 20 * MiB]);
  const unlimited = replay(events);
  assert.equal(unlimited.ooms, 0);
  assert.ok(unlimited.peakReserved >= 200 * MiB);
  const bounded = replay(events, { memory: 100 * MiB });
  assert.equal(bounded.ooms, 6);
  assert.equal(bounded.peakAllocated, 80 * MiB);
  assert.ok(bounded.peakReserved <= 100 * MiB, `${bounded.peakReserved}`);
});

Deno.test("replay() releases cached heaps to fit the device memory, and retries", () => {
  // Dedicated heaps (past half an extra-large heap), kept cached without a bound on the cache.
  const events = [["a", 1, 70 * MiB], ["f", 1], ["a", 2, 100 * MiB]];
  const options = { allocConf: "max_reserved_ratio:0" };
  assert.equal(replay(events, options).peakReserved, 170 * MiB, "the cached 70 MiB heap is kept");
  const r = replay(events, { ...options, memory: 150 * MiB });
  assert.equal(r.ooms, 0);
  assert.equal(r.retries, 1);
  assert.equal(r.peakReserved, 100 * MiB);
});

Deno.test("replay() passes labels to the allocator", () => {
  const events = [
    ["a", 1, 4096, "storage", 0, null, null, null, null, "train.py:12 main"],
    ["a", 2, 4096],
  ];
  const recorded = replay(events, { record: true }).trace!;
  const allocs = recorded.events.filter((e) => e[0] === "a");
  assert.deepEqual(allocs.map((e) => e[9]), ["train.py:12 main", undefined]);
});

async function command(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "allocator/tools/replay_command.ts", ...args],
    stdout: "piped",
    stderr: "piped",
    cwd: new URL("..", import.meta.url),
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("replay command: a PyTorch snapshot replays with --json, --memory and the limit flags", async () => {
  const plain = replay([["a", 1, 64]]);
  const json = await command(SNAPSHOT, "--json");
  assert.equal(json.code, 0, json.stderr);
  const result = JSON.parse(json.stdout);
  assert.deepEqual(Object.keys(result).sort(), [...Object.keys(plain), "policy", "pytorch"].sort());
  assert.equal(result.pytorch.peakReserved, 2682257408);
  assert.equal(result.ooms, 0);

  const text = await command(SNAPSHOT);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /PyTorch reserved 2\.50 GiB at peak \(1\.177 × peak requested\)/);
  assert.match(text.stdout, /110 blocks \(288\.54 MiB\) live before recording/);

  const small = await command(SNAPSHOT, "--json", "--memory", "2GiB");
  assert.equal(small.code, 0, small.stderr);
  const refused = JSON.parse(small.stdout);
  assert.ok(refused.ooms > 0);
  assert.ok(refused.peakReserved <= 2 * 2 ** 30);

  const binding = await command(SNAPSHOT, "--max-binding-size", "128MiB");
  assert.equal(binding.code, 1);
  assert.match(
    binding.stderr,
    /event \d+: .*larger than the device's maxStorageBufferBindingSize 134217728/,
  );
  // A block lies in one GPUBuffer: one past maxBufferSize is refused, not cut short.
  const buffer = await command(SNAPSHOT, "--max-buffer-size", "200MiB");
  assert.equal(buffer.code, 1);
  assert.match(buffer.stderr, /event \d+: .*larger than the device's maxBufferSize 209715200/);
});
