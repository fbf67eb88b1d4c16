"""`flatview parse` as a real subprocess: the table summary, --json and --format qemu, on
the real QEMU samples and on seed 003 (read from standard input).  Expected counts are
computed here with our own regular expressions over the same files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"
SAMPLE = REPO / "samples" / "vfio" / "q35-base"

QUOTE = re.compile(r"^(?:> ?)*")
RANGE = re.compile(r"^ +[0-9a-f]{16}-[0-9a-f]{16} \(prio -?\d+, (?:nv-)?([a-zA-Z/-]+)\): ")
DISPATCH = re.compile(
    r"^(?:  Dispatch|    Physical sections|      #\d+ @.*|    Nodes \(.*|      \[\d+\]|\t.*)$"
)


def run(*args: str, stdin: bytes | None = None):
    proc = subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert b"Traceback" not in proc.stderr
    return proc


def _sample(name: str) -> Path:
    path = SAMPLE / name
    if not path.exists():
        pytest.fail(f"{path} missing")
    return path


def _seed003() -> Path:
    found = sorted(SEEDS.glob("003_*.txt"))
    if not found:
        pytest.fail(f"seed 003 not found under {SEEDS}")
    return found[0]


def _lines(path: Path) -> list[str]:
    """The file's lines, CRLF -> LF, quote prefixes and trailing blanks removed."""
    text = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
    return [line[QUOTE.match(line).end() :].rstrip() for line in text.split("\n")]


def _blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """(heading line, heading, lines up to the next heading) for every heading."""
    out: list[tuple[int, str, list[str]]] = []
    for n, line in enumerate(_lines(path), 1):
        if re.match(r"(?:address-space: |memory-region: |FlatView #\d+$)", line):
            out.append((n, line, []))
        elif out:
            out[-1][2].append(line)
    return out


def _types(lines: list[str]) -> str:
    c = Counter(m.group(1) for line in lines if (m := RANGE.match(line)))
    return " ".join(f"{t}:{n}" for t, n in sorted(c.items()))


def _table(stdout: str) -> list[dict[str, str]]:
    """Rows of tabulate's 'simple' table, cut at the column spans of the '----' line."""
    lines = stdout.rstrip("\n").split("\n")
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    heads = [lines[0][a:b].strip() for a, b in spans]
    rows = []
    for line in lines[2:]:
        if not re.match(r"^\s*\d+  ", line):
            break  # diagnostics follow the table
        rows.append({h: line[a:b].strip() for h, (a, b) in zip(heads, spans, strict=True)})
    return rows


# --------------------------------------------------------------------------- table


def test_table_of_a_flat_sample():
    path = _sample("info-mtree-f.txt")
    proc = run("parse", str(path))
    assert (proc.returncode, proc.stderr) == (0, b"")
    (row,) = _table(proc.stdout.decode())
    lines = _lines(path)
    assert row == {
        "line": "1",
        "dump": "info mtree -f",
        "AS": str(sum(line.startswith(' AS "') for line in lines)),
        "regions": "",
        "aliases": "",
        "sections": "",
        "views": str(sum(bool(re.fullmatch(r"FlatView #\d+", x)) for x in lines)),
        "ranges by type": _types(lines),
    }
    assert row["views"] == "4" and row["AS"] == "14"


def test_table_of_a_tree_sample():
    path = _sample("info-mtree.txt")
    proc = run("parse", str(path))
    assert (proc.returncode, proc.stderr) == (0, b"")
    (row,) = _table(proc.stdout.decode())
    lines = _lines(path)
    assert row["line"] == "1" and row["dump"] == "info mtree"
    assert row["AS"] == str(sum(x.startswith("address-space: ") for x in lines))
    assert row["sections"] == str(sum(x.startswith("memory-region: ") for x in lines))
    assert (row["AS"], row["sections"]) == ("14", "11")
    assert row["views"] == ""


