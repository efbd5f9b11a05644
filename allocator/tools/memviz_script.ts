/**
 * The style and the script of the memory picture, written into the page as
 * they are: both are literal text of this file, with nothing from the input
 * in them. The script reads what it needs from `data-*` attributes (which
 * the `markup` tag escaped like any other text) and writes only with
 * `textContent` and `setAttribute`, so a label can never become markup.
 *
 * What the script does:
 * - shows the `data-tip` of what is under the pointer in a box that follows
 *   it; a click pins the box (and outlines the element), another unpins it;
 * - zooms every chart over time to a range dragged across one of them
 *   (their plots' view boxes narrow, the x axes are drawn anew); "whole
 *   trace" or a double click undoes it;
 * - moves the heap map to any moment: a slider, a click on a chart, a
 *   button for each peak, or `#at=X` at the end of the page's address
 *   (where the page carries the blocks' lives); `#zoom=A,B` zooms;
 * - writes the page's height into `<html data-height>` once laid out, for
 *   `memviz:png` to take a screenshot of exactly the page.
 *
 * Geometry it shares with `charts.ts` (the heap map's label width, row
 * heights, offset axis) comes from the heap map's attributes.
 *
 * @module
 */

import { type Markup, markup } from "./markup.ts";

/** The page's style sheet. */
export const PAGE_STYLE: Markup =
  markup`body { font: 14px/1.4 system-ui, sans-serif; color: #222; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 16px; margin: 22px 0 6px; }
h3 { font-size: 14px; margin: 14px 0 4px; }
table.facts { border-collapse: collapse; margin: 8px 0; }
table.facts td { padding: 2px 14px 2px 0; }
table.facts td:first-child { color: #555; }
table.list { border-collapse: collapse; margin: 4px 0; font-size: 13px; }
table.list th { text-align: left; color: #555; font-weight: 600; border-bottom: 1px solid #ccc; }
table.list td, table.list th { padding: 2px 12px 2px 0; }
table.list td { max-width: 420px; overflow-wrap: anywhere; }
.note { background: #fff6d5; padding: 6px 10px; border-radius: 4px; }
.about { color: #555; margin: 2px 0 6px; }
.site { border-bottom: 1px dotted #888; cursor: help; }
.legend span { display: inline-block; margin-right: 16px; white-space: nowrap; }
i.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 5px;
  vertical-align: -1px; border: 1px solid #0003; }
.controls { margin: 10px 0; }
.controls input { width: 420px; vertical-align: middle; }
.controls button { margin-left: 8px; }
svg text { font: 12px system-ui, sans-serif; fill: #333; }
svg .axis, svg .xaxis line { stroke: #999; }
svg .grid { stroke: #e4e4e4; }
svg .plot * { vector-effect: non-scaling-stroke; }
svg .mark { stroke: #c00; stroke-dasharray: 2 3; }
svg .mark.reserved { stroke: #5a3d9a; stroke-dasharray: 8 3; }
svg text.mark { fill: #c00; stroke: none; }
svg text.mark.reserved { fill: #5a3d9a; stroke: none; }
svg .outline { stroke: #222; stroke-width: 1.2; stroke-dasharray: 5 3; }
svg .top { stroke: #222; stroke-width: 0.8; }
svg .cursor { stroke: #000; stroke-width: 1.5; }
svg .select { fill: #4e79a733; stroke: #4e79a7; }
svg .row { fill: #ececec; stroke: #bbb; stroke-width: 0.5; }
svg .picked { stroke: #000; stroke-width: 2; }
#memviz-tip { position: fixed; z-index: 1; max-width: 480px; padding: 6px 9px; font-size: 12px;
  white-space: pre-line; background: #fffffff0; border: 1px solid #999; border-radius: 4px;
  box-shadow: 0 2px 8px #0003; pointer-events: none; }`;

