// Renders the memory page of a trace or snapshot to a PNG with headless
// Chromium (Debian's `chromium` package), for a quick look without a browser.
//
//   deno task memviz:png trace-or-snapshot.json memory.png [--at allocated|reserved]
import { memvizMain } from "./memviz_command.ts";

const USAGE = "usage: deno task memviz:png IN.json OUT.png [--at allocated|reserved]";

if (import.meta.main) {
  const [input, output, ...rest] = Deno.args;
  if (!input || !output || output.startsWith("-")) {
    console.error(USAGE);
    Deno.exit(2);
  }
  const html = await memvizMain([input, ...rest]);
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
      console.error(
        `Cannot render ${input}: chromium exited with ${code}\n` +
          new TextDecoder().decode(stderr),
      );
      Deno.exit(1);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      console.error("Cannot render: chromium is not installed (apt-get install chromium)");
      Deno.exit(1);
    }
    throw error;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  console.error(`wrote ${output}`);
}
