"""The lark stage: one dump line in, one typed line record out.

This is the only module that knows the rule names of ``grammars/mtree.lark``.  The
parser is built once (``functools.lru_cache``) and every distinct line is parsed once
(a memo keyed by the line text): QEMU dumps repeat the same lines many times (one tree
per address space before QEMU 7.0, the same ``memory-region:`` sections), so a dump of
300,000 lines holds only a few thousand distinct ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, Transformer, UnexpectedInput, v_args
from lark.exceptions import VisitError

from .errors import SourceError, SourceLocation
from .source import CONTROL

__all__ = [
    "DispatchLine",
    "FlatViewASLine",
    "FlatViewRootLine",
    "Heading",
    "LineRecord",
    "NoRenderedLine",
    "Owner",
    "RangeLine",
    "parse_line",
]

U64 = 1 << 64


@dataclass(frozen=True, slots=True)
class Owner:
    """The ``-o`` suffix of a line (``mtree_print_mr_owner``): owner and QOM parent.

    ``text`` is the suffix exactly as printed, kept so the line can be printed back.
    """

    text: str
    owner: str | None = None  # e.g. "dev id=nvme0", "obj path=/objects/pc.ram"
    parent: str | None = None
    orphan: bool = False


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading: ``address-space:``, ``memory-region:``, ``address-space (flat view):``,
    ``FlatView #n``."""

    kind: str  # "address-space" | "memory-region" | "flat-address-space" | "flatview"
    name: str


@dataclass(frozen=True, slots=True)
class FlatViewASLine:
    """`` AS "name", root: X[, alias Y]`` inside a ``FlatView #n`` block."""

    name: str
    root: str
    root_alias: str | None


@dataclass(frozen=True, slots=True)
class FlatViewRootLine:
    """`` Root memory region: X`` (``None`` for ``(none)``, the shared empty view)."""

    name: str | None


@dataclass(frozen=True, slots=True)
class NoRenderedLine:
    """``  No rendered FlatView`` (F3) or ``... for address space 'X'`` (F1)."""

    address_space: str | None


@dataclass(frozen=True, slots=True)
class DispatchLine:
    """A line of the ``-d`` dispatch dump, kept as text."""

    text: str


@dataclass(frozen=True, slots=True)
class RangeLine:
    """A region line of a tree, or a range line of a flat view (they share one syntax)."""

    indent: int  # number of spaces before the address
    start: int
    end: int
    priority: int
    type: str  # "ram", "ramd", "rom", "romd", "i/o", "container", or "RW"/"R-"/"-W"/"--"
    nonvolatile: bool
    name: str
    overflow: str | None = None  # "before" or "after" the indentation, None if absent
    alias_target: str | None = None
    alias_start: int | None = None
    alias_end: int | None = None
    offset: int | None = None  # ` @offset` of a flat range
    disabled: bool = False
    owner: Owner | None = None
    accel: tuple[str, ...] = ()
    hex_prefix: bool = False  # addresses printed with 0x (patched builds)

    @property
    def is_alias(self) -> bool:
        return self.alias_target is not None

    @property
    def size(self) -> int:
        """Size decoded from the printed inclusive end (``int128_get64`` of MR_SIZE + 1).

        ``end - start + 1`` modulo 2^64; 0 there means exactly 2^64.  A printed ``X-X`` is
        size 1 or size 0, which the text cannot tell apart (size 1 is returned).
        """
        size = (self.end - self.start + 1) % U64
        return size or U64


LineRecord = Heading | FlatViewASLine | FlatViewRootLine | NoRenderedLine | DispatchLine | RangeLine


def _hex(tok: Token) -> int:
    return int(str(tok).removeprefix("0x"), 16)


