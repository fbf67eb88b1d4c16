"""A matrix of QEMU configurations, captured with one binary:
``flatview capture --matrix MATRIX --qemu BINARY --out DIR``.

The matrix is TOML (read with tomllib, or tomli before Python 3.11)::

    args = ["-display", "none", "-nodefaults"]   # before every configuration's own

    [[config]]
    name = "q35"                                  # the bundle is DIR/q35.txt
    args = ["-machine", "q35", "-device", "e1000e"]
    paused = false          # default: the firmware runs until the BAR map settles

Each configuration is launched as ``BINARY ARGS... CONFIG-ARGS...`` (see
:mod:`flatview.capture.launch`) and written to ``DIR/NAME.txt`` whole or not at all.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import CaptureError, SourceError, SourceLocation
from .bundle import Bundle

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Config", "Matrix", "load_matrix", "run_matrix"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a file name on every system


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    args: tuple[str, ...]
    paused: bool
    line: int  # of its ``name =`` in the matrix file


@dataclass(frozen=True, slots=True)
class Matrix:
    file: str
    args: tuple[str, ...]  # common to every configuration
    configs: tuple[Config, ...]


def _strings(value: Any, loc: SourceLocation, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SourceError(loc, f"{what} must be a list of strings", repr(value))
    return tuple(value)


def _name_lines(text: str) -> Iterator[tuple[str, int]]:
    """(name, line) of every ``name = "..."`` in the text: tomllib keeps no positions."""
    for no, line in enumerate(text.splitlines(), 1):
        m = re.match(r"""^\s*name\s*=\s*(["'])(.*?)\1""", line)
        if m:
            yield m[2], no


def load_matrix(text: str, file: str) -> Matrix:
    """Read a matrix file; every problem is ``FILE:LINE: what: 'text'``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m[1]) if m else len(text.splitlines()) or 1  # "(at end of document)"
        msg = re.sub(r"\s*\(at (?:line \d+, column \d+|end of document)\)", "", str(exc))
        raw = text.splitlines()[line - 1] if line and line <= len(text.splitlines()) else None
        raise SourceError(SourceLocation(file, line), f"not TOML: {msg}", raw) from None
    top = SourceLocation(file, 1)
    unknown = sorted(set(data) - {"args", "config"})
    if unknown:
        raise SourceError(top, "unknown matrix key (known: args, [[config]])", unknown[0])
    common = _strings(data.get("args", []), top, "args")
    items = data.get("config")
    if not isinstance(items, list) or not items:
        raise SourceError(top, "no [[config]] table in the matrix")
    lines = list(_name_lines(text))
    configs: list[Config] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        name = item.get("name")
        line = next((no for n, no in lines if n == name), None) if isinstance(name, str) else None
        loc = SourceLocation(file, line)
        if not isinstance(name, str) or not _NAME.match(name):
            raise SourceError(
                SourceLocation(file, lines[i][1] if i < len(lines) else None),
                f"config #{i + 1}: name must be letters, digits, '.', '_' or '-'",
                repr(name),
            )
        if name in seen:
            raise SourceError(loc, "configuration name used twice", name)
        seen.add(name)
        extra = sorted(set(item) - {"name", "args", "paused"})
        if extra:
            raise SourceError(loc, f"{name}: unknown key (known: name, args, paused)", extra[0])
        paused = item.get("paused", False)
        if not isinstance(paused, bool):
            raise SourceError(loc, f"{name}: paused must be true or false", repr(paused))
        configs.append(Config(name, _strings(item.get("args", []), loc, "args"), paused, line or 0))
    return Matrix(file, common, tuple(configs))


def run_matrix(
    matrix: Matrix,
    qemu: str,
    out_dir: str,
    write: Callable[[str, Bundle], None],
    **launch: Any,
) -> list[tuple[Config, str, float, tuple[str, ...]]]:
    """Capture every configuration with ``qemu``; ``write(path, bundle)`` stores each.
    Returns (config, path, seconds, notes) per configuration.  A configuration QEMU rejects
    stops the run: ``MATRIX:LINE: NAME: QEMU exited ...``."""
    import time

    from .launch import capture_launch

    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise CaptureError(f"{out_dir}: cannot create: {exc.strerror}") from None
    done = []
    for c in matrix.configs:
        t0 = time.monotonic()
        try:
            bundle = capture_launch([qemu, *matrix.args, *c.args], paused=c.paused, **launch)
        except CaptureError as exc:
            raise CaptureError(f"{matrix.file}:{c.line}: {c.name}: {exc}") from None
        path = os.path.join(out_dir, f"{c.name}.txt")
        write(path, bundle)
        done.append((c, path, time.monotonic() - t0, bundle.notes))
    return done
