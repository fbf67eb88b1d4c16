"""`flatview map` and `gate --html`: the pictures, checked as XML and as a person sees them.

Inputs are the real VFIO samples (samples/vfio: QEMU 7.2 with three vfio-pci devices,
see samples/vfio/README.md), every real QEMU sample and the bundled seed.  Expected page
states come from the dump lines by arithmetic here: in q35-base, nvme 0000:00:03.0's BAR0
is mapped as ``BAR 0 mmaps[0]`` ramd ranges around an ``msix-table`` range.  The browser
tests render the files with Debian's chromium (headless) and read the colours at the
pixels where the layout puts a lost and a direct page.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flatview import api, cli
from flatview.model import FlatRange
from flatview.pages import bar_pages
from flatview.pictures.layout import layout
from flatview.pictures.model import (
    STATES,
    BarBlock,
    Panel,
    Picture,
    Row,
    from_advice,
    page_runs,
)
from flatview.pictures.svg import to_svg

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "samples" / "vfio" / "q35-base" / "info-mtree-f.txt"
NO_MMAP = REPO / "samples" / "vfio" / "q35-no-mmap" / "info-mtree-f.txt"
SVG = "{http://www.w3.org/2000/svg}"
NVME = "0000:00:03.0"
PAGE = 4096
LINE = re.compile(r"^ +([0-9a-f]{16})-([0-9a-f]{16}) \(prio -?\d+, ([a-z/]+)\): (.*?)\r?$")


def run(*args: str, cwd: Path = REPO):
    proc = subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stderr
    return proc


def nvme_bar0(path: Path) -> tuple[int, list[tuple[int, int, str]], tuple[int, int] | None]:
    """From the first flat view that shows it: nvme BAR0's base, its ranges and the
    msix-table range right inside it (all as [start, end) guest addresses)."""
    views: list[list[tuple[int, int, str, str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("FlatView #"):
            views.append([])
        m = LINE.match(line)
        if m:
            views[-1].append((int(m[1], 16), int(m[2], 16) + 1, m[3], m[4]))
    ranges = next(v for v in views if any(r[3].startswith(f"{NVME} BAR 0") for r in v))
    mine = [r for r in ranges if r[3].startswith(f"{NVME} BAR 0")]
    base = min(r[0] for r in mine)
    end = max(r[1] for r in mine)
    table = next(((s, e) for s, e, _, n in ranges if n == "msix-table" and base <= s < end), None)
    return base, [(s, e, t) for s, e, t, _ in mine], table


def expected_states(path: Path) -> dict[int, str]:
    """Each 4K page of nvme BAR0: direct when one ramd range covers it whole, 'shared'
    when the MSI-X table and device registers share it."""
    base, mine, table = nvme_bar0(path)
    end = max(e for _, e, _ in mine)
    out = {}
    for i in range((end - base) // PAGE):
        lo, hi = base + i * PAGE, base + (i + 1) * PAGE
        if any(t == "ramd" and s <= lo and hi <= e for s, e, t in mine):
            out[i] = "direct"
        elif table is not None and table[0] < hi and table[1] > lo:
            out[i] = "shared"
        else:
            out[i] = "trapped"
    return out


def runs_of(states: dict[int, str]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    for i in sorted(states):
        if out and out[-1][2] == states[i] and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1, states[i])
        else:
            out.append((i, 1, states[i]))
    return out


def svg_rows(text: str) -> dict[str, list[ET.Element]]:
    root = ET.fromstring(text.encode())
    return {
        g.get("data-row", ""): [r for r in g.iter(f"{SVG}rect") if "run" in r.get("class", "")]
        for g in root.iter(f"{SVG}g")
    }


# ------------------------------------------------------------------------ the model


def test_expected_states_are_what_the_sample_shows():
    # The arithmetic itself, on the sample: BAR0 of nvme is 16K, its table at +0x2000.
    base, _, table = nvme_bar0(BASE)
    assert table is not None and (table[0] - base) // PAGE == 2
    assert expected_states(BASE) == {0: "direct", 1: "direct", 2: "shared", 3: "direct"}


def test_runs_from_the_advisor_match_the_dump():
    text = BASE.read_text()
    advice, _ = api.advise(text, str(BASE), [PAGE], devices=[NVME])
    bar0 = next(b for b in advice[0].observed if b.index == 0)
    got = [(r.start, r.count, r.state) for r in page_runs(bar0)]
    assert got == runs_of(expected_states(BASE))


def test_a_64g_bar_is_three_runs_and_three_svg_elements():
    """16M pages at 4K; the MSI-X table (2048 vectors: 32K) at +32G: the pages before and
    after it are direct, the table's 8 pages hold nothing else, so they are msix-table."""
    g, size, t_off, t_size = 0x80_0000_0000, 64 << 30, 32 << 30, 2048 * 16
    ranges = (
        FlatRange(g, t_off, 0, "ramd", "dev BAR 0 mmaps[0]"),
        FlatRange(g + t_off, t_size, 0, "i/o", "msix-table"),
        FlatRange(g + t_off + t_size, size - t_off - t_size, 0, "ramd", "dev BAR 0 mmaps[0]"),
    )
    bp = bar_pages(ranges, index=0, guest_base=g, size=size, guest_size=size, page=PAGE)
    runs = page_runs(bp)
    pages = size // PAGE
    first, table_pages = t_off // PAGE, t_size // PAGE
    want = [
        (0, first, "direct"),
        (first, table_pages, "msix-table"),
        (first + table_pages, pages - first - table_pages, "direct"),
    ]
    assert [(r.start, r.count, r.state) for r in runs] == want
    block = BarBlock("dev", 0, size, PAGE, "dev BAR0 64G", (Row("dump", runs),))
    text = to_svg(layout(Picture("t", (Panel("p", (), (block,)),))))
    rects = svg_rows(text)["dev BAR0 4K dump"]
    assert len(rects) == 3
    assert [r.get("fill") for r in rects] == [STATES[s][0] for _, _, s in want]
    # The table's 8 pages of 16M are drawn, however thin that would be to scale.
    assert float(rects[1].get("width")) >= 1


