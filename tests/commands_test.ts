// Every command behaves alike: --help prints the usage and exits 0; an
// unknown flag, a missing or malformed value exits 2 with one line naming the
// flag and the value; a missing input file is one line and exit 1; never a
// stack trace. Each case stops before any GPU work, so they run fast.
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url);

interface CommandCase {
  /** Path from the repository root. */
  path: string;
  /** Permissions, as its task runs it. */
  permissions: string[];
  /** Bad command lines, each with what its one line must say. */
  bad: [string[], RegExp][];
  /** A command line naming an input file that does not exist, if it reads one. */
  missing?: string[];
}

const MISSING = "tests/testdata/no-such-file.json";

const COMMANDS: Record<string, CommandCase> = {
  replay: {
    path: "allocator/tools/replay_command.ts",
    permissions: ["--allow-read", "--allow-env"],
    bad: [
      [["t.json", "--bogus"], /^replay: Unknown flag "--bogus"/],
      [["t.json", "--memory", "lots"], /--memory needs a size such as 512MiB, got "lots"/],
      [["t.json", "--conf", "caching:maybe"], /--conf needs a valid alloc conf .*"caching:maybe"/],
      [["t.json", "--json=yes"], /--json takes no value, got "yes"/],
      [[], /Missing TRACE/],
    ],
    missing: [MISSING],
  },
  memviz: {
    path: "allocator/tools/memviz_command.ts",
    permissions: ["--allow-read", "--allow-env"],
    bad: [
      [
        ["t.json", "--at", "peak"],
        /^memviz: Flag --at needs one of allocated, reserved, got "peak"/,
      ],
      [["t.json", "--at"], /--at needs a value/],
      [["t.json", "--x", "ms"], /^memviz: Flag --x needs one of time, events, got "ms"/],
      [["a.json", "b.json"], /Unexpected argument "b\.json"/],
    ],
    missing: [MISSING],
  },
  "memviz:png": {
    path: "allocator/tools/memviz_png_command.ts",
    permissions: ["--allow-read", "--allow-env", "--allow-write", "--allow-run"],
    bad: [
      [["t.json", "o.png", "--bogus=1"], /^memviz:png: Unknown flag "--bogus=1"/],
      [["t.json"], /Missing OUT/],
    ],
    missing: [MISSING, "out.png"],
  },
  fragmentation: {
    path: "bench/commands/fragmentation.ts",
    permissions: ["--allow-read", "--allow-env"],
    bad: [
      [["--conf", "bogus:1"], /^fragmentation: Flag --conf needs a valid alloc conf .*"bogus:1"/],
      [["--seeds", "0"], /--seeds needs an integer from 1 to 1000, got "0"/],
      [["--seeds", "2.5"], /--seeds needs an integer, got "2\.5"/],
    ],
  },
  adversary: {
    path: "bench/commands/adversary.ts",
    permissions: ["--allow-read", "--allow-env"],
    bad: [
      [["--conf", "bogus:1"], /^adversary: Flag --conf needs a valid alloc conf .*"bogus:1"/],
      [["--tries", "0"], /--tries needs an integer from 1 to 1000000, got "0"/],
      [["--min-peak", "lots"], /--min-peak needs a size such as 512MiB/],
      [["extra"], /Unexpected argument "extra"/],
    ],
  },
  "trace:gen": {
    path: "bench/commands/trace_gen.ts",
    permissions: ["--allow-write"],
    bad: [
      [["random", "--seed", "abc"], /^trace:gen: Flag --seed needs an integer, got "abc"/],
      [["random", "--steps", "-5"], /--steps needs an integer from 1 to 10000, got "-5"/],
      [["random", "--out"], /--out needs a value/],
      [["bogus"], /KIND must be one of transformer, training, random, got "bogus"/],
      [[], /Missing KIND/],
    ],
  },
  stress: {
    path: "bench/commands/stress.ts",
    permissions: ["--allow-read", "--allow-env"],
    bad: [
      [
        ["--budget", "99999999999999999999999GiB"],
        /^stress: Flag --budget needs a size of at most 2\^53 - 1 bytes, got "9+GiB"/,
      ],
      [["--workers", "65"], /--workers needs an integer from 1 to 64, got "65"/],
      [["--iterations", "-1"], /--iterations needs an integer >= 0, got "-1"/],
    ],
  },
  stress_repeat: {
    path: "bench/commands/stress_repeat.ts",
    permissions: ["--allow-read", "--allow-run"],
    bad: [
      [["abc"], /^stress_repeat: RUNS must be an integer, got "abc"/],
      [["0"], /RUNS must be an integer >= 1, got "0"/],
      [["--bogus"], /Unknown flag "--bogus"/],
    ],
  },
  kernels_gpu: {
    path: "bench/commands/kernels_gpu.ts",
    permissions: ["--allow-read", "--allow-env"],
    bad: [
      [["--reps", "x"], /^kernels_gpu: Flag --reps needs an integer, got "x"/],
      [["--tiles", "{"], /--tiles needs JSON such as .*, got "\{"/],
      [["--tiles", '{"tileM":0}'], /--tiles needs tileM, tileN, tileK, threadM, threadN/],
      [["--quick", "--bogus"], /Unknown flag "--bogus"/],
    ],
  },
};

