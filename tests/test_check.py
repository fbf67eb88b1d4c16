"""``flatview check``: recomputed FlatViews against QEMU's own ``info mtree -f``.

Every real sample pair under ``samples/`` (``info-mtree.txt`` + ``info-mtree-f.txt``,
``info-mtree-o.txt`` + ``info-mtree-f-o.txt``, and the ``-D`` tree against the plain
``-f``: all read from one stopped machine) must check clean through the library and the
command line, with learning from QEMU's flat view (default) and with the rules alone
(``--no-learn``).  Mutated pairs must fail with exit status 1 and name the mismatch.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flatview import api
from flatview.check import range_key
from flatview.model import FlatDump, MtreeDump

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"

PAIRS = (
    ("info-mtree.txt", "info-mtree-f.txt"),
    ("info-mtree-o.txt", "info-mtree-f-o.txt"),
    ("info-mtree-D.txt", "info-mtree-f.txt"),
)


def _sample_pairs() -> list:
    """(tree, flat) paths of every sample folder, found by glob so that samples added
    later (samples/qemu is being generated) are checked too."""
    out = []
    for tree_name, flat_name in PAIRS:
        for tree in sorted(SAMPLES.glob(f"**/{tree_name}")):
            flat = tree.with_name(flat_name)
            if flat.is_file():
                rel = tree.parent.relative_to(SAMPLES)
                out.append(pytest.param(tree, flat, id=f"{rel}:{tree_name}"))
    return out


SAMPLE_PAIRS = _sample_pairs()
PLAIN_PAIRS = [p for p in SAMPLE_PAIRS if p.values[0].name == "info-mtree.txt"]


@functools.cache
def load_pair(tree_path: Path, flat_path: Path) -> tuple[MtreeDump, FlatDump]:
    """Read once per session (the model is immutable; check builds its own Knowledge)."""
    trees, flats = api.split_kinds(api.load(str(tree_path)) + api.load(str(flat_path)))
    assert len(trees) == 1 and len(flats) == 1
    return trees[0], flats[0]


def run_check(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flatview", "check", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_there_are_sample_pairs_to_check():
    assert PLAIN_PAIRS, f"no info-mtree.txt + info-mtree-f.txt under {SAMPLES}"


# ------------------------------------------------------------------------- clean pairs


@pytest.mark.parametrize("learn", [True, False], ids=["learn", "no-learn"])
@pytest.mark.parametrize(("tree_path", "flat_path"), SAMPLE_PAIRS)
def test_api_check_passes_on_every_real_sample_pair(tree_path, flat_path, learn):
    tree, flat = load_pair(tree_path, flat_path)
    report = api.check(tree, flat, learn=learn)
    assert report.ok, report.mismatches
    # Everything QEMU printed was compared.
    assert report.views_compared == len(flat.views)
    assert report.ranges_compared == sum(len(v.ranges) for v in flat.views)
    assert report.ranges_compared > 0


def _pairs_by_folder() -> list:
    folders: dict[Path, list[tuple[Path, Path]]] = {}
    for p in SAMPLE_PAIRS:
        tree, flat = p.values
        folders.setdefault(tree.parent, []).append((tree, flat))
    return [
        pytest.param(pairs, id=str(folder.relative_to(SAMPLES)))
        for folder, pairs in sorted(folders.items())
    ]


@pytest.mark.parametrize("learn", [True, False], ids=["learn", "no-learn"])
@pytest.mark.parametrize("pairs", _pairs_by_folder())
def test_cli_check_exits_0_on_every_real_sample_pair(pairs, learn):
    # One command per sample folder: `check T1 F1 T2 F2 ...` pairs trees and flat views
    # in order, and prints one summary line per pair.
    flags = [] if learn else ["--no-learn"]
    proc = run_check(*flags, *(path for pair in pairs for path in pair))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "OK"
    summaries = [ln for ln in lines if " flat views, " in ln]
    assert len(summaries) == len(pairs)
    for (tree_path, flat_path), summary in zip(pairs, summaries, strict=True):
        _, flat = load_pair(tree_path, flat_path)
        assert summary.startswith(f"{tree_path}:"), summary
        assert f" vs {flat_path}:" in summary
        assert f": {len(flat.views)} flat views, " in summary
        assert summary.endswith(" 0 mismatch(es)")
    assert proc.stderr == ""


# ---------------------------------------------------------------------------- mutations


def _victim_line(flat: FlatDump) -> int:
    """A range line whose absence must show: a RAM range (RAM always terminates, so
    learning cannot hide it) of the biggest view; else that view's middle range."""
    view = max(flat.views, key=lambda v: len(v.ranges))
    rams = [r for r in view.ranges if r.type == "ram"]
    victim = rams[0] if rams else view.ranges[len(view.ranges) // 2]
    assert victim.line is not None
    return victim.line


@pytest.mark.parametrize("learn", [True, False], ids=["learn", "no-learn"])
@pytest.mark.parametrize(("tree_path", "flat_path"), PLAIN_PAIRS)
def test_dropping_one_range_line_from_the_flat_view_fails_and_names_it(
    tree_path, flat_path, learn, tmp_path
):
    tree, flat = load_pair(tree_path, flat_path)
    text = flat_path.read_bytes().decode("utf-8")
    lines = text.splitlines(keepends=True)
    lineno = _victim_line(flat)
    dropped = lines[lineno - 1].rstrip("\r\n")
    [victim] = [r for v in flat.views for r in v.ranges if r.line == lineno]
    mutated = tmp_path / "info-mtree-f.txt"
    mutated.write_bytes("".join(lines[: lineno - 1] + lines[lineno:]).encode("utf-8"))

    [bad] = api.split_kinds(api.load(str(mutated)))[1]
    report = api.check(tree, bad, learn=learn)
    assert not report.ok
    only_mine = [range_key(r) for m in report.mismatches for r in m.flatview]
    assert range_key(victim) in only_mine

    if not learn:
        return  # the command line is run once per mutation, in its default mode
    proc = run_check(tree_path, mutated)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "FAIL"
    named = [ln for ln in proc.stdout.splitlines() if ln.startswith("only flatview  [")]
    assert any(ln.endswith("]: " + dropped.strip()) or dropped.strip() in ln for ln in named), (
        dropped,
        named,
    )


@pytest.mark.parametrize(("tree_path", "flat_path"), PLAIN_PAIRS)
def test_changing_a_priority_in_the_tree_fails_and_names_the_mismatch(
    tree_path, flat_path, tmp_path
):
    text = tree_path.read_bytes().decode("utf-8")
    needle = "(prio -1, i/o): pci\r\n" if "\r\n" in text else "(prio -1, i/o): pci\n"
    if needle not in text:
        pytest.skip("no x86 'pci' container at prio -1 in this sample")
    pci = tree_path.with_name("info-pci.txt")
    bars = re.findall(r"BAR\d: .* at (0x[0-9a-f]+)", pci.read_text()) if pci.is_file() else []
    if all(int(b, 16) == 2**64 - 1 for b in bars):
        # read paused (-S): no firmware ran, so no BAR is mapped and every PAM alias still
        # routes to pci: raising pci's priority covers nothing QEMU showed
        pytest.skip("no firmware ran in this sample: nothing under pci to cover pc.ram")
    # pci (prio -1, under RAM and the PAM aliases) raised to prio 2, above every PAM and
    # SMRAM alias (prio 1): its pc.rom / BARs now cover what QEMU showed as pc.ram through
    # the PAM aliases.  (At prio 1 the tie with those aliases is an equal-priority overlap
    # whose outcome the tree cannot show; flatview reports it as ambiguous instead.)
    mutated = tmp_path / "info-mtree.txt"
    # Every printed copy of that one MemoryRegion (the tree and the `system` section).
    mutated.write_bytes(text.replace(needle, needle.replace("-1", "2")).encode("utf-8"))
    _, flat = load_pair(tree_path, flat_path)
    [bad] = api.split_kinds(api.load(str(mutated)))[0]
    for learn in (True, False):
        report = api.check(bad, flat, learn=learn)
        assert not report.ok
        assert any("memory" in m.address_spaces and m.what == "range" for m in report.mismatches)
    proc = run_check(mutated, flat_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert out[-1] == "FAIL"
    assert not out[0].endswith(" 0 mismatch(es)")
    qemu_only = [ln for ln in out if ln.startswith("only in QEMU   [")]
    mine_only = [ln for ln in out if ln.startswith("only flatview  [")]
    assert qemu_only and mine_only
    # The memory view is named, and the lines are QEMU's own range lines.
    assert any("memory" in ln.split("]")[0] for ln in qemu_only + mine_only)
    assert any(": pc.ram" in ln for ln in qemu_only + mine_only)


def test_check_refuses_a_lone_flat_view_with_exit_2():
    if not PLAIN_PAIRS:
        pytest.skip("no samples")
    flat_path = PLAIN_PAIRS[0].values[1]
    proc = run_check(flat_path)
    assert proc.returncode == 2
    assert "0 tree(s) and 1 flat view dump(s)" in proc.stderr
