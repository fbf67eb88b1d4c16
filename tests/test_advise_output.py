"""``flatview advise`` as a person reads it (issue 9, the advise part): 100 columns unless
``--wide``, one size style, devices in BDF order, no internal words, a hazard legend,
``--emit-mtree`` with ``--emit-flat``, ``--json`` with them, several page sizes.

Inputs: the real VFIO samples (samples/vfio*/, QEMU's own output) and the bundled sample
(the 2017 SAS3008 thread, flatview/data).
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from flatview import api, cli
from flatview.render.advice import WIDTH, advice_text

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "samples" / "vfio" / "q35-base"
PAGES = [4 << 10, 16 << 10, 64 << 10]


def machines() -> list[Path]:
    return sorted(
        d
        for top in (ROOT / "samples").glob("vfio*")
        for d in top.iterdir()
        if (d / "info-mtree.txt").exists()
    )


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def full_args(d: Path) -> list[str]:
    return [
        str(d / "info-mtree-D.txt"),
        "--lspci",
        str(d / "l1-lspci-vvv.txt"),
        "--info-pci",
        str(d / "info-pci.txt"),
    ]


def texts() -> list[tuple[str, str]]:
    out = []
    for d in machines():
        for name in ("info-mtree.txt", "info-mtree-D.txt"):
            advice, _ = api.advise((d / name).read_text(), name, PAGES)
            out.append((f"{d.name}/{name}", advice_text(advice)))
    text, name = api.bundled_sample()
    advice, _ = api.advise(text, name, PAGES)
    out.append((name, advice_text(advice)))
    return out


@pytest.fixture(scope="module")
def reports() -> list[tuple[str, str]]:
    return texts()


def test_text_fits_100_columns(reports):
    for name, text in reports:
        long = [line for line in text.splitlines() if len(line) > WIDTH]
        assert not long, (name, long[:3])


def test_wide_keeps_one_line_per_row(capsys):
    code, out, _ = run(capsys, "advise", "--page-size", "4K", "--wide")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) > WIDTH
    # each explanation on one line
    assert all(not line.startswith("     ") for line in out.splitlines() if "explain" in line)


def test_no_internal_vocabulary(reports):
    for name, text in reports:
        for word in ("seed 0", "test #", "kernel era", "????", " E2", " E1", "§"):
            assert word not in text, (name, word)


def test_hazard_legend_names_every_code_once(reports):
    for name, text in reports:
        body, _, legend = text.partition("\nhazards:\n")
        codes = set(re.findall(r"\[([a-z0-9, -]+)\]", body))
        used = {c.strip() for group in codes for c in group.split(",")}
        used = {c for c in used if re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", c)}
        listed = re.findall(r"^  ([a-z0-9-]+): ", legend, re.M)
        assert len(listed) == len(set(listed)), name
        assert used <= set(listed), (name, used - set(listed))
        for row in re.findall(r"\[([a-z0-9, -]+)\]", body):
            parts = [c.strip() for c in row.split(",")]
            assert len(parts) == len(set(parts)), (name, row)


def test_devices_in_bdf_order(reports):
    for name, text in reports:
        seen = re.findall(r"^== (\S+)", text, re.M)
        firsts = list(dict.fromkeys(seen))
        assert firsts == sorted(firsts), name


def test_sizes_in_one_style(capsys):
    code, text, _ = run(capsys, "advise", "--page-size", "4K")
    assert code == 0
    # MMIO cost in the table and in the recommendation: 4K style, never hex or 1024K
    assert not re.search(r"for \+0x|doubles to 0x|1024K", text)
    rec = re.search(r"recovers \d+ page\(s\) for \+(\S+) of MMIO", text)
    assert rec and re.fullmatch(r"\d+(\.\d+)?[KMGT]", rec[1])
    table = re.findall(r"^   (?:off|bar\d)\s+accepts\s+(\S+)", text, re.M)
    assert table and all(re.fullmatch(r"0|\+\d+(\.\d+)?[KMGT]", c) for c in table)
    assert f"+{rec[1]}" in table


def test_issue_example_headline_has_one_basis(capsys):
    """Bundled sample at 4K: the dump shows BAR1 unmapped (16 of 16 lost), the simulation
    of off loses 1; the headline says both and why, and the recovered page is the
    simulation's."""
    code, out, _ = run(capsys, "advise", "--page-size", "4K", "--json")
    assert code == 0
    (d,) = json.loads(out)["devices"]
    assert d["basis"] == "dump"
    dump_lost = sum(b["pages_lost"] for b in d["bars"])
    sim_lost = sum(b["pages_lost"] for b in d["simulated_bars"])
    assert (dump_lost, sim_lost) == (16, 1)
    assert f"the dump shows {dump_lost} of" in d["headline"]
    assert f"loses {sim_lost}:" in d["headline"] and "did not mmap BAR 1" in d["headline"]
    assert d["recommended"]["pages_recovered"] <= sim_lost


