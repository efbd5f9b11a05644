// The shared flag parser: values read strictly, every bad command line a
// FlagError naming the flag and the value, usage generated from the flags,
// and the exit status and one line runCommand() turns each outcome into.
import assert from "node:assert/strict";
import {
  allocConf,
  bytes,
  choice,
  type Command,
  failure,
  type Flag,
  FlagError,
  flagName,
  integer,
  oneLine,
  parseArgs,
  runCommand,
  text,
  toggle,
  usage,
} from "../allocator/tools/flags.ts";
import { TraceError } from "../allocator/tools/read_trace.ts";

const COMMAND = {
  name: "demo",
  synopsis: "demo FILE [flags]",
  about: "A command to test the parser with.",
  flags: {
    seed: integer("seed", { min: 0 }),
    workers: integer("Workers", { min: 1, max: 64 }),
    budget: bytes("memory budget"),
    at: choice("which peak", ["allocated", "reserved"]),
    conf: allocConf("policy"),
    out: text("output file", { arg: "FILE", nonEmpty: true }),
    json: toggle("print JSON"),
    highWatermark: bytes("hard limit"),
  },
  positionals: [{ name: "FILE", help: "the input" }, { name: "MORE", help: "x", optional: true }],
} satisfies Command<Record<string, Flag<unknown>>>;

/** The FlagError parseArgs throws for `args`. */
function flagError(args: string[], command: Command<Record<string, Flag<unknown>>> = COMMAND) {
  try {
    parseArgs(command, args);
  } catch (error) {
    assert.ok(error instanceof FlagError, String(error));
    return error;
  }
  assert.fail(`no error for ${JSON.stringify(args)}`);
}

Deno.test("parseArgs() reads every kind of flag, separate or with =", () => {
  const parsed = parseArgs(COMMAND, [
    "in.json",
    "--seed",
    "7",
    "--workers=64",
    "--budget",
    "512MiB",
    "--at=reserved",
    "--conf",
    "",
    "--conf=caching:0",
    "--json",
    "--high-watermark",
    "2 GiB",
    "--out",
    "-",
  ]);
  assert.ok(!parsed.help);
  assert.deepEqual(parsed.flags, {
    seed: 7,
    workers: 64,
    budget: 512 * 2 ** 20,
    at: "reserved",
    conf: ["", "caching:0"],
    out: "-",
    json: true,
    highWatermark: 2 * 2 ** 30,
  });
  assert.deepEqual(parsed.positionals, ["in.json"]);
  assert.deepEqual(parsed.rest, []);
});

Deno.test("parseArgs() leaves unset flags undefined, switches false, lists empty", () => {
  const parsed = parseArgs(COMMAND, ["-"]);
  assert.ok(!parsed.help);
  assert.deepEqual(parsed.flags, {
    seed: undefined,
    workers: undefined,
    budget: undefined,
    at: undefined,
    conf: [],
    out: undefined,
    json: false,
    highWatermark: undefined,
  });
  assert.deepEqual(parsed.positionals, ["-"], "a lone - is an argument (stdin)");
});

Deno.test("parseArgs() reads --help or -h anywhere before --, whatever else is wrong", () => {
  assert.deepEqual(parseArgs(COMMAND, ["--help"]), { help: true });
  assert.deepEqual(parseArgs(COMMAND, ["--bogus", "-h"]), { help: true });
  assert.deepEqual(parseArgs(COMMAND, ["--seed", "abc", "--help"]), { help: true });
  assert.throws(() => parseArgs(COMMAND, ["x", "--", "--help"]), /Unexpected argument "--"/);
});

Deno.test("parseArgs() reads integers strictly", () => {
  for (const bad of ["abc", "-5", "1e3", "1.0", "0x10", " 1", "1 ", "", "99999999999999999", "+"]) {
    const e = flagError(["f", "--seed", bad]);
    assert.equal(e.flag, "--seed");
    assert.equal(e.value, bad);
    const why = bad === "-5" ? "an integer >= 0" : "an integer";
    assert.equal(e.message, `Flag --seed needs ${why}, got ${JSON.stringify(bad)}`);
  }
  for (const bad of ["0", "65", "-1"]) {
    assert.match(flagError(["f", "--workers", bad]).message, /needs an integer from 1 to 64/);
  }
  for (const [good, n] of [["0", 0], ["+3", 3], ["007", 7], ["9007199254740991", 2 ** 53 - 1]]) {
    const parsed = parseArgs(COMMAND, ["f", "--seed", good as string]);
    assert.ok(!parsed.help);
    assert.equal(parsed.flags.seed, n);
  }
});

