"""Bad input through the real command line: one golden ``.err`` per failure.

Each ``tests/fixtures/mtree/bad-*.txt`` is named for its failure, and its sibling ``.err``
holds the one stderr line expected from ``python -m flatview parse bad-*.txt`` (run in
that folder).  As in QEMU's tests/qapi-schema, ``FLATVIEW_REGENERATE=1`` rewrites the
``.err`` files from flatview's current output; review the result with ``git diff``.

README: "Every input error is one line, ``file:line: what: 'text'``, with exit status 2".
"""

from __future__ import annotations

import ast
import functools
import itertools
import os
import re
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mtree"
BAD = sorted(FIXTURES.glob("bad-*.txt"))
REGENERATE = os.environ.get("FLATVIEW_REGENERATE") == "1"
HINT = "(set FLATVIEW_REGENERATE=1 to rewrite the .err files, then review 'git diff')"

ERROR_LINE = re.compile(r"^flatview: (?P<file>[^:]+):(?P<line>\d+): (?P<msg>.+)\n$")
# the message, then ': ' and one Python string literal (repr of the offending line)
WITH_TEXT = re.compile(
    r"^flatview: [^:]+:\d+: (?P<msg>.+?): (?P<text>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\n$"
)
QUOTE = re.compile(r"^(?:> ?)*")


def run(*args: str, stdin: bytes | None = None, cwd: Path = FIXTURES):
    return subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@functools.cache
def _all_fixtures() -> dict[str, subprocess.CompletedProcess]:
    """`flatview parse NAME` for every bad input, in the fixtures folder, run once per
    session and side by side (each run is a whole interpreter start)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        procs = pool.map(lambda p: run("parse", p.name), BAD)
        return {p.name: proc for p, proc in zip(BAD, procs, strict=True)}


def parse_fixture(name: str) -> subprocess.CompletedProcess:
    return _all_fixtures()[name]


def _no_traceback(proc) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert b"Traceback" not in stream


def test_every_bad_input_has_a_golden():
    assert len(BAD) >= 10
    assert [p for p in BAD if not p.with_suffix(".err").exists()] == []


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_input_golden(path):
    golden = path.with_suffix(".err")
    proc = parse_fixture(path.name)
    _no_traceback(proc)
    assert proc.returncode == 2
    assert proc.stdout == b""
    stderr = proc.stderr.decode("utf-8")
    assert ERROR_LINE.match(stderr), stderr  # exactly one line, file:line: message
    if REGENERATE:
        if not golden.exists() or golden.read_text(encoding="utf-8") != stderr:
            golden.write_text(stderr, encoding="utf-8")
            hint = f"rewrote {golden}; review with 'git diff {golden}'"
            print(hint)
            warnings.warn(hint, stacklevel=1)
        return
    expected = golden.read_text(encoding="utf-8")
    assert stderr == expected, HINT


# Errors about one line of the file: the message ends with that line, as cleaned (quote
# prefix and trailing blanks removed), in Python's repr.  bad-empty has no line to show.
@pytest.mark.parametrize("path", [p for p in BAD if p.stem != "bad-empty"], ids=lambda p: p.stem)
def test_bad_input_message_shows_the_offending_line(path):
    proc = parse_fixture(path.name)
    stderr = proc.stderr.decode("utf-8")
    m = ERROR_LINE.match(stderr)
    assert m and m.group("file") == path.name
    lineno = int(m.group("line"))
    raw = path.read_bytes().split(b"\n")
    assert 1 <= lineno <= len(raw)
    shown = WITH_TEXT.match(stderr)
    assert shown, f"no ': <text>' in {stderr!r}"
    line = raw[lineno - 1].decode("utf-8", "replace")
    line = line[QUOTE.match(line).end() :].rstrip()
    text = ast.literal_eval(shown.group("text"))
    if "\ufffd" in line:  # not UTF-8: how the bytes are shown is flatview's choice
        assert text.startswith(line.split("\ufffd")[0]), (text, line)
    else:
        assert text == line


def test_bad_input_from_stdin():
    data = (FIXTURES / "bad-hex.txt").read_bytes()
    proc = run("parse", "-", stdin=data)
    _no_traceback(proc)
    assert (proc.returncode, proc.stdout) == (2, b"")
    expected = (FIXTURES / "bad-hex.err").read_text(encoding="utf-8")
    assert proc.stderr.decode() == expected.replace("flatview: bad-hex.txt:", "flatview: -:", 1)


# ---------------------------------------------------------------- where each error is

RANGE = re.compile(r"^(?P<ind> *)(?P<s>\S{16})-(?P<e>\S{16}) \(prio -?\d+, [a-z/]+\): \S")
HEX16 = re.compile(r"^ *[0-9a-f]{16}-[0-9a-f]{16} ")


def _lines(path: Path) -> list[str]:
    """The fixture's lines with mail quoting removed (undecodable bytes kept as U+FFFD)."""
    text = path.read_bytes().decode("utf-8", "replace")
    return [raw[QUOTE.match(raw).end() :] for raw in text.split("\n")]