def test_json_recommended_and_sources(capsys):
    d = BASE
    code, out, _ = run(capsys, "advise", *full_args(d), "--json", "--page-size", "4K")
    assert code == 0
    devices = json.loads(out)["devices"]
    assert [x["device"] for x in devices] == sorted(x["device"] for x in devices)
    for x in devices:
        rec = x["recommended"]
        assert set(rec) >= {"option", "pages_recovered", "added_mmio", "assumptions"}
        assert rec["assumptions"] == []  # dump + host lspci + info pci: nothing assumed
        for b in x["bars"] + x["simulated_bars"]:
            assert b["source"]["size"] == "dump"
            if not b["is_io"]:
                assert b["source"]["width"] in ("lspci", "info pci")
    code, out, _ = run(capsys, "advise", str(d / "info-mtree-D.txt"), "--json")
    nvme = next(x for x in json.loads(out)["devices"] if x["device"] == "0000:00:03.0")
    assert any("BAR 0 width" in a for a in nvme["recommended"]["assumptions"])
    assert nvme["bars"][0]["source"]["width"].startswith("assumed")


def test_emit_mtree_and_flat_both(capsys):
    code, out, _ = run(capsys, "advise", "--emit-mtree", "bar5", "--emit-flat", "bar5")
    assert code == 0
    assert "address-space: memory" in out and "FlatView #0" in out
    # the printed stacks parse back as one tree and one flat view
    dumps = api.parse_text(out, "emitted")
    assert sorted(x.kind for x in dumps) == sorted({x.kind for x in dumps})
    assert len(dumps) == 2


def test_emit_one_is_exactly_qemus_text(capsys):
    code, out, _ = run(capsys, "advise", "--emit-flat", "bar5")
    assert code == 0 and out.startswith("FlatView #0")


def test_emit_json_and_several_page_sizes(capsys):
    code, out, _ = run(
        capsys, "advise", "--emit-mtree", "off", "--emit-flat", "off", "--page-size", "4K,64K"
    )
    assert code == 0
    assert out.count("address-space: memory") == 2 and out.count("FlatView #0") == 2
    assert "host pages 4K" in out and "host pages 64K" in out
    code, out, _ = run(
        capsys,
        "advise",
        "--emit-mtree",
        "off",
        "--emit-flat",
        "off",
        "--page-size",
        "4K,64K",
        "--json",
    )
    data = json.loads(out)["simulated"]
    assert {(x["page_size"], x["command"]) for x in data} == {
        (4096, "info mtree"),
        (4096, "info mtree -f"),
        (65536, "info mtree"),
        (65536, "info mtree -f"),
    }
    assert all(x["text"] for x in data)


def test_info_pci_alone_says_what_is_missing(capsys):
    code, _, err = run(capsys, "advise", str(BASE / "info-pci.txt"))
    # info pci text is neither a dump nor lspci: one line, exit 2
    assert code == 2 and len(err.splitlines()) == 1


@given(
    line=st.text(st.characters(codec="utf-8"), max_size=120)
    | st.lists(st.text("abc-+:()", min_size=1, max_size=12), max_size=14).map(" ".join),
    indent=st.sampled_from(["", "   ", "     "]),
)
@example(line="x" * 50 + " " + "y" * 46, indent="   ")  # 100 columns: fits
@example(line="x" * 50 + " " + "y" * 47, indent="   ")  # 101: wrapped
def test_a_line_that_fits_is_laid_out_as_textwrap_would(line, indent):
    """The report skips textwrap for a line that fits: the same lines either way."""
    from flatview.render.advice import _Out

    out = _Out(wide=False)
    out.text(line, indent, "     ")
    expected = textwrap.wrap(
        line,
        WIDTH,
        initial_indent=indent,
        subsequent_indent="     ",
        break_on_hyphens=False,
        break_long_words=False,
    ) or [indent.rstrip()]
    assert out.lines == expected
