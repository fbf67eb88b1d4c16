"""Capture from a real QEMU: a QMP socket, a QEMU flatview launches itself, a matrix of
launches gated folder against folder.  Every QEMU here is started by the test (or by
flatview) and gone when the test ends.

Expected values come from QEMU: its own ``--version``, the text a direct QMP
``human-monitor-command`` returns, and QEMU's source for e1000e's MSI-X layout
(hw/net/e1000e.c: ``E1000E_MSIX_IDX`` 3, table at 0x0000, PBA at 0x2000, 5 vectors).

Skipped when ``qemu-system-x86_64`` is not on PATH (CI installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flatview import api
from flatview.capture.matrix import load_matrix
from flatview.source import monitor_part

# An event as QEMU writes one (qapi/run-state.json RESUME), here before a greeting
EVENT = b'{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}\n'

QEMU = shutil.which("qemu-system-x86_64")
ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "matrices" / "oracle.toml"
XSD = Path(__file__).parent / "fixtures" / "junit" / "junit-10.xsd"

needs_qemu = pytest.mark.skipif(
    QEMU is None, reason="qemu-system-x86_64 is not on PATH (CI installs it)"
)

# hw/net/e1000e.c: 5 vectors, table (5 * 16 = 0x50 = 80 bytes) at BAR3+0, PBA at BAR3+0x2000
E1000E_MSIX = re.compile(
    r"MSI-X: 5 vectors, table BAR3\+0x0 \((?:0x50|80) bytes\), PBA BAR3\+0x2000"
)

MACHINE = [
    "-machine", "q35", "-display", "none", "-nodefaults",
    "-device", "e1000e,id=net0", "-device", "virtio-net-pci,id=vnet0",
]  # fmt: skip


def flatview(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flatview", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@contextmanager
def running_qemu(args: list[str], *, paused: bool = False) -> Iterator[tuple[str, list[str]]]:
    """A QEMU started by the test with a QMP socket; (socket, its command line)."""
    assert QEMU is not None
    tmp = Path(tempfile.mkdtemp(prefix="fvt"))
    sock = str(tmp / "qmp.sock")
    cmd = [QEMU, *args, "-qmp", f"unix:{sock},server=on,wait=off", *(["-S"] if paused else [])]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert proc.poll() is None and time.monotonic() < deadline, "QEMU did not start"
            time.sleep(0.02)
        yield sock, cmd
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def raw_qmp(sock: str, commands: list[str], execute: tuple[str, ...] = ()) -> dict[str, str]:
    """The reference: HMP text straight from QMP, one JSON object per line each way
    (``execute``: plain QMP commands sent first)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.settimeout(10)
        f = s.makefile("rwb")
        json.loads(f.readline())  # greeting
        msgs = [{"execute": c} for c in ("qmp_capabilities", *execute)]
        msgs += [
            {"execute": "human-monitor-command", "arguments": {"command-line": c}} for c in commands
        ]
        replies = []
        for msg in msgs:
            f.write(json.dumps(msg).encode() + b"\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply or "error" in reply:
                    break
            replies.append(reply.get("return"))
        hmp = replies[len(msgs) - len(commands) :]
        return {c: r.replace("\r\n", "\n") for c, r in zip(commands, hmp, strict=True)}


def boot_and_stop(sock: str) -> None:
    """Let SeaBIOS map e1000e's BAR3 (two equal looks at info pci), then stop the guest."""
    deadline = time.monotonic() + 15
    last = None
    while time.monotonic() < deadline:
        text = raw_qmp(sock, ["info pci"])["info pci"]
        m = re.search(r"(?s)PCI device 8086:10d3.*?BAR3: 32 bit memory at (0x[0-9a-f]+) ", text)
        if m and int(m[1], 16) != 0xFFFFFFFFFFFFFFFF and text == last:
            raw_qmp(sock, [], ("stop",))
            return
        last = text
        time.sleep(0.2)
    raise AssertionError("SeaBIOS did not map e1000e's BAR3 in 15 s")


def qemu_version() -> str:
    assert QEMU is not None
    first = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout
    m = re.match(r"QEMU emulator version (\d+\.\d+\.\d+)", first)
    assert m, first
    return m[1]


def children_named(word: str) -> list[str]:
    path = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    found = []
    for pid in path.read_text().split() if path.exists() else []:
        comm = Path(f"/proc/{pid}/comm")
        if comm.exists() and word in comm.read_text():
            found.append(pid)
    return found


# ------------------------------------------------------------------------- the bundle


def test_monitor_part_keeps_line_numbers_and_takes_quoted_prompts():
    text = "hello\n> (qemu) info pci\n>   Bus  0, device   0, function 0:\n> (qemu) info mtree\nx\n"
    part = monitor_part(text, "info pci")
    assert part is not None
    assert part.splitlines() == ["", "", ">   Bus  0, device   0, function 0:", "", ""]
    assert monitor_part(text, "info mtree -f") is None


BUNDLE = Path(__file__).parent / "fixtures" / "capture" / "q35-e1000e.txt"


@pytest.mark.parametrize("quote", ["", "> ", "> > "])
def test_every_command_reads_a_bundle_also_quoted_in_mail(tmp_path, quote):
    text = BUNDLE.read_text()
    path = tmp_path / "mail.txt"
    path.write_text("Here is my VM:\n\n" + "".join(quote + ln + "\n" for ln in text.splitlines()))
    parsed = flatview("parse", str(path))
    assert parsed.returncode == 0, parsed.stderr
    # the tree after '(qemu) info mtree', the flat view after '(qemu) info mtree -f'
    lines = text.splitlines()
    out = parsed.stdout.splitlines()[2:]
    # the bundle's '#' lines, prompts, info version and info pci parts are counted as prose
    assert any(r.endswith(" lines skipped as elisions/prose") for r in out), out
    rows = [r.split() for r in out if r.split()[1:2] == ["info"]]  # the dump rows
    assert [(int(r[0]), " ".join(r[1:3])) for r in rows[:1]] == [
        (lines.index("(qemu) info mtree") + 4, "info mtree")  # +2 prose lines, 1-based, next
    ]
    assert len(rows) == 2 and rows[1][1:4] == ["info", "mtree", "-f"]
    assert rows[1][0] == str(lines.index("(qemu) info mtree -f") + 4)
    check = flatview("check", str(path))
    assert check.returncode == 0 and check.stdout.endswith("OK\n"), check.stdout + check.stderr
    # advise: BAR3 from the info pci part (0xfebc0000, 16K), e1000e's MSI-X layout from
    # hw/net/e1000e.c (5 vectors: table 0x50 bytes at BAR3+0, PBA at BAR3+0x2000).
    advise = flatview("advise", str(path), "--json")
    assert advise.returncode == 0, advise.stderr
    [dev] = json.loads(advise.stdout)["devices"]
    assert dev["device"] == "0000:00:01.0"
    bar3 = next(b for b in dev["bars"] if b["index"] == 3)
    assert (bar3["guest_base"], bar3["size"]) == (0xFEBC0000, 0xFEBC3FFF - 0xFEBC0000 + 1)
    text_advice = flatview("advise", str(path)).stdout
    assert E1000E_MSIX.search(text_advice), text_advice
    # gate of the bundle against itself: the e1000e is checked, nothing regresses.
    gate = flatview("gate", str(path), str(BUNDLE))
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "0000:00:01.0" in gate.stdout


def test_shipped_matrix_is_the_oracle_configurations():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_qemu_oracle import CONFIGS

    matrix = load_matrix(MATRIX.read_text(), str(MATRIX))
    assert matrix.args == ("-display", "none", "-nodefaults")
    assert [c.name for c in matrix.configs] == list(CONFIGS)
    for c in matrix.configs:
        args, modes = CONFIGS[c.name]
        assert list(c.args) == args
        assert c.paused == ("bars-assigned" not in modes)
        assert MATRIX.read_text().splitlines()[c.line - 1] == f'name = "{c.name}"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[config]]\nname = 'a b'\n", "m.toml:2: config #1: name must be letters"),
        (
            "[[config]]\nname = 'a'\n[[config]]\nname = 'a'\n",
            "m.toml:2: configuration name used twice",
        ),
        ("[[config]]\nname = 'a'\nargs = '-M q35'\n", "m.toml:2: args must be a list of strings"),
        ("args = [1\n", "m.toml:1: not TOML"),
        ("args = []\n", "m.toml:1: no [[config]] table"),
    ],
)
def test_bad_matrix_is_one_line(tmp_path, text, message):
    (tmp_path / "m.toml").write_text(text)
    done = flatview("capture", "--matrix", str(tmp_path / "m.toml"), "--qemu", "q", "--out",
                    str(tmp_path / "o"), timeout=30)  # fmt: skip
    line = one_error_line(done)
    assert line.startswith("flatview: " + message.replace("m.toml", str(tmp_path / "m.toml")))


