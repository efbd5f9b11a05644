// Fuzzers of everything the tools read from outside: readTrace, replay()
// (through readTrace), memvizHtml (traces and snapshots), the flags of every
// command, and whole files as the commands read them (memo references, big
// integers, compressed size). Each takes seeded mutations of valid inputs until
// it has seen at least 10^4 of them refused (the file fuzzers: 150 files each),
// and checks that every failure is one of our typed errors with our message
// (never an internal TypeError, a stack overflow or anything else), that every
// page it draws is inert and finite, and that no input takes long.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator, type Usage } from "../mod.ts";
import { readTrace, TraceError } from "../allocator/tools/read_trace.ts";
import { replay } from "../allocator/tools/replay.ts";
import { memvizHtml } from "../allocator/tools/memviz.ts";
import { PAGE_SCRIPT } from "../allocator/tools/memviz_script.ts";
import {
  type Command,
  failure,
  type Flag,
  FlagError,
  parseArgs,
  quote,
} from "../allocator/tools/flags.ts";
import { REPLAY_COMMAND } from "../allocator/tools/replay_command.ts";
import { MEMVIZ_COMMAND } from "../allocator/tools/memviz_command.ts";
import { MEMVIZ_PNG_COMMAND } from "../allocator/tools/memviz_png_command.ts";
import { FRAGMENTATION_COMMAND } from "../bench/commands/fragmentation.ts";
import { ADVERSARY_COMMAND } from "../bench/commands/adversary.ts";
import { generate, TRACE_GEN_COMMAND } from "../bench/commands/trace_gen.ts";
import { parseStressFlags, STRESS_COMMAND } from "../bench/commands/stress.ts";
import { STRESS_REPEAT_COMMAND } from "../bench/commands/stress_repeat.ts";
import { KERNELS_GPU_COMMAND } from "../bench/commands/_kernels_gpu_flags.ts";
import type { Snapshot } from "../allocator/snapshot.ts";
import { TIME_ITEM, type Trace } from "../allocator/trace.ts";
import { rng } from "./_util.ts";
import { parseTraceBytes } from "../allocator/tools/load_trace.ts";
import { writePickle } from "./_pickle.ts";
import { craftGzip, gzip, type Piece } from "./_hostile_files.ts";

/** Refusals each fuzzer must see at least. */
const REFUSALS = 10_000;
/** Inputs each fuzzer tries at most (mutations sometimes leave an input valid). */
const MAX_TRIES = 30_000;
/** No one input may take longer: a bound against hangs, not a speed target. */
const MAX_INPUT_MS = 2_000;
/** A whole fuzzer must end within this: a bound against hangs, not a speed target. */
const MAX_FUZZER_MS = 60_000;

/** Our messages start with one of these; anything else is not ours. */
const OUR_MESSAGE =
  /^(Invalid trace: |Invalid snapshot: |Invalid |Cannot |Flag |Unknown flag |Unexpected argument |Missing |KIND |RUNS )/;

/** True for an error we throw on purpose, with our message. */
function isOurs(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (
    /Maximum call stack|is not a function|Cannot read propert|undefined or null/.test(error.message)
  ) {
    return false;
  }
  if (error.message.length > 2000) return false; // messages quote input briefly
  const typed = error instanceof TraceError || error instanceof RangeError ||
    error instanceof TypeError;
  return typed && OUR_MESSAGE.test(error.message);
}

interface Tally {
  tried: number;
  refused: number;
  accepted: number;
  other: number;
  examples: string[];
  slowestMs: number;
}

/**
 * Feeds `make()`'s inputs to `run` until REFUSALS were refused (or MAX_TRIES
 * were tried); `check` looks at what an accepted input gave.
 */
