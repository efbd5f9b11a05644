/**
 * HTML and SVG built so that text cannot turn into markup: the only way to
 * make {@linkcode Markup} is the {@linkcode markup} template tag, whose literal
 * parts are our source code and whose every interpolated string is escaped.
 * There is no "raw" escape hatch, so a page built from `markup` cannot carry a
 * tag or attribute that came from its input. Interpolated numbers must be
 * finite: a NaN or Infinity coordinate is a bug, and fails loudly.
 *
 * @example
 * ```ts
 * import { markup } from "./markup.ts";
 * import assert from "node:assert/strict";
 *
 * const label = '<img src=x onerror="alert(1)">';
 * const row = markup`<text x="${12.345}">${label}</text>`;
 * assert.equal(
 *   String(row),
 *   '<text x="12.3">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</text>',
 * );
 * assert.equal(String(markup`<g>${[row, markup`<rect/>`]}</g>`).includes("<rect/>"), true);
 * ```
 *
 * @module
 */

/** Proof that a {@linkcode Markup} was made by the `markup` tag. */
const MADE_HERE = Symbol("markup");

/** A piece of HTML or SVG made by {@linkcode markup}: safe to write into a page as it is. */
export class Markup {
  readonly #text: string;

  /**
   * Only {@linkcode markup} makes markup.
   *
   * @param proof the module's own token
   * @param text the markup
   */
  constructor(proof: symbol, text: string) {
    if (proof !== MADE_HERE) throw new TypeError("Cannot make Markup: use the markup`…` tag");
    this.#text = text;
  }

  /** The markup's text. */
  toString(): string {
    return this.#text;
  }
}

/** What an `markup` template takes: markup, text (escaped), a finite number, a list, or nothing. */
export type MarkupValue =
  | Markup
  | string
  | number
  | null
  | undefined
  | false
  | readonly MarkupValue[];

/**
 * Writes a template as markup: strings are escaped for text and quoted
 * attribute values alike, numbers written with at most one decimal, lists
 * joined, `null`, `undefined` and `false` left out.
 *
 * @throws {TypeError} called other than as a template tag, or given a value of another type
 * @throws {Error} a number that is not finite
 */
export function markup(strings: TemplateStringsArray, ...values: MarkupValue[]): Markup {
  // A template's strings are frozen and carry `raw`: a hand-made array is not ours.
  if (!Object.isFrozen(strings) || !Array.isArray(strings.raw)) {
    throw new TypeError("markup is a template tag: markup`…`");
  }
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += write(values[i]) + strings[i + 1];
  return new Markup(MADE_HERE, out);
}

/**
 * Markup of several pieces in a row (`+` on markup would make a string, which
 * the next template would escape).
 *
 * @throws {TypeError} a value `markup` does not take
 * @throws {Error} a number that is not finite
 */
export function concat(...parts: MarkupValue[]): Markup {
  return markup`${parts}`;
}

function write(value: MarkupValue): string {
  if (value instanceof Markup) return value.toString();
  if (typeof value === "string") return escape(value);
  if (typeof value === "number") return number(value);
  if (value === null || value === undefined || value === false) return "";
  if (Array.isArray(value)) return value.map(write).join("");
  throw new TypeError(`Cannot write a ${typeof value} into markup`);
}

/**
 * Characters of a label (a call site, a user's name for a block) a page
 * shows, in text and tooltips alike: a label comes from the file drawn, and
 * a browser lays out one of a megabyte for minutes.
 */
export const MAX_LABEL_CHARS = 240;

/**
 * A label cut to {@linkcode MAX_LABEL_CHARS}, ending in "… (N more
 * characters)" when cut, so a page says that there was more.
 *
 * @example
 * ```ts
 * import { cutLabel, MAX_LABEL_CHARS } from "./markup.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(cutLabel("model.py:12 forward"), "model.py:12 forward");
 * const cut = cutLabel("x".repeat(2 ** 20));
 * assert.ok(cut.length < MAX_LABEL_CHARS + 40);
 * assert.match(cut, /^x+… \(1048336 more characters\)$/);
 * ```
 */
export function cutLabel(label: string): string {
  if (label.length <= MAX_LABEL_CHARS) return label;
  // Cut between UTF-16 halves of a character, the page would show a broken one.
  let end = MAX_LABEL_CHARS;
  const last = label.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${label.slice(0, end)}… (${label.length - end} more characters)`;
}

/** A number for a page: integers exactly, others to one decimal; never NaN or Infinity. */
function number(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`Cannot write ${v} into markup: numbers must be finite`);
  return String(Number.isInteger(v) ? v : Math.round(v * 10) / 10);
}

const ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}