# -------------------------------------------------------------------------- --qmp


@needs_qemu
def test_capture_qmp_writes_a_bundle_every_command_reads(tmp_path):
    out = tmp_path / "vm.txt"
    with running_qemu(MACHINE) as (sock, cmd):
        boot_and_stop(sock)
        t0 = time.monotonic()
        done = flatview("capture", "--qmp", sock, "-o", str(out))
        elapsed = time.monotonic() - t0
        assert done.returncode == 0, done.stderr
        ref = raw_qmp(sock, ["info mtree", "info mtree -f", "info pci"])
        live_advise = flatview("advise", "--qmp", sock)
        live_check = flatview("check", "--qmp", sock)
        live_diff = flatview("diff", str(out), "--qmp", sock, "--json")
        live_gate = flatview("gate", str(out), "--qmp", sock)
        live_map = flatview("map", "--qmp", sock, "-o", str(tmp_path / "map.svg"))
    print(f"capture --qmp: {elapsed:.2f} s (with interpreter start)")
    text = out.read_text()
    lines = text.splitlines()
    version = qemu_version()
    assert lines[0] == f"QEMU {version} monitor - type 'help' for more information"
    assert f"# command line: {' '.join(cmd)}" in lines  # no argument needs quoting here
    prompts = [ln for ln in lines if ln.startswith("(qemu) ")]
    assert prompts == ["(qemu) info version", "(qemu) info mtree", "(qemu) info mtree -f",
                       "(qemu) info pci"]  # fmt: skip
    assert lines[lines.index("(qemu) info version") + 1].startswith(version)
    # Each part is what QEMU printed (the guest is stopped: nothing changes).
    for command in ("info mtree", "info mtree -f", "info pci"):
        assert monitor_part(text, command).strip("\n") == ref[command].strip("\n")
    # Every flatview command reads the bundle as a dump.
    dumps = api.load(str(out))
    assert [d.kind for d in dumps] == ["tree", "flat"]
    assert flatview("check", str(out)).returncode == 0
    assert flatview("flatten", str(out)).returncode == 0
    for done in (live_check, live_diff, live_gate, live_map):
        assert done.returncode == 0, done.stderr
    # one FILE and --qmp: FILE is the before, the running QEMU the after (not a diff paste)
    sides = json.loads(live_diff.stdout)
    assert sides["before"].startswith(f"{out} (info mtree at line"), sides
    assert sides["after"].startswith(f"qmp:{sock} (info mtree at line"), sides
    assert "PASS" in live_gate.stdout, live_gate.stdout
    assert live_check.stdout.endswith("OK\n")
    assert "<svg" in (tmp_path / "map.svg").read_text()
    # advise takes the BARs from the bundle's info pci: e1000e's MSI-X in BAR3 with 5
    # vectors (hw/net/e1000e.c: table 5 * 16 = 0x50 bytes at 0, PBA at 0x2000), and the
    # guest address of BAR3 is the one info pci printed.
    assert live_advise.returncode == 0, live_advise.stderr
    assert E1000E_MSIX.search(live_advise.stdout), live_advise.stdout
    advice = json.loads(flatview("advise", str(out), "--json").stdout)
    [e1000e] = [d for d in advice["devices"] if d["device"] == "0000:00:01.0"]
    m = re.search(
        r"(?s)PCI device 8086:10d3.*?BAR3: 32 bit memory at (0x[0-9a-f]+) ", ref["info pci"]
    )
    assert m is not None
    assert [b["guest_base"] for b in e1000e["bars"] if b["index"] == 3] == [int(m[1], 16)]


