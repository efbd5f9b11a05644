// Finds import circles: walks the relative imports of mod.ts and of every
// file deno.json names (exports and task scripts), and of the scripts they
// start as Workers, and prints each circle; one that goes through an import
// of types only is not a circle at run time, and is marked so.
//
//   deno run --allow-read bench/commands/import_cycles.ts
//
// Exit status: 0 when no circle is found, 1 otherwise.

/** One import: the file imported and whether only types come through it. */
export interface Import {
  to: string;
  typeOnly: boolean;
}

/** Each file's relative imports, by path (from the repository root, with `/`). */
export type ImportGraph = Map<string, Import[]>;

/** An import or re-export statement at the start of a line, up to its module specifier. */
const STATEMENT = /^(import|export)\s+(type\s+)?(?:([^;]*?)\s+from\s+)?["']([^"']+)["']/gm;

/** A script a file starts (a Worker's), named relative to the file. */
const SCRIPT = /new URL\(\s*["'](\.[^"']+\.ts)["']\s*,\s*import\.meta\.url\s*\)/g;

/** Block comments: doc examples import too. */
function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "");
}

/** The relative imports of one file's source, comments left out. */
export function importsOf(source: string): { specifier: string; typeOnly: boolean }[] {
  const code = withoutComments(source);
  const found: { specifier: string; typeOnly: boolean }[] = [];
  for (const m of code.matchAll(STATEMENT)) {
    const [, , typeWord, clause, specifier] = m;
    if (!specifier.startsWith(".")) continue;
    // `import { type A, type B }` imports nothing at run time either.
    const names = clause?.match(/^\{([\s\S]*)\}$/)?.[1].split(",").map((s) => s.trim())
      .filter((s) => s !== "");
    const allTypes = names !== undefined && names.length > 0 &&
      names.every((n) => n.startsWith("type "));
    found.push({ specifier, typeOnly: typeWord !== undefined || allTypes });
  }
  return found;
}

/** Reads every file reachable from `entries` (paths from `root`) by relative imports. */
export function importGraph(root: URL, entries: readonly string[]): ImportGraph {
  const graph: ImportGraph = new Map();
  const todo = entries.map((e) => new URL(e, root).href);
  while (todo.length > 0) {
    const href = todo.pop()!;
    const path = href.slice(root.href.length);
    if (graph.has(path)) continue;
    const edges: Import[] = [];
    graph.set(path, edges);
    const source = Deno.readTextFileSync(new URL(href));
    for (const { specifier, typeOnly } of importsOf(source)) {
      const to = new URL(specifier, href).href;
      edges.push({ to: to.slice(root.href.length), typeOnly });
      todo.push(to);
    }
    // A Worker's script is walked too, with no import edge to it.
    for (const m of withoutComments(source).matchAll(SCRIPT)) todo.push(new URL(m[1], href).href);
  }
  return graph;
}

/** One circle: its files in import order (the last imports the first). */
export interface Cycle {
  files: string[];
  /** Some import in it brings types only: at run time it is no circle. */
  typesOnly: boolean;
}

/**
 * The circles of a graph: one per group of files that reach each other
 * (Tarjan's strongly connected components), shown as a shortest circle
 * through the group's first file, in the order of those files.
 */
export function findCycles(graph: ImportGraph): Cycle[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const { to } of graph.get(v) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(v, Math.min(low.get(v)!, index.get(to)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    const selfLoop = (graph.get(v) ?? []).some((e) => e.to === v);
    if (group.length > 1 || selfLoop) groups.push(group.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  groups.sort((p, q) => p[0] < q[0] ? -1 : 1);
  return groups.map((group) => shortestCycle(graph, group[0], new Set(group)));
}

/** A shortest circle from `start` back to it, within `group` (breadth first). */
function shortestCycle(graph: ImportGraph, start: string, group: Set<string>): Cycle {
  const previous = new Map<string, { from: string; typeOnly: boolean }>();
  const queue = [start];
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q];
    for (const { to, typeOnly } of graph.get(v) ?? []) {
      if (!group.has(to) || previous.has(to)) continue;
      previous.set(to, { from: v, typeOnly });
      if (to === start) {
        const files: string[] = [];
        let typesOnly = false;
        let w = start;
        do {
          const p = previous.get(w)!;
          typesOnly ||= p.typeOnly;
          w = p.from;
          files.unshift(w);
        } while (w !== start);
        return { files, typesOnly };
      }
      queue.push(to);
    }
  }
  throw new Error(`Cannot find a circle through ${start}: it is not in one`);
}

/** mod.ts and the files deno.json names: its exports and the scripts its tasks run. */
export function entries(root: URL): string[] {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", root)));
  const named: string[] = ["mod.ts", ...Object.values(config.exports as Record<string, string>)];
  for (const task of Object.values(config.tasks as Record<string, string>)) {
    named.push(...task.split(/\s+/).filter((word) => /^[\w./-]+\.ts$/.test(word)));
  }
  return [...new Set(named.map((f) => f.replace(/^\.\//, "")))];
}

if (import.meta.main) {
  const root = new URL("../../", import.meta.url);
  const graph = importGraph(root, entries(root));
  const cycles = findCycles(graph);
  console.log(`${graph.size} files reached from ${entries(root).join(", ")}`);
  for (const c of cycles) {
    console.log(
      `circle${c.typesOnly ? " (through an import of types only)" : ""}: ${
        [...c.files, c.files[0]].join(" -> ")
      }`,
    );
  }
  if (cycles.length === 0) console.log("no import circle");
  else Deno.exit(1);
}