def test_table_of_seed003_from_stdin():
    """Seed 003 holds 20 dumps, one heading each: one row per dump at its heading's line,
    with that dump's counts (its trees are alias-target sections only, so every printed
    region line is a distinct region)."""
    path = _seed003()
    proc = run("parse", "-", stdin=path.read_bytes())
    assert (proc.returncode, proc.stderr) == (0, b"")
    rows = _table(proc.stdout.decode())
    blocks = _blocks(path)
    assert len(rows) == len(blocks) == 20
    for row, (n, heading, body) in zip(rows, blocks, strict=True):
        assert row["line"] == str(n)
        assert row["ranges by type"] == _types(body)
        if heading.startswith("FlatView"):
            assert row["dump"] == "info mtree -f"
            assert row["views"] == "1"
            assert row["AS"] == str(sum(x.startswith(' AS "') for x in body))
        else:
            assert row["dump"] == "info mtree"
            assert (row["sections"], row["AS"], row["aliases"]) == ("1", "0", "0")
            assert row["regions"] == str(sum(bool(RANGE.match(x)) for x in body))


# --------------------------------------------------------------------------- --json


def test_json_of_a_flat_sample():
    path = _sample("info-mtree-f-d.txt")
    proc = run("parse", "--json", str(path))
    assert (proc.returncode, proc.stderr) == (0, b"")
    doc = json.loads(proc.stdout)
    assert isinstance(doc["schema_version"], int) and doc["schema_version"] >= 1
    assert doc["command"] == "parse"
    (dump,) = doc["dumps"]
    lines = _lines(path)
    views = [b for b in _blocks(path) if b[1].startswith("FlatView")]
    assert dump["kind"] == "flat"
    assert [v["number"] for v in dump["views"]] == [int(h.split("#")[1]) for _, h, _ in views]
    assert [v["line"] for v in dump["views"]] == [n for n, _, _ in views]
    assert [len(v["ranges"]) for v in dump["views"]] == [
        sum(bool(RANGE.match(x)) for x in body) for _, _, body in views
    ]
    dispatch = [x for x in lines if DISPATCH.match(x)]
    assert sum(len(v["dispatch"]) for v in dump["views"]) == len(dispatch) > 0
    assert sum(len(v["address_spaces"]) for v in dump["views"]) == sum(
        x.startswith(' AS "') for x in lines
    )
    assert dump["variant"]["dispatch"] is True


def test_json_of_a_tree_sample():
    path = _sample("info-mtree.txt")
    proc = run("parse", "--json", str(path))
    assert (proc.returncode, proc.stderr) == (0, b"")
    doc = json.loads(proc.stdout)
    assert isinstance(doc["schema_version"], int)
    (dump,) = doc["dumps"]
    lines = _lines(path)
    assert dump["kind"] == "tree"
    assert [name for g in dump["address_spaces"] for name in g["names"]] == [
        x.removeprefix("address-space: ") for x in lines if x.startswith("address-space: ")
    ]
    assert [s["name"] for s in dump["sections"]] == [
        x.removeprefix("memory-region: ") for x in lines if x.startswith("memory-region: ")
    ]
    assert [s["line"] for s in dump["sections"]] == [
        n for n, x in enumerate(lines, 1) if x.startswith("memory-region: ")
    ]

    def printed(region):
        return 1 + sum(printed(c) for c in region["subregions"])

    roots = [g["root"] for g in dump["address_spaces"]] + [s["root"] for s in dump["sections"]]
    assert sum(printed(r) for r in roots if r) == sum(bool(RANGE.match(x)) for x in lines)


def test_json_of_seed003_from_stdin():
    path = _seed003()
    proc = run("parse", "--json", "-", stdin=path.read_bytes())
    assert (proc.returncode, proc.stderr) == (0, b"")
    doc = json.loads(proc.stdout)
    blocks = _blocks(path)
    assert [(d["kind"], d["line"], d["file"]) for d in doc["dumps"]] == [
        ("flat" if h.startswith("FlatView") else "tree", n, "-") for n, h, _ in blocks
    ]


# --------------------------------------------------------------------------- --format qemu


# One tree file (with -o owners) and one flat file (with -d tabs) through the command line;
# tests/test_build.py prints every real sample back through the library.
@pytest.mark.parametrize("name", ["info-mtree-o.txt", "info-mtree-f-d.txt"])
def test_format_qemu_prints_a_real_sample_back(name):
    path = _sample(name)
    proc = run("parse", "--format", "qemu", str(path))
    assert (proc.returncode, proc.stderr) == (0, b"")
    expected = path.read_bytes().decode("utf-8").replace("\r\n", "\n").rstrip("\n").split("\n")
    assert proc.stdout.decode("utf-8").rstrip("\n").split("\n") == expected