def test_capture_errors_are_one_line_and_leave_no_file(tmp_path):
    out = tmp_path / "b.txt"
    # no socket
    line = one_error_line(flatview("capture", "--qmp", str(tmp_path / "none"), "-o", str(out)))
    assert line == f"flatview: {tmp_path / 'none'}: no such socket (is QEMU running with " \
        f"-qmp unix:{tmp_path / 'none'},server=on?)"  # fmt: skip
    # a socket nobody listens on any more
    dead = str(tmp_path / "dead.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(dead)
    line = one_error_line(flatview("capture", "--qmp", dead, "-o", str(out)))
    assert line.endswith("nothing listens on this socket (QEMU has exited?)")
    # not a socket
    (tmp_path / "file").write_text("x")
    line = one_error_line(flatview("capture", "--qmp", str(tmp_path / "file"), "-o", str(out)))
    assert line.endswith(": not a socket")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".flatview-")]


@needs_qemu
def test_greeting_timeout_when_another_client_holds_the_monitor(tmp_path):
    out = tmp_path / "b.txt"
    with running_qemu(MACHINE, paused=True) as (sock, _), socket.socket(socket.AF_UNIX) as holder:
        holder.connect(sock)
        assert json.loads(holder.makefile("rb").readline())["QMP"]  # QEMU serves it
        t0 = time.monotonic()
        done = flatview("capture", "--qmp", sock, "--timeout", "1", "-o", str(out))
        elapsed = time.monotonic() - t0
    line = one_error_line(done)
    assert line == f"flatview: {sock}: no QMP greeting within 1s (another client holds the " \
        "monitor, or this is not a QMP socket)"  # fmt: skip
    assert elapsed < 10
    assert not out.exists()


