// No function in the package takes more than 5 positional parameters: past
// that, a call is a row of values to match by position, and an options record
// says what each one is. The scanner reads declarations (functions, methods,
// arrow functions, function types) with comments, strings and regular
// expressions blanked, and counts each parameter list's top-level entries.
import assert from "node:assert/strict";

/** The most positional parameters a function may take. */
const MAX_PARAMS = 5;

/** A parameter list found: its line, the name before it (if any) and its entry count. */
interface ParamList {
  line: number;
  name: string;
  count: number;
}

/** Tokens after which a `/` starts a regular expression rather than a division. */
const BEFORE_REGEX = /(?:^|[(,=:[!&|?{};+\-*%<>~^]|\breturn|\btypeof|\bcase|\bof|\bin)\s*$/;

/**
 * `source` with comments, string and template text and regular expressions
 * replaced by spaces (newlines kept, so lines still count); the code inside
 * a template's `${…}` stays.
 */
function blanked(source: string): string {
  const out = source.split("");
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n") out[k] = " ";
  };
  // Each open template literal's brace depth at its `${`: a `}` at that depth resumes it.
  const templates: number[] = [];
  let depth = 0;
  let i = 0;
  const templateText = () => {
    // From just after a backtick or a `}` that closes `${`, to the closing backtick or `${`.
    const start = i;
    while (i < source.length && source[i] !== "`") {
      if (source[i] === "\\") i += 2;
      else if (source[i] === "$" && source[i + 1] === "{") {
        blank(start, i);
        templates.push(depth);
        depth++;
        i += 2;
        return;
      } else i++;
    }
    blank(start, i);
    i++;
  };
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      const end = source.indexOf("\n", i);
      const stop = end < 0 ? source.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === '"' || c === "'") {
      const start = i++;
      while (i < source.length && source[i] !== c && source[i] !== "\n") {
        i += source[i] === "\\" ? 2 : 1;
      }
      blank(start + 1, i);
      i++;
    } else if (c === "`") {
      i++;
      templateText();
    } else if (c === "/" && BEFORE_REGEX.test(source.slice(Math.max(0, i - 12), i))) {
      const start = i++;
      let inClass = false;
      while (i < source.length && source[i] !== "\n" && (inClass || source[i] !== "/")) {
        if (source[i] === "\\") i++;
        else if (source[i] === "[") inClass = true;
        else if (source[i] === "]") inClass = false;
        i++;
      }
      blank(start + 1, i);
      i++;
    } else if (c === "{") {
      depth++;
      i++;
    } else if (c === "}") {
      depth--;
      i++;
      if (templates.length > 0 && templates[templates.length - 1] === depth) {
        templates.pop();
        templateText();
      }
    } else i++;
  }
  return out.join("");
}

const OPEN: Record<string, string> = { "(": ")", "[": "]", "{": "}", "<": ">" };

/**
 * Where the bracket at `open` closes, and its top-level entries (split at
 * commas); `=>` is no angle bracket.
 */
function group(code: string, open: number): { close: number; entries: string[] } {
  const stack: string[] = [];
  const entries: string[] = [];
  let start = open + 1;
  for (let i = open; i < code.length; i++) {
    const c = code[i];
    if (c === "=" && code[i + 1] === ">") {
      i++;
      continue;
    }
    if (c in OPEN) {
      stack.push(OPEN[c]);
    } else if (c === stack[stack.length - 1]) {
      stack.pop();
      if (stack.length === 0) {
        entries.push(code.slice(start, i));
        return { close: i, entries: entries.filter((e) => e.trim() !== "") };
      }
    } else if (c === "," && stack.length === 1) {
      entries.push(code.slice(start, i));
      start = i + 1;
    }
  }
  return { close: code.length, entries };
}

/** After a `)` at `close`: whether a return type (if any) and then `=>` follow. */
function arrowFollows(code: string, close: number): boolean {
  let i = close + 1;
  while (/\s/.test(code[i] ?? "")) i++;
  if (code.startsWith("=>", i)) return true;
  if (code[i] !== ":") return false;
  // A return type: brackets nest; at depth 0, `=>` ends it, as an arrow function's.
  let depth = 0;
  for (i++; i < code.length; i++) {
    const c = code[i];
    if (c === "=" && code[i + 1] === ">") {
      if (depth === 0) return true;
      i++;
    } else if ("([{<".includes(c)) depth++;
    else if (")]}>".includes(c)) {
      if (--depth < 0) return false;
    } else if (depth === 0 && ";,=\n".includes(c)) {
      // A line break at depth 0 ends the type unless the next line goes on with it.
      if (c !== "\n" || !/^\s*[|&]/.test(code.slice(i + 1, i + 40))) return false;
    }
  }
  return false;
}

/** Statements whose parentheses hold no parameters. */
const KEYWORDS = new Set(["if", "for", "while", "switch", "catch", "with", "return", "await"]);

