"""Print the model back in QEMU's own ``info mtree`` / ``info mtree -f`` text.

Mirrors system/memory.c ``mtree_print_mr``, ``mtree_print_mr_owner``,
``mtree_print_flatview`` and ``mtree_info``: a dump read from QEMU prints back to the
same lines.  The layout of the QEMU version that printed the dump (overflow marker
position, owners, accelerator labels, old ``address-space (flat view):`` form) comes
from the dump's :class:`~flatview.model.Variant`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..model import U64, FlatDump, FlatRange, FlatView, MemoryRegion, MtreeDump, Variant

__all__ = ["format_dump", "format_flat", "format_flatview", "format_mtree", "format_range"]

MTREE_INDENT = "  "
OVERFLOW = "[DETECTED OVERFLOW!] "


def _hex(value: int) -> str:
    return f"{value % U64:016x}"


def _end(start: int, size: int) -> int:
    """Printed inclusive end: start + MR_SIZE(size), MR_SIZE(0) = 0 (memory.c)."""
    return (start + (size - 1 if size else 0)) % U64


def format_mtree(dump: MtreeDump) -> str:
    """``info mtree``: address-space groups, then memory-region sections (mtree_info)."""
    lines: list[str] = []
    for group in dump.address_spaces:
        lines.extend(f"address-space: {name}" for name in group.names)
        if group.root is not None:
            _tree_lines(group.root, 1, lines)
        lines.append("")
    for sec in dump.sections:
        lines.append(f"memory-region: {sec.name}")
        if sec.root is not None:
            _tree_lines(sec.root, 1, lines)
        lines.append("")
    return "\n".join(lines) + "\n"


def _tree_lines(mr: MemoryRegion, level: int, out: list[str], base: int | None = None) -> None:
    """One region and its subregions, in printed order (mtree_print_mr)."""
    start = mr.start if base is None else (base + mr.addr) % U64
    if not mr.hidden:
        out.append(format_region(mr, level, start))
    for child in mr.subregions:
        _tree_lines(child, level + 1, out, start)


def format_region(mr: MemoryRegion, level: int, start: int | None = None) -> str:
    """One tree line of ``mtree_print_mr``."""
    start = mr.start if start is None else start
    indent = MTREE_INDENT * level
    before = OVERFLOW if mr.overflow == "before" else ""
    after = OVERFLOW if mr.overflow == "after" else ""
    head = f"{before}{indent}{after}{_hex(start)}-{_hex(_end(start, mr.size))}"
    head += f" (prio {mr.priority}, {'nv-' if mr.nonvolatile else ''}{mr.type}): "
    if mr.alias is not None:
        off = mr.alias.offset
        body = f"alias {mr.name} @{mr.alias.target_name} {_hex(off)}-{_hex(_end(off, mr.size))}"
    else:
        body = mr.name
    tail = "" if mr.enabled else " [disabled]"
    owner = mr.owner.text if mr.owner is not None else ""
    return head + body + tail + owner


def format_range(r: FlatRange, owners: bool = True, accel: bool = True) -> str:
    """One range line of ``mtree_print_flatview``."""
    line = f"{MTREE_INDENT}{_hex(r.start)}-{_hex(_end(r.start, r.size))}"
    line += f" (prio {r.priority}, {'nv-' if r.nonvolatile else ''}{r.type}): {r.name}"
    if r.offset:
        line += f" @{_hex(r.offset)}"
    if owners and r.owner is not None:
        line += r.owner.text
    if accel:
        line += "".join(f" {a}" for a in r.accel)
    return line


def format_flatview(view: FlatView, variant: Variant | None = None) -> list[str]:
    """The lines of one FlatView block (no trailing empty line)."""
    variant = variant or Variant()
    if variant.old_flat_format:
        name = view.address_spaces[0].name if view.address_spaces else ""
        lines = [f"address-space (flat view): {name}"]
        if not view.rendered:
            return [*lines, f"  No rendered FlatView for address space '{name}'"]
        return lines + [format_range(r) for r in view.ranges]
    if view.number is None and not view.address_spaces and view.root is None:
        # rows pasted without their header: say so (this line reads back as prose)
        return ["FlatView (header not pasted)"] + [format_range(r) for r in view.ranges]
    lines = [f"FlatView #{view.number if view.number is not None else 0}"]
    for a in view.address_spaces:
        alias = f", alias {a.root_alias}" if a.root_alias else ""
        lines.append(f' AS "{a.name}", root: {a.root}{alias}')
    lines.append(f" Root memory region: {view.root if view.root is not None else '(none)'}")
    if not view.rendered:
        return [*lines, "  No rendered FlatView"]
    return lines + [format_range(r) for r in view.ranges] + list(view.dispatch)


def format_flat(dump: FlatDump) -> str:
    """``info mtree -f``: every FlatView block followed by an empty line."""
    return _blocks(format_flatview(v, dump.variant) for v in dump.views)


def _blocks(blocks: Iterable[list[str]]) -> str:
    out: list[str] = []
    for b in blocks:
        out.extend(b)
        out.append("")
    return "\n".join(out) + "\n"


def format_dump(dump: MtreeDump | FlatDump) -> str:
    return format_flat(dump) if isinstance(dump, FlatDump) else format_mtree(dump)
