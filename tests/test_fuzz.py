"""Every command on mutated real dumps: only documented outcomes (issue 15).

The mutations and the rules are those of ``benchmarks/fuzz.py`` (the long run: see its
docstring); here hypothesis drives them, bounded so the whole file runs in well under a
minute.  An outcome is fine when the exit status is 0, 1 or 2, there is no traceback, an
input error is exactly one line on stderr with nothing on stdout, and a failed ``gate``
leaves no ``--junit`` report behind.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("flatview_fuzz", ROOT / "benchmarks" / "fuzz.py")
assert _spec is not None and _spec.loader is not None
fuzz = importlib.util.module_from_spec(_spec)
sys.modules["flatview_fuzz"] = fuzz
_spec.loader.exec_module(fuzz)

SOURCES = fuzz.dumps()
COMMANDS = ("parse", "parse-json", "parse-qemu", "flatten", "check", "advise", "diff", "gate")


def test_the_samples_are_there():
    # q35-base, q35-no-mmap and q35-msix-relocation-bar, each as 6 `info mtree` variants
    # (tree, -f, -D, -o, -f -o, -f -d)
    assert len(SOURCES) == 3 * 6


def _argv(command: str, path: Path, src: Path, junit: Path) -> list[str]:
    p, o = str(path), str(src)
    return {
        "parse": ["parse", p],
        "parse-json": ["parse", p, "--json"],
        "parse-qemu": ["parse", p, "--format", "qemu"],
        "flatten": ["flatten", p],
        "check": ["check", o, p],
        "advise": ["advise", p, "--page-size", "4K,64K"],
        "diff": ["diff", o, p, "--json"],
        "gate": ["gate", o, p, "--junit", str(junit)],
    }[command]


@pytest.mark.parametrize("command", COMMANDS)
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI stays reproducible
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_dumps_give_documented_outcomes(command, data):
    src = data.draw(st.sampled_from(SOURCES), label="sample")
    rnd = data.draw(st.randoms(use_true_random=False), label="mutations")
    text, names = fuzz.mutate(src.read_text(encoding="utf-8"), rnd)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / src.name
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        junit = Path(d) / "report.xml"
        o = fuzz.run(_argv(command, path, src, junit), junit)
    assert o.problem is None, (o.problem, names, o.argv, o.stderr)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    option=st.sampled_from(sorted(fuzz.HOSTILE_OPTIONS)),
    value=st.one_of(
        st.sampled_from([v for vs in fuzz.HOSTILE_OPTIONS.values() for v in vs]),
        st.text(max_size=12),
    ),
    command=st.sampled_from(["advise", "diff", "gate"]),
)
def test_hostile_option_values_give_documented_outcomes(option, value, command):
    if option == "--kernel" and command != "advise":
        command = "advise"
    base = SOURCES[0].parent.parent / "q35-base" / "info-mtree.txt"
    files = [str(base)] if command == "advise" else [str(base), str(base)]
    o = fuzz.run([command, *files, option, value])
    assert o.problem is None, (o.problem, o.argv, o.stderr)