/** A function's or method's head just before `(`: modifiers, a name, type parameters. */
const FUNCTION_HEAD = /\bfunction\b\s*\*?\s*([\w$]*)\s*$/;
const METHOD_HEAD =
  /(?:^|[{,])[ \t]*(?:(?:static|async|get|set|public|private|protected|readonly|override|abstract)\s+)*\*?\s*(#?[\w$]+|\[[^\]\n]*\])\??\s*$/;

/** `head` without the type parameters it ends with (`name<T extends U<V>>` → `name`). */
function withoutTypeParams(head: string): string {
  const end = head.trimEnd();
  if (!end.endsWith(">")) return head;
  let depth = 0;
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] === ">" && end[i - 1] !== "=") depth++;
    else if (end[i] === "<" && --depth === 0) return end.slice(0, i);
  }
  return head;
}

/** Every parameter list in `source`, with how many entries it has. */
function paramLists(source: string): ParamList[] {
  const code = blanked(source);
  const found: ParamList[] = [];
  for (let open = code.indexOf("("); open >= 0; open = code.indexOf("(", open + 1)) {
    const { close, entries } = group(code, open);
    const before = withoutTypeParams(code.slice(Math.max(0, open - 400), open));
    const head = before.slice(before.lastIndexOf("\n") + 1);
    let name: string | null = null;
    const fn = FUNCTION_HEAD.exec(before);
    const method = METHOD_HEAD.exec(head);
    let after = close + 1;
    while (/\s/.test(code[after] ?? "")) after++;
    if (fn) name = fn[1] || "(anonymous)";
    else if (method && !KEYWORDS.has(method[1]) && (code[after] === ":" || code[after] === "{")) {
      name = method[1];
    } else if (arrowFollows(code, close)) name = "(arrow)";
    if (name === null) continue;
    const line = source.slice(0, open).split("\n").length;
    found.push({ line, name, count: entries.length });
  }
  return found;
}

/** The `.ts` files under `dir` (a path from the repository root), sorted. */
function tsFiles(root: URL, dir: string): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(new URL(dir, root))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...tsFiles(root, path));
    else if (entry.isFile && entry.name.endsWith(".ts")) files.push(path);
  }
  return files.sort();
}

/** Each `file:line name count` of a list longer than {@linkcode MAX_PARAMS}. */
function tooLong(file: string, source: string): string[] {
  return paramLists(source).filter((p) => p.count > MAX_PARAMS)
    .map((p) => `${file}:${p.line} ${p.name} ${p.count}`);
}

Deno.test("paramLists() counts the parameters of every kind of declaration, and nothing else", () => {
  const source = `
export async function load<T extends Map<string, Set<number>>>(a: T, { b, c }: Opts = {}, ...rest: number[]) {}
function* walk(tree: Map<string, [number, number]>, visit: (x: number, y: number) => void) {}
class K {
  static #make(a: number, b = f(1, 2, 3)): void {}
  get size(): number { return 0; }
  *[Symbol.iterator](): Iterator<number> {}
  constructor(private readonly a: string, b?: number,) {}
}
interface I {
  run(a: number, b: number): Promise<Record<string, number>>;
}
const add = (a: number, b: number): number => a + b;
const cb = async (x) => x;
const o = { on(a, b) {}, off(c): void {}, x: g(h, i) };
type F = (a: string, b: string, c: string) => void;
if (ready(1, 2)) call(3, 4, 5, 6, 7, 8);
for (const [k, v] of m) {}
const s = \`(\${xs.map((x, i) => x + i)}\`; // (comment: function fake(a, b, c, d, e, f) {})
const r = /\\((a),(b)/g;
/** function doc(a, b, c, d, e, f) {} */
`;
  assert.deepEqual(
    paramLists(source).map((p) => `${p.line} ${p.name} ${p.count}`),
    [
      "2 load 3",
      "3 walk 2",
      "3 (arrow) 2",
      "5 #make 2",
      "6 size 0",
      "7 [Symbol.iterator] 0",
      "8 constructor 2",
      "11 run 2",
      "13 (arrow) 2",
      "14 (arrow) 1",
      "15 on 2",
      "15 off 1",
      "16 (arrow) 3",
      "19 (arrow) 2",
    ],
  );
});

Deno.test("no function in allocator/, kernels/ or mod.ts takes more than 5 positional parameters", () => {
  const root = new URL("../", import.meta.url);
  const files = ["mod.ts", ...tsFiles(root, "allocator"), ...tsFiles(root, "kernels")];
  assert.ok(files.includes("kernels/workers/pipeline_job.ts"), "nested folders are walked");
  const found = files.flatMap((f) => tooLong(f, Deno.readTextFileSync(new URL(f, root))));
  assert.deepEqual(found, [], "functions with more than 5 positional parameters (use a record)");
});
