// Renders memory pages with headless Chromium for tests, which run without
// write access: this script writes what Chromium needs into a folder of its
// own and removes it after.
//
//   deno run -A tests/testdata/chromium_page.ts dom [HASH...] < page.html
//       prints a JSON list: the DOM after the page's script ran, once per HASH
//       (no HASH: once, without one)
//   deno run -A tests/testdata/chromium_page.ts png NAME < trace-or-snapshot
//       runs memviz:png on the input (saved as NAME) and prints the PNG in base64

const [mode, ...args] = Deno.args;
const input = new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
const dir = Deno.makeTempDirSync({ prefix: "memviz-chromium-" });
try {
  if (mode === "dom") {
    const page = `${dir}/page.html`;
    Deno.writeFileSync(page, input);
    const doms = (args.length > 0 ? args : [""]).map((hash) => {
      const { success, stdout, stderr } = new Deno.Command("chromium", {
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--no-first-run",
          "--window-size=1240,900",
          "--dump-dom",
          `file://${page}${hash}`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      if (!success) throw new Error(new TextDecoder().decode(stderr));
      return new TextDecoder().decode(stdout);
    });
    console.log(JSON.stringify(doms));
  } else if (mode === "png") {
    const file = `${dir}/${args[0]}`;
    Deno.writeFileSync(file, input);
    const command = new URL("../../allocator/tools/memviz_png_command.ts", import.meta.url);
    const { success, stderr } = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", command.pathname, file, `${dir}/out.png`],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (!success) throw new Error(new TextDecoder().decode(stderr));
    const png = Deno.readFileSync(`${dir}/out.png`);
    console.log(btoa(Array.from(png, (b) => String.fromCharCode(b)).join("")));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} finally {
  Deno.removeSync(dir, { recursive: true });
}
