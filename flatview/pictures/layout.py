"""Where everything of a :class:`~flatview.pictures.model.Picture` is drawn.

The SVG and HTML renderers draw this geometry as it is, and the browser tests look up
the pixel of a page here, so a picture and its test cannot drift apart.

A BAR's rows share one horizontal axis built from the union of their run edges: each
span between two edges gets width in proportion to its pages, but never less than
``MIN_W`` pixels, so a single lost page in a 64 GiB BAR stays visible (the axis then
says it is not to scale).  The address map overview is log-scale: ``log2(1 + address)``.
"""

from __future__ import annotations

import bisect
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

from .model import KINDS, STATES, BarBlock, MapView, Picture, Row, size_text

__all__ = ["WIDTH", "Box", "Layout", "Line", "Text", "layout", "map_layout"]

WIDTH = 1000
X0 = 170  # left edge of the page rows (labels to its left)
X1 = WIDTH - 20
MIN_W = 6.0
ROW_H = 18
CHANGE = {"lost-since": "#c2255c", "gained": "#0ca678"}
MARK_COLOUR = {"msix-table": STATES["msix-table"][0], "msix-pba": STATES["msix-pba"][0]}
MARK_TEXT = {"msix-table": "table", "msix-pba": "PBA"}


@dataclass(frozen=True, slots=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    fill: str
    cls: str  # "run state-direct", "mark", "range kind-ramd", ...
    title: str = ""
    stroke: str | None = None
    group: str = ""  # boxes of one BAR row: "DEVICE BARn PAGE ROW" (an SVG <g data-row>)


@dataclass(frozen=True, slots=True)
class Text:
    x: float
    y: float
    text: str
    size: int = 12
    cls: str = "fg"
    anchor: str = "start"
    bold: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    cls: str = "axis"


@dataclass(slots=True)
class Layout:
    width: int
    height: float = 0
    boxes: list[Box] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    # (device, BAR, page size, row label) -> [(first page, page count, box)] in page order
    rows: dict[tuple[str, int, int, str], list[tuple[int, int, Box]]] = field(default_factory=dict)
    # map title -> (y of its overview strip, log2 of its end)
    maps: dict[str, tuple[float, float]] = field(default_factory=dict)

    def page_box(self, device: str, bar: int, page_size: int, row: str, page: int) -> Box:
        """The box that draws page number ``page`` of a BAR row."""
        runs = self.rows[(device, bar, page_size, row)]
        i = bisect.bisect_right([r[0] for r in runs], page) - 1
        start, count, box = runs[i]
        if not start <= page < start + count:
            raise KeyError(f"page {page} not in row {row!r}")
        return box


class _Scale:
    """Page number -> x: piecewise linear over the spans between run edges."""

    def __init__(self, edges: Sequence[int], x0: float, x1: float) -> None:
        self.edges = list(edges)
        counts = [b - a for a, b in zip(self.edges, self.edges[1:], strict=False)]
        widths = _widths(counts, x1 - x0)
        self.xs = [x0]
        for w in widths:
            self.xs.append(self.xs[-1] + w)
        total = sum(counts) or 1
        self.linear = all(
            abs(w - (x1 - x0) * c / total) < 0.5 for w, c in zip(widths, counts, strict=True)
        )

    def x(self, page: float) -> float:
        i = min(max(bisect.bisect_right(self.edges, page) - 1, 0), len(self.edges) - 2)
        a, b = self.edges[i], self.edges[i + 1]
        return self.xs[i] + (self.xs[i + 1] - self.xs[i]) * (page - a) / (b - a)


def _widths(counts: Sequence[int], room: float) -> list[float]:
    """Proportional widths with a floor of MIN_W (or an equal share if that is less)."""
    floor = min(MIN_W, room / max(len(counts), 1))
    fixed: set[int] = set()
    while True:
        free = room - floor * len(fixed)
        rest = sum(c for i, c in enumerate(counts) if i not in fixed) or 1
        widths = [floor if i in fixed else free * c / rest for i, c in enumerate(counts)]
        small = {i for i, w in enumerate(widths) if w < floor and i not in fixed}
        if not small:
            return widths
        fixed |= small


def _edges(block: BarBlock) -> list[int]:
    ps = block.page_size
    edges = {0}
    for row in block.rows:
        for run in (*row.runs, *row.lost_since, *row.gained):
            edges.update((run.start, run.end))
        for m in row.marks:
            edges.update((m.start // ps, -(-m.end // ps)))
    top = max(r.pages for r in block.rows)
    return sorted(e for e in edges if e <= top)


def _run_title(block: BarBlock, row: Row, start: int, count: int, state: str, why: str) -> str:
    ps = block.page_size
    lo, hi = start * ps - row.lead, (start + count) * ps - row.lead - 1
    pages = f"page {start}" if count == 1 else f"pages {start}-{start + count - 1}"
    text = f"{block.title} [{row.label}]\n{pages} (+{lo:#x}-+{hi:#x}): {state}"
    return text + (f"\n{why}" if why and why != state else "")


class _Builder:
    def __init__(self, pic: Picture) -> None:
        self.out = Layout(WIDTH)
        self.y = 0.0
        self.pic = pic

    def text(self, x: float, text: str, size: int = 12, **kw) -> None:
        self.out.texts.append(Text(x, self.y, text, size, **kw))

    def header(self) -> None:
        for part in textwrap.wrap(self.pic.title, 90, subsequent_indent="    "):
            self.y += 26
            self.text(12, part, 18, bold=True)
        for note in self.pic.notes:
            self.y += 16
            self.text(12, note, 11, cls="muted")
        self.y += 12
        legend = [(c, t) for c, t in STATES.values()]
        if any(r.lost_since or r.gained for p in self.pic.panels for b in p.blocks for r in b.rows):
            legend += [
                (CHANGE["lost-since"], "changed: direct before, not after (strip under the row)"),
                (CHANGE["gained"], "changed: direct after, not before"),
            ]
        for i, (colour, words) in enumerate(legend):
            col, line = i % 2, i // 2
            x, y = 12 + col * (WIDTH // 2), self.y + line * 18
            self.out.boxes.append(Box(x, y, 12, 12, colour, "legend"))
            self.out.texts.append(Text(x + 18, y + 10, words, 12))
        self.y += (len(legend) + 1) // 2 * 18 + 4
        self.text(
            12,
            "▼ marks where the MSI-X table and PBA sit (PBA?: place guessed, the input does not "
            "show it); hover for details",
            11,
            cls="muted",
        )
        self.y += 6

    def block(self, block: BarBlock) -> None:
        self.y += 20
        self.text(12, block.title, 13, bold=True)
        scale = _Scale(_edges(block), X0, X1)
        for row in block.rows:
            self.row(block, row, scale)
        self.axis(block, scale)

    def row(self, block: BarBlock, row: Row, scale: _Scale) -> None:
        ps = block.page_size
        top_byte = row.pages * ps
        marks = [m for m in row.marks if m.start < top_byte]  # relocation space: no pages
        self.y += 20 if marks else 4  # room for the marks above the row
        top = self.y
        label_end = -1e9
        for m in marks:
            x0, x1 = scale.x(m.start / ps), scale.x(min(m.end, top_byte) / ps)
            size = m.end - m.start
            tip = f"{m.what} +{m.start - row.lead:#x}-+{m.end - row.lead - 1:#x} ({size} bytes)"
            if m.guessed:
                tip += (
                    "\nplace guessed (the dump does not show it): give lspci -vvv for the real one"
                )
            word = MARK_TEXT[m.what] + ("?" if m.guessed else "")
            self.out.boxes.append(
                Box(x0, top - 5, max(x1 - x0, 2), 4, MARK_COLOUR[m.what], "mark", tip)
            )
            if x0 - label_end < 8:  # too close to the last label: extend it
                last = self.out.texts.pop()
                self.out.texts.append(Text(last.x, last.y, f"{last.text}, {word}", 10, "muted"))
            else:
                self.out.texts.append(Text(x0, top - 7, "▼ " + word, 10, "muted"))
            label_end = self.out.texts[-1].x + 6 * len(self.out.texts[-1].text)
        runs = []
        group = f"{block.device} BAR{block.index} {size_text(ps)} {row.label}"
        for run in row.runs:
            x0, x1 = scale.x(run.start), scale.x(run.end)
            title = _run_title(block, row, run.start, run.count, run.state, run.why)
            state = f"run state-{run.state}"
            box = Box(x0, top, x1 - x0, ROW_H, STATES[run.state][0], state, title, None, group)
            self.out.boxes.append(box)
            runs.append((run.start, run.count, box))
        self.out.rows[(block.device, block.index, ps, row.label)] = runs
        self.out.texts.append(Text(12, top + 13, row.label, 12, bold=True))
        for kind, changed in (("lost-since", row.lost_since), ("gained", row.gained)):
            for run in changed:
                x0, x1 = scale.x(run.start), scale.x(run.end)
                title = _run_title(block, row, run.start, run.count, run.state, "")
                y = top + ROW_H + 1
                cls = f"change {kind}"
                self.out.boxes.append(Box(x0, y, x1 - x0, 5, CHANGE[kind], cls, title, None, group))
        self.y = top + ROW_H + 17
        self.text(X0, row.note, 11, cls="muted")

    def axis(self, block: BarBlock, scale: _Scale) -> None:
        ps = block.page_size
        lead = block.rows[0].lead
        self.y += 6
        y = self.y
        self.out.lines.append(Line(X0, y, X1, y))
        last = -1e9
        for i, e in enumerate(scale.edges):
            x = scale.xs[i]
            self.out.lines.append(Line(x, y, x, y + 4))
            at_end = i == len(scale.edges) - 1
            if x - last < 64 and not at_end:
                continue
            if at_end and x - last < 64 and last > X0:
                self.out.texts.pop()
            off = max(e * ps - lead, 0)
            anchor = "end" if at_end else "start" if i == 0 else "middle"
            self.out.texts.append(Text(x, y + 15, f"+{off:#x}", 10, "muted", anchor))
            last = x
        end = lead + block.size
        if end < scale.edges[-1] * ps:  # a BAR smaller than a page: where it ends
            x = scale.x(end / ps)
            self.out.lines.append(Line(x, y - 6, x, y + 18))
            self.out.texts.append(Text(x + 3, y + 27, f"BAR end +{block.size:#x}", 10, "muted"))
            self.y += 12
        if not scale.linear:
            self.y += 28
            self.text(
                X1,
                "axis not to scale: short runs widened to stay visible",
                10,
                cls="muted",
                anchor="end",
            )
        else:
            self.y += 18

    def panel(self, i: int) -> None:
        p = self.pic.panels[i]
        self.y += 10
        self.out.lines.append(Line(12, self.y, WIDTH - 12, self.y, "rule"))
        for part in textwrap.wrap(p.title, 110, subsequent_indent="    "):
            self.y += 20
            self.text(12, part, 15, bold=True)
        for line in p.lines:
            for part in textwrap.wrap(line, 150, subsequent_indent="    "):
                self.y += 16
                self.text(12, part, 12)
        for b in p.blocks:
            self.block(b)
        self.y += 6

    def overview(self, view: MapView) -> None:
        """A log-scale strip of one address map."""
        self.y += 24
        self.text(12, view.title, 13, bold=True)
        self.y += 8
        top = self.y
        hi = max(r.end for r in view.ranges)
        span = math.log2(1 + hi)
        self.out.maps[view.title] = (top, span)

        def x(a: int) -> float:
            return X0 + (X1 - X0) * math.log2(1 + a) / span

        for r in view.ranges:
            x0, x1 = x(r.start), x(r.end)
            tip = (
                f"{r.name}\n{r.start:#018x}-{r.end - 1:#018x} ({size_text(r.end - r.start)})\n"
                f"{r.type} · priority {r.priority} · owner {r.owner}"
                + (f"\nchanged: {r.changed}" if r.changed else "")
            )
            stroke = CHANGE["lost-since"] if r.changed else None
            colour = KINDS.get(r.type, KINDS["i/o"])
            self.out.boxes.append(
                Box(
                    x0,
                    top,
                    max(x1 - x0, 1),
                    22,
                    colour,
                    f"range kind-{r.type.replace('/', '')}",
                    tip,
                    stroke,
                )
            )
        self.out.texts.append(Text(12, top + 15, "log scale", 11, "muted"))
        self.y = top + 22
        self.out.lines.append(Line(X0, self.y + 2, X1, self.y + 2))
        for t in _log_ticks(hi):
            xt = x(t)
            self.out.lines.append(Line(xt, self.y + 2, xt, self.y + 6))
            self.out.texts.append(
                Text(xt, self.y + 17, size_text(t) if t else "0", 10, "muted", "middle")
            )
        self.y += 20

    def map_legend(self) -> None:
        self.y += 20
        x = 12.0
        self.text(x, "address map:", 12, bold=True)
        x += 100
        for kind, colour in KINDS.items():
            self.out.boxes.append(Box(x, self.y - 10, 12, 12, colour, "legend"))
            self.out.texts.append(Text(x + 16, self.y, kind, 12))
            x += 70


def map_layout(view: MapView) -> Layout:
    """One address map's log-scale overview on its own (the HTML zooms into it)."""
    b = _Builder(Picture(view.title, ()))
    b.overview(view)
    b.out.height = math.ceil(b.y + 8)
    return b.out


def _log_ticks(hi: int) -> list[int]:
    ticks = [0] + [1 << s for s in (10, 20, 30, 32, 40, 50, 60) if 1 << s <= hi]
    return ticks


def layout(pic: Picture, maps: str = "none") -> Layout:
    """Geometry of a picture.  ``maps``: "none", "system" (the first map with the
    ``memory`` address space) or "all" overviews of the address maps."""
    b = _Builder(pic)
    b.header()
    for i in range(len(pic.panels)):
        b.panel(i)
    chosen: list[MapView] = []
    if maps == "all":
        chosen = list(pic.maps)
    elif maps == "system" and pic.maps:
        chosen = [
            next(
                (m for m in pic.maps if "memory" in m.title.split(": ")[-1].split(", ")),
                pic.maps[0],
            )
        ]
    if chosen:
        b.map_legend()
        for m in chosen:
            b.overview(m)
    b.out.height = math.ceil(b.y + 16)
    return b.out