@v_args(inline=True)
class LineTransformer(Transformer):
    """Turns the parse tree of one line into a line record (mirrors hcl2's RuleTransformer)."""

    def as_heading(self, _kw, text):
        return Heading("address-space", str(text))

    def mr_heading(self, _kw, text):
        return Heading("memory-region", str(text))

    def flat_as_heading(self, _kw, text):
        return Heading("flat-address-space", str(text))

    def flatview_heading(self, _kw, number):
        return Heading("flatview", str(number))

    def flatview_as(self, _kw, name, _root_kw, root, *alias):
        return FlatViewASLine(str(name), str(root), str(alias[1]) if alias else None)

    def flatview_root(self, _kw, name):
        return FlatViewRootLine(None if name.type == "NONE" else str(name))

    def no_rendered(self, _kw, *rest):
        return NoRenderedLine(str(rest[1]) if rest else None)

    def dispatch(self, text):
        return DispatchLine(str(text))

    def offset(self, tok):
        return ("offset", _hex(tok[2:]))

    def disabled(self, _tok):
        return ("disabled", True)

    def owner(self, _kw, body):
        return ("owner", str(body))

    def parent(self, _kw, body):
        return ("parent", str(body))

    def orphan(self, _tok):
        return ("orphan", True)

    def accel(self, tok):
        return ("accel", str(tok)[1:])

    def plain_body(self, name, *suffixes):
        if _CUT_ALIAS.match(name):
            raise ValueError("truncated alias line: its target offsets are missing (wrapped?)")
        if _BAD_ALIAS_RANGE.match(name):
            raise ValueError(
                "alias target offsets are not two addresses of 16 hex digits (QEMU prints %016x)"
            )
        return {"name": str(name), **_suffixes(suffixes)}

    def alias_body(self, _kw, name, target, a_start, a_end, *suffixes):
        return {
            "name": str(name),
            "alias_target": str(target),
            "alias_start": _hex(a_start),
            "alias_end": _hex(a_end),
            **_suffixes(suffixes),
        }

    def range(self, *items):
        overflow = None
        pos = 0
        if items[pos].type == "OVERFLOW":
            overflow = "before"
            pos += 1
        indent = len(items[pos])
        pos += 1
        if items[pos].type == "OVERFLOW":
            overflow = "after"
            pos += 1
        start, end, _kw, prio, type_, body = items[pos : pos + 6]
        type_s = str(type_)
        return RangeLine(
            indent=indent,
            start=_hex(start),
            end=_hex(end),
            priority=_priority(str(prio)),
            type=type_s.removeprefix("nv-"),
            nonvolatile=type_s.startswith("nv-"),
            overflow=overflow,
            hex_prefix=str(start).startswith("0x"),
            **body,
        )


INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _priority(text: str) -> int:
    """MemoryRegion.priority is a C ``int``, printed by mtree_print_mr with ``%d``."""
    value = int(text) if len(text) <= 12 else None
    if value is None or not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(
            f"priority outside QEMU's int range ({INT32_MIN}..{INT32_MAX}): QEMU cannot print it"
        )
    return value


def _suffixes(items: tuple) -> dict:
    """Collect the optional suffixes of a region line into RangeLine fields."""
    out: dict = {}
    owner_parts: dict = {}
    accel: list[str] = []
    for key, value in items:
        if key == "accel":
            accel.append(value)
        elif key in ("owner", "parent", "orphan"):
            owner_parts[key] = value
        else:
            out[key] = value
    if owner_parts:
        out["owner"] = _owner(owner_parts)
    if accel:
        out["accel"] = tuple(accel)
    return out


def _owner(parts: dict) -> Owner:
    text = ""
    if "owner" in parts:
        text += f" owner:{{{parts['owner']}}}"
    if "parent" in parts:
        text += f" parent:{{{parts['parent']}}}"
    if parts.get("orphan"):
        text += " orphan"
    return Owner(text, parts.get("owner"), parts.get("parent"), bool(parts.get("orphan")))


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark.open_from_package(
        "flatview.grammars",
        "mtree.lark",
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=False,
    )