# ------------------------------------------------------------------------- the CLI


def test_map_svg_has_one_element_per_page_run(tmp_path):
    out = tmp_path / "base.svg"
    proc = run("map", str(BASE), "-o", str(out), "--device", NVME)
    assert proc.returncode == 0, proc.stderr
    rows = svg_rows(out.read_text())
    want = runs_of(expected_states(BASE))
    rects = rows[f"{NVME} BAR0 4K dump"]
    assert len(rects) == len(want)
    assert [r.get("class") for r in rects] == [f"run state-{s}" for _, _, s in want]
    # `off` (simulated) agrees with the dump here; the recommended option maps all 4 pages.
    assert len(rows[f"{NVME} BAR0 4K off"]) == len(want)
    best = [k for k in rows if k.startswith(f"{NVME} BAR0 4K ") and "★" in k]
    assert len(best) == 1 and [r.get("class") for r in rows[best[0]]] == ["run state-direct"]


SAMPLES = sorted(
    p.relative_to(REPO)
    for p in [
        *REPO.glob("samples/qemu/*/info-mtree*.txt"),
        *REPO.glob("samples/vfio/*/info-mtree*.txt"),
    ]
    if "-d" not in p.name and "-D" not in p.name
)


@pytest.mark.parametrize("sample", SAMPLES, ids=str)
def test_map_works_on_every_real_sample(sample, tmp_path, capsys):
    out = tmp_path / "map.svg"
    assert cli.main(["map", str(REPO / sample), "-o", str(out)]) == 0, capsys.readouterr().err
    root = ET.fromstring(out.read_bytes())
    ranges = [r for r in root.iter(f"{SVG}rect") if "range" in r.get("class", "")]
    assert ranges, "the system address map is drawn"


