"""Text a person reads fits 100 columns; ``--wide`` gives the same words one row a line.

Each command runs on the real QEMU 7.2 samples (samples/vfio, samples/qemu).  Lines QEMU
printed itself (``flatten``'s default ``info mtree -f`` layout) and ``check``'s file:line
heads and mismatch lines (QEMU's own range lines, whole) are exempt: they are copied, not
laid out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VFIO = "samples/vfio"
QEMU_LINE = re.compile(r"^ *[0-9a-f]{16}-[0-9a-f]{16} \(prio ")
CHECK_HEAD = re.compile(r"^\S+:\d+ vs \S+:\d+: ")

COMMANDS = {
    "parse": ["parse", f"{VFIO}/q35-base/info-mtree.txt"],
    "parse-seed": ["parse", "tests/fixtures/seeds/003_285237e5c96dd813.txt"],
    "flatten": ["flatten", f"{VFIO}/q35-base/info-mtree.txt"],
    "flatten-table": ["flatten", f"{VFIO}/q35-base/info-mtree.txt", "--format", "table"],
    "flatten-region": ["flatten", f"{VFIO}/q35-base/info-mtree.txt", "--region", "msix-table"],
    "check": ["check", f"{VFIO}/q35-base/info-mtree.txt", f"{VFIO}/q35-base/info-mtree-f.txt"],
    "diff": [
        "diff",
        f"{VFIO}/q35-base/info-mtree.txt",
        f"{VFIO}/q35-msix-relocation-bar/info-mtree.txt",
        "--page-size",
        "4K,64K",
    ],
    "gate": [
        "gate",
        f"{VFIO}/q35-msix-relocation-bar/info-mtree.txt",
        f"{VFIO}/q35-no-mmap/info-mtree.txt",
    ],
}


def run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def _laid_out(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if not QEMU_LINE.match(ln) and not CHECK_HEAD.match(ln)]


@pytest.mark.parametrize("name", COMMANDS)
def test_default_text_fits_100_columns(name: str) -> None:
    if not name.startswith("parse"):  # parse's summary is narrow anyway
        wide = run(*COMMANDS[name], "--wide")
        assert max(map(len, _laid_out(wide))) > 100  # there is something to fit
    narrow = run(*COMMANDS[name])
    assert [ln for ln in _laid_out(narrow) if len(ln) > 100] == []


@pytest.mark.parametrize("name", COMMANDS)
def test_wide_says_the_same_words(name: str) -> None:
    """Wrapping moves words, never drops or adds one (table rules aside)."""

    def words(text: str) -> Counter:
        # table rules and flatten's '# ' note prefix (repeated on continuation lines) aside
        return Counter(w for w in text.split() if not re.fullmatch(r"-+|#", w))

    assert words(run(*COMMANDS[name])) == words(run(*COMMANDS[name], "--wide"))


@pytest.mark.parametrize("name", ["parse", "advise"])
def test_console_script_lays_out_tables_without_wcwidth(name: str, tmp_path: Path) -> None:
    """Tables are measured with len(), as render.layout wraps them: the console script
    never lets tabulate import wcwidth, whatever else installed it.  A wcwidth on the
    path that fails at import would make the run an internal error (exit 3)."""
    (tmp_path / "wcwidth.py").write_text("raise RuntimeError('wcwidth imported')\n")
    args = {"parse": COMMANDS["parse"], "advise": ["advise", f"{VFIO}/q35-base/info-mtree.txt"]}
    heads = {"parse": "ranges by type", "advise": "guest layout"}  # a table's heads
    clean = run(*args[name])
    assert heads[name] in clean
    poisoned = subprocess.run(
        [sys.executable, "-m", "flatview", *args[name]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert (poisoned.returncode, poisoned.stderr) == (0, "")
    assert poisoned.stdout == clean