# Named examples of what mail and terminals do to dump lines, for clear messages
# (lark's UnexpectedInput.match_examples, as in lark's error_reporting_lalr example).
_BAD_EXAMPLES: dict[str, list[str]] = {
    "bad hex address (16 lowercase hex digits expected)": [
        "  00000000000g0000-ffffffffffffffff (prio 0, i/o): x",
        "  0000000000000000-fffffffffffffzff (prio 0, i/o): x",
        "  000000000000000-ffffffffffffffff (prio 0, i/o): x",
        "  0000000000000000-ffffffffffffffffff (prio 0, i/o): x",
    ],
    "truncated region line (wrapped or cut off?)": [
        "  0000000000000000-ffffffffffffffff (prio 0, i/o):",
        "  0000000000000000-ffffffffffffffff (prio 0, ram):",
        "  0000000000000000-ffffffffffffffff (prio 0, ramd):",
        "  0000000000000000-ffffffffffffffff (prio 0, i/o)",
        "  0000000000000000-ffffffffffffffff (prio 0,",
        "  0000000000000000-ffffffffffffffff (prio",
        "  0000000000000000-ffffffffffffffff",
        "  0000000000000000-",
    ],
    "unknown region type": [
        "  0000000000000000-ffffffffffffffff (prio 0, foo): x",
        "  0000000000000000-ffffffffffffffff (prio x, i/o): x",
    ],
}

# "alias NAME @TARGET" with the offsets cut off: mail wrapped the line
_CUT_ALIAS = re.compile(r"^alias \S.* @\S+$")
# ... or with offsets that are not two 16-digit addresses (the grammar's alias_body
# wants exactly those, so the whole line would otherwise read as a region's name)
_BAD_ALIAS_RANGE = re.compile(r"^alias \S.* @\S+ (?:0x)?[0-9a-fA-F]+-(?:0x)?[0-9a-fA-F]+(?: |$)")


def parse_line(
    text: str, where: SourceLocation | str = "-", lineno: int | None = None
) -> LineRecord:
    """Parse one cleaned dump line; raise SourceError at ``where`` (a location, or a file
    name and ``lineno``) on failure.  The location is built only when there is an error."""
    try:
        return _parse_cached(text)
    except UnexpectedInput as exc:
        raise SourceError(_loc(where, lineno), _explain(exc, text), text) from None
    except VisitError as exc:  # a domain error raised inside the transformer
        raise SourceError(_loc(where, lineno), str(exc.orig_exc), text) from None


def _loc(where: SourceLocation | str, lineno: int | None) -> SourceLocation:
    return where if isinstance(where, SourceLocation) else SourceLocation(where, lineno)


@lru_cache(maxsize=1 << 16)
def _parse_cached(text: str) -> LineRecord:
    return LineTransformer().transform(_parser().parse(text))


# an address of more than 16 hex digits (QEMU prints 64-bit addresses as %016x)
_LONG_ADDR = re.compile(
    r"^(?:\[DETECTED OVERFLOW!\] )? *(?:\[DETECTED OVERFLOW!\] )?"
    r"(?:(?:0x)?[0-9a-fA-F]{17,}-|(?:0x)?[0-9a-fA-F]{1,16}-(?:0x)?[0-9a-fA-F]{17,}[ \n]"
    r"|.*\): alias .* @\S+ (?:0x)?[0-9a-fA-F]{17,}-"
    r"|.*\): alias .* @\S+ \S+-(?:0x)?[0-9a-fA-F]{17,}$)"
)


def _explain(exc: UnexpectedInput, text: str) -> str:
    if CONTROL.search(text):
        return "binary or control characters in a dump line"
    if _LONG_ADDR.match(text):
        return "address longer than 16 hex digits (QEMU prints 64-bit addresses)"
    label = exc.match_examples(_parser().parse, _BAD_EXAMPLES, use_accepts=True)
    if label:
        return label
    return f"not a line of an 'info mtree' dump (column {exc.column})"
