// The markup builder: text from input is escaped wherever it lands, nothing
// but the template tag makes markup, and no number that is not finite gets in.
import assert from "node:assert/strict";
import { concat, Markup, markup } from "../allocator/tools/markup.ts";

Deno.test("markup() escapes every interpolated string, in text and attributes", () => {
  const evil = `<img src=x onerror="alert('1')">&`;
  const text = String(markup`<p>${evil}</p>`);
  assert.equal(text, "<p>&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;</p>");
  const attribute = String(markup`<g data-x="${evil}" data-y='${evil}'>`);
  assert.doesNotMatch(attribute.slice(3, -1), /[<>]/);
  assert.equal((attribute.match(/"/g) ?? []).length, 2, "only the template's own quotes");
  assert.equal((attribute.match(/'/g) ?? []).length, 2);
});

Deno.test("markup() passes markup through, joins lists, leaves out null, undefined and false", () => {
  const inner = markup`<b>${"x<y"}</b>`;
  assert.equal(String(markup`<p>${inner}</p>`), "<p><b>x&lt;y</b></p>");
  assert.equal(String(markup`${[inner, "<", [inner]]}`), "<b>x&lt;y</b>&lt;<b>x&lt;y</b>");
  assert.equal(String(markup`a${null}${undefined}${false}b`), "ab");
  assert.equal(String(concat(inner, "&", inner)), "<b>x&lt;y</b>&amp;<b>x&lt;y</b>");
});

Deno.test("markup() writes numbers exactly or to one decimal, and refuses NaN and Infinity", () => {
  assert.equal(String(markup`${12}|${12.345}|${-0.04}|${2 ** 53}`), "12|12.3|0|9007199254740992");
  for (const bad of [NaN, Infinity, -Infinity]) {
    assert.throws(
      () => markup`<line x1="${bad}"/>`,
      /Cannot write .* into markup: numbers must be finite/,
    );
  }
});

Deno.test("markup() is the only way to make Markup", () => {
  assert.throws(() => new Markup(Symbol("markup"), "<script>"), TypeError);
  const forged = Object.assign(["<script>alert(1)</script>"], { raw: ["x"] });
  assert.throws(() => markup(forged as unknown as TemplateStringsArray), /template tag/);
  assert.throws(() => markup`${{} as unknown as string}`, /Cannot write a object into markup/);
  assert.throws(() => markup`${(() => "<b>") as unknown as string}`, TypeError);
});
