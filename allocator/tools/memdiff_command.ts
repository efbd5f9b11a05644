/**
 * The memdiff command: compares the memory of two runs (traces or snapshots,
 * gpuheap's or PyTorch's) and fails when a peak grew past a threshold.
 *
 * ```sh
 * deno task memdiff baseline-trace.json trace.json                  # exit 1 past +5%
 * deno task memdiff old.pickle.gz new.pickle.gz --max-growth 10%
 * deno task memdiff baseline-trace.json trace.json --json           # one JSON object
 * ```
 *
 * @module
 */
import { formatMemoryDiff, type MemoryDiff, memoryDiff, memoryProfile } from "./memdiff.ts";
import { type LoadOptions, loadTraceFile } from "./load_trace.ts";
import {
  type Command,
  type Flag,
  maxFileSize,
  type Positional,
  runCommand,
  toggle,
  type ValueFlag,
} from "./flags.ts";

export type { Command, Flag, LoadOptions, MemoryDiff, Positional, ValueFlag };
export type { MemoryProfile, ProfileSource, SiteChange } from "./memdiff.ts";

/** The flags of the memdiff command. */
export type MemdiffFlags = {
  maxGrowth: ValueFlag<number>;
  json: Flag<boolean>;
  top: ValueFlag<number>;
  maxFileSize: ValueFlag<number>;
};

/** Digits of a percentage at most: a bound above 10^9 % is a typo. */
const MAX_PERCENT_TEXT = 12;

/** The memdiff command's arguments and flags. */
export const MEMDIFF_COMMAND: Command<MemdiffFlags> = {
  name: "memdiff",
  synopsis: "deno task memdiff OLD NEW [--max-growth 5%] [--json] [--top N]",
  about: "Compares two traces or snapshots (gpuheap's, plain lists of events, or PyTorch\n" +
    "memory snapshots, gzipped or not): peak allocated and reserved bytes old and new,\n" +
    "and the bytes live at each peak by label or call site, largest changes first.",
  positionals: [
    { name: "OLD", help: "the baseline trace or snapshot" },
    { name: "NEW", help: "the trace or snapshot to check; - reads stdin" },
  ],
  flags: {
    maxGrowth: {
      help: "growth of either peak allowed before failing (default 5%)",
      arg: "PERCENT",
      expects: "a percentage >= 0 such as 5%",
      read(text) {
        const m = text.length <= MAX_PERCENT_TEXT ? /^(\d+(?:\.\d+)?)%?$/.exec(text) : null;
        if (!m) throw new RangeError();
        return Number(m[1]) / 100;
      },
    },
    json: toggle("print one JSON object instead of tables"),
    top: {
      help: "sites shown per peak (default 10)",
      arg: "N",
      expects: "an integer from 1 to 1000",
      read(text) {
        const n = /^\d{1,4}$/.test(text) ? Number(text) : NaN;
        if (!(n >= 1 && n <= 1000)) throw new RangeError();
        return n;
      },
    },
    maxFileSize: maxFileSize(),
  },
  notes: "Exit status: 0 when no peak grew past --max-growth, 1 when one did or a file\n" +
    "cannot be read, 2 for bad flags.",
};

/**
 * Reads two files and compares them.
 *
 * @param oldFile the baseline's path
 * @param newFile the new run's path (`"-"`: stdin)
 * @param maxGrowth growth allowed, a fraction (default 0.05)
 * @param load how much each file may hold (`maxBytes`)
 * @throws {Deno.errors.NotFound} no such file
 * @throws {TraceError} a file that is neither a readable trace nor a snapshot
 */
export async function memdiffFiles(
  oldFile: string,
  newFile: string,
  maxGrowth = 0.05,
  load: LoadOptions = {},
): Promise<MemoryDiff> {
  const old = memoryProfile(await loadTraceFile(oldFile, load));
  return memoryDiff(old, memoryProfile(await loadTraceFile(newFile, load)), maxGrowth);
}

if (import.meta.main) {
  Deno.exitCode = await runCommand(MEMDIFF_COMMAND, Deno.args, async ({ flags, positionals }) => {
    const [oldFile, newFile] = positionals;
    const diff = await memdiffFiles(oldFile, newFile, flags.maxGrowth ?? 0.05, {
      maxBytes: flags.maxFileSize,
    });
    if (flags.json) {
      // JSON has no Infinity: growth from nothing is written as null.
      console.log(JSON.stringify(diff, (_, v) => v === Infinity ? null : v, 2));
    } else {
      const name = (f: string) => f === "-" ? "stdin" : f.split("/").pop()!;
      console.log(formatMemoryDiff(diff, [name(oldFile), name(newFile)], flags.top ?? 10));
    }
    return diff.passed ? 0 : 1;
  });
}
