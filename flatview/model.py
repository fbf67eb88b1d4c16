"""The typed model of a dump, in QEMU's vocabulary.

A text holds one or more *dumps*: an ``info mtree`` output (:class:`MtreeDump`, a forest
of :class:`MemoryRegion` trees) or an ``info mtree -f`` output (:class:`FlatDump`, a list
of :class:`FlatView` s made of :class:`FlatRange` s).  Every object carries the 1-based
line of the input it was read from.

MemoryRegions compare by identity (``eq=False``), as QEMU's ``MemoryRegion *`` do:
names are not unique (a q35 guest has several address spaces and regions of one name).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat

__all__ = [
    "U64",
    "UNNAMED_AS",
    "UNPASTED_ROOT",
    "AddressSpaceTree",
    "Alias",
    "Dump",
    "FlatDump",
    "FlatRange",
    "FlatView",
    "FlatViewAS",
    "MemoryRegion",
    "MtreeDump",
    "Owner",
    "RegionSection",
    "Variant",
    "walk",
]


@dataclass(frozen=True, slots=True)
class Owner:
    """The ``-o`` suffix of a line (``mtree_print_mr_owner``): owner and QOM parent.

    ``text`` is the suffix exactly as printed, kept so the line can be printed back.
    """

    text: str
    owner: str | None = None  # e.g. "dev id=nvme0", "obj path=/objects/pc.ram"
    parent: str | None = None
    orphan: bool = False


# The name given to an address space whose `address-space:` heading was not pasted, and
# to the root of pasted tree rows that have several roots (their parent was not pasted).
UNNAMED_AS = "(unnamed: heading not pasted)"
UNPASTED_ROOT = "(root not pasted)"

U64 = 1 << 64  # sizes go up to exactly 2^64 (memory_region_init with UINT64_MAX)

# Printed types that always terminate (RAM, ROM, ROM device in ROMD mode, RAM device).
RAM_TYPES = frozenset({"ram", "ramd", "rom", "romd"})


@dataclass(frozen=True, slots=True)
class Alias:
    """``alias NAME @TARGET START-END``: the target (by name, then resolved) and offset."""

    target_name: str
    offset: int  # alias_offset: where in the target the alias window starts
    target: MemoryRegion | None = None  # resolved from the memory-region: sections


@dataclass(frozen=True, slots=True, eq=False)
class MemoryRegion:
    """One ``MemoryRegion`` as a tree line prints it (struct MemoryRegion, memory.h).

    ``addr`` is the offset inside the parent container (the printed start minus the
    parent's printed start, modulo 2^64); ``start`` is the printed start.  ``subregions``
    keep the printed order (address ascending, then priority descending).
    """

    name: str
    addr: int
    start: int
    size: int
    priority: int
    type: str
    nonvolatile: bool = False
    enabled: bool = True
    alias: Alias | None = None
    owner: Owner | None = None
    overflow: str | None = None  # position of "[DETECTED OVERFLOW!] " as printed
    subregions: tuple[MemoryRegion, ...] = ()
    line: int | None = None
    hidden: bool = False  # a disabled region QEMU >= 5.1 did not print (no -D)

    @property
    def end(self) -> int:
        """Exclusive end in the printed coordinates (may exceed 2^64)."""
        return self.start + self.size

    @property
    def is_alias(self) -> bool:
        return self.alias is not None

    def __repr__(self) -> str:  # short: trees are deep
        return f"<MemoryRegion {self.name!r} line {self.line}>"


def walk(mr: MemoryRegion, depth: int = 0) -> Iterator[tuple[MemoryRegion, int]]:
    """Pre-order walk of a region and its subregions, with depth.  An explicit stack, not
    nested generators: each item of those passes through every level above it.  The
    subregions are pushed by zip and repeat, in C (a generator per region cost more than
    the walk itself)."""
    stack = [(mr, depth)]
    while stack:
        mr, depth = stack.pop()
        yield mr, depth
        if mr.subregions:
            stack.extend(zip(reversed(mr.subregions), repeat(depth + 1)))


@dataclass(frozen=True, slots=True)
class AddressSpaceTree:
    """An ``address-space:`` group: the AddressSpace names sharing one root (QEMU >= 7.0
    prints one group per root; older QEMU one per address space)."""

    names: tuple[str, ...]
    root: MemoryRegion | None  # None: the root line is hidden (disabled, no -D)
    line: int


@dataclass(frozen=True, slots=True)
class RegionSection:
    """A ``memory-region:`` section: an alias target printed after the address spaces."""

    name: str
    root: MemoryRegion | None
    line: int


@dataclass(frozen=True, slots=True)
class Variant:
    """What the text shows about the QEMU version and flags that printed it (spec §7)."""

    type_letters: bool = False  # (prio 0, RW): QEMU <= 2.8
    container_type: bool = False  # `container` type word: 2026 master
    grouped: bool = False  # several address-space: lines share a tree: QEMU >= 7.0
    disabled_marks: bool = False  # ` [disabled]` printed: QEMU < 5.1 or -D
    hidden_disabled: bool = False  # indentation jumps: disabled regions hidden (>= 5.1)
    owners: bool = False  # -o
    overflow_before_indent: bool | None = None  # >= 5.1 if True
    old_flat_format: bool = False  # `address-space (flat view):` (2.9/2.10)
    accel_labels: tuple[str, ...] = ()  # e.g. ("KVM",)
    dispatch: bool = False  # -f -d


@dataclass(frozen=True, slots=True)
class MtreeDump:
    """One ``info mtree`` output: address-space groups, then alias-target sections."""

    address_spaces: tuple[AddressSpaceTree, ...]
    sections: tuple[RegionSection, ...]
    variant: Variant
    file: str
    line: int
    diagnostics: tuple[str, ...] = ()
    part: str | None = None  # "before"/"after": a side of a hand-made diff paste
    partial: bool = False  # elided, headings or alias targets not pasted

    kind = "tree"

    def regions(self) -> Iterator[tuple[MemoryRegion, int]]:
        """Every printed region once (tree copies unified with their sections)."""
        seen: set[int] = set()
        for root in self.roots():
            for mr, depth in walk(root):
                if id(mr) not in seen:
                    seen.add(id(mr))
                    yield mr, depth

    def roots(self) -> Iterator[MemoryRegion]:
        """Every distinct root (a tree shared by address spaces is yielded once)."""
        seen: set[int] = set()
        for root in [g.root for g in self.address_spaces] + [s.root for s in self.sections]:
            if root is not None and id(root) not in seen:
                seen.add(id(root))
                yield root


@dataclass(frozen=True, slots=True)
class FlatRange:
    """One range of a FlatView (struct FlatRange): what the guest sees at [start, end)."""

    start: int
    size: int
    priority: int  # the region's own priority, as mtree_print_flatview prints it
    type: str  # printed type: `rom` when the range is read-only
    name: str
    offset: int = 0  # offset_in_region
    nonvolatile: bool = False
    owner: Owner | None = None
    accel: tuple[str, ...] = ()
    line: int | None = None
    region: MemoryRegion | None = None  # set when computed by the flattener
    readonly: bool = False  # computed ranges: the propagated readonly flag

    @property
    def end(self) -> int:
        """Exclusive end."""
        return self.start + self.size


@dataclass(frozen=True, slots=True)
class FlatViewAS:
    """`` AS "name", root: X[, alias Y]``."""

    name: str
    root: str | None = None
    root_alias: str | None = None


@dataclass(frozen=True, slots=True)
class FlatView:
    """A FlatView and the address spaces that share it (QEMU >= 2.11 prints them grouped)."""

    address_spaces: tuple[FlatViewAS, ...]
    root: str | None  # `Root memory region:`; None for (none) or the old format
    ranges: tuple[FlatRange, ...]
    number: int | None = None
    line: int | None = None
    dispatch: tuple[str, ...] = ()  # the -d lines, as text
    rendered: bool = True  # False: `No rendered FlatView`

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.address_spaces)


@dataclass(frozen=True, slots=True)
class FlatDump:
    """One ``info mtree -f`` output."""

    views: tuple[FlatView, ...]
    variant: Variant
    file: str
    line: int
    diagnostics: tuple[str, ...] = field(default=())
    part: str | None = None  # "before"/"after": a side of a hand-made diff paste
    partial: bool = False  # elided, or rows without their FlatView header

    kind = "flat"


Dump = MtreeDump | FlatDump