async function run(c: CommandCase, args: string[], stdin?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...c.permissions, c.path, ...args],
    cwd: ROOT,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  const text = new TextDecoder();
  // Deno's own notice when --allow-run=chromium names a program not installed here.
  const stderr = text.decode(out.stderr).replace(/^Info Failed to resolve 'chromium'.*\n/m, "");
  return { code: out.code, stdout: text.decode(out.stdout), stderr };
}

/** Stderr holds exactly one line and no stack frame. */
function assertOneLine(stderr: string, what: string): string {
  assert.doesNotMatch(stderr, /^ {4}at /m, `${what}: a stack trace`);
  const lines = stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `${what}: ${JSON.stringify(stderr)}`);
  return lines[0];
}

for (const [name, c] of Object.entries(COMMANDS)) {
  Deno.test(`${name} command: --help prints the usage and exits 0`, async () => {
    for (const help of ["--help", "-h"]) {
      const r = await run(c, [help]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Usage: .*\n\n[^]*\nFlags:\n[^]*--help, -h +print this help\n/);
      assert.equal(r.stderr, "");
    }
  });

  Deno.test(`${name} command: a bad flag or value exits 2 with one line`, async () => {
    for (const [args, message] of c.bad) {
      const r = await run(c, args);
      const what = `${name} ${args.join(" ")}`;
      assert.equal(r.code, 2, `${what}: exit ${r.code}: ${r.stderr}`);
      assert.match(assertOneLine(r.stderr, what), message, what);
      assert.match(r.stderr, /\(--help for usage\)\n$/);
      assert.equal(r.stdout, "");
    }
  });

  if (c.missing) {
    Deno.test(`${name} command: a missing input file exits 1 with one line`, async () => {
      const r = await run(c, c.missing!);
      assert.equal(r.code, 1, r.stderr);
      const line = assertOneLine(r.stderr, name);
      assert.match(line, new RegExp(`^${name}: No such file .*no-such-file\\.json`));
    });
  }
}

Deno.test("memviz command: a crafted file is one line and exit 1, never a page or a hang", async () => {
  const c = COMMANDS.memviz;
  const cases: [string, RegExp][] = [
    ["tests/testdata/hostile_heap_id.json", /event 0: heap id must be an integer, got "<img/],
    ["tests/testdata/huge_heap.json", /event 0: heap size must be a positive integer .*1e\+300/],
  ];
  for (const [file, message] of cases) {
    const r = await run(c, [file]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(assertOneLine(r.stderr, file), message);
  }
  const ok = await run(c, ["-"], '[["a", 1, 4096], ["a", 2, 5242880], ["f", 1]]');
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^<!DOCTYPE html>[^]*<svg class="heapmap"/);
});
