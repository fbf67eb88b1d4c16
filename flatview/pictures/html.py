"""The HTML form: one self-contained file (no network, no CDN) that works offline, from
a mail attachment too.

First, at the top left of the page, the BAR pictures (the same SVG drawing as the SVG
form, with a row for every valid relocation option); then the guest physical address
map of each address space: a log-scale overview (drawn here, with hover text) and a
linear zoom into any range (a few lines of inline script: drag across the overview,
click a range, or type the bounds; a diff's map opens on the ranges that changed).
The template is a :class:`string.Template`; the map data rides along as JSON in a
``<script type="application/json">``.
"""

from __future__ import annotations

import html
import json
from string import Template

from .layout import X0, X1, Layout, map_layout
from .model import KINDS, MapView, Picture
from .svg import drawing

__all__ = ["to_html"]

_PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="color-scheme" content="light dark">
<title>$title</title>
<style>
:root { --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --rule: #d1d9e0; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --rule: #3d444d; }
}
body { margin: 0; background: var(--bg); color: var(--fg);
       font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
body > svg { display: block; }
section { padding: 0 12px 24px 12px; max-width: 1000px; }
h2 { font-size: 18px; margin: 24px 0 4px 0; }
p.hint { color: var(--muted); font-size: 13px; margin: 4px 0 8px 0; }
.map { border-top: 1px solid var(--rule); margin-top: 12px; }
.map svg { display: block; margin-left: -12px; }
.controls { font-size: 12px; color: var(--muted); margin: 4px 0; }
.controls input { font-family: monospace; width: 16ch; }
.zoom rect:hover { stroke: var(--fg); stroke-width: 1.5; }
.zoom text { font-size: 10px; fill: var(--fg); pointer-events: none; }
.zoom text.tick { fill: var(--muted); }
.sel { fill: var(--fg); opacity: 0.15; pointer-events: none; }
</style>
</head>
<body>
$pages
<section id="maps">
<h2>Guest physical address map</h2>
<p class="hint">$legend. Each strip is log-scale (every range visible); drag across it,
click a range or type the bounds to zoom in linearly below it. Hover a range for its
name, range, owner and priority.</p>
$maps
</section>
<script type="application/json" id="fv-data">$data</script>
<script>
$script
</script>
</body>
</html>
"""
)

# The zoom: reads the JSON above; addresses are hex strings (they exceed 2^53), parsed
# with BigInt for labels and as floats for positions.
_SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("fv-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const num = (h) => Number(BigInt(h));
  const hex = (v) => "0x" + BigInt(Math.max(0, Math.floor(v))).toString(16);
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  data.maps.forEach(function (m, i) {
    const box = document.getElementById("map-" + i);
    const over = box.querySelector("svg");
    const zoom = box.querySelector("svg.zoom");
    const from = box.querySelector("input.from");
    const to = box.querySelector("input.to");
    const ranges = m.ranges.map((r) => ({lo: num(r[0]), hi: num(r[1]), r: r}));
    const top = m.top, x0 = m.x0, x1 = m.x1, span = m.span;
    const addrAt = (x) => Math.pow(2, span * (x - x0) / (x1 - x0)) - 1;
    function draw(lo, hi) {
      if (!(hi > lo)) return;
      from.value = hex(lo); to.value = hex(hi);
      while (zoom.firstChild) zoom.removeChild(zoom.firstChild);
      const sx = (a) => x0 + (x1 - x0) * (a - lo) / (hi - lo);
      ranges.forEach(function (q) {
        if (q.hi <= lo || q.lo >= hi) return;
        const a = Math.max(sx(q.lo), x0), b = Math.min(sx(q.hi), x1);
        const r = q.r;
        const rect = el("rect", {x: a, y: 4, width: Math.max(b - a, 1), height: 30,
                                 fill: data.kinds[r[2]] || data.kinds["i/o"]}, zoom);
        if (r[6]) { rect.setAttribute("stroke", "#c2255c"); rect.setAttribute("stroke-width", 2); }
        el("title", {}, rect).textContent = r[3] + "\n" + r[0] + "-" + r[7] + "\n" + r[2] +
          " · priority " + r[5] + " · owner " + r[4] + (r[6] ? "\nchanged: " + r[6] : "");
        rect.addEventListener("click", () => draw(q.lo, q.hi));
        if (b - a > 70) {
          el("text", {x: a + 3, y: 23}, zoom).textContent = r[3].slice(0, Math.floor((b - a) / 6));
        }
      });
      for (let k = 0; k <= 4; k++) {
        const x = x0 + (x1 - x0) * k / 4;
        el("line", {x1: x, x2: x, y1: 36, y2: 40, stroke: "currentColor"}, zoom);
        el("text", {x: x, y: 52, "text-anchor": k ? (k === 4 ? "end" : "middle") : "start",
                    class: "tick"}, zoom).textContent = hex(lo + (hi - lo) * k / 4);
      }
    }
    let downAt = null, sel = null;
    over.addEventListener("mousedown", function (ev) {
      downAt = ev.offsetX;
      sel = el("rect", {x: downAt, y: top, width: 0, height: 22, class: "sel"}, over);
    });
    over.addEventListener("mousemove", function (ev) {
      if (downAt === null) return;
      sel.setAttribute("x", Math.min(downAt, ev.offsetX));
      sel.setAttribute("width", Math.abs(ev.offsetX - downAt));
    });
    over.addEventListener("mouseup", function (ev) {
      if (downAt === null) return;
      const a = Math.min(downAt, ev.offsetX), b = Math.max(downAt, ev.offsetX);
      over.removeChild(sel); downAt = null;
      if (b - a >= 3) { draw(addrAt(a), addrAt(b)); return; }
      const at = addrAt(a);
      const hit = ranges.find((q) => q.lo <= at && at < q.hi);
      if (hit) draw(hit.lo, hit.hi);
    });
    box.querySelector("button.go").addEventListener("click",
      () => draw(num(from.value), num(to.value)));
    box.querySelector("button.all").addEventListener("click", () => draw(0, m.end));
    if (m.focus) {  // a diff: open on the ranges that changed
      const lo = num(m.focus[0]), hi = num(m.focus[1]), pad = (hi - lo) / 4;
      draw(Math.max(0, lo - pad), Math.min(m.end, hi + pad));
    } else {
      draw(0, Math.min(m.end, 4294967296));
    }
  });
})();
"""


def _inline(lay: Layout, prefix: str) -> str:
    """The SVG element alone (no XML declaration), to sit inside the page."""
    text = drawing(lay, prefix).as_svg()
    return text[text.index("<svg") :]


def _map_block(i: int, view: MapView) -> tuple[str, dict]:
    lay = map_layout(view)
    top, span = lay.maps[view.title]
    block = (
        f'<div class="map" id="map-{i}">\n{_inline(lay, f"m{i}")}\n'
        '<div class="controls">zoom from <input class="from"> to <input class="to"> '
        '<button class="go">zoom</button> <button class="all">whole map</button></div>\n'
        f'<svg class="zoom" width="{lay.width}" height="58" '
        f'viewBox="0 0 {lay.width} 58" role="img" aria-label="linear zoom"></svg>\n</div>'
    )
    changed = [r for r in view.ranges if r.changed]
    focus = [hex(changed[0].start), hex(max(r.end for r in changed))] if changed else None
    data = {
        "focus": focus,
        "top": top,
        "span": span,
        "x0": X0,
        "x1": X1,
        "end": max(r.end for r in view.ranges),
        "ranges": [
            [
                hex(r.start),
                hex(r.end),
                r.type,
                r.name,
                r.owner,
                r.priority,
                r.changed,
                hex(r.end - 1),
            ]
            for r in view.ranges
        ],
    }
    return block, data


def to_html(pic: Picture, pages: Layout) -> str:
    """The page: ``pages`` (the layout of ``pic`` without maps) first, then the maps."""
    blocks, maps = [], []
    for i, view in enumerate(pic.maps):
        block, data = _map_block(i, view)
        blocks.append(block)
        maps.append(data)
    legend = ", ".join(
        f'<span style="color:{c}">■</span> {html.escape(k)}' for k, c in KINDS.items()
    )
    payload = json.dumps({"maps": maps, "kinds": KINDS}, separators=(",", ":"))
    return _PAGE.substitute(
        title=html.escape(pic.title),
        pages=_inline(pages, "pg"),
        legend=legend,
        maps="\n".join(blocks) or '<p class="hint">no flat view in the input</p>',
        data=payload.replace("</", "<\\/"),
        script=_SCRIPT,
    )