function fuzz<T>(
  name: string,
  make: () => unknown,
  run: (input: unknown) => T,
  check: (result: T) => string | null = () => null,
): Tally {
  const tally: Tally = { tried: 0, refused: 0, accepted: 0, other: 0, examples: [], slowestMs: 0 };
  const t0 = performance.now();
  while (tally.refused < REFUSALS && tally.tried < MAX_TRIES) {
    const input = make();
    tally.tried++;
    const start = performance.now();
    let problem: string | null = null;
    try {
      problem = check(run(input));
      if (problem === null) tally.accepted++;
    } catch (error) {
      if (isOurs(error)) tally.refused++;
      else {problem = `${(error as Error)?.name}: ${
          String((error as Error)?.message).slice(0, 200)
        }`;}
    }
    tally.slowestMs = Math.max(tally.slowestMs, performance.now() - start);
    if (problem !== null) {
      tally.other++;
      if (tally.examples.length < 5) tally.examples.push(`${problem} <- ${preview(input)}`);
    }
  }
  const ms = performance.now() - t0;
  console.log(
    `${name}: ${tally.tried} inputs, ${tally.refused} typed errors, ${tally.accepted} accepted, ` +
      `${tally.other} other; ${ms.toFixed(0)} ms, slowest input ${tally.slowestMs.toFixed(1)} ms`,
  );
  assert.equal(tally.other, 0, `${name}: not typed errors:\n${tally.examples.join("\n")}`);
  assert.ok(tally.refused >= REFUSALS, `${name}: only ${tally.refused} inputs refused`);
  assert.ok(tally.slowestMs < MAX_INPUT_MS, `${name}: an input took ${tally.slowestMs} ms`);
  assert.ok(ms < MAX_FUZZER_MS, `${name}: ${ms} ms`);
  return tally;
}

function preview(input: unknown): string {
  try {
    const s = typeof input === "string" ? input : JSON.stringify(input);
    return (s ?? String(input)).slice(0, 160);
  } catch {
    return String(input).slice(0, 160);
  }
}

// ---- hostile values and mutations ----

/** Nested 10^4 deep, made once: deep enough for any recursion to show. */
const DEEP = JSON.parse("[".repeat(10_000) + "]".repeat(10_000));
const DEEP_OBJECT = JSON.parse('{"a":'.repeat(10_000) + "1" + "}".repeat(10_000));

const HOSTILE: readonly unknown[] = [
  0,
  -1,
  1,
  1.5,
  -0,
  3,
  64,
  2 ** 31,
  2 ** 32,
  2 ** 52,
  2 ** 53,
  2 ** 80,
  1e300,
  -1e300,
  Infinity,
  -Infinity,
  NaN,
  "",
  "a",
  "f",
  "s",
  "heap",
  "submit",
  "small",
  "large",
  "scalar",
  "storage",
  "uniform",
  "readback",
  "1",
  "64",
  "512MiB",
  "99999999999999999999999GiB",
  "caching:0",
  "caching:maybe",
  "bogus:1",
  "constructor",
  "__proto__",
  "toString",
  "valueOf",
  "hasOwnProperty",
  '<img src=x onerror="alert(1)">',
  "</title><script>alert(1)</script>",
  "x".repeat(10_000),
  null,
  true,
  false,
  [],
  {},
  [1, 2],
  ["a", 1, 64],
  { a: 1 },
  { format: "gpuheap-trace" },
  DEEP,
  DEEP_OBJECT,
];

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)];
}

/** A number near `v`: off by one, doubled, halved, negated, or far out. */
function tweak(random: () => number, v: number): number {
  const moves = [v + 1, v - 1, v * 2, Math.floor(v / 2), -v, v * 1024, 0, v + 0.5, 2 ** 53 - v];
  return pick(random, moves);
}

/** A random walk into a value: the container and key of one item inside it. */
function somewhere(
  random: () => number,
  root: unknown,
  depth: number,
): [Record<string | number, unknown>, string | number] | null {
  let at: unknown = root;
  let found: [Record<string | number, unknown>, string | number] | null = null;
  for (let d = 0; d < depth; d++) {
    if (at === null || typeof at !== "object") break;
    const keys: (string | number)[] = Array.isArray(at) ? at.map((_, i) => i) : Object.keys(at);
    if (keys.length === 0) break;
    const key = pick(random, keys);
    found = [at as Record<string | number, unknown>, key];
    at = (at as Record<string | number, unknown>)[key];
  }
  return found;
}

