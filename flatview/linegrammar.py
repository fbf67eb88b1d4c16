"""The lark stage: one dump line through ``grammars/mtree.lark`` into a line record.

This is the only module that knows the grammar's rule names (as hcl2's
RuleTransformer).  The parser is built once, when the first line needs it
(``functools.lru_cache``); :mod:`flatview.parse` sends it only the lines its fast path
does not take, and every line that is not a dump line, so lark is imported only then.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token, Transformer, UnexpectedInput, v_args
from lark.exceptions import VisitError

from .model import Owner
from .parse import (
    DispatchLine,
    FlatViewASLine,
    FlatViewRootLine,
    Heading,
    LineRecord,
    NoRenderedLine,
    RangeLine,
)
from .source import CONTROL

__all__ = ["LineTransformer", "parse_or_explain"]


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
            priority=priority(str(prio)),
            type=type_s.removeprefix("nv-"),
            nonvolatile=type_s.startswith("nv-"),
            overflow=overflow,
            hex_prefix=str(start).startswith("0x"),
            **body,
        )


INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def priority(text: str) -> int:
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
# an address of more than 16 hex digits (QEMU prints 64-bit addresses as %016x)
_LONG_ADDR = re.compile(
    r"^(?:\[DETECTED OVERFLOW!\] )? *(?:\[DETECTED OVERFLOW!\] )?"
    r"(?:(?:0x)?[0-9a-fA-F]{17,}-|(?:0x)?[0-9a-fA-F]{1,16}-(?:0x)?[0-9a-fA-F]{17,}[ \n]"
    r"|.*\): alias .* @\S+ (?:0x)?[0-9a-fA-F]{17,}-"
    r"|.*\): alias .* @\S+ \S+-(?:0x)?[0-9a-fA-F]{17,}$)"
)


def parse_or_explain(text: str) -> LineRecord | str:
    """The record of one line, or why it is not a dump line (one short phrase)."""
    try:
        return LineTransformer().transform(_parser().parse(text))
    except UnexpectedInput as exc:
        return _explain(exc, text)
    except VisitError as exc:  # a domain error raised inside the transformer
        return str(exc.orig_exc)


def _explain(exc: UnexpectedInput, text: str) -> str:
    if CONTROL.search(text):
        return "binary or control characters in a dump line"
    if _LONG_ADDR.match(text):
        return "address longer than 16 hex digits (QEMU prints 64-bit addresses)"
    label = exc.match_examples(_parser().parse, _BAD_EXAMPLES, use_accepts=True)
    if label:
        return label
    return f"not a line of an 'info mtree' dump (column {exc.column})"