@needs_qemu
def test_permission_denied_for_an_unprivileged_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    import importlib

    from flatview.cli import main

    # Everything the child needs, loaded before it gives up root (user nobody may not
    # read this Python's installation).
    for module in ("flatview.capture.bundle", "flatview.capture.launch", "flatview.capture.qmp"):
        importlib.import_module(module)
    qmp = importlib.import_module("qemu.qmp")
    asyncio.run(qmp.QMPClient("warm-up").disconnect())  # the event loop's modules

    out = tmp_path / "b.txt"
    with running_qemu(MACHINE, paused=True) as (sock, _):
        os.chmod(sock, 0o600)  # QEMU's socket, root's only
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: user nobody runs the command line
            code = 99
            try:
                os.close(r)
                sys.stderr = open(w, "w")  # noqa: SIM115 (pytest's capture is no fd)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                code = main(["capture", "--qmp", sock, "-o", str(out)])
            except BaseException as exc:  # shown by the assertion below
                print(f"child: {exc!r}", file=sys.stderr)
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(w)
        with os.fdopen(r) as fh:
            stderr = fh.read()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2, stderr
    # (the socket's folder is root's only too: stat() is refused before connect())
    assert stderr.startswith(f"flatview: {sock}: permission denied") and stderr.count("\n") == 1
    assert not out.exists()


def _fake_qmp(path: str, before: tuple[bytes, bytes], connections: list[int]) -> None:
    """A QMP server of two connections, the k-th writing ``before[k]`` ahead of its
    greeting; each answers qmp_capabilities, then waits for the client to hang up."""
    greeting = {"QMP": {"version": {"qemu": {"major": 10, "minor": 0, "micro": 2},
                "package": ""}, "capabilities": []}}  # fmt: skip
    with socket.socket(socket.AF_UNIX) as srv:
        srv.bind(path)
        srv.listen(2)
        for k in range(2):
            conn, _ = srv.accept()
            connections.append(k)
            with conn:
                conn.sendall(before[k] + json.dumps(greeting).encode() + b"\n")
                asked = conn.recv(4096)  # one command, unframed (qemu.qmp adds no newline)
                if not asked:
                    continue  # the client gave up on this connection
                cmd = json.loads(asked)
                reply = {"return": {}, **({"id": cmd["id"]} if "id" in cmd else {})}
                conn.sendall(json.dumps(reply).encode() + b"\n")
                while conn.recv(4096):  # until the client hangs up
                    pass


