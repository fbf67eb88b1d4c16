"""Pictures: a BAR's host pages at a glance, and the guest's memory map.

model.py says what is drawn (from the analyses' results), layout.py where, and svg.py
and html.py draw it.  :func:`advice_picture` and :func:`diff_picture` return the text
of a whole file.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..advisor import DeviceAdvice
from ..diff import DiffReport, Side
from ..errors import UsageError
from ..model import FlatView
from ..vfio.pci import PciDevice
from .html import to_html
from .layout import layout
from .model import Picture, from_advice, from_diff
from .svg import to_svg

__all__ = ["FORMATS", "advice_picture", "diff_picture", "map_picture", "render"]

FORMATS = ("svg", "html")


def render(pic_svg: Picture, pic_html: Picture, fmt: str) -> str:
    """The SVG form draws the system address map's overview under the BARs; the HTML
    form every address map, with zoom."""
    if fmt == "svg":
        return to_svg(layout(pic_svg, maps="system"))
    return to_html(pic_html, layout(pic_html))


def advice_picture(
    advice: Sequence[DeviceAdvice], views: Sequence[FlatView], title: str, fmt: str
) -> str:
    """The advisor's picture: the recommended option and ``off`` in SVG, every valid
    option in HTML."""
    small = from_advice(advice, views, title=title)
    full = from_advice(advice, views, title=title, every_option=True) if fmt == "html" else small
    return render(small, full, fmt)


def diff_picture(report: DiffReport, before: Side, after: Side, title: str, fmt: str) -> str:
    pic = from_diff(report, before, after, title=title)
    return render(pic, pic, fmt)


def map_picture(
    text: str,
    name: str,
    page_sizes: Sequence[int],
    devices: Sequence[str] = (),
    extra_pci: Sequence[PciDevice] = (),
    fmt: str = "svg",
) -> str:
    """``flatview map INPUT``: the input read once; an input with no assigned or MSI-X
    device gets its address maps alone."""
    from .. import api

    dumps, pci = api.inputs(text, name, extra_pci)
    m = api.machine(dumps, pci)
    advice: Sequence[DeviceAdvice] = []
    if m.facts or devices:
        advice, _ = api.advise_on(dumps, pci, page_sizes, devices=devices, name=name, compare=False)
    elif not m.views:
        raise UsageError(f"{name}: nothing to draw (no flat view, no device with MSI-X)")
    return advice_picture(advice, m.views, f"flatview map: {name}", fmt)
