// What a file may cost: a trace or snapshot file, raw or gunzipped, is refused past maxBytes
// (--max-file-size on the commands) with a TraceError naming the cap and how to raise it;
// gunzip stops as soon as it passes the cap; JSON lists and objects are counted before parsing.
import assert from "node:assert/strict";
import {
  DEFAULT_MAX_BYTES,
  loadTraceFile,
  parseTraceBytes,
} from "../allocator/tools/load_trace.ts";
import { TraceError } from "../allocator/tools/read_trace.ts";
import { craftGzip, gzip } from "./_hostile_files.ts";

const KiB = 1024;
const MiB = 2 ** 20;
const text = (s: string) => new TextEncoder().encode(s);

/** A plain trace of `n` alloc events as JSON bytes. */
function traceBytes(n: number): Uint8Array {
  return text(JSON.stringify(Array.from({ length: n }, (_, i) => ["a", i + 1, 64])));
}

async function refused(bytes: Uint8Array, maxBytes: number, message: RegExp): Promise<void> {
  await assert.rejects(() => parseTraceBytes(bytes, { maxBytes }), (e: unknown) => {
    assert.ok(e instanceof TraceError, String(e));
    assert.match(e.message, message);
    assert.match(e.message, /raise it with --max-file-size on the commands, maxBytes in code/);
    return true;
  });
}

Deno.test("parseTraceBytes() refuses a file past maxBytes, raw or gunzipped, and reads it under a larger cap", async () => {
  const raw = traceBytes(2000); // about 26 KB
  const zipped = await gzip(raw);
  assert.ok(zipped.length < 16 * KiB);
  await refused(
    raw,
    16 * KiB,
    /the file holds more than 16\.00 KiB, the cap on what a file may cost/,
  );
  await refused(zipped, 16 * KiB, /the file gunzips to more than 16\.00 KiB/);
  for (const bytes of [raw, zipped]) {
    const events = await parseTraceBytes(bytes, { maxBytes: 64 * KiB }) as unknown[];
    assert.equal(events.length, 2000);
  }
  await assert.rejects(() => parseTraceBytes(raw, { maxBytes: 0 }), RangeError);
  assert.equal(DEFAULT_MAX_BYTES, 64 * MiB);
});

Deno.test("parseTraceBytes() stops gunzip as soon as it passes the cap", async () => {
  // 256 MiB of zeros in 250 KB: refused once past 1 MiB, long before the end.
  const bomb = craftGzip([{ byte: 0, count: 256 * MiB }]);
  const before = Deno.memoryUsage().rss;
  await refused(bomb, MiB, /the file gunzips to more than 1\.00 MiB/);
  const grew = Deno.memoryUsage().rss - before;
  assert.ok(grew < 128 * MiB, `resident memory grew by ${(grew / MiB).toFixed(0)} MiB`);
  // A corrupt stream is a TraceError too.
  const corrupt = craftGzip([text("[]")]);
  corrupt[12] ^= 0xff;
  await assert.rejects(() => parseTraceBytes(corrupt), /corrupt gzip data|malformed JSON/);
});

Deno.test("parseTraceBytes() counts the lists and objects of JSON before parsing it", async () => {
  // 3,000 nested lists in 6,000 bytes: one per 2 bytes, where the cap allows one per 8.
  const deep = text("[".repeat(3000) + "]".repeat(3000));
  await refused(
    deep,
    16 * KiB,
    /the JSON holds 3000 lists and objects, more than 2049 \(one per 8 bytes/,
  );
  assert.equal((await parseTraceBytes(deep, { maxBytes: 24_000 }) as unknown[]).length, 1);
  // The densest trace, ["f", 1] after ["f", 1], is read under a cap of its own size.
  const frees = text(JSON.stringify(Array(3000).fill(["f", 1])));
  assert.equal(
    (await parseTraceBytes(frees, { maxBytes: frees.length }) as unknown[]).length,
    3000,
  );
});

Deno.test("loadTraceFile() refuses a file past maxBytes", async () => {
  const file = new URL("./testdata/pytorch/resnet50_infer_varbatch.pickle.gz", import.meta.url);
  await assert.rejects(
    () => loadTraceFile(file, { maxBytes: 4 * KiB }),
    /holds more than 4\.00 KiB/,
  );
  await assert.rejects(() => loadTraceFile(file, { maxBytes: 64 * KiB }), /gunzips to more than/);
  assert.ok(((await loadTraceFile(file)) as { events: unknown[] }).events.length > 0);
});

Deno.test("replay --max-file-size: a file past it exits 1 naming the flag; 0 exits 2", async () => {
  const command = new URL("../allocator/tools/replay_command.ts", import.meta.url).pathname;
  // The trace comes on standard input ("-"): tests write no files.
  const run = async (...args: string[]) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-env", command, "-", ...args],
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(traceBytes(2000));
    await writer.close().catch(() => {}); // the command may stop reading early
    const { code, stderr } = await child.output();
    return { code, line: new TextDecoder().decode(stderr).trim() };
  };
  const small = await run("--max-file-size", "4KiB");
  assert.equal(small.code, 1, small.line);
  assert.match(small.line, /^replay: .*holds more than 4\.00 KiB.*--max-file-size/);
  assert.equal(small.line.split("\n").length, 1);
  const zero = await run("--max-file-size", "0");
  assert.equal(zero.code, 2, zero.line);
  assert.match(zero.line, /--max-file-size needs a size of at least 1 byte/);
  const enough = await run("--max-file-size", "1MiB");
  assert.equal(enough.code, 0, enough.line);
});
