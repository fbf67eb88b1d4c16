"""Capture a QEMU this process starts itself: ``flatview capture -o FILE -- QEMU ARGS...``.

QEMU gets a QMP socket of its own (``-qmp unix:TMP/qmp.sock,server=on,wait=off`` added
to its arguments).  Unless asked for the paused machine (``-S``: nothing has run, no BAR
is mapped), the guest's firmware runs until the BAR map that ``info pci`` shows
(``hmp_info_pci_device``) has stopped changing; then the machine is stopped (``stop``,
so the tree and the flat view are of one state), captured, and told to ``quit``.  The
QEMU is ended by its own pid (the Popen object) if it does not exit, never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaptureError, FlatviewError
from . import DEFAULT_SETTLE
from .bundle import Bundle
from .qmp import DEFAULT_TIMEOUT, execute, hmp, open_session, session_bundle

__all__ = ["DEFAULT_SETTLE", "QemuExited", "bar_map", "capture_launch"]

_POLL = 0.1
_STDERR_LINES = 3  # how much of QEMU's stderr an error shows


class QemuExited(CaptureError):
    """QEMU ended before the capture was done; ``stderr`` holds its last lines."""

    def __init__(self, status: int, stderr: str, when: str) -> None:
        self.status = status
        self.stderr = stderr
        tail = " | ".join(stderr.strip().splitlines()[-_STDERR_LINES:]) or "(no output)"
        super().__init__(f"QEMU exited with status {status} {when}: {tail}")


@dataclass
class _Qemu:
    proc: subprocess.Popen
    errlog: Path

    def exited(self, when: str) -> QemuExited | None:
        status = self.proc.poll()
        if status is None:
            return None
        return QemuExited(status, self.errlog.read_text("utf-8", "replace"), when)


def bar_map(info_pci: str) -> tuple[tuple[str, int, int], ...] | None:
    """The mapped BARs in ``info pci`` text, (device, BAR, address) each; None when no
    device has a BAR at all (no PCI bus: microvm, isapc), so there is nothing to wait for."""
    from ..vfio.infopci import parse_info_pci

    try:
        devices = parse_info_pci(info_pci, "info pci")
    except FlatviewError:  # "PCI devices not supported", or no device
        return None
    if not any(d.bars for d in devices):
        return None
    return tuple(
        (d.address, b.index, b.address) for d in devices for b in d.bars if b.address is not None
    )


async def _settle(client, qemu: _Qemu, settle: float, timeout: float) -> list[str]:
    """Run the guest until the BAR map has stayed the same for ``settle`` seconds with at
    least one BAR mapped (or there is no BAR to map); return notes when the timeout came
    first."""
    status = await execute(client, "query-status", None, timeout)
    if isinstance(status, dict) and not status.get("running"):
        await execute(client, "cont", None, timeout)
    deadline = time.monotonic() + timeout
    last: object = None
    since = time.monotonic()
    first = True
    while True:
        now = bar_map(await hmp(client, "info pci", timeout))
        t = time.monotonic()
        if first or now != last:
            last, since, first = now, t, False
        elif (now is None or now) and t - since >= settle:
            return []
        if t >= deadline:
            if not now:
                return [f"no PCI BAR was mapped within {timeout:g}s (captured as it was)"]
            return [f"the BAR map was still changing after {timeout:g}s (captured as it was)"]
        exited = qemu.exited("while the firmware ran")
        if exited:
            raise exited
        await asyncio.sleep(_POLL)


def capture_launch(
    argv: Sequence[str],
    *,
    paused: bool = False,
    settle: float = DEFAULT_SETTLE,
    timeout: float = DEFAULT_TIMEOUT,
) -> Bundle:
    """Start ``argv`` (a QEMU command line) with a QMP socket of its own and capture it."""
    if not argv:
        raise CaptureError("no QEMU command after '--'")
    tmp = Path(tempfile.mkdtemp(prefix="fvcap"))  # short: unix socket paths are limited
    sock = tmp / "qmp.sock"
    errlog = tmp / "stderr.txt"
    cmd = [*argv, "-qmp", f"unix:{sock},server=on,wait=off", *(["-S"] if paused else [])]
    try:
        with open(errlog, "wb") as err:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            except OSError as exc:
                raise CaptureError(f"{argv[0]}: cannot run: {exc.strerror}") from None
        qemu = _Qemu(proc, errlog)
        try:
            bundle = asyncio.run(_capture(qemu, str(sock), list(argv), paused, settle, timeout))
        except BaseException:
            _end(proc, grace=0)
            raise
        _end(proc)  # it was told to quit
        return bundle
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _capture(
    qemu: _Qemu, sock: str, argv: list[str], paused: bool, settle: float, timeout: float
) -> Bundle:
    deadline = time.monotonic() + timeout
    while not os.path.exists(sock):
        exited = qemu.exited("before its QMP socket appeared")
        if exited:
            raise exited
        if time.monotonic() > deadline:
            raise CaptureError(f"QEMU made no QMP socket within {timeout:g}s")
        await asyncio.sleep(0.02)
    try:
        async with open_session(sock, timeout) as (client, _pid):
            notes = [] if paused else await _settle(client, qemu, settle, timeout)
            if not paused:
                await execute(client, "stop", None, timeout)  # one state for every part
            bundle = await session_bundle(client, "launch", timeout, argv, notes)
            with contextlib.suppress(Exception):
                await client.execute("quit")
            return bundle
    except CaptureError:
        # A dead QEMU explains a broken session better than the session does.
        exited = _wait_exit(qemu, "before the capture was done")
        if exited:
            raise exited from None
        raise


def _wait_exit(qemu: _Qemu, when: str, grace: float = 1.0) -> QemuExited | None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        qemu.proc.wait(timeout=grace)
    return qemu.exited(when)


def _end(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """End the QEMU we started (and only it: the Popen's own pid), after ``grace``
    seconds to obey ``quit``."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
