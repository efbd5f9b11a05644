/**
 * The memviz command: draws a trace or a snapshot as one self-contained HTML
 * page on stdout.
 *
 * ```sh
 * deno task memviz trace-or-snapshot.json > memory.html
 * deno task memviz trace.json --at reserved > memory.html   # heap map at peak reserved
 * ```
 *
 * @module
 */
import { memvizHtml } from "./memviz.ts";
import { loadTraceFile } from "./load_trace.ts";
import { choice, type Command, runCommand, type ValueFlag } from "./flags.ts";

/** The memviz command's arguments and flags. */
export const MEMVIZ_COMMAND: Command<{ at: ValueFlag<"allocated" | "reserved"> }> = {
  name: "memviz",
  synopsis: "deno task memviz FILE [--at allocated|reserved] > out.html",
  about: "Draws a trace or a snapshot as one self-contained HTML page on stdout:\n" +
    "allocated and reserved bytes by pool over the events, and every heap's blocks.",
  positionals: [{
    name: "FILE",
    help: "a trace or snapshot (JSON, gzipped or not); - reads stdin",
  }],
  flags: {
    at: choice("which peak of a trace the heap map shows (default allocated)", [
      "allocated",
      "reserved",
    ]),
  },
  notes: "Exit status: 0 on success, 1 if the file cannot be read or drawn, 2 for bad flags.",
};

/**
 * Reads a trace or snapshot file (`"-"`: stdin) and returns its page.
 *
 * @param file the file's path
 * @param at which peak of a trace the heap map shows
 * @throws {Deno.errors.NotFound} no such file
 * @throws {TraceError} the file is neither a readable trace nor a snapshot
 */
export async function memvizFile(
  file: string,
  at: "allocated" | "reserved" = "allocated",
): Promise<string> {
  const name = file === "-" ? "stdin" : file.split("/").pop()!;
  return memvizHtml(await loadTraceFile(file), { title: `gpuheap memory: ${name}`, at });
}

if (import.meta.main) {
  Deno.exitCode = await runCommand(MEMVIZ_COMMAND, Deno.args, async ({ flags, positionals }) => {
    console.log(await memvizFile(positionals[0], flags.at));
  });
}
