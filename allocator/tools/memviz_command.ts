/**
 * The memviz command: draws a trace or a snapshot as one self-contained HTML
 * page on stdout.
 *
 * ```sh
 * deno task memviz trace-or-snapshot.json > memory.html
 * deno task memviz trace.json --at reserved > memory.html   # heap map at peak reserved
 * deno task memviz trace.json --x events > memory.html      # over events, not times
 * ```
 *
 * @module
 */
import { memvizHtml, type MemvizOptions } from "./memviz.ts";
import { type LoadOptions, loadTraceFile } from "./load_trace.ts";
import { choice, type Command, maxFileSize, runCommand, type ValueFlag } from "./flags.ts";

/** The flags of the memviz commands. */
export type MemvizFlags = {
  at: ValueFlag<"allocated" | "reserved">;
  x: ValueFlag<"time" | "events">;
  maxFileSize: ValueFlag<number>;
};

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
export const MEMVIZ_COMMAND: Command<MemvizFlags> = {
  name: "memviz",
  synopsis: "deno task memviz FILE [--at allocated|reserved] [--x time|events] > out.html",
  about: "Draws a trace or a snapshot as one self-contained HTML page on stdout: every\n" +
    "block as a band over time, allocated and reserved bytes by pool, the largest\n" +
    "blocks at the peak with their call sites, and every heap's blocks.",
  positionals: [{
    name: "FILE",
    help: "a trace or snapshot (JSON, gzipped or not); - reads stdin",
  }],
  flags: MEMVIZ_FLAGS,
  notes: "Exit status: 0 on success, 1 if the file cannot be read or drawn, 2 for bad flags.",
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
    console.log(
      await memvizFile(positionals[0], { at: flags.at, x: flags.x, maxBytes: flags.maxFileSize }),
    );
  });
}