def test_format_qemu_of_seed003_from_stdin():
    """The 20 dumps of seed 003 printed back: no quote, no prose, the wrapped lines whole."""
    path = _seed003()
    proc = run("parse", "--format", "qemu", "-", stdin=path.read_bytes())
    assert (proc.returncode, proc.stderr) == (0, b"")
    out = proc.stdout.decode("utf-8").split("\n")
    headings = [h for _, h, _ in _blocks(path)]
    assert [x for x in out if re.match(r"(?:FlatView #\d+$|memory-region: )", x)] == headings
    assert not any(x.startswith((">", "Test", "Ok")) for x in out)
    body = [x for _, _, b in _blocks(path) for x in b if RANGE.match(x)]
    assert sum(bool(RANGE.match(x)) for x in out) == len(body)
    assert out.count(
        "  000021000000e600-000021000000ffff (prio 0, i/o): 0001:03:00.0 BAR 1 @000000000000e600"
    ) == sum(x == "@000000000000e600" for x in _lines(path))
    assert (
        out.count(
            "        0000210000040000-000021000007ffff (prio 0, ramd): 0001:03:00.0 BAR 3 mmaps[0]"
        )
        == sum(x == "3 mmaps[0]" for x in _lines(path))
        == 5
    )


def test_each_command_builds_its_own_parser_and_help_lists_them_all(capsys):
    # The CLI builds only the parser of the command being run (flatview.cli._command_named):
    # each command's own options must still be there, and help and an unknown command
    # must still name every command.
    from flatview.cli import COMMANDS, main

    for name in COMMANDS:
        for argv in (
            [name, "--help"],
            ["--max-input", "1M", name, "--help"],
            ["--max-input=1M", name, "--help"],
        ):
            assert main(argv) == 0
            out = capsys.readouterr().out
            assert out.startswith(f"usage: flatview {name} [-h]"), out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"    {name} " in out for name in COMMANDS), out
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert all(f"'{name}'" in err for name in COMMANDS), err
    assert main(["gate", "--junit"]) == 2  # gate's own option, parsed by gate's parser
    assert "--junit: expected one argument" in capsys.readouterr().err


def test_reading_a_dump_imports_neither_capture_nor_a_library_it_does_not_use():
    # What a command imports, every run of it pays: reading, flattening and diffing a dump
    # must not pull in QMP capture (asyncio, ~20 ms), a table or graph library that the
    # JSON output does not use, lark (for lines the fast path leaves: none in a clean
    # dump) nor the advisor's stack simulator.  Checked in a fresh interpreter.
    dump = str(SAMPLE / "info-mtree.txt")
    code = (
        "import sys, contextlib, io; from flatview.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    for argv in (['parse', {dump!r}], ['flatten', {dump!r}],"
        f" ['diff', {dump!r}, {dump!r}], ['gate', {dump!r}, {dump!r}]):\n"
        "        assert main([*argv, '--json']) == 0, argv\n"
        "print(sorted(m for m in ('asyncio', 'networkx', 'flatview.capture.launch',"
        " 'qemu.qmp', 'tabulate', 'lark', 'flatview.vfio.stack', 'flatview.advisor')"
        " if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def test_advising_a_dump_with_its_info_pci_does_not_import_the_lspci_reader():
    # `advise` reads lspci text only when the input has some (or --lspci names a file):
    # a dump with an `info pci` listing leaves the lspci reader unimported; --json lays
    # out no table (no tabulate).
    root = REPO / "samples" / "qemu" / "x86_64-q35-70dev"
    tree, pci = str(root / "info-mtree.txt"), str(root / "info-pci.txt")
    code = (
        "import sys, contextlib, io; from flatview.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['advise', {tree!r}, '--info-pci', {pci!r}, '--json']) == 0\n"
        "print(sorted(m for m in ('asyncio', 'networkx', 'lark', 'flatview.vfio.lspci',"
        " 'flatview.vfio.infopci', 'tabulate') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "['flatview.vfio.infopci']"
