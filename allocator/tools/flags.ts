/**
 * The flag parser every command shares, so that all of them behave alike:
 * `--help` (or `-h`) prints the usage and exits 0; an unknown flag, a
 * missing or malformed value, a missing or extra argument exits 2 with one
 * line that names the flag and the value; any other failure (a missing
 * file, a bad trace) exits 1 with one line. Never a stack trace.
 *
 * Flags are written `--name value` or `--name=value`; a value that starts
 * with `--` is taken for the next flag, so `--out --json` says `--out` has
 * no value. A lone `-` is an argument (standard input, by custom). Numbers are read strictly: `--seed abc`, `--steps -5`,
 * `--steps 1e3` are refused.
 *
 * @example
 * ```ts
 * import { integer, parseArgs, toggle } from "./flags.ts";
 * import assert from "node:assert/strict";
 *
 * const command = {
 *   name: "count",
 *   synopsis: "count [flags]",
 *   about: "Counts.",
 *   flags: { steps: integer("steps to take", { min: 1 }), json: toggle("print JSON") },
 * };
 * const parsed = parseArgs(command, ["--steps=3", "--json"]);
 * assert.equal(parsed.help, false);
 * assert.equal(parsed.flags.steps, 3);
 * assert.equal(parsed.flags.json, true);
 * assert.throws(() => parseArgs(command, ["--steps", "-5"]), /--steps needs an integer >= 1/);
 * assert.throws(() => parseArgs(command, ["--steps", "abc"]), /--steps needs an integer, got "abc"/);
 * ```
 *
 * @module
 */

import { parseAllocConf, parseBytes } from "../config.ts";
import { confReason } from "./read_trace.ts";

/**
 * A command line that cannot be read: an unknown flag, a missing or
 * malformed value, a missing or extra argument. Commands exit 2 on it.
 *
 * @example
 * ```ts
 * import { FlagError, integer, parseArgs } from "./flags.ts";
 * import assert from "node:assert/strict";
 *
 * const command = { name: "x", synopsis: "x", about: "", flags: { seed: integer("seed") } };
 * assert.throws(() => parseArgs(command, ["--seed", "abc"]), (e: unknown) => {
 *   assert.ok(e instanceof FlagError);
 *   assert.equal(e.flag, "--seed");
 *   assert.equal(e.value, "abc");
 *   return true;
 * });
 * ```
 */
export class FlagError extends RangeError {
  /** The flag (`"--seed"`) or argument (`"TRACE"`) at fault. */
  readonly flag: string;
  /** The value given, if any. */
  readonly value: string | undefined;

  /**
   * Creates the error.
   *
   * @param message what is wrong, naming the flag and the value
   * @param flag the flag or argument at fault
   * @param value the value given, if any
   */
  constructor(message: string, flag: string, value?: string) {
    super(message);
    this.name = "FlagError";
    this.flag = flag;
    this.value = value;
  }
}

/**
 * How one flag (or positional argument) reads its value. Make them with
 * {@linkcode toggle}, {@linkcode integer}, {@linkcode bytes},
 * {@linkcode choice}, {@linkcode text} or {@linkcode allocConf}.
 */
export interface Flag<T> {
  /** What it does, one line, for `--help`. */
  readonly help: string;
  /** The value's name in `--help` (`"N"`, `"SIZE"`); absent for a switch, which takes none. */
  readonly arg?: string;
  /** What a value must be, for messages: `"an integer >= 1"`. */
  readonly expects: string;
  /**
   * Reads the value's text. Throws a `RangeError` to refuse it; a message,
   * if any, says what was expected in place of `expects`.
   */
  readonly read: (text: string) => T;
  /** May be given several times: the values come as a list, in order. */
  readonly many?: boolean;
}

/** A flag that takes a value. */
export type ValueFlag<T> = Flag<T> & { readonly arg: string };

/** A flag that takes a value and may be repeated. */
export type ManyFlag<T> = ValueFlag<T> & { readonly many: true };

/**
 * What the flags of a spec read to: a switch is a boolean, a repeated flag
 * a list (empty if not given), any other flag its value or undefined.
 */
export type FlagValues<S extends Record<string, Flag<unknown>>> = {
  [K in keyof S]: S[K] extends Flag<infer T> & { many: true } ? T[]
    : S[K] extends ValueFlag<infer T> ? T | undefined
    : boolean;
};

/** A positional argument of a command. */
export interface Positional {
  /** Its name in the usage (`"TRACE"`). */
  readonly name: string;
  /** What it is, for `--help`. */
  readonly help: string;
  /** True when it may be left out. */
  readonly optional?: boolean;
  /** Checks its text (default: any). */
  readonly read?: (text: string) => unknown;
  /** What it must be, for messages (with `read`). */
  readonly expects?: string;
}