@pytest.mark.parametrize("second", [b"", EVENT], ids=["greeting", "event again"])
def test_an_event_before_the_greeting_is_tried_again_once(tmp_path, second):
    """QEMU can write an event before a new client's greeting (monitor_qapi_event_emit):
    the session is opened again on a new connection, once; a second failure is one
    error line."""
    import threading

    from flatview.capture.qmp import open_session
    from flatview.errors import CaptureError

    path = str(tmp_path / "qmp.sock")
    connections: list[int] = []
    server = threading.Thread(
        target=_fake_qmp, args=(path, (EVENT, second), connections), daemon=True
    )
    server.start()
    while not os.path.exists(path):
        time.sleep(0.01)

    async def session() -> bool:
        async with open_session(path, 5.0) as (client, _pid):
            return client is not None

    if second:
        with pytest.raises(CaptureError, match=r"QMP handshake failed: .*Greeting"):
            asyncio.run(session())
    else:
        assert asyncio.run(session())
    server.join(5)
    assert connections == [0, 1]


# ------------------------------------------------------------------------- launch


@needs_qemu
def test_launch_waits_for_the_bars_and_leaves_no_qemu(tmp_path):
    out = tmp_path / "b.txt"
    argv = [QEMU, *MACHINE]
    t0 = time.monotonic()
    done = flatview("capture", "-o", str(out), "--", *argv)
    print(f"capture -- QEMU: {time.monotonic() - t0:.2f} s")
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert f"# command line: {' '.join(argv)}" in text
    pci = monitor_part(text, "info pci")
    # SeaBIOS mapped e1000e's and virtio-net's memory BARs (not the ROM, BAR6).
    bars = re.findall(r"BAR[0-5]: (?:32|64) bit (?:prefetchable )?memory at (0x[0-9a-f]+)", pci)
    assert bars and all(int(b, 16) != 0xFFFFFFFFFFFFFFFF for b in bars)
    assert flatview("check", str(out)).returncode == 0
    assert not children_named("qemu")
    # --paused: -S, nothing ran, every BAR unmapped.
    assert flatview("capture", "--paused", "-o", str(out), "--", *argv).returncode == 0
    pci = monitor_part(out.read_text(), "info pci")
    bars = re.findall(r"BAR[0-5]: (?:32|64) bit (?:prefetchable )?memory at (0x[0-9a-f]+)", pci)
    assert bars and all(int(b, 16) == 0xFFFFFFFFFFFFFFFF for b in bars)


@needs_qemu
def test_launch_of_a_qemu_that_exits_early_shows_its_stderr(tmp_path):
    out = tmp_path / "b.txt"
    done = flatview("capture", "-o", str(out), "--", QEMU, "-display", "none",
                    "-device", "no-such-device")  # fmt: skip
    line = one_error_line(done)
    assert line.startswith("flatview: QEMU exited with status 1 ")
    assert "'no-such-device' is not a valid device model name" in line
    assert not out.exists() and not children_named("qemu")
    line = one_error_line(flatview("capture", "-o", str(out), "--", str(tmp_path / "qemu")))
    assert line == f"flatview: {tmp_path / 'qemu'}: cannot run: No such file or directory"


# ------------------------------------------------------------------- matrix and gate


def _matrix(path: Path, virtio_args: str) -> Path:
    path.write_text(
        "# two configurations of matrices/oracle.toml, plus a virtio-net whose MSI-X\n"
        "# vectors the candidate may take away\n"
        'args = ["-display", "none", "-nodefaults"]\n\n'
        '[[config]]\nname = "q35-virtio"\n'
        f'args = ["-machine", "q35", "-device", "e1000e", "-device", "{virtio_args}"]\n\n'
        '[[config]]\nname = "q35-smp2"\nargs = ["-machine", "q35", "-smp", "2"]\n'
        "paused = true\n"
    )
    return path


