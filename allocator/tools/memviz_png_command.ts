// Renders the memory page of a trace or snapshot to a PNG with headless
// Chromium (Debian's `chromium` package), for a quick look without a browser.
//
//   deno task memviz:png trace-or-snapshot.json memory.png [--at allocated|reserved] [--x events]
//
// Chromium runs twice: once to lay the page out and read its height (which the
// page's script writes into <html data-height>), once to take the screenshot.
import { MEMVIZ_FLAGS, memvizFile, type MemvizFlags } from "./memviz_command.ts";
import type { MemvizOptions } from "./memviz.ts";
import type { LoadOptions } from "./load_trace.ts";
import { type Command, oneLine, runCommand } from "./flags.ts";

/** The memviz:png command's arguments and flags. */
export const MEMVIZ_PNG_COMMAND: Command<MemvizFlags> = {
  name: "memviz:png",
  synopsis: "deno task memviz:png IN OUT.png [--at allocated|reserved] [--x time|events]",
  about: "Renders the memory page of a trace or snapshot to a PNG with headless Chromium.",
  positionals: [
    { name: "IN", help: "a trace or snapshot (JSON, gzipped or not); - reads stdin" },
    { name: "OUT", help: "the PNG to write" },
  ],
  flags: MEMVIZ_FLAGS,
  notes: "Exit status: 0 on success, 1 if the file cannot be read or drawn or Chromium\n" +
    "fails, 2 for bad flags.",
};

/** Width of the window the page is laid out in: the page's width and its margins. */
const WINDOW_WIDTH = 1240;
/** Tallest screenshot taken. */
const MAX_HEIGHT = 16_000;
/** Flags of every Chromium run: headless, nothing fetched, no profile kept. */
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Runs Chromium; its stdout, or an error naming its exit code and last line of stderr. */
function chromium(args: string[]): string {
  const { code, stdout, stderr } = new Deno.Command("chromium", {
    args: [...CHROMIUM_FLAGS, ...args],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  if (code !== 0) {
    const last = new TextDecoder().decode(stderr).trim().split("\n").pop() ?? "";
    throw new ChromiumError(oneLine(`chromium exited with ${code}: ${last}`));
  }
  return new TextDecoder().decode(stdout);
}

class ChromiumError extends Error {}

/**
 * The page's height once laid out, which its script writes into
 * `<html data-height>`: read from the DOM Chromium dumps after running it.
 */
function pageHeight(url: string): number {
  const dom = chromium(["--dump-dom", `--window-size=${WINDOW_WIDTH},800`, url]);
  const height = Number(/<html[^>]*\sdata-height="(\d+)"/.exec(dom)?.[1]);
  return Number.isFinite(height) && height > 0 ? Math.min(MAX_HEIGHT, height) : 1400;
}

async function main(
  input: string,
  output: string,
  options: Pick<MemvizOptions, "at" | "x"> & LoadOptions,
) {
  const html = await memvizFile(input, options);
  const dir = Deno.makeTempDirSync({ prefix: "memviz-" });
  const page = `${dir}/memory.html`;
  Deno.writeTextFileSync(page, html);
  const out = output.startsWith("/") ? output : `${Deno.cwd()}/${output}`;
  try {
    const url = `file://${page}`;
    chromium([`--screenshot=${out}`, `--window-size=${WINDOW_WIDTH},${pageHeight(url)}`, url]);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      console.error("memviz:png: chromium is not installed (apt-get install chromium)");
      return 1;
    }
    if (error instanceof ChromiumError) {
      console.error(`memviz:png: ${error.message}`);
      return 1;
    }
    throw error;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  console.error(`wrote ${output}`);
}

if (import.meta.main) {
  Deno.exitCode = await runCommand(
    MEMVIZ_PNG_COMMAND,
    Deno.args,
    ({ flags, positionals: [input, output] }) =>
      main(input, output, { at: flags.at, x: flags.x, maxBytes: flags.maxFileSize }),
  );
}