/** A command: its name, usage, flags and arguments. */
export interface Command<S extends Record<string, Flag<unknown>>> {
  /** The name messages start with: the task's name (`"trace:gen"`). */
  readonly name: string;
  /** How it is run, without the flags' detail: `"deno task replay TRACE [flags]"`. */
  readonly synopsis: string;
  /** What it does, a paragraph for `--help`. */
  readonly about: string;
  /** The flags by name in camelCase: `highWatermark` is `--high-watermark`. */
  readonly flags: S;
  /** Its positional arguments, in order. */
  readonly positionals?: readonly Positional[];
  /** Name of what may follow a `--`, passed on untouched; absent: `--` is refused. */
  readonly rest?: string;
  /** Text after the flags in `--help` (exit status, examples). */
  readonly notes?: string;
}

/** A command line {@linkcode parseArgs} read, other than `--help`. */
export interface ParsedArgs<S extends Record<string, Flag<unknown>>> {
  /** False: this is not a request for help. */
  help: false;
  /** Each flag's value. */
  flags: FlagValues<S>;
  /** The positional arguments, in order (as many as the command requires, at least). */
  positionals: string[];
  /** The arguments after `--`. */
  rest: string[];
}

/** What {@linkcode parseArgs} read: a request for help, or flags and arguments. */
export type Parsed<S extends Record<string, Flag<unknown>>> = { help: true } | ParsedArgs<S>;

/**
 * A switch: `--json`. It takes no value.
 *
 * @param help what it does
 */
export function toggle(help: string): Flag<boolean> {
  return { help, expects: "no value", read: () => true };
}

/**
 * An integer flag, read strictly: digits with an optional sign, within
 * `min` and `max` (default: 0 and `Number.MAX_SAFE_INTEGER`).
 *
 * @param help what it does
 * @param range the smallest and largest values allowed, the value's name in `--help`
 */
export function integer(
  help: string,
  range: { min?: number; max?: number; arg?: string } = {},
): ValueFlag<number> {
  const min = range.min ?? 0;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const expects = max === Number.MAX_SAFE_INTEGER
    ? `an integer >= ${min}`
    : `an integer from ${min} to ${max}`;
  return {
    help,
    arg: range.arg ?? "N",
    expects,
    read(text) {
      const n = /^[+-]?\d{1,16}$/.test(text) ? Number(text) : NaN;
      if (!Number.isSafeInteger(n)) throw new RangeError("an integer");
      if (n < min || n > max) throw new RangeError();
      return n;
    },
  };
}

/**
 * A size in bytes: `512MiB`, `2 GiB`, `1000000`; at most 2^53 - 1 bytes.
 *
 * @param help what it does
 */
export function bytes(help: string): ValueFlag<number> {
  return {
    help,
    arg: "SIZE",
    expects: "a size such as 512MiB",
    read(text) {
      let n: number;
      try {
        n = parseBytes(text, "size");
      } catch (error) {
        // The expectation says it better than the allocator's message.
        if (error instanceof RangeError) {
          // parseBytes says why; the flag's message names what it needs.
          if (/too large/.test(error.message)) {
            throw new RangeError("a size of at most 2^53 - 1 bytes");
          }
          if (/whole number/.test(error.message)) throw new RangeError("a whole number of bytes");
          throw new RangeError();
        }
        throw error;
      }
      if (!Number.isSafeInteger(n)) throw new RangeError("a size of at most 2^53 - 1 bytes");
      return n;
    },
  };
}

/**
 * `--max-file-size`: raises the cap on the bytes a trace or snapshot file may
 * hold once gunzipped (and what it may build with them), for the commands
 * that read one; at least 1 byte.
 *
 * @example
 * ```ts
 * import { maxFileSize, parseArgs } from "./flags.ts";
 * import assert from "node:assert/strict";
 *
 * const command = { name: "x", synopsis: "x", about: "", flags: { maxFileSize: maxFileSize() } };
 * assert.equal(parseArgs(command, ["--max-file-size", "1GiB"]).help, false);
 * assert.throws(() => parseArgs(command, ["--max-file-size", "0"]), /--max-file-size needs a size/);
 * ```
 */
export function maxFileSize(): ValueFlag<number> {
  const size = bytes(
    "most bytes the file may hold, gunzipped (default 64MiB): raise it for larger snapshots",
  );
  return {
    ...size,
    expects: "a size of at least 1 byte such as 256MiB",
    read(text) {
      const n = size.read(text);
      if (n < 1) throw new RangeError();
      return n;
    },
  };
}

