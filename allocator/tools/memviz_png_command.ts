/**
 * The memviz:png command: renders the memory page of a trace or snapshot to
 * a PNG with headless Chromium or Chrome, for a quick look without opening
 * a browser.
 *
 * ```sh
 * deno run -A jsr:@gpuheap/gpuheap/memviz-png trace.json memory.png
 * deno task memviz:png trace-or-snapshot.json memory.png [--at reserved] [--x events]
 * deno task memviz:png trace.json memory.png --browser /opt/chrome/chrome
 * ```
 *
 * The browser is `--browser PATH`, else `GPUHEAP_BROWSER`, else the first of
 * {@linkcode BROWSERS} found on the `PATH`. It runs twice: once to lay the
 * page out and read its height (which the page's script writes into
 * `<html data-height>`), once to take the screenshot.
 *
 * @example
 * ```ts
 * import { browserCandidates } from "@gpuheap/gpuheap/memviz-png";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(browserCandidates("/opt/chrome", undefined).slice(0, 1), ["/opt/chrome"]);
 * assert.deepEqual(browserCandidates(undefined, "").slice(0, 3), [
 *   "chromium",
 *   "chromium-browser",
 *   "google-chrome",
 * ]);
 * ```
 *
 * @module
 */
import { MEMVIZ_FLAGS, memvizFile, type MemvizFlags } from "./memviz_command.ts";
import type { MemvizOptions } from "./memviz.ts";
import type { LoadOptions } from "./load_trace.ts";
import {
  type Command,
  type Flag,
  oneLine,
  type Positional,
  runCommand,
  text,
  type ValueFlag,
} from "./flags.ts";

export type { Command, Flag, MemvizFlags, Positional, ValueFlag };

/** The environment variable naming the browser, when `--browser` is not given. */
export const BROWSER_ENV = "GPUHEAP_BROWSER";

/**
 * The browsers tried in turn when none is named: Debian's and Arch's
 * package, Ubuntu's older one, Google's build (on GitHub's runners).
 */
export const BROWSERS: readonly string[] = ["chromium", "chromium-browser", "google-chrome"];

/** Where macOS keeps Chrome and Chromium: not on the PATH. */
const MACOS_BROWSERS = [
  "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
  "/Applications/Chromium.app/Contents/MacOS/Chromium",
];

/** The memviz:png command's flags: those of memviz and the browser. */
export type MemvizPngFlags = MemvizFlags & { browser: ValueFlag<string> };

/** The memviz:png command's arguments and flags. */
export const MEMVIZ_PNG_COMMAND: Command<MemvizPngFlags> = {
  name: "memviz:png",
  synopsis: "deno task memviz:png IN OUT.png [--at allocated|reserved] [--x time|events]",
  about: "Renders the memory page of a trace or snapshot to a PNG with headless Chromium.",
  positionals: [
    {
      name: "IN",
      help:
        "a trace or snapshot (JSON or a PyTorch snapshot pickle, gzipped or not); - reads stdin",
    },
    { name: "OUT", help: "the PNG to write" },
  ],
  flags: {
    ...MEMVIZ_FLAGS,
    browser: text(
      `the Chromium or Chrome to run (default: $${BROWSER_ENV}, else the first found of ${
        BROWSERS.join(", ")
      })`,
      { arg: "PATH", nonEmpty: true },
    ),
  },
  notes: "From JSR: deno run -A jsr:@gpuheap/gpuheap/memviz-png IN OUT.png\n" +
    "Exit status: 0 on success, 1 if the file cannot be read or drawn or the browser\n" +
    "fails or is not found, 2 for bad flags.",
};

/**
 * The browsers to try, in turn: the one named by the flag, else the one the
 * environment variable names, else {@linkcode BROWSERS} (and on macOS the
 * applications' own paths).
 *
 * @param flag the `--browser` value, if given
 * @param env the environment variable's value, if set (empty counts as unset)
 */
export function browserCandidates(flag: string | undefined, env: string | undefined): string[] {
  if (flag !== undefined) return [flag];
  if (env) return [env];
  return Deno.build.os === "darwin" ? [...BROWSERS, ...MACOS_BROWSERS] : [...BROWSERS];
}

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

/** Runs the browser; its stdout, or an error naming its exit code and last line of stderr. */
function runBrowser(browser: string, args: string[]): string {
  const { code, stdout, stderr } = new Deno.Command(browser, {
    args: [...CHROMIUM_FLAGS, ...args],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  if (code !== 0) {
    const last = new TextDecoder().decode(stderr).trim().split("\n").pop() ?? "";
    throw new BrowserError(oneLine(`${browser} exited with ${code}: ${last}`));
  }
  return new TextDecoder().decode(stdout);
}

class BrowserError extends Error {}

/**
 * The page's height once laid out, which its script writes into
 * `<html data-height>`: read from the DOM the browser dumps after running it.
 * The first candidate that starts is the browser; the others are not tried.
 */
function layOut(candidates: readonly string[], url: string): [browser: string, height: number] {
  for (const browser of candidates) {
    let dom: string;
    try {
      dom = runBrowser(browser, ["--dump-dom", `--window-size=${WINDOW_WIDTH},800`, url]);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    const height = Number(/<html[^>]*\sdata-height="(\d+)"/.exec(dom)?.[1]);
    return [browser, Number.isFinite(height) && height > 0 ? Math.min(MAX_HEIGHT, height) : 1400];
  }
  throw new BrowserError(
    `no browser found (tried ${candidates.join(", ")}): install Chromium or give ` +
      `--browser PATH or ${BROWSER_ENV}`,
  );
}

async function main(
  input: string,
  output: string,
  options: Pick<MemvizOptions, "at" | "x"> & LoadOptions,
  candidates: readonly string[],
) {
  const html = await memvizFile(input, options);
  const dir = Deno.makeTempDirSync({ prefix: "memviz-" });
  const page = `${dir}/memory.html`;
  Deno.writeTextFileSync(page, html);
  const out = output.startsWith("/") ? output : `${Deno.cwd()}/${output}`;
  try {
    const url = `file://${page}`;
    const [browser, height] = layOut(candidates, url);
    runBrowser(browser, [`--screenshot=${out}`, `--window-size=${WINDOW_WIDTH},${height}`, url]);
  } catch (error) {
    if (error instanceof BrowserError) {
      console.error(oneLine(`memviz:png: ${error.message}`));
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
      main(
        input,
        output,
        { at: flags.at, x: flags.x, maxBytes: flags.maxFileSize },
        browserCandidates(flags.browser, Deno.env.get(BROWSER_ENV)),
      ),
  );
}