@needs_qemu
def test_matrix_capture_and_gate_by_configuration(tmp_path):
    import xmlschema

    base, cand = tmp_path / "base", tmp_path / "cand"
    t0 = time.monotonic()
    done = flatview("capture", "--matrix", str(_matrix(tmp_path / "m.toml", "virtio-net-pci")),
                    "--qemu", QEMU, "--out", str(base))  # fmt: skip
    print(f"capture --matrix (2 configurations): {time.monotonic() - t0:.2f} s")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in base.iterdir()) == ["q35-smp2.txt", "q35-virtio.txt"]
    # The same binary and matrix: every configuration passes.
    same = flatview("gate", str(base), str(base))
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.splitlines()[-1] == "PASS: 2 configuration(s) at 4K: 0 failing"
    # A candidate whose virtio-net lost MSI-X (vectors=0: no msix_init): its device is
    # gone from what the gate can check, a regression of that configuration only.
    matrix = _matrix(tmp_path / "c.toml", "virtio-net-pci,vectors=0")
    done = flatview("capture", "--matrix", str(matrix), "--qemu", QEMU, "--out", str(cand))
    assert done.returncode == 0, done.stderr
    junit = tmp_path / "gate.xml"
    bad = flatview("gate", str(base), str(cand), "--junit", str(junit))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "REGRESSION       q35-virtio:" in bad.stdout
    assert "NOTHING TO GATE  q35-smp2:" in bad.stdout
    assert bad.stdout.splitlines()[-1] == "FAIL: 2 configuration(s) at 4K: 1 failing: q35-virtio"
    data = json.loads(flatview("gate", str(base), str(cand), "--json").stdout)
    assert data["ok"] is False
    statuses = {c["name"]: c["status"] for c in data["configurations"]}
    assert statuses == {"q35-virtio": "regression", "q35-smp2": "nothing to gate"}
    [gone] = data["configurations"][1]["gate"]["regressions"]
    assert gone["bar"] is None  # the whole device: virtio-net at 00:02.0, no MSI-X now
    assert gone["device"] == "0000:00:02.0"
    xmlschema.XMLSchema(str(XSD)).validate(str(junit))
    xml = junit.read_text()
    assert xml.count("<testcase ") == 2 and xml.count("<failure ") == 1
    assert '<testcase classname="flatview gate" name="q35-virtio"' in xml


@needs_qemu
def test_matrix_line_qemu_rejects_is_one_line(tmp_path):
    m = tmp_path / "m.toml"
    m.write_text('args = ["-display", "none"]\n'
                 '[[config]]\nname = "good"\nargs = ["-machine", "none"]\npaused = true\n\n'
                 '[[config]]\nname = "bad"\n'
                 'args = ["-machine", "none", "-device", "nosuch"]\n')  # fmt: skip
    out = tmp_path / "out"
    line = one_error_line(
        flatview("capture", "--matrix", str(m), "--qemu", QEMU, "--out", str(out))
    )
    assert line.startswith(f"flatview: {m}:8: bad: QEMU exited with status 1 ")
    assert "'nosuch' is not a valid device model name" in line
    assert sorted(p.name for p in out.iterdir()) == ["good.txt"]
    assert not children_named("qemu")


# ------------------------------------------------------------------------- libvirt

VIRSH, LIBVIRTD, VIRTLOGD = (shutil.which(n) for n in ("virsh", "libvirtd", "virtlogd"))
URI = "qemu:///system"