/**
 * One of a few words.
 *
 * @param help what it does
 * @param words the words allowed
 */
export function choice<const W extends string>(
  help: string,
  words: readonly W[],
): ValueFlag<W> {
  return {
    help,
    arg: words.join("|"),
    expects: `one of ${words.join(", ")}`,
    read(text) {
      if (!(words as readonly string[]).includes(text)) throw new RangeError();
      return text as W;
    },
  };
}

/**
 * Any text (a file name, a title); `nonEmpty` refuses `""`.
 *
 * @param help what it does
 * @param options the value's name in `--help`, whether it may be repeated or empty
 */
export function text<const M extends boolean = false>(
  help: string,
  options: { arg?: string; many?: M; nonEmpty?: boolean } = {},
): ValueFlag<string> & { many: M } {
  const nonEmpty = options.nonEmpty ?? false;
  return {
    help,
    arg: options.arg ?? "TEXT",
    expects: nonEmpty ? "a non-empty value" : "a value",
    many: (options.many ?? false) as M,
    read(value) {
      if (nonEmpty && value === "") throw new RangeError();
      return value;
    },
  };
}

/**
 * An alloc conf such as `caching:0,large_heap:64MiB`, checked as the
 * allocator reads it; repeated, each is one more policy.
 *
 * @param help what it does
 */
export function allocConf(help: string): ManyFlag<string> {
  return {
    help,
    arg: "CONF",
    expects: 'an alloc conf such as "caching:0"',
    many: true,
    read(value) {
      try {
        parseAllocConf(value);
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        throw new RangeError(`a valid alloc conf (${confReason(error)})`);
      }
      return value;
    },
  };
}

/** `highWatermark` → `--high-watermark`. */
export function flagName(key: string): string {
  return "--" + key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
}

/** At most 60 characters of a value, quoted, on one line. */
export function quote(value: string): string {
  const cut = value.length > 60 ? value.slice(0, 57) + "…" : value;
  return JSON.stringify(cut);
}

/**
 * Reads a command line against a command's flags and arguments.
 *
 * @throws {FlagError} an unknown flag, a missing or malformed value, a flag
 *   given twice, a missing or extra argument
 */
export function parseArgs<S extends Record<string, Flag<unknown>>>(
  command: Command<S>,
  args: readonly string[],
): Parsed<S> {
  const end = args.indexOf("--");
  const head = end >= 0 ? args.slice(0, end) : args;
  if (head.includes("--help") || head.includes("-h")) return { help: true };
  const byName = new Map<string, [string, Flag<unknown>]>();
  for (const key of Object.keys(command.flags)) {
    byName.set(flagName(key), [key, command.flags[key]]);
  }
  const values = new Map<string, unknown>();
  const positionals: string[] = [];
  for (let i = 0; i < head.length; i++) {
    const arg = head[i];
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const entry = byName.get(name);
    if (!entry) throw new FlagError(`Unknown flag ${quote(arg)}`, name, inline);
    const [key, flag] = entry;
    if (values.has(key) && !flag.many) {
      throw new FlagError(`Flag ${name} is given twice`, name, inline);
    }
    let value: string | undefined;
    if (flag.arg === undefined) {
      if (inline !== undefined) {
        throw new FlagError(`Flag ${name} takes no value, got ${quote(inline)}`, name, inline);
      }
      value = "";
    } else {
      value = inline ?? head[i + 1];
      if (value === undefined || (inline === undefined && value.startsWith("--"))) {
        throw new FlagError(`Flag ${name} needs a value: ${flag.expects}`, name);
      }
      if (inline === undefined) i++;
    }
    const v = readValue(flag.read, value, `Flag ${name} needs`, flag.expects, name);
    if (flag.many) values.set(key, [...(values.get(key) as unknown[] ?? []), v]);
    else values.set(key, v);
  }
  const expected = command.positionals ?? [];
  if (positionals.length > expected.length) {
    const extra = positionals[expected.length];
    throw new FlagError(`Unexpected argument ${quote(extra)}`, extra, extra);
  }
  for (const [i, p] of expected.entries()) {
    const value = positionals[i];
    if (value === undefined) {
      if (p.optional) continue;
      throw new FlagError(`Missing ${p.name}: ${p.help}`, p.name);
    }
    if (p.read) readValue(p.read, value, `${p.name} must be`, p.expects ?? "valid", p.name);
  }
  if (end >= 0 && command.rest === undefined) {
    throw new FlagError(`Unexpected argument "--"`, "--", "--");
  }
  const flags: Record<string, unknown> = {};
  for (const [key, flag] of Object.entries(command.flags)) {
    flags[key] = values.get(key) ?? (flag.many ? [] : flag.arg === undefined ? false : undefined);
  }
  return {
    help: false,
    flags: flags as FlagValues<S>,
    positionals,
    rest: end >= 0 ? args.slice(end + 1) : [],
  };
}

