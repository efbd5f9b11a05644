// Crafted files (tests/_hostile_files.ts), each of 1 MB or less, read as the commands read
// them in a child process with a 1 GiB heap: each is read or refused with a TraceError that
// names what it broke, in under 5 s, with the process under 1 GiB resident.
import assert from "node:assert/strict";

/** What a reader may spend on a crafted file of 1 MB. */
const MAX_MS = 5_000;
const MAX_RSS = 2 ** 30;
const MAX_FILE = 1_000_000;

/** What each file must end in: a message of a TraceError, or null for a trace read and replayed. */
const EXPECTED: Record<string, RegExp | null> = {
  "gzip bomb (950 MiB of zeros)": /the file gunzips to more than 64\.00 MiB.*--max-file-size/,
  "memo bomb": /segments\[1\]\.blocks is the list of segments\[0\] again/,
  "shared frames": null,
  "long int": /LONG4 at offset 2: int of 1000000 bytes \(at most 1024/,
  "dense pickle": /builds more than \d+ values, the cap on what a file may cost.*--max-file-size/,
  "dense JSON": /the JSON holds \d+ lists and objects, more than \d+.*--max-file-size/,
  "uniform limit 2^31": null,
  "uniform limit 2^32": /settings\.limits\.maxUniformBufferBindingSize/,
};

Deno.test("no crafted file of 1 MB makes a reader take over 5 s or 1 GiB: each ends in a TraceError or a trace", async () => {
  const script = new URL("./testdata/read_hostile.ts", import.meta.url).pathname;
  const names = Object.keys(EXPECTED);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--max-old-space-size=1024", script],
    stdout: "piped",
    stderr: "piped",
    // A hang guard: each file gets its bound, the process a few seconds to start.
    signal: AbortSignal.timeout(names.length * MAX_MS + 10_000),
  }).output();
  const lines = new TextDecoder().decode(stdout).trim().split("\n").filter((l) => l);
  const done = lines.map((l) => JSON.parse(l));
  assert.equal(
    code,
    0,
    `the reader died after ${done.map((d) => d.name).join(", ") || "no file"}: ` +
      new TextDecoder().decode(stderr).slice(-400),
  );
  assert.deepEqual(done.map((d) => d.name).sort(), names.sort());
  for (const { name, size, ms, error, message, rss } of done) {
    assert.ok(size <= MAX_FILE, `${name}: ${size} bytes`);
    const expected = EXPECTED[name];
    if (expected === null) assert.equal(error, null, `${name}: ${message}`);
    else {
      assert.equal(error, "TraceError", `${name}: ${error}: ${message}`);
      assert.match(message, expected, `${name}: ${message}`);
    }
    assert.ok(ms < MAX_MS, `${name} took ${ms} ms`);
    assert.ok(rss < MAX_RSS, `${name}: ${(rss / 2 ** 20).toFixed(0)} MiB resident`);
  }
});
