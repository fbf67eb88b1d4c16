"""Inputs read within a bound, reports written without losing anything.

Reading (:func:`read_bytes`, :func:`read_text`): every input -- a file, standard input, a
FIFO, a device -- is read in chunks up to a size limit (:data:`INPUT_LIMIT`, 512 MiB
unless ``--max-input`` says otherwise), so ``/dev/zero`` or a runaway pipe is a one-line
error instead of a MemoryError.  A NUL byte stops the read at once: no dump holds one, and
``/dev/zero`` and ``/dev/urandom`` show one in their first chunk.  A FIFO is opened
without blocking and waited on for at most :data:`FIFO_WAIT` seconds for a writer.

Writing (:class:`OutputFile`): ``--junit FILE`` and its kind go only to a regular file or
a new path, never to an input of the same command (same device and inode, so also through
links), never through a symbolic link (the link would become a plain file, or a planted
link would aim the report at someone else's file), never over a file we could not write
to; an existing file keeps its mode and owner.  The text goes to a temporary file beside
the target first, and replaces the target only when the whole command succeeded
(:meth:`OutputFile.commit`), so a failed run leaves no report behind and no half-written one.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import stat
import sys
from collections.abc import Iterable
from contextvars import ContextVar

from .errors import SourceError, SourceLocation, UsageError

__all__ = [
    "DEFAULT_MAX_INPUT",
    "FIFO_WAIT",
    "INPUT_LIMIT",
    "OutputFile",
    "format_size",
    "parse_size",
    "read_bytes",
    "read_text",
]

DEFAULT_MAX_INPUT = 512 << 20
# The largest input one command reads (bytes); the CLI sets it from --max-input.
INPUT_LIMIT: ContextVar[int] = ContextVar("INPUT_LIMIT", default=DEFAULT_MAX_INPUT)
# Seconds to wait for a FIFO's writer (and for its first bytes) before giving up.
FIFO_WAIT = 10.0
_CHUNK = 1 << 20
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, what: str) -> int:
    """``512M``, ``1G``, ``65536``, ``0x10000``: a byte count (ASCII digits only)."""
    import re

    m = re.fullmatch(r"\s*(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})\s*([KMGTkmgt]?)(?:i?[Bb])?\s*", text)
    if not m:
        raise UsageError(f"{what}: {text!r} is not a size like 64K, 512M or 0x10000")
    value = int(m.group(1), 0) * _UNITS[m.group(2).upper()]
    if value <= 0:
        raise UsageError(f"{what}: {text!r} is not a size like 64K, 512M or 0x10000")
    return value


def format_size(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if n >= _UNITS[unit] and n % _UNITS[unit] == 0:
            return f"{n // _UNITS[unit]}{unit}"
    return str(n)


def read_bytes(path: str, limit: int | None = None, wait: float | None = None) -> bytes:
    """The bytes of ``path`` (``-``: standard input), at most ``limit`` of them."""
    limit = INPUT_LIMIT.get() if limit is None else limit
    wait = FIFO_WAIT if wait is None else wait
    if path == "-":
        if sys.stdin is None:
            raise UsageError("-: cannot read: standard input is closed")
        try:
            fd = sys.stdin.fileno()
            os.fstat(fd)
        except (OSError, ValueError):
            raise UsageError("-: cannot read: standard input is closed") from None
        return _read_fd(fd, "-", limit)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{path}: cannot read: Is a directory")
        if stat.S_ISFIFO(st.st_mode) and not _wait_readable(fd, wait):
            raise UsageError(
                f"{path}: cannot read: a FIFO with no writer (nothing came in {wait:g} s)"
            )
        os.set_blocking(fd, True)  # a writer is there (or it is a file or device)
        return _read_fd(fd, path, limit)
    finally:
        os.close(fd)


def _wait_readable(fd: int, wait: float) -> bool:
    """Linux reports nothing (not even POLLHUP) on a FIFO no writer ever opened."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(int(wait * 1000)))


