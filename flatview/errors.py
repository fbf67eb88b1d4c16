"""The one error root of flatview: every message is ``file:line: message: 'text'``.

Mirrors QEMU's ``scripts/qapi/error.py`` (``QAPIError`` -> ``QAPISourceError``): a
location travels with every error so a user can find the offending line of a dump.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "CaptureError",
    "FlatviewError",
    "FlatviewWarning",
    "SourceError",
    "SourceLocation",
    "UsageError",
    "warn",
]


class SourceLocation(NamedTuple):
    """Where a piece of input came from: a file name (``-`` for stdin) and a 1-based line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


class FlatviewError(Exception):
    """Root of every error flatview reports to a user (exit status 2 in the CLI)."""


class UsageError(FlatviewError):
    """A command line or option that cannot be carried out."""


class SourceError(FlatviewError):
    """An input problem with a location and, where known, the offending text."""

    def __init__(self, loc: SourceLocation, msg: str, text: str | None = None) -> None:
        self.loc = loc
        self.msg = msg
        self.text = text
        super().__init__(str(self))

    def __str__(self) -> str:
        out = f"{self.loc}: {self.msg}"
        if self.text is not None:
            # One line, always: control characters (binary junk) are shown escaped, and
            # the excerpt is cut after escaping (a NUL is four characters shown).
            shown = repr(self.text)
            if len(shown) > 122:
                cut = shown[:118]
                cut = cut[: cut.rfind("\\", 108)] if "\\" in cut[108:] else cut  # no half escape
                shown = cut + "..." + shown[0]
            out += ": " + shown
        return out


class CaptureError(FlatviewError):
    """A running QEMU (or libvirt, or a QEMU being launched) could not be captured:
    no socket, permission denied, no QMP greeting, QEMU exited, no such domain."""


class FlatviewWarning(UserWarning):
    """Something QEMU would never print but flatview can still read (a mangled dump?).

    The CLI prints each on stderr, one line, and leaves the exit status as it is."""


def warn(msg: str) -> None:
    """Report a :class:`FlatviewWarning` (``file:line: what``) through :mod:`warnings`."""
    import warnings

    warnings.warn(msg, FlatviewWarning, stacklevel=2)