/** One to three edits of a copy of `value`: items replaced, nudged, removed, duplicated or moved. */
function mutate(random: () => number, value: unknown, depth: number): unknown {
  const copy = structuredClone(value);
  const edits = 1 + Math.floor(random() * 3);
  for (let k = 0; k < edits; k++) {
    const spot = somewhere(random, copy, 1 + Math.floor(random() * depth));
    if (!spot) continue;
    const [container, key] = spot;
    const old = container[key];
    const r = random();
    if (r < 0.45) container[key] = pick(random, HOSTILE);
    else if (r < 0.7 && typeof old === "number") container[key] = tweak(random, old);
    else if (r < 0.8) {
      if (Array.isArray(container)) container.splice(key as number, 1);
      else delete container[key];
    } else if (r < 0.9 && Array.isArray(container)) {
      // A shallow copy: `old` may be one of the deeply nested values.
      const copy = Array.isArray(old)
        ? [...old]
        : old && typeof old === "object"
        ? { ...old }
        : old;
      container.splice(Math.floor(random() * container.length), 0, copy);
    } else if (Array.isArray(container) && container.length > 1) {
      const other = Math.floor(random() * container.length);
      [container[key as number], container[other]] = [container[other], old];
    } else {
      container[key] = pick(random, HOSTILE);
    }
  }
  return copy;
}

/** JSON text with a few characters cut, added or changed. */
function mangle(random: () => number, value: unknown): string {
  let text = JSON.stringify(value);
  const edits = 1 + Math.floor(random() * 3);
  for (let k = 0; k < edits; k++) {
    const at = Math.floor(random() * (text.length + 1));
    const c = pick(random, ['"', "[", "]", "{", "}", ",", ":", "-", "9", "e", "\\", "x", " "]);
    const r = random();
    text = r < 0.3
      ? text.slice(0, at)
      : r < 0.65
      ? text.slice(0, at) + c + text.slice(at)
      : text.slice(0, at) + c + text.slice(at + 1);
  }
  return text;
}

// ---- corpora ----

/** A short seeded recording: every event kind, labels, pending frees, OOMs. */
function recording(seed: number, options: { highWatermark?: string } = {}): Trace {
  const random = rng(seed);
  const heap = new HeapAllocator(new FakeDevice(), { ...options, debug: false });
  heap.startRecording();
  const live: ReturnType<HeapAllocator["alloc"]>[] = [];
  const usages: Usage[] = ["storage", "storage", "uniform", "readback", "upload"];
  for (let i = 0; i < 24; i++) {
    // Iteration marks: runs of one key that follow its plan or depart from it.
    if (i % 8 === 1) heap.beginIteration(`key ${i % 16}`);
    if (i % 8 === 7) heap.endIteration();
    const r = random();
    if (r < 0.5) {
      const usage = pick(random, usages);
      const size = Math.max(1, Math.floor(2 ** (random() * (usage === "uniform" ? 14 : 26))));
      try {
        const b = heap.alloc(size, { usage, label: random() < 0.3 ? `label ${i}` : undefined });
        if (random() < 0.5) void b.buffer;
        live.push(b);
      } catch { /* an OOM is an event too */ }
    } else if (r < 0.6) live.push(heap.scalar(i));
    else if (r < 0.85 && live.length > 0) {
      heap.free(live.splice(Math.floor(random() * live.length), 1)[0]);
    } else if (r < 0.95) heap.submit();
    else if (r < 0.97) heap.resetPeakStats();
    else heap.emptyCache();
  }
  const trace = heap.stopRecording();
  heap.destroy();
  // Times set to the event's index, so a seed gives the same inputs on every run.
  for (const [i, e] of trace.events.entries()) (e as unknown[])[TIME_ITEM[e[0]]] = i;
  return { ...trace, durationMs: trace.events.length };
}

