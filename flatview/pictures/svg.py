"""A :class:`~flatview.pictures.layout.Layout` drawn as SVG with drawsvg.

drawsvg (pure Python, no dependencies for SVG output, maintained) builds the element
tree and escapes every text and attribute, so names from a dump (``<``, ``&``, quotes)
cannot break the file.  The colours of the text and background follow the viewer's
light or dark scheme (``prefers-color-scheme``); page colours are mid-tones that read
on both; viewers that ignore the stylesheet get the light scheme from the attributes.
"""

from __future__ import annotations

import drawsvg as draw

from .layout import Box, Layout

__all__ = ["STYLE", "to_svg"]

LIGHT = {"bg": "#ffffff", "fg": "#1f2328", "muted": "#59636e", "rule": "#d1d9e0"}
STYLE = """
svg { --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --rule: #d1d9e0; }
@media (prefers-color-scheme: dark) {
  svg { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --rule: #3d444d; }
}
.bg { fill: var(--bg); }
text { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
text.fg { fill: var(--fg); }
text.muted { fill: var(--muted); }
line.axis { stroke: var(--muted); }
line.rule { stroke: var(--rule); }
rect.run:hover, rect.range:hover { stroke: var(--fg); stroke-width: 1.5; }
"""


def drawing(lay: Layout, id_prefix: str = "fv") -> draw.Drawing:
    d = draw.Drawing(lay.width, lay.height, id_prefix=id_prefix)
    d.append_css(STYLE)
    d.append(draw.Rectangle(0, 0, lay.width, lay.height, fill=LIGHT["bg"], class_="bg"))
    for ln in lay.lines:
        d.append(draw.Line(ln.x1, ln.y1, ln.x2, ln.y2, stroke=LIGHT["muted"], class_=ln.cls))
    group: draw.Group | None = None
    for b in lay.boxes:
        if b.group and (group is None or group.args.get("data-row") != b.group):
            group = draw.Group(data_row=b.group)
            d.append(group)
        elif not b.group:
            group = None
        (group or d).append(_rect(b))
    for t in lay.texts:
        d.append(
            draw.Text(
                t.text,
                t.size,
                round(t.x, 2),
                round(t.y, 2),
                class_=t.cls,
                fill=LIGHT["fg" if t.cls == "fg" else "muted"],
                text_anchor=t.anchor,
                font_weight="bold" if t.bold else None,
            )
        )
    return d


def _rect(b: Box) -> draw.Rectangle:
    extra = {"stroke": b.stroke, "stroke_width": 2} if b.stroke else {}
    x, y, w = round(b.x, 2), round(b.y, 2), round(b.w, 2)
    r = draw.Rectangle(x, y, w, b.h, fill=b.fill, class_=b.cls, **extra)
    if b.title:
        r.append_title(b.title)
    return r


def to_svg(lay: Layout) -> str:
    """The whole SVG document."""
    return drawing(lay).as_svg()
