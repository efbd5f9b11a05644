// The replay command: a table of policies side by side, --json with the
// fields scripts read, and a trace it cannot replay as one line and exit 1.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { replay } from "../allocator/tools/replay.ts";
import { STANDARD_POLICIES } from "../allocator/tools/replay_command.ts";

const MiB = 1 << 20;

/** Runs the command with `input` on stdin. */
async function run(input: string, ...args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "allocator/tools/replay_command.ts", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    cwd: new URL("..", import.meta.url),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const out = await child.output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** A small recording with a pending free, a submit and a dedicated heap. */
function recording() {
  const allocator = new HeapAllocator(new FakeDevice());
  allocator.startRecording();
  const a = allocator.alloc(3 * MiB);
  const b = allocator.alloc(70 * MiB);
  void a.buffer;
  allocator.free(a);
  allocator.submit();
  allocator.free(allocator.alloc(2 * MiB, { usage: "readback" }));
  allocator.free(b);
  const trace = allocator.stopRecording();
  allocator.destroy();
  return trace;
}

/** The fields of one policy's --json object that scripts read. */
const FIELDS = [
  "policy",
  "allocConf",
  "events",
  "allocations",
  "frees",
  "submits",
  "peakAllocated",
  "peakRequested",
  "peakInUse",
  "peakReserved",
  "ratio",
  "requestedRatio",
  "inUseRatio",
  "heapsCreated",
  "stagingBuffersCreated",
  "createBufferCalls",
  "cacheHits",
  "retries",
  "ooms",
  "skippedFrees",
];

Deno.test("replay command: --json gives one policy's figures as replay() does", async () => {
  const trace = recording();
  const one = await run(JSON.stringify(trace), "-", "--json");
  assert.equal(one.code, 0, one.stderr);
  const json = JSON.parse(one.stdout);
  for (const key of FIELDS) assert.ok(key in json, key);
  const direct = replay(trace);
  for (const key of FIELDS.slice(1)) {
    assert.equal(json[key], direct[key as keyof typeof direct], key);
  }
  const many = await run(JSON.stringify(trace), "-", "--json", "--compare");
  assert.equal(many.code, 0, many.stderr);
  const all = JSON.parse(many.stdout);
  assert.equal(all.trace, "-");
  assert.deepEqual(all.policies.map((p: { policy: string }) => p.policy), STANDARD_POLICIES);
  for (const key of FIELDS) assert.ok(key in all.policies[1], key);
});

Deno.test("replay command: a table with policies side by side", async () => {
  const table = await run(JSON.stringify(recording()), "-", "--conf", "", "--conf", "caching:0");
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^trace: - \(\d+ events: .*\d+ a, /);
  assert.match(table.stdout, /peak allocated .* peak reserved .* createBuffer/);
  assert.match(table.stdout, /\ndefault +\S/);
  assert.match(table.stdout, /\ncaching:0 +\S/);
});

Deno.test("replay command: a trace it cannot replay is one line and exit 1", async () => {
  const bad = await run('[["a", 1, 64], ["f", 2]]', "-");
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, "replay: Invalid trace: event 1: frees block id 2, which is not live\n");
  const json = await run("[[", "-");
  assert.equal(json.code, 1);
  assert.match(json.stderr, /^replay: Invalid trace: malformed JSON \(.*\)\n$/);
});
