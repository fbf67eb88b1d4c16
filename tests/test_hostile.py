"""Hostile input and hostile surroundings (issue 15): never a traceback, never a lost file.

Each case of the issue is a test here: a one-line error and exit 2 for bad input or usage,
exit 3 (never 1, which ``gate`` uses for a regression) for a bug, 130 for Ctrl-C, quiet on
a closed pipe, and report files that are written only to a regular file or a new path, never
over an input, and only when the run succeeded.  Inputs are the real VFIO dumps of
``samples/vfio`` (QEMU 7.2, captured over QMP; see samples/vfio/README.md), mutated here.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flatview import cli, files
from flatview.diff import BarFigures, _compare_bar

ROOT = Path(__file__).resolve().parent.parent
VFIO = ROOT / "samples" / "vfio"
BASE = VFIO / "q35-base" / "info-mtree.txt"  # devices with every BAR page direct-mapped
NO_MMAP = VFIO / "q35-no-mmap" / "info-mtree.txt"  # the same devices, x-no-mmap: all trap


def flatview(*args: str | Path, stdin=subprocess.DEVNULL, env=None, shell_tail: str = ""):
    """The real command in a child process (for streams and signals: real descriptors)."""
    argv = [sys.executable, "-m", "flatview", *map(str, args)]
    if shell_tail:  # shell redirections: `<&-`, `>&-`, `> /dev/full`
        cmd = " ".join(f"'{a}'" for a in argv) + " " + shell_tail
        return subprocess.run(
            ["sh", "-c", cmd], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
        )
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, stdin=stdin, env=env, timeout=120
    )


def run(*args: str | Path, capsys) -> tuple[int, str, str]:
    """The command in this process (``cli.main``): fast, for everything else."""
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status: int, out: str, err: str) -> str:
    assert status == 2, (status, out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("flatview: ")
    return lines[0]


def mutated(tmp_path: Path, name: str, lineno: int, old: str, new: str, src: Path = BASE) -> Path:
    """``src`` with ``old`` replaced by ``new`` on line ``lineno`` (1-based; CRLF kept)."""
    lines = src.read_bytes().decode().split("\n")
    assert old in lines[lineno - 1], lines[lineno - 1]
    lines[lineno - 1] = lines[lineno - 1].replace(old, new, 1)
    path = tmp_path / name
    path.write_bytes("\n".join(lines).encode())
    return path


def line_of(src: Path, text: str) -> int:
    """1-based number of the first line of ``src`` holding ``text``."""
    for no, line in enumerate(src.read_text().splitlines(), 1):
        if text in line:
            return no
    raise AssertionError(text)


# ------------------------------------------------------------------------- tracebacks


def test_a_bar_with_no_guest_address_in_the_candidate_is_explained_not_a_crash():
    # diff.py formatted the candidate BAR's guest base with :#x while it was None
    # (TypeError) when the BAR lost pages without a lost offset: 2 direct pages before,
    # none after, no region mapping it any more.
    before = BarFigures(1, 4096, 0xFE000000, 0x2000, 0x2000, False, 0x2000, 2, 2, (), ())
    after = BarFigures(1, 4096, None, 0x2000, 0x2000, False, 0, 0, 0, (), ())
    d = _compare_bar("0000:00:05.0", 1, before, after, 4096)
    assert (d.pages_before, d.pages_after) == (2, 0)
    assert "no guest address" in d.why


@pytest.mark.parametrize("wide", [False, True])
def test_a_device_with_no_bar_in_the_input_is_advised_in_words(tmp_path, wide, capsys):
    # Found by benchmarks/fuzz.py (seed 2026, a flipped digit): a base BAR container named
    # for another device (0000:0d:04.0) whose BAR region is 0000:00:04.0's.  The device
    # has no BAR rows, and tabulate 0.9 fails on a table of none (IndexError: exit 3).
    no = line_of(BASE, "0000:00:04.0 base BAR 2")
    dump = mutated(tmp_path, "bdf.txt", no, "0000:00:04.0 base", "0000:0d:04.0 base")
    args = ("advise", dump, "--device", "0d:04.0") + (("--wide",) if wide else ())
    status, out, err = run(*args, capsys=capsys)
    assert (status, err) == (0, "")
    assert out.startswith("== 0000:0d:04.0\n")
    assert "   BARs: none in the input, so no host page to lose\n" in out
    assert "BAR    from" not in out  # no table of no rows
    assert "no MSI-X capability: nothing to relocate" in out


@pytest.mark.parametrize("command", ["diff", "gate"])
def test_renamed_memory_region_headings_never_crash_diff_or_gate(tmp_path, command, capsys):
    # One `memory-region:` heading renamed at a time (parse accepts the result: the
    # section's lines then belong to the section before), at 4K pages, both directions.
    src = NO_MMAP
    headings = [
        no
        for no, ln in enumerate(src.read_text().splitlines(), 1)
        if ln.startswith("memory-region:")
    ]
    assert len(headings) > 5
    for no in headings:
        cand = mutated(tmp_path, f"r{no}.txt", no, "memory-region: ", "memory-regiom: ", src)
        for a, b in ((BASE, cand), (cand, BASE)):
            status, out, err = run(command, a, b, "--page-size", "4K", capsys=capsys)
            assert status in (0, 1, 2), (no, status, err)
            if status == 2:
                one_line_error(status, out, err)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_endless_devices_are_one_line_errors(device, capsys):
    if not os.path.exists(device):
        pytest.skip(f"{device} is absent")
    line = one_line_error(*run("parse", device, capsys=capsys))
    assert line.startswith(f"flatview: {device}:")
    assert "binary data" in line or "not UTF-8" in line


def test_input_size_is_bounded(tmp_path, capsys):
    # 2 MiB of a real dump repeated: read in chunks, refused past --max-input
    big = tmp_path / "big.txt"
    text = BASE.read_text()
    big.write_text(text * (2 * 1024 * 1024 // len(text) + 1))
    line = one_line_error(*run("parse", big, "--max-input", "1M", capsys=capsys))
    assert line == f"flatview: {big}: input larger than 1M (--max-input to read more)"
    # before the command name too, and any size syntax --page-size takes
    line = one_line_error(*run("--max-input", "0x100000", "parse", big, capsys=capsys))
    assert "input larger than 1M" in line
    status, out, _ = run("parse", BASE, "--max-input", "1M", capsys=capsys)
    assert status == 0 and "info mtree" in out
    assert "--max-input" in one_line_error(*run("parse", BASE, "--max-input", "²K", capsys=capsys))


def test_the_default_bound_is_512m():
    assert files.DEFAULT_MAX_INPUT == 512 * 1024 * 1024


def test_closed_stdin_is_one_line():
    p = flatview("parse", "-", shell_tail="<&-")
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == "flatview: -: cannot read: standard input is closed\n"


def test_closed_stdout_is_one_line_and_no_report(tmp_path):
    report = tmp_path / "r.xml"
    p = flatview("gate", BASE, NO_MMAP, "--junit", report, shell_tail=">&-")
    assert p.returncode == 2
    assert p.stderr == "flatview: cannot write the output: standard output is closed\n"
    assert not report.exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_full_stdout_is_one_line_and_the_junit_report_is_not_written(tmp_path):
    report = tmp_path / "r.xml"
    p = flatview("gate", BASE, NO_MMAP, "--junit", report, shell_tail="> /dev/full")
    assert p.returncode == 2
    assert p.stderr == "flatview: cannot write the output: No space left on device\n"
    assert not report.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left either
    # the same run with somewhere to write: exit 1 (the no-mmap candidate regresses)
    p = flatview("gate", BASE, NO_MMAP, "--junit", report)
    assert p.returncode == 1 and report.read_text().startswith("<?xml")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["gate", "--help"], ["--version"]])
def test_help_or_version_that_cannot_be_written_is_an_error(args):
    # argparse drops a failed write of its own texts: exit 0 with nothing shown
    p = flatview(*args, shell_tail="> /dev/full")
    assert p.returncode == 2
    assert p.stderr == "flatview: cannot write the output: No space left on device\n"


def test_a_closed_pipe_is_quiet():
    # `flatview ... | head -1`: the reader stops early; no BrokenPipeError, no message
    p = subprocess.run(
        f"'{sys.executable}' -m flatview parse --format qemu '{BASE}' | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert p.stdout.startswith("address-space: ")
    assert p.stderr == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("advise", BASE, "--page-size", "²K"), "--page-size: '²K'"),
        (("advise", BASE, "--page-size", "4K,3K"), "--page-size: '3K'"),
        (("advise", BASE, "--page-size", "1"), "power of two from 4K to 1G"),
        (("advise", BASE, "--page-size", "2G"), "power of two from 4K to 1G"),
        (("advise", BASE, "--page-size", "9" * 5000), "--page-size"),
        (("advise", BASE, "--kernel", "9" * 5000), "--kernel"),
        (("advise", BASE, "--kernel", "abc"), "--kernel: 'abc' is not a kernel release"),
        (("advise", BASE, "--kernel", ""), "--kernel"),
        (("diff", BASE, NO_MMAP, "--page-size", "²K"), "--page-size"),
        (("gate", BASE, NO_MMAP, "--page-size", "0x3000"), "power of two"),
    ],
)
def test_bad_option_values_are_one_line_errors(args, needle, capsys):
    assert needle in one_line_error(*run(*args, capsys=capsys))


@pytest.mark.parametrize("page", ["²K", "3K"])
def test_allow_list_with_a_bad_page_size_names_its_line(tmp_path, page, capsys):
    allow = tmp_path / "allow.txt"
    allow.write_text(f"# known\n0000:00:05.0 1 {page} reason\n")
    line = one_line_error(*run("gate", BASE, NO_MMAP, "--allow", allow, capsys=capsys))
    assert line.startswith(f"flatview: {allow}:2: allow-list: page size '{page}'")


@pytest.mark.parametrize("bar", ["²", "BAR²"])
def test_allow_list_with_a_non_ascii_bar_names_its_line(tmp_path, bar, capsys):
    allow = tmp_path / "allow.txt"
    allow.write_text(f"0000:00:05.0 {bar} 4K reason\n")
    line = one_line_error(*run("gate", BASE, NO_MMAP, "--allow", allow, capsys=capsys))
    assert line.startswith(f"flatview: {allow}:1: allow-list: BAR '{bar}'")


@pytest.mark.parametrize("spelling", ["64K", "0x10000", "65536", "64k", "64KiB"])
def test_page_size_spellings(spelling, capsys):
    # 64K = 0x10000 = 65536: the same advice, byte for byte
    ref = run("advise", BASE, "--page-size", "64K", "--json", capsys=capsys)
    assert run("advise", BASE, "--page-size", spelling, "--json", capsys=capsys) == ref
    assert ref[0] == 0


@pytest.mark.parametrize("release", ["4.15", "6.1", "6.1.0-13-amd64", "3.10.0-1160.el7.x86_64"])
def test_kernel_releases_are_understood(release, capsys):
    assert run("advise", BASE, "--kernel", release, capsys=capsys)[0] == 0


def test_ctrl_c_is_exit_130_with_one_line(tmp_path):
    # A real SIGINT while flatview waits on a FIFO nobody writes to.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    child = subprocess.Popen(
        [sys.executable, "-m", "flatview", "parse", str(fifo)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    # Signal only once the child holds the FIFO open, i.e. it is past its imports and
    # inside the wait (FIFO_WAIT is 10 s): a fixed sleep raced with a loaded machine.
    fds = Path(f"/proc/{child.pid}/fd")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if any(os.readlink(fd) == str(fifo) for fd in fds.iterdir()):
                break
        except OSError:
            pass  # an fd closed while we looked: look again
        time.sleep(0.05)
    time.sleep(0.1)  # from open() into poll()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert (out, err) == ("", "flatview: interrupted\n")


def test_keyboard_interrupt_anywhere_is_exit_130(monkeypatch, capsys):
    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "parse", interrupted)
    assert run("parse", BASE, capsys=capsys) == (130, "", "flatview: interrupted\n")


def test_an_internal_error_is_exit_3_with_one_line_saying_it_is_a_bug(monkeypatch, capsys):
    def broken(_args):
        return f"{None:#x}"  # the very TypeError diff.py had

    monkeypatch.setitem(cli.COMMANDS, "gate", broken)
    status, out, err = run("gate", BASE, NO_MMAP, capsys=capsys)
    assert (status, out) == (3, "")  # never 1: gate's 1 means a regression
    assert len(err.splitlines()) == 1
    assert "internal error (a bug in flatview" in err and "TypeError" in err
    assert "please report it" in err


def test_an_ascii_terminal_gets_escapes_not_a_traceback(tmp_path):
    dump = mutated(tmp_path, "u.txt", 2, "bus master container", "bus → master")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    p = flatview("parse", "--format", "qemu", dump, env=env)
    assert p.returncode == 0, p.stderr
    assert "bus \\u2192 master" in p.stdout
    p = flatview("parse", tmp_path / "nowhere→.txt", env=env)
    assert p.returncode == 2
    assert (
        p.stderr
        == f"flatview: {tmp_path}/nowhere\\u2192.txt: cannot read: No such file or directory\n"
    )


# ------------------------------------------------------------------- silent or wrong


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("0000000000000000-", "00000000000000000-"),  # 17 digits
        ("0000000000000000-", "0000000000000000000000000-"),  # 25: was read as prose
        ("-ffffffffffffffff", "-fffffffffffffffff"),
        ("-ffffffffffffffff", "-0xffffffffffffffff0"),
    ],
)
def test_an_address_too_long_is_an_error_on_its_own_line(tmp_path, old, new, capsys):
    no = line_of(BASE, "(prio -1, i/o): pci")  # mid-file, inside the `memory` tree
    dump = mutated(tmp_path, "long.txt", no, old, new)
    line = one_line_error(*run("parse", dump, capsys=capsys))
    assert line.startswith(f"flatview: {dump}:{no}: ")
    assert "16 hex digits" in line


def test_an_alias_offset_too_long_is_an_error_not_a_region_name(tmp_path, capsys):
    no = line_of(BASE, "alias ram-below-4g @pc.ram")
    dump = mutated(
        tmp_path,
        "alias.txt",
        no,
        "@pc.ram 0000000000000000-000000000fffffff",
        "@pc.ram 0000000000000000-0000000000fffffff",
    )
    line = one_line_error(*run("parse", dump, capsys=capsys))
    assert line.startswith(f"flatview: {dump}:{no}: alias target offsets")


def test_a_ten_megabyte_address_on_the_only_region_line(tmp_path, capsys):
    dump = tmp_path / "huge.txt"
    dump.write_text(
        f"address-space: memory\n  {'1' * 10_000_000}-ffffffffffffffff (prio 0, i/o): x\n"
    )
    line = one_line_error(*run("parse", dump, capsys=capsys))
    assert line.startswith(f"flatview: {dump}:2: address longer than 16 hex digits")
    assert len(line) < 300  # the offending text is shown cut


@pytest.mark.parametrize("prio", ["99999999999999999999", "2147483648", "-2147483649", "9" * 5000])
def test_a_priority_outside_int32_is_an_error(tmp_path, prio, capsys):
    dump = mutated(tmp_path, "prio.txt", 2, "(prio 0,", f"(prio {prio},")
    line = one_line_error(*run("parse", dump, capsys=capsys))
    assert line.startswith(f"flatview: {dump}:2: priority outside QEMU's int range")


@pytest.mark.parametrize("prio", ["2147483647", "-2147483648"])
def test_int32_priorities_at_the_limits_are_read(tmp_path, prio, capsys):
    dump = mutated(tmp_path, "prio.txt", 2, "(prio 0,", f"(prio {prio},")
    assert run("parse", dump, capsys=capsys)[0] == 0


def test_a_fifo_with_no_writer_fails_instead_of_blocking(tmp_path, monkeypatch, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setattr(files, "FIFO_WAIT", 0.3)
    t0 = time.monotonic()
    line = one_line_error(*run("parse", fifo, capsys=capsys))
    assert time.monotonic() - t0 < 30
    assert line == f"flatview: {fifo}: cannot read: a FIFO with no writer (nothing came in 0.3 s)"


def test_a_fifo_with_a_writer_is_read(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    text = BASE.read_bytes()

    def write():
        with open(fifo, "wb") as fh:  # blocks until flatview opens the FIFO
            fh.write(text)

    writer = threading.Thread(target=write)
    writer.start()
    status, out, _ = run("parse", fifo, capsys=capsys)
    writer.join(timeout=30)
    assert status == 0
    assert out == run("parse", BASE, capsys=capsys)[1]


def test_stdin_is_read_when_no_file_is_given_and_stdin_is_not_a_terminal():
    # `cat dump | flatview advise` advises on the dump, not on the bundled sample
    piped = subprocess.run(
        f"cat '{BASE}' | '{sys.executable}' -m flatview advise",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    with open(BASE, "rb") as fh:
        dash = flatview("advise", "-", stdin=fh)
    named = flatview("advise", BASE)
    assert piped.returncode == dash.returncode == 0
    assert piped.stdout == dash.stdout
    assert "0000:00:05.0" in piped.stdout  # q35-base's devices, not the SAS3008 sample's
    bundled = flatview("advise")  # stdin /dev/null: nothing to read, the sample
    assert bundled.returncode == 0 and bundled.stdout != named.stdout


def test_diff_on_a_device_in_neither_input_is_an_error(capsys):
    line = one_line_error(*run("diff", BASE, NO_MMAP, "--device", "zz:zz.z", capsys=capsys))
    assert line == "flatview: no assigned device 0000:zz:zz.z in either input"


def test_an_alias_window_past_its_target_is_a_warning(tmp_path, capsys):
    no = line_of(BASE, "alias ram-below-4g @pc.ram")
    # pc.ram is 256M (-m 256M); the window now starts 4K in and so ends 4K past it
    dump = mutated(
        tmp_path,
        "w.txt",
        no,
        "@pc.ram 0000000000000000-000000000fffffff",
        "@pc.ram 0000000000001000-0000000010000fff",
    )
    status, _, err = run("parse", dump, capsys=capsys)
    assert status == 0
    assert err == (
        f"flatview: warning: {dump}:{no}: alias 'ram-below-4g': window 0x1000-0x10000fff runs "
        "past the end of 'pc.ram' (size 0x10000000); that part renders nothing\n"
    )
    # the exit status stays what the command says: 1 for gate's regression
    status, _, err = run("gate", dump, NO_MMAP, capsys=capsys)
    assert status == 1 and err.count("warning:") == 1
    # and the real q35 dumps (tseg-window: size 0 at the end of pc.ram) warn about nothing
    assert run("parse", BASE, capsys=capsys)[2] == ""


def _nested(depth: int) -> str:
    lines = ["address-space: memory"]
    lines += [f"{'  ' * (i + 1)}{0:016x}-{0xFFFF:016x} (prio 0, i/o): r{i}" for i in range(depth)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", ["parse", "flatten", "check"])
def test_nesting_limit_has_a_line_number(tmp_path, command, capsys):
    ok, deep = tmp_path / "ok.txt", tmp_path / "deep.txt"
    ok.write_text(_nested(100))
    deep.write_text(_nested(494))  # where Python's recursion gave out before, no line
    line = one_line_error(*run(command, deep, capsys=capsys))
    # level 101 is the 101st region line, line 102 (after the heading)
    assert line.startswith(f"flatview: {deep}:102: regions nested more than 100 levels deep")
    if command != "check":
        assert run(command, ok, capsys=capsys)[0] == 0
        assert run(command, ok, "--json", capsys=capsys)[0] == 0


def test_nesting_through_aliases_counts_too(tmp_path, capsys):
    # 60 sections, each two levels deep with an alias into the next: 120 levels rendered
    lines = ["address-space: memory", f"  {0:016x}-{0xFFF:016x} (prio 0, i/o): top"]
    lines.append(f"    {0:016x}-{0xFFF:016x} (prio 0, i/o): alias a0 @s0 {0:016x}-{0xFFF:016x}")
    for i in range(60):
        lines += ["", f"memory-region: s{i}", f"  {0:016x}-{0xFFF:016x} (prio 0, i/o): s{i}"]
        if i < 59:
            lines.append(
                f"    {0:016x}-{0xFFF:016x} (prio 0, i/o): alias a{i + 1} @s{i + 1} "
                f"{0:016x}-{0xFFF:016x}"
            )
    dump = tmp_path / "chain.txt"
    dump.write_text("\n".join(lines) + "\n")
    line = one_line_error(*run("flatten", dump, capsys=capsys))
    assert "regions nested more than 100 levels deep (through subregions and aliases)" in line
    assert line.startswith(f"flatview: {dump}:")


def _alias_chain(sections: int, leaf: bool) -> str:
    """top -> alias a0 -> s0 -> alias a1 -> s1 ... -> s(n-1) [-> leaf]: 2n + 1 regions
    on the path from the root (2n + 2 with the leaf)."""
    row = f"{0:016x}-{0xFFF:016x} (prio 0, i/o)"
    lines = ["address-space: memory", f"  {row}: top", f"    {row}: alias a0 @s0 {row[:33]}"]
    for i in range(sections):
        lines += ["", f"memory-region: s{i}", f"  {row}: s{i}"]
        if i < sections - 1:
            lines.append(f"    {row}: alias a{i + 1} @s{i + 1} {row[:33]}")
        elif leaf:
            lines.append(f"    {row}: leaf")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("sections", "leaf", "depth"), [(49, True, 100), (50, False, 101)])
def test_nesting_through_aliases_bound_is_exact(tmp_path, capsys, sections, leaf, depth):
    # the bound counts regions on the path: 100 are read, 101 are not
    dump = tmp_path / "chain.txt"
    dump.write_text(_alias_chain(sections, leaf))
    status, _, err = run("parse", dump, capsys=capsys)
    if depth <= 100:
        assert (status, err) == (0, "")
    else:
        line = one_line_error(status, _, err)
        assert "regions nested more than 100 levels deep (through subregions and aliases)" in line


# ------------------------------------------------------- big numbers end cleanly, in time


def test_a_bar_made_5_tib_by_one_flipped_digit(tmp_path, capsys):
    no = line_of(BASE, "0000:00:05.0 BAR 4 mmaps[0]")
    # 0x00000000fe603fff -> 0x00000500fe603fff: one digit, a 5 TiB ramd region
    dump = mutated(tmp_path, "5t.txt", no, "-00000000fe603fff", "-00000500fe603fff")
    for args in (
        ("advise", dump, "--page-size", "4K"),
        ("diff", BASE, dump),
        ("gate", BASE, dump),
        ("gate", dump, BASE),
        ("flatten", dump),
    ):
        status, _, err = run(*args, capsys=capsys)
        assert status in (0, 1, 2), (args, err)


# --------------------------------------------------------------------------- data loss


def test_junit_never_overwrites_an_input(tmp_path, capsys):
    cand = tmp_path / "cand.txt"
    cand.write_bytes(NO_MMAP.read_bytes())
    before = cand.read_bytes()
    line = one_line_error(*run("gate", BASE, cand, "--junit", cand, capsys=capsys))
    assert line == (
        f"flatview: --junit {cand}: is also an input of this command ({cand}); nothing written"
    )
    assert cand.read_bytes() == before
    # ... also when the input is named through a symbolic link or a hard link
    link, hard = tmp_path / "link.txt", tmp_path / "hard.txt"
    link.symlink_to(cand)
    os.link(cand, hard)
    for inp in (link, hard):
        line = one_line_error(*run("gate", BASE, inp, "--junit", cand, capsys=capsys))
        assert "is also an input of this command" in line
    assert cand.read_bytes() == before
    # ... and the allow-list is an input too
    allow = tmp_path / "allow.txt"
    allow.write_text("# nothing allowed\n")
    line = one_line_error(
        *run("gate", BASE, cand, "--allow", allow, "--junit", allow, capsys=capsys)
    )
    assert "is also an input" in line and allow.read_text() == "# nothing allowed\n"


def test_junit_refuses_a_symbolic_link_and_keeps_it(tmp_path, capsys):
    target = tmp_path / "old.xml"
    target.write_text("old report\n")
    link = tmp_path / "report.xml"
    link.symlink_to(target)
    line = one_line_error(*run("gate", BASE, NO_MMAP, "--junit", link, capsys=capsys))
    assert "is a symbolic link; flatview does not write through links" in line
    assert link.is_symlink() and target.read_text() == "old report\n"


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_junit_refuses_what_is_not_a_regular_file(tmp_path, kind, capsys):
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    elif kind == "device":
        path = Path(os.devnull)
    else:
        path = tmp_path
    mode = os.lstat(path).st_mode
    line = one_line_error(*run("gate", BASE, NO_MMAP, "--junit", path, capsys=capsys))
    assert "not a regular file" in line
    assert os.lstat(path).st_mode == mode


def test_junit_keeps_an_existing_files_mode_and_owner(tmp_path, capsys):
    report = tmp_path / "report.xml"
    report.write_text("old\n")
    report.chmod(0o640)
    if os.getuid() == 0:  # as root, a file of another user can be kept theirs
        os.chown(report, 12345, 12346)
    st = report.stat()
    status, _, err = run("gate", BASE, NO_MMAP, "--junit", report, capsys=capsys)
    assert status == 1, err  # the no-mmap candidate regresses
    new = report.stat()
    assert report.read_text().startswith("<?xml")
    assert stat.S_IMODE(new.st_mode) == 0o640
    assert (new.st_uid, new.st_gid) == (st.st_uid, st.st_gid)
    assert sorted(os.listdir(tmp_path)) == ["report.xml"]  # the temporary file is gone


def test_junit_is_not_written_when_the_run_fails(tmp_path, capsys):
    report = tmp_path / "report.xml"
    bad = tmp_path / "bad.txt"
    bad.write_text("address-space: memory\n  0000000000000000-fffffffffffffffg (prio 0, i/o): x\n")
    one_line_error(*run("gate", BASE, bad, "--junit", report, capsys=capsys))
    assert os.listdir(tmp_path) == ["bad.txt"]


def test_junit_into_a_missing_folder_is_one_line(tmp_path, capsys):
    report = tmp_path / "no" / "such" / "report.xml"
    line = one_line_error(*run("gate", BASE, NO_MMAP, "--junit", report, capsys=capsys))
    assert line == f"flatview: {report}: cannot write: No such file or directory"


def test_a_1_gib_bar_at_4k_pages_and_page_size_1(tmp_path, capsys):
    # BAR 4 of 0000:00:05.0 grown to 1 GiB (base BAR, BAR and mmaps[0] alike):
    # 0xfe600000 + 0x40000000 - 1 = 0x13e5fffff, 262,144 host pages of 4K
    text = BASE.read_text().replace("-00000000fe603fff", "-000000013e5fffff")
    assert text.count("-000000013e5fffff") == 3
    dump = tmp_path / "1g.txt"
    dump.write_text(text)
    status, out, err = run("advise", dump, "--page-size", "4K", "--json", capsys=capsys)
    assert status == 0, err
    bar4 = [
        b
        for d in json.loads(out)["devices"]
        if d["device"] == "0000:00:05.0"
        for b in d["bars"]
        if b["index"] == 4
    ]
    assert bar4 and bar4[0]["pages_total"] == 0x40000000 // 4096
    # a page size of 1 byte would have meant 2^30 pages: it is refused
    line = one_line_error(*run("advise", dump, "--page-size", "1", capsys=capsys))
    assert "power of two from 4K to 1G" in line


def test_6000_overlapping_equal_priority_siblings(tmp_path, capsys):
    # Sibling i covers [0x100000 + 0x10 i, 0x200000 + 0x10 i), all at priority 0.  Which
    # of two overlapping equal-priority siblings renders first is the one added last
    # (memory_region_update_container_subregions), which the dump does not show: `info
    # mtree` prints siblings by address.  flatview renders the later-printed one first
    # (terminates.py) and reports the whole cluster as one ambiguity.  So r5999 keeps its
    # whole megabyte and each earlier ri only its first 0x10 bytes.
    from flatview import api

    n = 6000
    lines = ["address-space: memory", f"  {0:016x}-{2**64 - 1:016x} (prio 0, i/o): system"]
    for i in range(n):
        s = 0x100000 + 0x10 * i
        lines.append(f"    {s:016x}-{s + 0xFFFFF:016x} (prio 0, ram): r{i}")
    dump = tmp_path / "siblings.txt"
    dump.write_text("\n".join(lines) + "\n")
    (tree,) = api.load(str(dump))
    result = api.flatten(tree)
    (view,) = result.views
    got = [(r.start, r.end, r.name) for r in view.ranges if r.name != "system"]
    last = 0x100000 + 0x10 * (n - 1)
    want = [(0x100000 + 0x10 * i, 0x100000 + 0x10 * (i + 1), f"r{i}") for i in range(n - 1)]
    assert got == [*want, (last, last + 0x100000, f"r{n - 1}")]
    (amb,) = result.ambiguities
    assert amb.kind == "equal-priority overlap" and len(amb.regions) == n
    assert run("parse", dump, capsys=capsys)[0] == 0
