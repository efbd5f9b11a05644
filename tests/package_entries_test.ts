// What a user of the published package meets: every export entry answers
// `--help` when it is a command, memviz writes where --out says, memviz:png
// finds its browser by flag, variable or name, and a bad GPUHEAP_* variable
// is named in the error it causes.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { BROWSER_ENV, browserCandidates, BROWSERS } from "../allocator/tools/memviz_png_command.ts";

const ROOT = new URL("..", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
const EXPORTS = config.exports as Record<string, string>;
const TRACE = '[["a", 1, 4096], ["a", 2, 8192], ["f", 1], ["f", 2]]';

async function deno(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("package: every command entry is an export and answers --help", async () => {
  const commands = Object.entries(EXPORTS).filter(([, path]) =>
    /import\.meta\.main/.test(Deno.readTextFileSync(new URL(path, ROOT)))
  );
  const names = commands.map(([key]) => key).sort();
  assert.deepEqual(names, [
    "./fragmentation",
    "./memdiff",
    "./memviz",
    "./memviz-png",
    "./replay",
    "./stress",
    "./trace-gen",
  ]);
  for (const [key, path] of commands) {
    // As a user runs it from JSR: every permission, the entry's module.
    const r = await deno(["run", "-A", path, "--help"]);
    assert.equal(r.code, 0, `${key}: ${r.stderr}`);
    assert.match(r.stdout, /^Usage: /, key);
  }
});

Deno.test("package: the import map names every export entry, so doc examples run", () => {
  for (const [key, path] of Object.entries(EXPORTS)) {
    assert.equal(config.imports[`@gpuheap/gpuheap${key.slice(1)}`], path, key);
  }
});

Deno.test("replay command: --help says it reads PyTorch snapshots", async () => {
  const r = await deno(["run", "-A", EXPORTS["./replay"], "--help"]);
  assert.match(r.stdout, /PyTorch memory snapshot/);
});

/**
 * Runs `code` in `deno eval` (every permission: the test process may not
 * write files) and returns what it printed, as JSON.
 */
async function inScratch(code: string): Promise<Record<string, unknown>> {
  const r = await deno(["eval", code]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

Deno.test("memviz command: --out writes the page to the file, nothing to stdout", async () => {
  const path = new URL(EXPORTS["./memviz"], ROOT).pathname;
  const r = await inScratch(`
    const dir = Deno.makeTempDirSync();
    Deno.writeTextFileSync(dir + "/t.json", ${JSON.stringify(TRACE)});
    const out = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ${JSON.stringify(path)}, dir + "/t.json", "--out", dir + "/m.html"],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const html = Deno.readTextFileSync(dir + "/m.html");
    Deno.removeSync(dir, { recursive: true });
    const text = (b) => new TextDecoder().decode(b);
    console.log(JSON.stringify({ code: out.code, stdout: text(out.stdout), stderr: text(out.stderr), html }));
  `);
  assert.equal(r.code, 0, String(r.stderr));
  assert.equal(r.stdout, "");
  assert.match(String(r.html), /^<!DOCTYPE html>/i);
});

Deno.test("memviz:png: the browser is the flag's, else the variable's, else each known name", () => {
  assert.deepEqual(browserCandidates("/x/chrome", "/y/chromium"), ["/x/chrome"]);
  assert.deepEqual(browserCandidates(undefined, "/y/chromium"), ["/y/chromium"]);
  const found = browserCandidates(undefined, undefined);
  assert.deepEqual(found.slice(0, 3), ["chromium", "chromium-browser", "google-chrome"]);
  assert.deepEqual(BROWSERS, found.slice(0, BROWSERS.length));
});

Deno.test("memviz:png: a browser that is not there is one line naming what was tried", async () => {
  const missing = "/no-such-dir/no-such-browser";
  for (
    const [args, env] of [
      [["--browser", missing], {}],
      [[], { [BROWSER_ENV]: missing }],
    ] as [string[], Record<string, string>][]
  ) {
    // The trace from stdin; nothing is written, as no browser starts.
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", EXPORTS["./memviz-png"], "-", "/no-such-dir/m.png", ...args],
      cwd: ROOT,
      env: { NO_COLOR: "1", ...env },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(TRACE));
    await writer.close();
    const out = await child.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    assert.equal(stderr.trim().split("\n").length, 1, stderr);
    assert.match(stderr, /^memviz:png: no browser found \(tried \/no-such-dir\/no-such-browser\)/);
  }
});

Deno.test("HeapAllocator: a bad GPUHEAP_* variable is named in the error", () => {
  const cases: [string, string][] = [
    ["GPUHEAP_HIGH_WATERMARK", "8XB"],
    ["GPUHEAP_LOW_WATERMARK", "lots"],
    ["GPUHEAP_ALLOC_CONF", "bogus:1"],
    ["GPUHEAP_DEBUG", "nope"],
  ];
  for (const [name, value] of cases) {
    Deno.env.set(name, value);
    try {
      assert.throws(
        () => new HeapAllocator(new FakeDevice()),
        (e: unknown) => e instanceof RangeError && e.message.includes(name),
        name,
      );
    } finally {
      Deno.env.delete(name);
    }
  }
  // The option given in code is named as such, not as the variable.
  assert.throws(
    () => new HeapAllocator(new FakeDevice(), { highWatermark: "8XB" }),
    /highWatermark/,
  );
});

Deno.test("README: every command's every flag is listed, and every entry named", async () => {
  const { flagName } = await import("../allocator/tools/flags.ts");
  const commands = [
    (await import("../bench/commands/stress.ts")).STRESS_COMMAND,
    (await import("../allocator/tools/replay_command.ts")).REPLAY_COMMAND,
    (await import("../allocator/tools/memviz_command.ts")).MEMVIZ_COMMAND,
    (await import("../allocator/tools/memviz_png_command.ts")).MEMVIZ_PNG_COMMAND,
    (await import("../bench/commands/fragmentation.ts")).FRAGMENTATION_COMMAND,
    (await import("../bench/commands/trace_gen.ts")).TRACE_GEN_COMMAND,
    (await import("../allocator/tools/memdiff_command.ts")).MEMDIFF_COMMAND,
  ];
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  // The flag lists: one bullet per command, "- **name** …", up to the next bullet.
  const bullets = readme.split(/\n- /).filter((b) => b.startsWith("**"));
  for (const command of commands) {
    const title = command.name.replace(":", "-");
    const bullet = bullets.find((b) => b.startsWith(`**${title}**`));
    assert.ok(bullet, `README lists no flags for ${title}`);
    for (const key of Object.keys(command.flags)) {
      assert.ok(bullet.includes(flagName(key)), `README: ${title} lacks ${flagName(key)}`);
    }
  }
  for (const key of Object.keys(EXPORTS).filter((k) => k !== ".")) {
    assert.ok(
      readme.includes(`@gpuheap/gpuheap${key.slice(1)}`) || readme.includes(`…${key.slice(1)}`),
      key,
    );
  }
});