def test_map_on_the_bundled_sample_html_is_self_contained(tmp_path):
    out = tmp_path / "seed.html"
    proc = run("map", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    # The SAS3008 at 64K: BAR1 (64K) holds the MSI-X table; the advisor's choice is starred.
    advice, _ = api.advise(*api.bundled_sample(), [64 << 10])
    best = advice[0].recommended
    assert best is not None and best.option not in (None, "off")
    assert "0001:03:00.0 BAR1 64K dump" in page and f'BAR1 64K {best.option} ★"' in page
    assert not re.search(r"<(?:link|img|iframe)\b|\bsrc=|url\(|https?://(?!www\.w3\.org)", page)


def test_map_rejects_an_unknown_format_in_one_line(tmp_path):
    proc = run("map", str(BASE), "-o", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "x.png" in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_map_before_after_marks_the_pages_that_changed(tmp_path):
    out = tmp_path / "diff.svg"
    proc = run("map", str(BASE), str(NO_MMAP), "-o", str(out), "--device", NVME)
    assert proc.returncode == 0, proc.stderr
    root = ET.fromstring(out.read_bytes())
    after = next(g for g in root.iter(f"{SVG}g") if g.get("data-row") == f"{NVME} BAR0 4K after")
    strips = [r for r in after.iter(f"{SVG}rect") if "lost-since" in r.get("class", "")]
    # Direct before (by the dump's arithmetic), no ramd at all after (x-no-mmap=on).
    was_direct = runs_of({i: s for i, s in expected_states(BASE).items() if s == "direct"})
    assert not any(s == "direct" for s in expected_states(NO_MMAP).values())
    assert len(strips) == len(was_direct)


def test_gate_html_attaches_the_picture_to_a_failing_gate(tmp_path):
    out = tmp_path / "gate.html"
    proc = run("gate", str(BASE), str(NO_MMAP), "--html", str(out))
    assert proc.returncode == 1
    page = out.read_text()
    assert "flatview gate (FAIL" in page and f"{NVME} BAR0 4K after" in page


# ---------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)


def screenshot(path: Path, width: int, height: int, tmp: Path) -> Path:
    png = tmp / (path.name + ".png")
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp / 'profile'}",
            "--force-device-scale-factor=1",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            path.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return png


def colour_at(png: Path, x: float, y: float) -> tuple[int, int, int]:
    from PIL import Image

    with Image.open(png) as im:
        return im.convert("RGB").getpixel((int(x), int(y)))


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def close(a, b) -> bool:
    return all(abs(p - q) <= 6 for p, q in zip(a, b, strict=True))


@needs_chromium
@pytest.mark.parametrize("fmt", ["svg", "html"])
def test_the_browser_shows_the_lost_and_the_direct_page(fmt, tmp_path):
    out = tmp_path / f"base.{fmt}"
    proc = run("map", str(BASE), "-o", str(out), "--device", NVME)
    assert proc.returncode == 0, proc.stderr
    # The same picture the command drew, laid out the same way: where is each page?
    text = BASE.read_text()
    advice, _ = api.advise(text, str(BASE), [PAGE], devices=[NVME])
    m = api.machine(*api.inputs(text, str(BASE)))
    pic = from_advice(advice, m.views, title=f"flatview map: {BASE}", every_option=fmt == "html")
    lay = layout(pic, maps="system" if fmt == "svg" else "none")
    png = screenshot(out, lay.width, int(lay.height) + 10, tmp_path)
    states = expected_states(BASE)
    lost = next(i for i, s in states.items() if s != "direct")
    direct = next(i for i, s in states.items() if s == "direct")
    for page in (lost, direct):
        box = lay.page_box(NVME, 0, PAGE, "dump", page)
        # the middle of this page's share of its run
        run_start = lay.rows[(NVME, 0, PAGE, "dump")]
        first, count, _ = next(r for r in run_start if r[2] is box)
        x = box.x + box.w * (page - first + 0.5) / count
        got = colour_at(png, x, box.y + box.h / 2)
        assert close(got, rgb(STATES[states[page]][0])), (page, states[page], got)


def test_the_pba_mark_comes_from_lspci_and_is_flagged_as_a_guess_without_it(tmp_path, capsys):
    """vfio-pci disables QEMU's msix-pba, so the dump alone does not show the PBA."""
    lspci = BASE.parent / "l1-lspci-vvv.txt"
    pba = re.search(r"PBA: BAR=0 offset=([0-9a-f]+)", lspci.read_text())
    assert pba is not None
    marks = {}
    for name, extra in (("guess", []), ("lspci", ["--lspci", str(lspci)])):
        out = tmp_path / f"{name}.svg"
        args = ["map", str(BASE), "-o", str(out), "--device", NVME, *extra]
        assert cli.main(args) == 0, capsys.readouterr().err
        root = ET.fromstring(out.read_bytes())
        marks[name] = [
            t.text or ""
            for r in root.iter(f"{SVG}rect")
            if r.get("class") == "mark"
            for t in r.iter(f"{SVG}title")
            if (t.text or "").startswith("msix-pba")
        ]
    assert marks["lspci"] and all(f"+{int(pba[1], 16):#x}-" in m for m in marks["lspci"])
    assert not any("guessed" in m for m in marks["lspci"])
    assert marks["guess"] and all("guessed" in m for m in marks["guess"])


def test_the_readme_picture_is_what_map_draws_today(tmp_path, monkeypatch, capsys):
    """README shows docs/pictures/q35-base-nvme.svg and the command that made it."""
    readme = (REPO / "README.md").read_text()
    made = re.search(r"Made with `(flatview map [^`]*)`", readme)
    assert made is not None
    args = made[1].split()[1:]
    out = args.index("-o") + 1
    checked_in = REPO / args[out]
    args[out] = str(tmp_path / "now.svg")
    monkeypatch.chdir(REPO)
    assert cli.main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "now.svg").read_text() == checked_in.read_text(), (
        "regenerate the README picture with the command in README.md"
    )


@needs_chromium
def test_the_html_zoom_draws_every_range_of_its_first_window(tmp_path):
    """The inline script draws each map's linear zoom, at first over [0, min(end, 4G)):
    chromium runs it (--dump-dom prints the page after the script); the ranges come
    from the dump's own lines, view by view (views without ranges have no map)."""
    out = tmp_path / "base.html"
    proc = run("map", str(BASE), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    views: list[list[tuple[int, int]]] = []
    for line in BASE.read_text().splitlines():
        if line.startswith("FlatView #"):
            views.append([])
        m = LINE.match(line)
        if m:
            views[-1].append((int(m[1], 16), int(m[2], 16) + 1))
    want = []
    for v in views:
        if v:
            hi = min(max(e for _, e in v), 1 << 32)
            want.append(sum(1 for s, _ in v if s < hi))
    dom = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            out.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    zooms = re.findall(r'<svg class="zoom".*?</svg>', dom, re.S)
    assert [z.count("<rect") for z in zooms] == want