Deno.test("parseArgs() reads sizes and refuses ones past 2^53 bytes", () => {
  const e = flagError(["f", "--budget", "99999999999999999999999GiB"]);
  assert.equal(
    e.message,
    'Flag --budget needs a size of at most 2^53 - 1 bytes, got "99999999999999999999999GiB"',
  );
  assert.match(flagError(["f", "--budget", "lots"]).message, /needs a size such as 512MiB, got/);
  assert.match(flagError(["f", "--budget", "-1"]).message, /got "-1"/);
});

Deno.test("parseArgs() checks an alloc conf as the allocator reads it", () => {
  const e = flagError(["f", "--conf", "caching:maybe"]);
  assert.equal(e.flag, "--conf");
  assert.match(
    e.message,
    /^Flag --conf needs a valid alloc conf \(caching must be 0, 1, true or false, got maybe\), got "caching:maybe"$/,
  );
  assert.match(flagError(["f", "--conf", "bogus:1"]).message, /cannot read "bogus:1"/);
  const long = flagError(["f", "--conf", "x".repeat(10_000) + ":1"]).message;
  assert.ok(long.length < 400, `a short message: ${long.length} characters`);
});

Deno.test("parseArgs() names the flag of every bad command line", () => {
  const cases: [string[], string, string | undefined, RegExp][] = [
    [["f", "--bogus"], "--bogus", undefined, /^Unknown flag "--bogus"$/],
    [["f", "--bogus=1"], "--bogus", "1", /^Unknown flag "--bogus=1"$/],
    [["f", "--constructor"], "--constructor", undefined, /^Unknown flag/],
    [["f", "--to-string"], "--to-string", undefined, /^Unknown flag/],
    [["f", "--__proto__"], "--__proto__", undefined, /^Unknown flag/],
    [["f", "--seed"], "--seed", undefined, /^Flag --seed needs a value: an integer >= 0$/],
    [["f", "--seed", "--json"], "--seed", undefined, /^Flag --seed needs a value/],
    [["f", "--json=1"], "--json", "1", /^Flag --json takes no value, got "1"$/],
    [["f", "--seed", "1", "--seed", "2"], "--seed", undefined, /given twice/],
    [["f", "--at", "peak"], "--at", "peak", /needs one of allocated, reserved, got "peak"/],
    [["f", "--out="], "--out", "", /needs a non-empty value, got ""/],
    [[], "FILE", undefined, /^Missing FILE: the input$/],
    [["a", "b", "c"], "c", "c", /^Unexpected argument "c"$/],
    [["f", "-x"], "-x", undefined, /^Unknown flag "-x"$/],
    [["f", "-5"], "-5", undefined, /^Unknown flag "-5"$/],
  ];
  for (const [args, flag, value, message] of cases) {
    const e = flagError(args);
    assert.equal(e.flag, flag, args.join(" "));
    assert.equal(e.value, value, args.join(" "));
    assert.match(e.message, message);
    assert.ok(e instanceof RangeError, "a FlagError is a RangeError");
  }
});

Deno.test("parseArgs() passes what follows -- on only where the command takes it", () => {
  const command = { ...COMMAND, rest: "flags for the child" };
  const parsed = parseArgs(command, ["f", "--json", "--", "--bogus", "x"]);
  assert.ok(!parsed.help);
  assert.deepEqual(parsed.rest, ["--bogus", "x"]);
  assert.equal(parsed.flags.json, true);
  assert.match(flagError(["f", "--", "x"]).message, /Unexpected argument "--"/);
});

Deno.test("parseArgs() checks positional arguments with their reader", () => {
  const command = {
    name: "gen",
    synopsis: "gen KIND",
    about: "",
    flags: {},
    positionals: [{ name: "KIND", ...choice("what", ["a", "b"]) }],
  };
  assert.ok(!parseArgs(command, ["a"]).help);
  const e = flagError(["c"], command);
  assert.equal(e.flag, "KIND");
  assert.equal(e.message, 'KIND must be one of a, b, got "c"');
});