def _read_fd(fd: int, name: str, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
        except BlockingIOError:  # a non-blocking stdin with nothing yet: wait for it
            select.select([fd], [], [])
            continue
        except OSError as exc:
            raise UsageError(f"{name}: cannot read: {exc.strerror}") from None
        if not chunk:
            return b"".join(chunks)
        nul = chunk.find(b"\0")
        if nul >= 0:
            _binary(name, b"".join(chunks), chunk, nul)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise UsageError(
                f"{name}: input larger than {format_size(limit)} (--max-input to read more)"
            )


def _binary(name: str, before: bytes, chunk: bytes, at: int) -> None:
    """A NUL byte: name its line (counted as source.check_text counts lines)."""
    data = before + chunk
    pos = len(before) + at
    head = data[:pos].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    start = max(data.rfind(b"\n", 0, pos), data.rfind(b"\r", 0, pos)) + 1
    end = min(x for x in (data.find(b"\n", pos), data.find(b"\r", pos), len(data)) if x >= 0)
    line = data[start : min(end, start + 200)].decode("utf-8", "backslashreplace")
    raise SourceError(
        SourceLocation(name, head.count(b"\n") + 1), "binary data, not a text dump", line
    )


def read_text(path: str, limit: int | None = None) -> str:
    """Read an input as UTF-8 text (a byte-order mark dropped); binary input is an error."""
    data = read_bytes(path, limit)
    try:
        return codecs.decode(data, "utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        raw = data[start : end if end >= 0 else len(data)][:200]
        raise SourceError(
            SourceLocation(path, line),
            "not UTF-8 text (binary data?)",
            raw.decode("utf-8", "backslashreplace"),
        ) from None


def _input_ids(inputs: Iterable[str]) -> dict[tuple[int, int], str]:
    ids: dict[tuple[int, int], str] = {}
    for name in inputs:
        try:
            st = os.fstat(sys.stdin.fileno()) if name == "-" and sys.stdin else os.stat(name)
        except (OSError, ValueError):
            continue
        ids[(st.st_dev, st.st_ino)] = name
    return ids


class OutputFile:
    """A report file: checked before any work, staged, then committed or discarded."""

    def __init__(self, path: str, option: str, inputs: Iterable[str] = ()) -> None:
        self.path = path
        self.option = option
        self._tmp: str | None = None
        self._stat: os.stat_result | None = None
        self._check(list(inputs))

    def _refuse(self, why: str) -> UsageError:
        return UsageError(f"{self.option} {self.path}: {why}; nothing written")

    def _check(self, inputs: list[str]) -> None:
        if self.path == "-":
            raise self._refuse("a report file is needed here, not standard output")
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return  # a new file
        except OSError as exc:
            raise self._refuse(exc.strerror or "cannot check it") from None
        if stat.S_ISLNK(st.st_mode):
            raise self._refuse(
                "is a symbolic link; flatview does not write through links (the link would "
                "become a plain file, or a planted link would aim the report elsewhere): "
                "name the file itself"
            )
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, device or socket"
            raise self._refuse(f"is {kind}, not a regular file")
        same = _input_ids(inputs).get((st.st_dev, st.st_ino))
        if same is not None:
            raise self._refuse(f"is also an input of this command ({same})")
        if not os.access(self.path, os.W_OK):
            raise self._refuse("is not writable")
        self._stat = st

    def stage(self, text: str) -> None:
        """Write ``text`` to a temporary file beside the target (mode and owner of the
        existing file, else the umask's)."""
        import tempfile  # only a command that writes a report pays for it

        folder = os.path.dirname(os.path.abspath(self.path))
        base = os.path.basename(self.path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".flatview-tmp", dir=folder)
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot write: {exc.strerror}") from None
        self._tmp = tmp
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            if self._stat is not None:
                self._keep_owner_and_mode(tmp, self._stat)
            else:
                mask = os.umask(0)
                os.umask(mask)
                os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes it private; a report is not
        except OSError as exc:
            self.discard()
            raise UsageError(f"{self.path}: cannot write: {exc.strerror}") from None

    def _keep_owner_and_mode(self, tmp: str, st: os.stat_result) -> None:
        if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except PermissionError:
                self.discard()
                raise self._refuse(
                    "belongs to another user, and replacing it would make it ours"
                ) from None
        os.chmod(tmp, stat.S_IMODE(st.st_mode))

    def commit(self) -> None:
        if self._tmp is None:
            return
        try:
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.discard()
            raise UsageError(f"{self.path}: cannot write: {exc.strerror}") from None
        self._tmp = None

    def discard(self) -> None:
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None