function readValue<T>(
  read: (text: string) => T,
  value: string,
  needs: string,
  expects: string,
  flag: string,
): T {
  try {
    return read(value);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new FlagError(`${needs} ${error.message || expects}, got ${quote(value)}`, flag, value);
  }
}

/**
 * The `--help` text of a command: synopsis, what it does, its arguments and
 * flags, and its notes.
 */
export function usage<S extends Record<string, Flag<unknown>>>(command: Command<S>): string {
  const rows: [string, string][] = [];
  for (const p of command.positionals ?? []) rows.push([p.name, p.help]);
  if (command.rest !== undefined) rows.push(["-- ...", command.rest]);
  const flagRows: [string, string][] = Object.entries(command.flags).map(([key, flag]) => [
    flagName(key) + (flag.arg === undefined ? "" : ` ${flag.arg}`) +
    (flag.many ? " (repeatable)" : ""),
    flag.help,
  ]);
  flagRows.push(["--help, -h", "print this help"]);
  const width = Math.max(...[...rows, ...flagRows].map(([k]) => k.length)) + 2;
  const list = (r: [string, string][]) => r.map(([k, h]) => `  ${k.padEnd(width)}${h}`);
  return [
    `Usage: ${command.synopsis}`,
    "",
    command.about,
    ...(rows.length > 0 ? ["", "Arguments:", ...list(rows)] : []),
    "",
    "Flags:",
    ...list(flagRows),
    ...(command.notes ? ["", command.notes] : []),
  ].join("\n");
}

/**
 * A message on one line: line breaks and other control characters written
 * as escapes, so a message that quotes input cannot spill over.
 */
export function oneLine(message: string): string {
  return message.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f\u2028\u2029]/g,
    (c) => c === "\n" ? " " : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Parses the command line and runs `main` with what it read, turning every
 * failure into one line on stderr and an exit status: 0 after `--help`
 * (printed on stdout), 2 for a {@linkcode FlagError}, 1 for any other error
 * (the typed ones show their message, anything else its name too).
 *
 * @returns the exit status: `main`'s (0 if it returns nothing), or the failure's
 *
 * @example
 * ```ts
 * import { integer, runCommand } from "./flags.ts";
 * import assert from "node:assert/strict";
 *
 * const command = { name: "twice", synopsis: "twice --n N", about: "", flags: { n: integer("n") } };
 * let out = 0;
 * assert.equal(await runCommand(command, ["--n", "21"], ({ flags }) => { out = 2 * flags.n!; }), 0);
 * assert.equal(out, 42);
 * ```
 */
export async function runCommand<S extends Record<string, Flag<unknown>>>(
  command: Command<S>,
  args: readonly string[],
  main: (parsed: ParsedArgs<S>) => Promise<number | void> | number | void,
): Promise<number> {
  try {
    const parsed = parseArgs(command, args);
    if (parsed.help) {
      console.log(usage(command));
      return 0;
    }
    return (await main(parsed)) ?? 0;
  } catch (error) {
    const [line, status] = failure(command.name, error);
    console.error(line);
    return status;
  }
}

/**
 * For a command written as a script: parses the command line, or prints the
 * usage (exit 0) or the error (exit 2) and exits.
 */
export function parseOrExit<S extends Record<string, Flag<unknown>>>(
  command: Command<S>,
  args: readonly string[],
): ParsedArgs<S> {
  let parsed: Parsed<S>;
  try {
    parsed = parseArgs(command, args);
  } catch (error) {
    const [line, status] = failure(command.name, error);
    console.error(line);
    Deno.exit(status);
  }
  if (parsed.help) {
    console.log(usage(command));
    Deno.exit(0);
  }
  return parsed;
}

/** The line a command prints for an error, and its exit status. */
export function failure(name: string, error: unknown): [string, number] {
  if (error instanceof FlagError) {
    return [oneLine(`${name}: ${error.message} (--help for usage)`), 2];
  }
  if (!(error instanceof Error)) return [oneLine(`${name}: ${String(error)}`), 1];
  // Our errors say what went wrong in their message; anything else is named too.
  const ours = error instanceof RangeError ||
    Object.values(Deno.errors).some((E) => error instanceof E) ||
    /^(TraceError|SnapshotError|AllocatorError|OutOfMemoryError)$/.test(error.name);
  return [oneLine(`${name}: ${ours ? "" : `${error.name}: `}${error.message}`), 1];
}
