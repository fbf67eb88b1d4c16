"""Capture through QMP with QEMU's own client library, ``qemu.qmp`` (PyPI ``qemu-qmp``).

The HMP commands go through QMP ``human-monitor-command`` (qapi/misc.json), the version
through ``query-version``.  QEMU's QMP chardev serves one client at a time: a second
client's connect() succeeds (the kernel queues it) but the greeting only comes once the
first client leaves, hence the greeting timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator, Sequence

from ..errors import CaptureError
from .bundle import COMMANDS, Bundle, command_line_of

__all__ = ["DEFAULT_TIMEOUT", "capture_qmp", "execute", "hmp", "open_session", "session_bundle"]

DEFAULT_TIMEOUT = 10.0  # seconds for each wait: socket, greeting, every command


def _client():
    try:
        from qemu.qmp import QMPClient
    except ImportError:  # a dependency; only needed when capturing
        raise CaptureError("capturing needs the qemu.qmp library: pip install qemu-qmp") from None
    return QMPClient("flatview")


def _connect_socket(path: str) -> socket.socket:
    """A connected unix socket to ``path``, every failure as one CaptureError line."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CaptureError(
            f"{path}: no such socket (is QEMU running with -qmp unix:{path},server=on?)"
        ) from None
    except PermissionError:
        raise CaptureError(f"{path}: permission denied") from None
    if not stat.S_ISSOCK(mode):
        raise CaptureError(f"{path}: not a socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except PermissionError:
        sock.close()
        raise CaptureError(f"{path}: permission denied (connecting to the QMP socket)") from None
    except ConnectionRefusedError:
        sock.close()
        raise CaptureError(f"{path}: nothing listens on this socket (QEMU has exited?)") from None
    except OSError as exc:
        sock.close()
        raise CaptureError(f"{path}: cannot connect: {exc.strerror}") from None
    return sock


def _peer_pid(sock: socket.socket) -> int | None:
    """The pid of the process at the other end (Linux SO_PEERCRED), for its argv."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    try:
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, opt, 12))
    except OSError:
        return None
    return pid or None


@contextlib.asynccontextmanager
async def open_session(path: str, timeout: float) -> AsyncIterator[tuple[object, int | None]]:
    """A negotiated QMP session (client, QEMU's pid); disconnects however it ends.

    A handshake that fails is tried once more on a new connection: QEMU can write an
    event to a client before its greeting (monitor_qapi_event_emit sends events to
    every QMP monitor not in negotiation mode, which a new client's is only once
    CHR_EVENT_OPENED has run: seen once while a launched QEMU started), and qemu.qmp
    refuses a first message that is not the greeting."""
    session = await _negotiated(path, timeout, last=False)
    if session is None:
        session = await _negotiated(path, timeout, last=True)
    assert session is not None  # the last try raises instead
    sock, client, pid = session
    try:
        yield client, pid
    finally:
        await _close(client, sock)


async def _negotiated(
    path: str, timeout: float, last: bool
) -> tuple[socket.socket, object, int | None] | None:
    """(socket, negotiated client, QEMU's pid); None, the connection closed, when the
    handshake failed and this is not the ``last`` try."""
    from qemu.qmp import ConnectError

    sock = _connect_socket(path)
    pid = _peer_pid(sock)
    client = _client()
    try:
        await asyncio.wait_for(client.connect(sock), timeout)
    except asyncio.TimeoutError:
        await _close(client, sock)
        raise CaptureError(
            f"{path}: no QMP greeting within {timeout:g}s (another client holds the "
            "monitor, or this is not a QMP socket)"
        ) from None
    except ConnectError as exc:
        await _close(client, sock)
        if last:
            raise CaptureError(f"{path}: QMP handshake failed: {exc}") from None
        return None
    except BaseException:
        await _close(client, sock)
        raise
    return sock, client, pid


async def _close(client, sock: socket.socket) -> None:
    with contextlib.suppress(Exception):
        await client.disconnect()
    sock.close()


async def hmp(client, command: str, timeout: float) -> str:
    """One HMP command through ``human-monitor-command``; its text with LF line ends."""
    out = await execute(client, "human-monitor-command", {"command-line": command}, timeout)
    if not isinstance(out, str):
        raise CaptureError(f"human-monitor-command {command!r} returned {type(out).__name__}")
    return out.replace("\r\n", "\n")


async def execute(
    client, command: str, arguments: dict | None = None, timeout: float = DEFAULT_TIMEOUT
) -> object:
    """One QMP command; every failure as one CaptureError line."""
    from qemu.qmp import ExecuteError, QMPError

    try:
        return await asyncio.wait_for(client.execute(command, arguments), timeout)
    except asyncio.TimeoutError:
        raise CaptureError(f"QMP {command}: no answer within {timeout:g}s") from None
    except ExecuteError as exc:
        raise CaptureError(f"QMP {command}: {exc.error.desc}") from None
    except (QMPError, EOFError, OSError):  # interrupted, disconnected, not running
        raise CaptureError(f"QMP {command}: QEMU closed the connection") from None


async def session_bundle(
    client,
    source: str,
    timeout: float,
    command_line: Sequence[str] | None = None,
    notes: Sequence[str] = (),
) -> Bundle:
    """Ask a negotiated session for the version and every bundle command."""
    info = await execute(client, "query-version", None, timeout)
    assert isinstance(info, dict)
    q = info["qemu"]
    parts = tuple([(cmd, await hmp(client, cmd, timeout)) for cmd in COMMANDS])
    return Bundle(
        version=f"{q['major']}.{q['minor']}.{q['micro']}",
        package=str(info.get("package", "")).strip(),
        source=source,
        parts=parts,
        command_line=tuple(command_line) if command_line else None,
        notes=tuple(notes),
    )


def capture_qmp(path: str, timeout: float = DEFAULT_TIMEOUT) -> Bundle:
    """Capture a running QEMU through its QMP unix socket (``-qmp unix:PATH,server=on``)."""

    async def run() -> Bundle:
        async with open_session(path, timeout) as (client, pid):
            return await session_bundle(client, f"qmp:{path}", timeout, command_line_of(pid))

    return asyncio.run(run())