def _first(lines: list[str], pred) -> int:
    return next(i for i, line in enumerate(lines, 1) if pred(line))


def _range_lines(lines: list[str]) -> list[tuple[int, re.Match]]:
    return [(i, m) for i, line in enumerate(lines, 1) if (m := RANGE.match(line))]


def _alias_cycle(lines: list[str]) -> int:
    # the region the cycle returns to: the root line of its `memory-region:` section
    return _first(lines, lambda s: s.startswith("memory-region: loop")) + 1


def _end_before_start(lines: list[str]) -> int:
    return next(i for i, m in _range_lines(lines) if int(m["e"], 16) < int(m["s"], 16))


def _out_of_order(lines: list[str]) -> int:
    ranges = _range_lines(lines)
    return next(
        i for (_, a), (i, b) in itertools.pairwise(ranges) if int(b["s"], 16) <= int(a["e"], 16)
    )


def _second_root(lines: list[str]) -> int:
    heading = _first(lines, lambda s: s.startswith("address-space:"))
    roots = [i for i, m in _range_lines(lines) if i > heading and len(m["ind"]) == 2]
    return roots[1]


def _truncated(lines: list[str]) -> int:
    looks_like_range = re.compile(r"^ +[0-9a-f]{16}-")
    return _first(lines, lambda s: looks_like_range.match(s) and not RANGE.match(s))


# For each bad input, where its fault is, found from the input alone (not from flatview):
# the golden's line number and flatview's live answer must both be this one.
WHERE = {
    "bad-alias-cycle": _alias_cycle,
    # a missing alias target is no error: a partial paste (tests/test_pastes.py)
    "bad-binary-nul": lambda ls: _first(ls, lambda s: "\0" in s),
    "bad-empty": lambda ls: 1,
    "bad-end-before-start": _end_before_start,
    "bad-flat-out-of-order": _out_of_order,
    "bad-hex": lambda ls: _first(ls, lambda s: RANGE.match(s) and not HEX16.match(s)),
    "bad-hex-in-quoted-mail": lambda ls: _first(
        ls, lambda s: RANGE.match(s) and not HEX16.match(s)
    ),
    "bad-not-utf8": lambda ls: _first(ls, lambda s: "\ufffd" in s),
    "bad-odd-indent": lambda ls: _first(
        ls, lambda s: RANGE.match(s) and len(s) % 2 != len(s.lstrip()) % 2
    ),
    "bad-second-root": _second_root,
    "bad-truncated": _truncated,
    "bad-truncated-after-type": _truncated,
}


def test_every_bad_input_has_its_fault_located():
    assert set(WHERE) == {p.stem for p in BAD}


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_error_line_is_where_the_fault_is(path):
    """The line number in the golden .err, and in flatview's live message, is the one
    the input's own text points at (so a regenerated golden that blames another line
    fails)."""
    line = WHERE[path.stem](_lines(path))
    golden = ERROR_LINE.match(path.with_suffix(".err").read_text(encoding="utf-8"))
    live = ERROR_LINE.match(parse_fixture(path.name).stderr.decode("utf-8"))
    assert golden and live
    assert int(golden["line"]) == int(live["line"]) == line


def test_good_input_from_stdin():
    data = (
        b'> FlatView #0\r\n>  AS "memory", root: system\r\n>  Root memory region: system\r\n'
        b">   0000000000000000-000000007fffffff (prio 0, ram): ppc_spapr.ram\r\n"
    )
    proc = run("parse", "-", stdin=data)
    _no_traceback(proc)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert b"info mtree -f" in proc.stdout


def test_empty_stdin():
    proc = run("parse", "-", stdin=b"")
    _no_traceback(proc)
    assert (proc.returncode, proc.stdout) == (2, b"")
    assert proc.stderr == b"flatview: -:1: empty input: no dump found\n"


def test_missing_file():
    proc = run("parse", "no-such-dump.txt")
    _no_traceback(proc)
    assert (proc.returncode, proc.stdout) == (2, b"")
    assert proc.stderr == b"flatview: no-such-dump.txt: cannot read: No such file or directory\n"


def test_directory_instead_of_a_file():
    proc = run("parse", ".")
    _no_traceback(proc)
    assert (proc.returncode, proc.stdout) == (2, b"")
    assert proc.stderr.startswith(b"flatview: .: cannot read: ")
    assert proc.stderr.count(b"\n") == 1


@pytest.mark.parametrize("args", [["--help"], ["parse", "--help"]])
def test_help(args):
    proc = run(*args)
    _no_traceback(proc)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert proc.stdout.startswith(b"usage: flatview")
    assert b"parse" in proc.stdout


def test_usage_error_exit_status():
    proc = run("parse")
    _no_traceback(proc)
    assert (proc.returncode, proc.stdout) == (2, b"")
    # one line since FILE may be replaced by --qmp / --domain (argparse cannot say so)
    assert proc.stderr == b"flatview: parse: give a FILE, --qmp SOCKET or --domain NAME\n"