/** The page's script: tips, zoom and the heap map's slider (see the module). */
export const PAGE_SCRIPT: Markup = markup`<script>
(function () {
  "use strict";
  var doc = document;
  // The SVG namespace, from an SVG element of the page (no address written here).
  var SVG = (doc.querySelector("svg") || doc.documentElement).namespaceURI;
  var tip = doc.getElementById("memviz-tip");
  var pinned = null;
  var dragged = false;

  function el(name, attrs, parent) {
    var e = doc.createElementNS(SVG, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    var u = 0;
    while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
    return u === 0 ? n + " B" : n.toFixed(2) + " " + units[u];
  }
  function nice(v) {
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var ms = [1, 2, 5];
    for (var i = 0; i < ms.length; i++) if (ms[i] * p >= v * (1 - 1e-9)) return ms[i] * p;
    return 10 * p;
  }
  function label(v, unit, step) {
    if (unit === "events") return Math.round(v).toLocaleString("en-US");
    var s = step >= 100 ? [0.001, "s"] : step >= 0.01 ? [1, "ms"] : [1000, "µs"];
    var d = Math.max(0, Math.min(6, -Math.floor(Math.log10(step * s[0]) + 1e-9)));
    return +(v * s[0]).toFixed(d) + " " + s[1];
  }
  function when(v, unit) {
    if (unit === "events") return "event " + Math.round(v).toLocaleString("en-US");
    return v >= 1000 ? +(v / 1000).toFixed(4) + " s" : +v.toFixed(3) + " ms";
  }

  // Tips: follow the pointer; a click pins one.
  function place(ev) {
    var x = ev.clientX + 14;
    var y = ev.clientY + 14;
    if (x + tip.offsetWidth > innerWidth - 8) x = Math.max(4, ev.clientX - tip.offsetWidth - 14);
    if (y + tip.offsetHeight > innerHeight - 8) y = Math.max(4, ev.clientY - tip.offsetHeight - 14);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  function show(target, ev) {
    tip.textContent = target.getAttribute("data-tip");
    tip.hidden = false;
    place(ev);
  }
  doc.addEventListener("mouseover", function (ev) {
    if (pinned) return;
    var t = ev.target.closest ? ev.target.closest("[data-tip]") : null;
    if (t) show(t, ev);
    else tip.hidden = true;
  });
  doc.addEventListener("mousemove", function (ev) {
    if (!pinned && !tip.hidden) place(ev);
  });
  doc.addEventListener("click", function (ev) {
    if (dragged) { dragged = false; return; }
    var t = ev.target.closest ? ev.target.closest("[data-tip]") : null;
    if (pinned) pinned.classList.remove("picked");
    if (t && t !== pinned) {
      pinned = t;
      t.classList.add("picked");
      show(t, ev);
    } else {
      pinned = null;
      tip.hidden = true;
    }
  });

  // Charts over time: one axis, zoomed together.
  var charts = [].slice.call(doc.querySelectorAll("svg.chart.time"));
  var controls = doc.getElementById("memviz-controls");
  if (charts.length > 0 && controls) controls.hidden = false;
  var first = charts[0];
  var from = first ? +first.getAttribute("data-from") : 0;
  var to = first ? +first.getAttribute("data-to") : 1;
  var unit = first ? first.getAttribute("data-unit") : "events";
  var W = first ? first.querySelector("svg.plot").width.baseVal.value : 1;
  var view = [0, W];
  function columnAt(plot, ev) {
    var r = plot.getBoundingClientRect();
    var c = view[0] + (ev.clientX - r.left) / r.width * (view[1] - view[0]);
    return Math.max(0, Math.min(W, c));
  }
  function xOfColumn(c) { return from + c / W * (to - from); }
  function drawAxis(chart) {
    var plot = chart.querySelector("svg.plot");
    var g = chart.querySelector("g.xaxis");
    var left = plot.x.baseVal.value;
    var bottom = plot.y.baseVal.value + plot.height.baseVal.value;
    var x0 = xOfColumn(view[0]);
    var x1 = xOfColumn(view[1]);
    var step = nice((x1 - x0) / 8);
    if (unit === "events") step = Math.max(1, step);
    while (g.firstChild) g.removeChild(g.firstChild);
    for (var k = Math.ceil(x0 / step), n = 0; k * step <= x1 && n <= 12; k++, n++) {
      var x = left + (k * step - x0) / (x1 - x0) * W;
      el("line", { x1: x, x2: x, y1: bottom, y2: bottom + 5 }, g);
      var t = el("text", { x: x, y: bottom + 18, "text-anchor": "middle" }, g);
      t.textContent = label(k * step, unit, step);
    }
  }
  function zoom(a, b) {
    view = [a, b];
    charts.forEach(function (chart) {
      var plot = chart.querySelector("svg.plot");
      plot.setAttribute("viewBox", a + " 0 " + (b - a) + " " + plot.height.baseVal.value);
      drawAxis(chart);
    });
  }
  charts.forEach(function (chart) {
    var plot = chart.querySelector("svg.plot");
    var select = plot.querySelector("rect.select");
    var start = null;
    plot.addEventListener("mousedown", function (ev) {
      start = columnAt(plot, ev);
      ev.preventDefault();
    });
    plot.addEventListener("mousemove", function (ev) {
      if (start === null) return;
      var c = columnAt(plot, ev);
      select.setAttribute("x", Math.min(start, c));
      select.setAttribute("width", Math.abs(c - start));
      select.setAttribute("visibility", "visible");
    });
    plot.addEventListener("mouseup", function (ev) {
      if (start === null) return;
      var c = columnAt(plot, ev);
      select.setAttribute("visibility", "hidden");
      if (Math.abs(c - start) > (view[1] - view[0]) / 200) {
        dragged = true;
        zoom(Math.min(start, c), Math.max(start, c));
      } else {
        moveTo(xOfColumn(c));
      }
      start = null;
    });
    plot.addEventListener("dblclick", function () { zoom(0, W); });
  });
  var unzoom = doc.getElementById("memviz-unzoom");
  if (unzoom) unzoom.addEventListener("click", function () { zoom(0, W); });

  // The heap map at any moment, from the blocks' lives.
  var data = doc.getElementById("memviz-data");
  var map = doc.querySelector("svg.heapmap");
  var slider = doc.getElementById("memviz-at");
  var readout = doc.getElementById("memviz-at-value");
  var mapWhen = doc.getElementById("memviz-map-when");
  var heaps = [], blocks = [], labels = [], pools = [], colors = [], moments = [], byHeap = [];
  if (data) {
    heaps = JSON.parse(data.getAttribute("data-heaps"));
    blocks = JSON.parse(data.getAttribute("data-blocks"));
    labels = JSON.parse(data.getAttribute("data-labels"));
    pools = JSON.parse(data.getAttribute("data-pools"));
    colors = JSON.parse(data.getAttribute("data-colors"));
    moments = JSON.parse(data.getAttribute("data-moments"));
    for (var h = 0; h < heaps.length / 6; h++) byHeap.push([]);
    for (var b = 0; b < blocks.length; b += 10) byHeap[blocks[b]].push(b);
    byHeap.forEach(function (list) {
      list.sort(function (p, q) { return blocks[p + 1] - blocks[q + 1] || blocks[p + 3] - blocks[q + 3]; });
    });
  }
  // Lives are event indices (-1: never); a moment x is after the last event at x or before.
  function before(t, e) { return t >= 0 && t <= e; }
  function eventAt(x) {
    var lo = 0, hi = moments.length / 2;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (moments[mid * 2] <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 ? moments[lo * 2 - 1] : -1;
  }
  function stateAt(b, e) {
    if (!before(blocks[b + 3], e) || before(blocks[b + 6], e)) return null;
    if (!before(blocks[b + 4], e)) return "live";
    if (!before(blocks[b + 5], e)) return "pending";
    return "cached";
  }
  function drawMap(e, x) {
    if (!data || !map) return;
    var rows = map.querySelector("g.rows");
    var maxHeaps = +data.getAttribute("data-max-heaps");
    var scale = +map.getAttribute("data-bytes");
    var labelW = 230;
    var barW = +map.getAttribute("width") - labelW - 24;
    var top = 22;
    var held = [];
    for (var h = 0; h < heaps.length / 6; h++) {
      if (before(heaps[h * 6 + 3], e) && !before(heaps[h * 6 + 4], e)) held.push(h);
    }
    held.sort(function (p, q) { return heaps[p * 6 + 1] - heaps[q * 6 + 1] || heaps[p * 6] - heaps[q * 6]; });
    held = held.slice(0, maxHeaps);
    var compact = held.length > 60;
    var rowH = compact ? 9 : 18;
    var gap = compact ? 2 : 6;
    var perByte = barW / scale;
    while (rows.firstChild) rows.removeChild(rows.firstChild);
    var allocated = 0, reserved = 0;
    held.forEach(function (h, r) {
      var y = top + r * (rowH + gap);
      var id = heaps[h * 6], pool = pools[heaps[h * 6 + 1]], size = heaps[h * 6 + 2];
      var split = before(heaps[h * 6 + 5], e);
      reserved += size;
      var g = el("g", { "class": "heap", "data-heap": id, "data-pool": pool, "data-size": size }, rows);
      var text = el("text", { x: labelW - 8, y: y + (compact ? 8 : 13), "text-anchor": "end" }, g);
      if (compact) text.setAttribute("style", "font-size:9px");
      text.textContent = "#" + id + " " + pool + " " + (split ? "heap" : "unsplit") + " " + bytes(size);
      el("rect", { "class": "row", x: labelW, y: y, width: Math.max(size * perByte, 1), height: rowH,
        "data-tip": "heap #" + id + ": " + pool + " pool, " + bytes(size) }, g);
      var run = null;
      function flush() {
        if (!run) return;
        rect(run.x, run.end - run.x, run.state, run.n + " " + run.state + " blocks, " + bytes(run.end - run.x));
        run = null;
      }
      function rect(offset, n, state, text) {
        var w = n * perByte;
        var a = { "class": "block " + state, x: labelW + offset * perByte, y: y, width: Math.max(w, 1.5),
          height: rowH, fill: state === "pending" ? "url(#pending-" + pool + ")" : colors[heaps[h * 6 + 1]],
          "data-tip": text };
        if (state === "cached") a["fill-opacity"] = 0.35;
        if (w >= 3) { a.stroke = "#fff"; a["stroke-width"] = 0.6; }
        el("rect", a, g);
      }
      byHeap[h].forEach(function (b) {
        var state = stateAt(b, e);
        if (!state) return;
        var offset = blocks[b + 1], n = blocks[b + 2];
        if (state === "live") allocated += n;
        if (n * perByte < 2) {
          if (run && run.state === state && run.end === offset) { run.end += n; run.n++; return; }
          flush();
          run = { x: offset, end: offset + n, state: state, n: 1 };
          return;
        }
        flush();
        var l = blocks[b + 9];
        rect(offset, n, state, "block #" + blocks[b + 7] + " " + state + ": " + bytes(n) + " at offset " +
          offset + " (requested " + blocks[b + 8] + " B" + (l >= 0 ? ", " + labels[l] : "") + ")");
      });
      flush();
    });
    var height = top + held.length * (rowH + gap) + 4;
    map.setAttribute("height", height);
    map.setAttribute("viewBox", "0 0 " + map.getAttribute("width") + " " + height);
    [].forEach.call(map.querySelectorAll("g.offsets line"), function (line) { line.setAttribute("y2", height - 4); });
    if (mapWhen) {
      mapWhen.textContent = "at " + when(x, unit) + ": " + bytes(allocated) + " allocated in " +
        bytes(reserved) + " reserved";
    }
  }
  function moveTo(x, e) {
    if (typeof e !== "number") e = eventAt(x);
    if (slider) slider.value = x;
    if (readout) readout.textContent = when(x, unit);
    charts.forEach(function (chart) {
      var line = chart.querySelector("line.cursor");
      var c = (x - from) / (to - from) * W;
      line.setAttribute("x1", c);
      line.setAttribute("x2", c);
      line.setAttribute("visibility", "visible");
    });
    drawMap(e, x);
  }
  if (slider) {
    slider.addEventListener("input", function () { moveTo(+slider.value); });
    if (readout) readout.textContent = when(+slider.value, unit);
  }
  if (controls) {
    [].forEach.call(controls.querySelectorAll("button[data-event]"), function (button) {
      button.addEventListener("click", function () {
        moveTo(+button.getAttribute("data-x"), +button.getAttribute("data-event"));
      });
    });
  }
  // A link may name a moment and a range: page.html#at=1234.5&zoom=1000,2000 opens the heap
  // map at 1234.5 and the charts on 1000 to 2000 (in the x axis's unit).
  location.hash.slice(1).split("&").forEach(function (part) {
    var kv = part.split("=");
    if (kv[0] === "at" && data && isFinite(+kv[1])) moveTo(+kv[1]);
    var range = kv[0] === "zoom" ? (kv[1] || "").split(",").map(Number) : [];
    if (range.length === 2 && range[0] < range[1] && first) {
      zoom(Math.max(0, (range[0] - from) / (to - from) * W), Math.min(W, (range[1] - from) / (to - from) * W));
    }
  });
  doc.documentElement.setAttribute("data-height", String(doc.documentElement.scrollHeight));
  doc.documentElement.setAttribute("data-ready", "1");
})();
</script>`;
