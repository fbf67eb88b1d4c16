"""JSON for tools: the model and analysis results as plain data, versioned.

Integers stay integers (sizes reach 2^64; Python's json writes them exactly).  An
alias points at its target by the target's line, not by nesting it again.
"""

from __future__ import annotations

import dataclasses
import json

from ..check import CheckReport, Mismatch
from ..flatten import Ambiguity, FlattenResult, Guess
from ..model import (
    FlatDump,
    FlatRange,
    FlatView,
    MemoryRegion,
    MtreeDump,
    Owner,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (4 ms a run)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["SCHEMA_VERSION", "dumps_json", "to_data"]

SCHEMA_VERSION = 1


def region(mr: MemoryRegion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": mr.name,
        "addr": mr.addr,
        "start": mr.start,
        "size": mr.size,
        "priority": mr.priority,
        "type": mr.type,
        "nonvolatile": mr.nonvolatile,
        "enabled": mr.enabled,
        "line": mr.line,
    }
    if mr.hidden:
        out["hidden"] = True
    if mr.alias is not None:
        tgt = mr.alias.target
        out["alias"] = {
            "target": mr.alias.target_name,
            "offset": mr.alias.offset,
            "target_line": tgt.line if tgt is not None else None,
        }
    if mr.owner is not None:
        out["owner"] = owner(mr.owner)
    if mr.overflow:
        out["overflow"] = mr.overflow
    out["subregions"] = [region(c) for c in mr.subregions]
    return out


def owner(o: Owner) -> dict[str, Any]:
    return {"owner": o.owner, "parent": o.parent, "orphan": o.orphan}


def flat_range(r: FlatRange) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start": r.start,
        "end": r.end - 1,
        "size": r.size,
        "priority": r.priority,
        "type": r.type,
        "name": r.name,
        "offset": r.offset,
        "nonvolatile": r.nonvolatile,
        "line": r.line,
    }
    if r.owner is not None:
        out["owner"] = owner(r.owner)
    if r.accel:
        out["accel"] = list(r.accel)
    if r.region is not None:
        out["region_line"] = r.region.line
    return out


def flatview(v: FlatView) -> dict[str, Any]:
    return {
        "number": v.number,
        "address_spaces": [dataclasses.asdict(a) for a in v.address_spaces],
        "root": v.root,
        "rendered": v.rendered,
        "line": v.line,
        "ranges": [flat_range(r) for r in v.ranges],
        "dispatch": list(v.dispatch),
    }


def to_data(obj: Any) -> Any:
    """Plain data for any model or result object flatview produces."""
    if isinstance(obj, MtreeDump):
        return {
            "kind": "tree",
            "file": obj.file,
            "line": obj.line,
            "variant": dataclasses.asdict(obj.variant),
            "address_spaces": [
                {"names": list(g.names), "line": g.line, "root": region(g.root) if g.root else None}
                for g in obj.address_spaces
            ],
            "sections": [
                {"name": s.name, "line": s.line, "root": region(s.root) if s.root else None}
                for s in obj.sections
            ],
            "diagnostics": list(obj.diagnostics),
            "part": obj.part,
            "partial": obj.partial,
        }
    if isinstance(obj, FlatDump):
        return {
            "kind": "flat",
            "file": obj.file,
            "line": obj.line,
            "variant": dataclasses.asdict(obj.variant),
            "views": [flatview(v) for v in obj.views],
            "part": obj.part,
            "partial": obj.partial,
        }
    if isinstance(obj, FlattenResult):
        return {
            "views": [flatview(v) for v in obj.views],
            "guesses": [to_data(g) for g in obj.guesses],
            "ambiguities": [to_data(a) for a in obj.ambiguities],
        }
    if isinstance(obj, Guess):
        return {
            "region": obj.region.name,
            "line": obj.region.line,
            "what": obj.what,
            "rule": obj.rule,
        }
    if isinstance(obj, Ambiguity):
        return {
            "kind": obj.kind,
            "regions": [{"name": r.name, "line": r.line} for r in obj.regions],
            "start": obj.start,
            "end": obj.end - 1,
            "outcomes": list(obj.outcomes),
        }
    if isinstance(obj, CheckReport):
        return {
            "ok": obj.ok,
            "views_compared": obj.views_compared,
            "ranges_compared": obj.ranges_compared,
            "mismatches": [to_data(m) for m in obj.mismatches],
        }
    if isinstance(obj, Mismatch):
        return {
            "address_spaces": list(obj.address_spaces),
            "what": obj.what,
            "qemu_line": obj.qemu_line,
            "only_in_qemu": [flat_range(r) for r in obj.qemu],
            "only_in_flatview": [flat_range(r) for r in obj.flatview],
        }
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple record: by name too
        return {name: to_data(v) for name, v in zip(obj._fields, obj, strict=True)}
    if isinstance(obj, (list, tuple)):
        return [to_data(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    return obj


def dumps_json(command: str, payload: Any) -> str:
    """The JSON document of one command: ``{"schema_version", "command", ...}``."""
    doc = {"schema_version": SCHEMA_VERSION, "command": command, **to_data(payload)}
    return json.dumps(doc, indent=1) + "\n"
