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

/** The names an entry exports, as `deno doc` lists them. */
async function exportedNames(entry: string): Promise<Set<string>> {
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).output();
  const nodes = JSON.parse(new TextDecoder().decode(stdout)).nodes;
  const symbols = nodes[new URL(entry, root).href]?.symbols ?? [];
  return new Set(symbols.map((s: { name: string }) => s.name));
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

// An example may import by path only what no entry exports (an internal
// module's own example, which JSR never shows).
const exported = new Set<string>();
for (const entry of entries) for (const name of await exportedNames(entry)) exported.add(name);
const files = entries.filter((e) => e.startsWith("./bench/")).map((e) => new URL(e, root));
for await (const url of shipped(root)) files.push(url);
for (const url of files) {
  const source = await Deno.readTextFile(url);
  for (const comment of source.match(/\/\*\*[\s\S]*?\*\//g) ?? []) {
    const code = comment.split("\n").map((line) => line.replace(/^\s*\*\s?/, "")).join("\n");
    for (
      const [statement, names] of code.matchAll(
        /import\s+(?:type\s+)?\{([^}]*)\}\s*from\s*["']\.\.?\/[^"']*["']/g,
      )
    ) {
      const public_ = names.split(",").map((n) =>
        n.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0]
      )
        .filter((n) => exported.has(n));
      if (public_.length > 0) {
        problems.push(
          `${url.pathname.slice(root.pathname.length)}: an example imports ${
            public_.join(", ")
          } by path, not by package name: ${statement.replace(/\s+/g, " ")}`,
        );
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