function snapshotOf(seed: number): Snapshot {
  const random = rng(seed);
  const heap = new HeapAllocator(new FakeDevice(), { allocConf: "max_reserved_ratio:0" });
  const live = [];
  // A block wide enough for its label to be drawn, the label hostile.
  heap.alloc(3 << 20, { label: '<img src=x onerror="alert(1)">' });
  for (let i = 0; i < 12; i++) {
    const b = heap.alloc(Math.floor(2 ** (8 + random() * 18)), { label: `b${i}` });
    if (random() < 0.4) void b.buffer;
    live.push(b);
  }
  for (const b of live.slice(0, 6)) heap.free(b);
  heap.scalar(1);
  heap.alloc(64, { usage: "readback" });
  const snapshot = heap.snapshot();
  heap.destroy();
  for (const h of snapshot.heaps) h.ageMs = h.id; // the same on every run
  return snapshot;
}

const TRACES: unknown[] = [
  recording(1),
  recording(2),
  recording(3, { highWatermark: "24MiB" }),
  [["a", 1, 4096], ["a", 2, 5 << 20], ["f", 1], ["a", 3, 64, "uniform"], ["f", 2, true], [
    "submit",
  ], ["s", 4]],
  {
    ...generate("random", { steps: 1 }),
    events: generate("random", { steps: 1 }).events.slice(0, 40),
  },
];
const SNAPSHOTS: unknown[] = [snapshotOf(1), snapshotOf(2)];

/** A malformed trace: mutated items, or mangled JSON text. */
function traceInput(random: () => number): unknown {
  const base = pick(random, TRACES);
  return random() < 0.15 ? mangle(random, base) : mutate(random, base, 4);
}

function snapshotInput(random: () => number): unknown {
  const base = pick(random, SNAPSHOTS);
  return random() < 0.15 ? mangle(random, base) : mutate(random, base, 6);
}

// ---- checks of what is accepted ----

const ELEMENTS = new Set(
  ("html head meta title style body h1 h2 h3 p table tr th td div span i b svg g line text " +
    "polygon polyline rect defs pattern label input output button").split(" "),
);

