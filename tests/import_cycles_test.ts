// Import circles: the finder on made-up graphs and sources, then the package
// itself, walked from mod.ts and the files deno.json names.
import assert from "node:assert/strict";
import {
  entries,
  findCycles,
  type ImportGraph,
  importGraph,
  importsOf,
} from "../bench/commands/import_cycles.ts";

/** A graph from `from -> to` lines; `=>` marks an import of types only. */
function graphOf(lines: string[]): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const line of lines) {
    const [from, arrow, to] = line.split(" ");
    if (!graph.has(from)) graph.set(from, []);
    if (!graph.has(to)) graph.set(to, []);
    graph.get(from)!.push({ to, typeOnly: arrow === "=>" });
  }
  return graph;
}

Deno.test("findCycles() finds each circle once, marking those through a type import", () => {
  const graph = graphOf([
    "a -> b",
    "b -> c",
    "c -> a",
    "c -> d",
    "d -> e",
    "e => d",
    "f -> f",
    "g -> h",
    "h -> c",
  ]);
  assert.deepEqual(findCycles(graph), [
    { files: ["a", "b", "c"], typesOnly: false },
    { files: ["d", "e"], typesOnly: true },
    { files: ["f"], typesOnly: false },
  ]);
  assert.deepEqual(findCycles(graphOf(["a -> b", "b -> c", "a -> c"])), []);
});

Deno.test("importsOf() reads relative imports and re-exports, not doc examples", () => {
  const source = `/**
 * import { x } from "./example.ts";
 */
/*
import { y } from "./commented_out.ts";
*/
import { a,
  b } from "./a.ts";
import type { T } from "./t.ts";
import { type U, type V } from "./u.ts";
import { type W, w } from "./w.ts";
import "./side.ts";
import assert from "node:assert/strict";
export { c } from "../c.ts";
export type { D } from "./d.ts";
export const e = 1;
`;
  assert.deepEqual(importsOf(source), [
    { specifier: "./a.ts", typeOnly: false },
    { specifier: "./t.ts", typeOnly: true },
    { specifier: "./u.ts", typeOnly: true },
    { specifier: "./w.ts", typeOnly: false },
    { specifier: "./side.ts", typeOnly: false },
    { specifier: "../c.ts", typeOnly: false },
    { specifier: "./d.ts", typeOnly: true },
  ]);
});

Deno.test("the package has no import circle, not even one through types", () => {
  const root = new URL("../", import.meta.url);
  const graph = importGraph(root, entries(root));
  assert.ok(graph.has("kernels/workers/worker.ts"), "a Worker's script is walked");
  const circles = findCycles(graph).map((c) =>
    `${c.files.join(" -> ")}${c.typesOnly ? " (through types)" : ""}`
  );
  assert.deepEqual(circles, [], "import circles");
});
