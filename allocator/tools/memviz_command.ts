/**
 * The memviz command: draws a trace or a snapshot (gpuheap's, a plain list,
 * or a PyTorch memory snapshot) as one self-contained HTML page, written to
 * `--out FILE` or to stdout.
 *
 * ```sh
 * deno run -A jsr:@gpuheap/gpuheap/memviz trace.json --out memory.html
 * deno task memviz trace-or-snapshot.json --out memory.html
 * deno task memviz trace.json --at reserved --out memory.html  # heap map at peak reserved
 * deno task memviz trace.json --x events > memory.html         # over events, not times
 * ```
 *
 * Without `--out`, the page goes to stdout only when stdout is not a
 * terminal: a megabyte of HTML is of no use there. From code, the page of a
 * trace already in memory is `memvizHtml` of `@gpuheap/gpuheap/tools`.
 *
 * @example
 * ```ts
 * import { MEMVIZ_COMMAND } from "@gpuheap/gpuheap/memviz";
 * import { memvizHtml, readTrace } from "@gpuheap/gpuheap/tools";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(Object.keys(MEMVIZ_COMMAND.flags), ["at", "x", "maxFileSize", "out"]);
 * const html = memvizHtml(readTrace('[["a", 1, 4096], ["a", 2, 8192], ["f", 1], ["f", 2]]'));
 * assert.match(html, /^<!DOCTYPE html>/i);
 * ```
 *
 * @module
 */
import { memvizHtml, type MemvizOptions } from "./memviz.ts";
import { type LoadOptions, loadTraceFile } from "./load_trace.ts";
import {
  choice,
  type Command,
  type Flag,
  FlagError,
  maxFileSize,
  type Positional,
  runCommand,
  text,
  type ValueFlag,
} from "./flags.ts";

export type { Command, Flag, LoadOptions, MemvizOptions, Positional, ValueFlag };

/** The flags of the memviz commands. */
export type MemvizFlags = {
  at: ValueFlag<"allocated" | "reserved">;
  x: ValueFlag<"time" | "events">;
  maxFileSize: ValueFlag<number>;
};

/** The memviz command's flags: the shared ones and where the page goes. */
export type MemvizPageFlags = MemvizFlags & { out: ValueFlag<string> };

/** The flags of the memviz commands, shared by `memviz:png`. */
export const MEMVIZ_FLAGS: MemvizFlags = {
  at: choice("which peak of a trace the heap map shows (default allocated)", [
    "allocated",
    "reserved",
  ]),
  x: choice("the x axis: time where the trace has times (default), or events", [
    "time",
    "events",
  ]),
  maxFileSize: maxFileSize(),
};

/** The memviz command's arguments and flags. */
export const MEMVIZ_COMMAND: Command<MemvizPageFlags> = {
  name: "memviz",
  synopsis: "deno task memviz FILE [--at allocated|reserved] [--x time|events] [--out FILE]",
  about: "Draws a trace or a snapshot as one self-contained HTML page: every block as a\n" +
    "band over time, allocated and reserved bytes by pool, the largest blocks at the\n" +
    "peak with their call sites, and every heap's blocks.",
  positionals: [{
    name: "FILE",
    help: "a trace or snapshot (JSON or a PyTorch snapshot pickle, gzipped or not); - reads stdin",
  }],
  flags: {
    ...MEMVIZ_FLAGS,
    out: text("write the page there (default: stdout, when it is not a terminal)", {
      arg: "FILE",
      nonEmpty: true,
    }),
  },
  notes: "From JSR: deno run -A jsr:@gpuheap/gpuheap/memviz FILE --out memory.html\n" +
    "Exit status: 0 on success, 1 if the file cannot be read or drawn, 2 for bad flags.",
};

/**
 * Reads a trace or snapshot file (`"-"`: stdin) and returns its page.
 *
 * @param file the file's path
 * @param options which peak the heap map shows, the x axis (the title is the
 *   file's name), the cap on the file's bytes (`maxBytes`, see `loadTraceFile`)
 * @throws {Deno.errors.NotFound} no such file
 * @throws {TraceError} the file is neither a readable trace nor a snapshot
 */
export async function memvizFile(
  file: string,
  options: Pick<MemvizOptions, "at" | "x"> & LoadOptions = {},
): Promise<string> {
  const name = file === "-" ? "stdin" : file.split("/").pop()!;
  const { maxBytes, ...drawing } = options;
  return memvizHtml(await loadTraceFile(file, { maxBytes }), {
    ...drawing,
    title: `gpuheap memory: ${name}`,
  });
}

if (import.meta.main) {
  Deno.exitCode = await runCommand(MEMVIZ_COMMAND, Deno.args, async ({ flags, positionals }) => {
    if (flags.out === undefined && Deno.stdout.isTerminal()) {
      throw new FlagError("--out is needed when stdout is a terminal", "--out");
    }
    const html = await memvizFile(positionals[0], {
      at: flags.at,
      x: flags.x,
      maxBytes: flags.maxFileSize,
    });
    if (flags.out === undefined) console.log(html);
    else {
      await Deno.writeTextFile(flags.out, html);
      console.error(`wrote ${flags.out}`);
    }
  });
}
