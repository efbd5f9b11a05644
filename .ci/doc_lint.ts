// The documentation checks of `deno task check`, per export entry as JSR
// reads them: `deno doc --lint` on each entry alone (linting entries together
// hides a type that one entry references and only another exports), a
// `@module` doc on each, and doc examples that import the package by name, so
// that an example copied from the docs page runs in the reader's project.
//
//   deno run --allow-read --allow-run .ci/doc_lint.ts
const root = new URL("..", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
const entries = Object.values(config.exports as Record<string, string>);
const problems: string[] = [];

for (const entry of entries) {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", entry],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stderr).trim();
  console.log(`${code === 0 ? "ok  " : "FAIL"} deno doc --lint ${entry}`);
  if (code !== 0) problems.push(`deno doc --lint ${entry}:\n${text}`);
  if (!/^\s*\*\s*@module\b/m.test(await Deno.readTextFile(new URL(entry, root)))) {
    problems.push(`${entry}: no @module doc`);
  }
}

/** Every shipped TypeScript file: what JSR shows examples of. */
async function* shipped(dir: URL): AsyncGenerator<URL> {
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(".") || ["tests", "bench", "out"].includes(e.name)) continue;
    const url = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* shipped(url);
    else if (e.name.endsWith(".ts")) yield url;
  }
}

const files = [...entries.filter((e) => e.startsWith("./bench/")).map((e) => new URL(e, root))];
for await (const url of shipped(root)) files.push(url);
for (const url of files) {
  const source = await Deno.readTextFile(url);
  // Doc comments only: an example is a fenced block inside `/** … */`.
  for (const comment of source.match(/\/\*\*[\s\S]*?\*\//g) ?? []) {
    for (const line of comment.split("\n")) {
      if (/^\s*\*\s*import\b.*\bfrom\s+["']\.\.?\//.test(line)) {
        problems.push(`${url.pathname.slice(root.pathname.length)}: example imports by path:` +
          ` ${line.replace(/^\s*\*\s*/, "")}`);
      }
    }
  }
}

if (problems.length > 0) {
  console.error(problems.join("\n"));
  console.error(`doc_lint: ${problems.length} problem(s)`);
  Deno.exit(1);
}
console.log(`doc_lint: ${entries.length} entries clean`);