/** A page is inert (our tags only, no handler or link) and every number in it finite. */
function pageProblem(page: string): string | null {
  // The page's one script is ours, word for word; what input reaches the page is elsewhere.
  const parts = page.split(String(PAGE_SCRIPT));
  if (parts.length > 2) return "a page with the script twice";
  const html = parts.join("");
  if (/NaN|Infinity|undefined|\[object /.test(html)) {
    return "a page with NaN, Infinity or undefined";
  }
  for (const [tag, name, attributes] of html.matchAll(/<\/?([a-zA-Z0-9]+)([^>]*)>/g)) {
    if (!ELEMENTS.has(name.toLowerCase())) return `a page with ${tag.slice(0, 40)}`;
    // Attribute names only: a hostile label may hold "onerror=" as quoted, escaped text.
    for (const [, attribute] of attributes.matchAll(/\s([^\s=]+)=(?:"[^"]*"|'[^']*'|[^\s>]*)/g)) {
      if (/^(on\w+|src|href|xlink:href)$/i.test(attribute)) {
        return `a page with ${tag.slice(0, 60)}`;
      }
    }
  }
  return null;
}

// ---- the fuzzers ----

Deno.test("fuzz: readTrace() refuses malformed traces with a TraceError only", () => {
  const random = rng(101);
  fuzz("readTrace", () => traceInput(random), (input) => readTrace(input));
});

Deno.test("fuzz: replay() refuses malformed traces with a TraceError only", () => {
  const random = rng(202);
  fuzz(
    "replay",
    () => traceInput(random),
    (input) => replay(input as Trace, { plan: random() < 0.5 }),
    (r) =>
      [r.peakAllocated, r.peakReserved, r.ratio, r.inUseRatio].every(Number.isFinite)
        ? null
        : "a replay with a figure that is not finite",
  );
});

Deno.test("fuzz: memvizHtml() refuses malformed traces and snapshots, draws the rest inert", () => {
  const random = rng(303);
  // Half the pages get a title from the hostile strings, to be escaped like every label.
  const titles = HOSTILE.filter((v) => typeof v === "string") as string[];
  const draw = (input: unknown) =>
    memvizHtml(input, random() < 0.5 ? { title: pick(random, titles) } : { at: "reserved" });
  fuzz("memvizHtml (traces)", () => traceInput(random), draw, pageProblem);
  fuzz("memvizHtml (snapshots)", () => snapshotInput(random), draw, pageProblem);
});

/** Every command's flags, and how to read a command line of it. */
const COMMANDS: [Command<Record<string, Flag<unknown>>>, (args: string[]) => unknown][] = [
  REPLAY_COMMAND,
  MEMVIZ_COMMAND,
  MEMVIZ_PNG_COMMAND,
  FRAGMENTATION_COMMAND,
  ADVERSARY_COMMAND,
  TRACE_GEN_COMMAND,
  STRESS_REPEAT_COMMAND,
  KERNELS_GPU_COMMAND,
].map((c) => [c as Command<Record<string, Flag<unknown>>>, (args) => parseArgs(c, args)]);
COMMANDS.push([STRESS_COMMAND, parseStressFlags]);

const FLAG_VALUES = [
  "",
  "0",
  "1",
  "-1",
  "-5",
  "+3",
  "007",
  "1e3",
  "0x10",
  "2.5",
  " 1",
  "abc",
  "9007199254740991",
  "9007199254740992",
  "99999999999999999999",
  "512MiB",
  "2 GiB",
  "lots",
  "99999999999999999999999GiB",
  "caching:0",
  "caching:maybe",
  "bogus:1",
  "large_heap:64MiB,caching:0",
  "small_heap:1MiB,large_heap:512KiB",
  "allocated",
  "reserved",
  "transformer",
  "random",
  "-",
  "--",
  "-h",
  "x\ny",
  '{"tileM":128,"tileN":64,"tileK":8,"threadM":8,"threadN":8}',
  '{"tileM":0}',
  "{",
  "[]",
  "constructor",
  "__proto__",
  "<img src=x>",
];

/** A random command line for `command`: its own flags, unknown ones, values, arguments. */
function commandLine(random: () => number, command: Command<Record<string, Flag<unknown>>>) {
  const names = Object.keys(command.flags).map((k) =>
    "--" + k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())
  );
  const strangers = ["--bogus", "--constructor", "--to-string", "--__proto__", "-x", "--json="];
  const args: string[] = [];
  const n = Math.floor(random() * 7);
  for (let i = 0; i < n; i++) {
    const r = random();
    const name = names.length > 0 && r < 0.6 ? pick(random, names) : pick(random, strangers);
    if (r < 0.35) args.push(name, pick(random, FLAG_VALUES));
    else if (r < 0.5) args.push(`${name}=${pick(random, FLAG_VALUES)}`);
    else if (r < 0.7) args.push(name);
    else args.push(pick(random, FLAG_VALUES));
  }
  return args.filter((a) => a !== "-h" && a !== "--help"); // help is no refusal
}

Deno.test("fuzz: every command's flags are refused with a FlagError naming the flag", () => {
  const random = rng(404);
  let k = 0;
  const run = (input: unknown) => {
    const [args, read, name] = input as [string[], (a: string[]) => unknown, string];
    try {
      return read(args);
    } catch (error) {
      if (!(error instanceof FlagError)) throw error;
      // What the command prints: one line naming the flag, exit status 2.
      const [line, status] = failure(name, error);
      const named = line.includes(error.flag) || line.includes(quote(error.flag).slice(1, 20));
      if (status !== 2 || line.includes("\n") || !named) {
        throw new Error(`a bad line for ${JSON.stringify(args)}: ${line}`);
      }
      throw error;
    }
  };
  fuzz("flags", () => {
    const [command, read] = COMMANDS[k++ % COMMANDS.length];
    return [commandLine(random, command), read, command.name];
  }, run);
});

// ---- files: memo references, big integers, compressed size ----
//
// What a file may cost (Note [what a file may cost] in load_trace.ts): each input is read as
// the commands read a file, under a small cap so that a run stays short, then replayed.
// Every input must end in a trace or one of our TraceErrors, none may take long.

/** Inputs each file fuzzer reads. */
const FILE_INPUTS = 150;
/** The cap the file fuzzers read under. */
const FUZZ_MAX_BYTES = 256 * 1024;

async function fuzzFiles(name: string, make: () => Promise<Uint8Array> | Uint8Array) {
  const tally: Tally = { tried: 0, refused: 0, accepted: 0, other: 0, examples: [], slowestMs: 0 };
  const t0 = performance.now();
  for (; tally.tried < FILE_INPUTS; tally.tried++) {
    const bytes = await make();
    const start = performance.now();
    try {
      replay(readTrace(await parseTraceBytes(bytes, { maxBytes: FUZZ_MAX_BYTES })));
      tally.accepted++;
    } catch (error) {
      if (isOurs(error)) tally.refused++;
      else {
        tally.other++;
        if (tally.examples.length < 5) {
          tally.examples.push(`${(error as Error)?.name}: ${String((error as Error)?.message)}`);
        }
      }
    }
    tally.slowestMs = Math.max(tally.slowestMs, performance.now() - start);
  }
  const ms = performance.now() - t0;
  console.log(
    `${name}: ${tally.tried} files, ${tally.refused} typed errors, ${tally.accepted} read; ` +
      `${ms.toFixed(0)} ms, slowest ${tally.slowestMs.toFixed(1)} ms`,
  );
  assert.equal(tally.other, 0, `${name}: not typed errors:\n${tally.examples.join("\n")}`);
  // Both ends of the class are exercised: some files read, some refused.
  assert.ok(tally.refused > 0 && tally.accepted > 0, `${name}: ${JSON.stringify(tally)}`);
  assert.ok(tally.slowestMs < MAX_INPUT_MS, `${name}: a file took ${tally.slowestMs} ms`);
  assert.ok(ms < MAX_FUZZER_MS, `${name}: ${ms} ms`);
}

/**
 * A PyTorch snapshot whose lists and dicts are, at random, references to earlier ones (the
 * pickle writes those as memo references): shared frames, shared blocks, block lists in
 * two segments, one segment twice, lists that hold themselves.
 */
function sharedSnapshot(random: () => number): unknown {
  const int = (n: number) => Math.floor(random() * n);
  const pool: unknown[] = [];
  const reuse = <T>(make: () => T, p = 0.3): T => {
    if (pool.length > 0 && random() < p) return pick(random, pool) as T;
    const v = make();
    pool.push(v);
    return v;
  };
  const frames = () =>
    reuse(() => {
      const list: unknown[] = Array.from({ length: int(40) }, () =>
        reuse(() => ({
          filename: pick(random, ["/a/torch/nn/m.py", "/home/u/train.py", "<eval>", "x.cpp"]),
          line: int(500),
          name: "f",
        })));
      if (random() < 0.05) list.push(list); // holds itself
      return list;
    });
  const base = 2 ** 40;
  const blocks = () =>
    reuse(() =>
      Array.from({ length: 1 + int(30) }, () =>
        reuse(() => ({
          address: base + 512 * int(64),
          size: 512,
          requested_size: 512,
          state: pick(random, ["active_allocated", "inactive"]),
          frames: frames(),
        })))
    );
  const segments = Array.from(
    { length: int(3) },
    () =>
      reuse(
        () => ({ device: 0, address: base, total_size: 1 << 20, stream: 0, blocks: blocks() }),
        0.1,
      ),
  );
  // Mostly an alloc and a free at each address in turn, which a snapshot may hold.
  const events = Array.from({ length: int(100) }, (_, i) =>
    reuse(() => ({
      action: random() < 0.95 ? (i % 2 ? "free_requested" : "alloc") : "free_completed",
      addr: base + 2 ** 30 + 4096 * (i >> 1),
      size: 512,
      stream: 0,
      frames: frames(),
    }), 0.02));
  return { segments, device_traces: random() < 0.2 ? [events, events] : [events] };
}

/** Ints from small to past MAX_INT_BYTES, as a pickle may carry them. */
function bigInt(random: () => number): bigint {
  const bytes = pick(random, [1, 7, 8, 9, 64, 255, 256, 1023, 1024, 1025, 4000]);
  let hex = "";
  for (let i = 0; i < bytes; i++) hex += Math.floor(random() * 256).toString(16).padStart(2, "0");
  const n = BigInt(`0x${hex}`);
  return random() < 0.3 ? -n : n;
}

/** A small valid snapshot with some of its numbers replaced by big ints. */
function bigIntSnapshot(random: () => number): unknown {
  const maybe = (n: number) => random() < 0.03 ? bigInt(random) : n;
  const base = 2 ** 40;
  const blocks = Array.from({ length: 4 }, (_, i) => ({
    address: maybe(base + 512 * i),
    size: maybe(512),
    requested_size: maybe(512),
    state: "active_allocated",
    frames: [{ filename: "/home/u/train.py", line: maybe(7), name: "f" }],
  }));
  const events = Array.from({ length: 8 }, (_, i) => ({
    action: i % 2 ? "free_requested" : "alloc",
    addr: maybe(base + 4096 * (1 + (i >> 1))),
    size: maybe(1024),
    stream: maybe(0),
    time_us: maybe(1000 + i),
  }));
  return {
    segments: [{ device: maybe(0), address: base, total_size: maybe(2048), blocks }],
    device_traces: [events],
  };
}

/** Bytes that gunzip to anything from nothing to far past the cap, intact or damaged. */
function compressedFile(random: () => number): Uint8Array {
  const int = (n: number) => Math.floor(random() * n);
  const text = (s: string) => new TextEncoder().encode(s);
  const sizes = [1, 300, 4096, FUZZ_MAX_BYTES - 100, FUZZ_MAX_BYTES + 1, 8 << 20];
  if (random() < 0.4) {
    // A valid trace padded with spaces: read under the cap, refused past it.
    const pad: Piece = { byte: 0x20, count: pick(random, sizes) };
    return craftGzip(
      [text('[["a", 1, 64]'), pad, text(', ["f", 1]]')],
      pad.count < 2 * FUZZ_MAX_BYTES,
    );
  }
  const starts = [
    new Uint8Array([0x80, 4, 0x5d, 0x28]), // a pickle's list
    text('{"format": "gpuheap-trace", "version": 1, "events": ['),
    text("["),
    new Uint8Array(0),
  ];
  const pieces: Piece[] = [pick(random, starts)];
  for (let k = int(3); k >= 0; k--) {
    const count = pick(random, sizes);
    pieces.push({ byte: pick(random, [0, 0x5b, 0x5d, 0x7d, 0x2c, 0x4e, 0x20, 0x31]), count });
  }
  pieces.push(pick(random, [new Uint8Array([0x65, 0x2e]), text("]}")]));
  // A right CRC costs a pass over the output: only for the smaller ones.
  const total = pieces.reduce((n, p) => n + (p instanceof Uint8Array ? p.length : p.count), 0);
  const bytes = craftGzip(pieces, total < 2 * FUZZ_MAX_BYTES && random() < 0.5);
  const r = random();
  if (r < 0.15) return bytes.subarray(0, int(bytes.length)); // truncated
  if (r < 0.3) bytes[10 + int(bytes.length - 10)] ^= 1 << int(8); // a bit flipped
  return bytes;
}

Deno.test("fuzz: files of memo references are read once or refused with a TraceError", async () => {
  const random = rng(505);
  await fuzzFiles("memo references", async () => {
    const bytes = writePickle(sharedSnapshot(random));
    return random() < 0.5 ? bytes : await gzip(bytes);
  });
});

Deno.test("fuzz: files of big integers are read or refused with a TraceError", async () => {
  const random = rng(606);
  await fuzzFiles("big integers", () => {
    const snapshot = bigIntSnapshot(random);
    if (random() < 0.8) return writePickle(snapshot);
    // JSON has no big ints: numbers of hundreds of digits become doubles or Infinity.
    const json = JSON.stringify(snapshot, (_, v) => typeof v === "bigint" ? `#${v}#` : v);
    return new TextEncoder().encode(json.replace(/"#(-?\d+)#"/g, "$1"));
  });
});

Deno.test("fuzz: compressed files of any size are read under the cap or refused with a TraceError", async () => {
  const random = rng(707);
  await fuzzFiles("compressed size", () => compressedFile(random));
});