def _virsh(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    assert VIRSH is not None
    return subprocess.run([VIRSH, "-q", "-c", URI, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip


def _daemon(binary: str, pidfile: Path) -> int | None:
    """Start a libvirt daemon (-d: it forks) and return its pid, None if it would not
    start (one is running already: then it is not ours to stop)."""
    done = subprocess.run([binary, "-d", "-p", str(pidfile)], capture_output=True, timeout=30)
    deadline = time.monotonic() + 10
    while done.returncode == 0 and time.monotonic() < deadline:
        if pidfile.exists() and pidfile.read_text().strip():
            return int(pidfile.read_text())
        time.sleep(0.05)
    return None


@pytest.fixture(scope="module")
def libvirt() -> Iterator[None]:
    """A libvirt daemon answering on qemu:///system: the one running, or one started
    here (virtlogd and libvirtd; no systemd) and stopped by its pid afterwards."""
    if not (VIRSH and LIBVIRTD and VIRTLOGD and QEMU):
        pytest.skip("libvirt is not installed (CI installs libvirt-daemon-system, "
                    "libvirt-clients and libvirt-daemon-driver-qemu)")  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("starting libvirtd for qemu:///system needs root")
    if _virsh("version", timeout=30).returncode == 0:
        yield
        return
    tmp = Path(tempfile.mkdtemp(prefix="fvlv"))
    started = [p for p in (_daemon(VIRTLOGD, tmp / "virtlogd.pid"),
                           _daemon(LIBVIRTD, tmp / "libvirtd.pid")) if p]  # fmt: skip
    try:
        # The first connection waits while libvirtd probes every installed emulator.
        deadline = time.monotonic() + 180
        while _virsh("version", timeout=180).returncode != 0:
            assert time.monotonic() < deadline, "libvirtd did not answer"
            time.sleep(0.5)
        yield
    finally:
        for pid in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        shutil.rmtree(tmp, ignore_errors=True)


DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>{qemu}</emulator>
    <controller type='usb' model='qemu-xhci'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


@needs_qemu
def test_capture_domain_through_libvirt(libvirt, tmp_path):
    name = f"flatview-test-{os.getpid()}"
    xml = tmp_path / "domain.xml"
    xml.write_text(DOMAIN_XML.format(name=name, qemu=QEMU))
    out = tmp_path / "vm.txt"
    assert _virsh("define", str(xml)).returncode == 0
    try:
        # Defined, not running: one line, no bundle.
        line = one_error_line(flatview("capture", "--domain", name, "-o", str(out)))
        assert line.startswith(f"flatview: --domain {name}: the domain is not running")
        assert _virsh("start", name).returncode == 0
        deadline = time.monotonic() + 15  # SeaBIOS maps the xhci's BAR0
        while not re.search(
            r"(?s)PCI device 1b36:000d.*?BAR0: 64 bit memory at 0x(?!f{16})",
            _virsh("qemu-monitor-command", name, "--hmp", "info pci").stdout,
        ):
            assert time.monotonic() < deadline, "SeaBIOS did not map the xhci BAR0"
            time.sleep(0.2)
        t0 = time.monotonic()
        done = flatview("capture", "--domain", name, "--connect", URI, "-o", str(out))
        print(f"capture --domain: {time.monotonic() - t0:.2f} s (with interpreter start)")
        assert done.returncode == 0, done.stderr
        live = flatview("advise", "--domain", name)
        reply = json.loads(_virsh("qemu-monitor-command", name,
                                  '{"execute":"query-version"}').stdout)["return"]  # fmt: skip
    finally:
        _virsh("destroy", name)
        _virsh("undefine", name)
    text = out.read_text()
    q = reply["qemu"]
    assert text.startswith(f"QEMU {q['major']}.{q['minor']}.{q['micro']} monitor")
    assert f"# captured by flatview 0.1.0 from libvirt:{URI} {name}" in text
    assert f"guest={name}," in text  # the command line libvirt gave QEMU
    assert flatview("check", str(out)).returncode == 0
    # qemu-xhci: MSI-X table at 0x3000 and PBA at 0x3800 of BAR0 (hw/usb/hcd-xhci-pci.c
    # OFF_MSIX_TABLE / OFF_MSIX_PBA), read from the bundle's info pci and flat view.
    assert live.returncode == 0, live.stderr
    assert re.search(
        r"table BAR0\+0x3000 \((?:0x)?[0-9a-f]+ bytes\), PBA BAR0\+0x3800", live.stdout
    )
    # Gone: one line each.
    line = one_error_line(flatview("capture", "--domain", name, "-o", str(out)))
    assert line.startswith(f"flatview: --domain {name}: no such domain on")


# ------------------------------------------------------- every QEMU build (7.2, 10.x)


def _builds():
    """The QEMU builds tests/qemu_builds.py finds (the oracle tests' harness)."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import qemu_builds
    except ImportError:
        pytest.skip("tests/qemu_builds.py (the finder of QEMU 7.2 and 10.x builds) is absent")
    return qemu_builds


@pytest.mark.parametrize("version", ["7.2", "10.0"])
def test_launch_and_gate_on_each_qemu_build(tmp_path, version):
    qb = _builds()
    build = qb.find_builds().get(version)
    if build is None:
        pytest.skip(qb.missing_reason(version))
    argv = build.argv()
    assert argv is not None
    out = tmp_path / "b.txt"
    done = flatview("capture", "-o", str(out), "--", *argv, *MACHINE)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith(f"QEMU {version}.")
    assert build.banner.split()[3].startswith(text.split()[1])  # --version says the same
    advice = flatview("advise", str(out))
    assert E1000E_MSIX.search(advice.stdout), advice.stdout + advice.stderr
    # Against the 7.2 bundle in the repository: the e1000e keeps its MSI-X (whichever
    # QEMU: msix_init in hw/net/e1000e.c has not changed), so the gate passes.
    gate = flatview("gate", str(BUNDLE), str(out))
    assert gate.returncode == 0, gate.stdout + gate.stderr