Deno.test("parseArgs() lets a reader's own errors through", () => {
  const boom: Flag<number> & { arg: string } = {
    help: "",
    arg: "X",
    expects: "x",
    read: () => {
      throw new SyntaxError("not a RangeError");
    },
  };
  const command = { name: "x", synopsis: "x", about: "", flags: { boom } };
  assert.throws(() => parseArgs(command, ["--boom", "1"]), SyntaxError);
});

Deno.test("quote() and oneLine() keep a message on one short line", () => {
  assert.equal(quote_("a\nb"), '"a\\nb"');
  assert.equal(quote_("x".repeat(100)).length, 60);
  assert.equal(oneLine("a\nb\u2028c\u0000"), "a b\\u2028c\\u0000");
  const e = flagError(["f", "--at", "x\ny"]);
  assert.ok(!e.message.includes("\n"));
});

function quote_(s: string): string {
  return flagError(["f", "--at", s]).message.replace(/^.*got /, "");
}

Deno.test("flagName() writes camelCase keys as kebab-case flags", () => {
  assert.equal(flagName("highWatermark"), "--high-watermark");
  assert.equal(flagName("noCheck"), "--no-check");
  assert.equal(flagName("seed"), "--seed");
});

Deno.test("usage() lists the arguments and every flag with its value's name", () => {
  const text = usage({ ...COMMAND, notes: "Exit status: 0." });
  assert.match(text, /^Usage: demo FILE \[flags\]\n\nA command to test the parser with\./);
  assert.match(text, /\nArguments:\n {2}FILE +the input\n/);
  for (
    const line of [
      /--seed N +seed/,
      /--workers N +Workers/,
      /--budget SIZE +memory budget/,
      /--at allocated\|reserved +which peak/,
      /--conf CONF \(repeatable\) +policy/,
      /--out FILE +output file/,
      /--json +print JSON/,
      /--high-watermark SIZE +hard limit/,
      /--help, -h +print this help/,
    ]
  ) assert.match(text, line);
  assert.match(text, /\n\nExit status: 0\.$/);
});

/** Runs runCommand() with console output captured. */
async function captured(args: string[], main: () => number | void | Promise<number | void>) {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (s: string) => out.push(s);
  console.error = (s: string) => err.push(s);
  try {
    const status = await runCommand(COMMAND, args, main);
    return { status, out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("runCommand() turns each outcome into an exit status and one line", async () => {
  const help = await captured(["--help"], () => assert.fail("main ran"));
  assert.equal(help.status, 0);
  assert.match(help.out[0], /^Usage: demo/);
  const bad = await captured(["f", "--seed", "abc"], () => assert.fail("main ran"));
  assert.equal(bad.status, 2);
  assert.deepEqual(bad.err, [
    'demo: Flag --seed needs an integer, got "abc" (--help for usage)',
  ]);
  assert.equal((await captured(["f"], () => 3)).status, 3);
  assert.equal((await captured(["f"], () => {})).status, 0);
  const missing = await captured(["f"], () => Deno.readTextFile("/no/such/file.json") as never);
  assert.equal(missing.status, 1);
  assert.equal(missing.err.length, 1);
  assert.match(missing.err[0], /^demo: No such file or directory .*\/no\/such\/file\.json/);
  const trace = await captured(["f"], () => {
    throw new TraceError("bad\nevent", 3);
  });
  assert.deepEqual([trace.status, trace.err], [1, ["demo: Invalid trace: event 3: bad event"]]);
  const internal = await captured(["f"], () => {
    throw new TypeError("x is not a function");
  });
  assert.deepEqual(internal.err, ["demo: TypeError: x is not a function"]);
});

Deno.test("failure() names errors that are not ours", () => {
  assert.deepEqual(failure("c", new RangeError("Invalid x")), ["c: Invalid x", 1]);
  assert.deepEqual(failure("c", new Error("boom")), ["c: Error: boom", 1]);
  assert.deepEqual(failure("c", "a string"), ["c: a string", 1]);
  assert.deepEqual(failure("c", new FlagError("Unknown flag", "--x")), [
    "c: Unknown flag (--help for usage)",
    2,
  ]);
});
