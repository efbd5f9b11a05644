// Renders the memory page of a trace or snapshot to a PNG with headless
// Chromium (Debian's `chromium` package), for a quick look without a browser.
//
//   deno task memviz:png trace-or-snapshot.json memory.png [--at allocated|reserved]
import { memvizFile } from "./memviz_command.ts";
import { choice, type Command, oneLine, runCommand, type ValueFlag } from "./flags.ts";

/** The memviz:png command's arguments and flags. */
export const MEMVIZ_PNG_COMMAND: Command<{ at: ValueFlag<"allocated" | "reserved"> }> = {
  name: "memviz:png",
  synopsis: "deno task memviz:png IN OUT.png [--at allocated|reserved]",
  about: "Renders the memory page of a trace or snapshot to a PNG with headless Chromium.",
  positionals: [
    { name: "IN", help: "a trace or snapshot (JSON, gzipped or not); - reads stdin" },
    { name: "OUT", help: "the PNG to write" },
  ],
  flags: {
    at: choice("which peak of a trace the heap map shows (default allocated)", [
      "allocated",
      "reserved",
    ]),
  },
  notes: "Exit status: 0 on success, 1 if the file cannot be read or drawn or Chromium\n" +
    "fails, 2 for bad flags.",
};

async function main(input: string, output: string, at?: "allocated" | "reserved") {
  const html = await memvizFile(input, at);
  const dir = Deno.makeTempDirSync({ prefix: "memviz-" });
  const page = `${dir}/memory.html`;
  Deno.writeTextFileSync(page, html);
  // Tall enough for the charts and a page of heap rows.
  const rows = (html.match(/class="heap"/g) ?? []).length;
  const height = Math.min(8000, 1250 + rows * (rows > 60 ? 11 : 24));
  const out = output.startsWith("/") ? output : `${Deno.cwd()}/${output}`;
  try {
    const { code, stderr } = new Deno.Command("chromium", {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        `--screenshot=${out}`,
        `--window-size=1240,${height}`,
        `file://${page}`,
      ],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (code !== 0) {
      const last = new TextDecoder().decode(stderr).trim().split("\n").pop() ?? "";
      console.error(oneLine(`memviz:png: chromium exited with ${code}: ${last}`));
      return 1;
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      console.error("memviz:png: chromium is not installed (apt-get install chromium)");
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
    ({ flags, positionals: [input, output] }) => main(input, output, flags.at),
  );
}
