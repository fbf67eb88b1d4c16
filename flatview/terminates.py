"""What a dump does not print, and the rules flatview uses to fill it in.

``info mtree`` prints neither ``MemoryRegion.terminates`` nor ``readonly`` (except as
``rom`` on RAM), nor the order in which equal-priority siblings were added.  Rendering
needs all three.  The rules live here, in one visible place, each with the QEMU source
it comes from; :class:`Knowledge` applies them and says which decisions are guesses.

Order of the ``terminates`` rules (first match wins):

1. ``ram``/``ramd``/``rom``/``romd`` regions terminate: memory_region_init_ram*,
   _rom, _rom_device and _ram_device_ptr all set ``terminates`` (system/memory.c).
2. A name QEMU's own flat view of the same machine shows terminates: only terminating
   regions ever become FlatRanges.  (Learned when the input also holds ``-f``.)
3. A name QEMU's flat view of the same machine never shows, for a region whose whole
   span QEMU rendered with other regions' ranges, is a pure container.  (Learned.)
4. Known pure containers (``KNOWN_CONTAINERS``) and known terminating parents
   (``TERMINATING_PARENTS``: ``io``, ``rtc``, VFIO ``<bdf> base BAR N`` and
   ``<bdf> BAR N``, gpex windows, VT-d IOMMU regions), read from QEMU's source
   (docs/qemu-source-notes.md, Q4).
5. An ``i/o`` region with subregions is a pure container (memory_region_init): device
   BAR containers (``e1000e-msix``, ``virtio-pci``, ``nvme-bar0``, ``xhci``), ``pci``,
   ``system``, ``bus master container``...  A guess, listed.
6. An ``i/o`` leaf is MMIO (memory_region_init_io) and terminates.  A guess, listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from .model import RAM_TYPES, FlatDump, MemoryRegion, MtreeDump

__all__ = [
    "READONLY_ALIASES",
    "TERMINATING_PARENTS",
    "VERSION_RULES",
    "Knowledge",
    "Rule",
    "Version",
    "VersionEvidence",
    "VersionRule",
    "infer_version",
    "parse_version",
    "printed_empty",
]

# Rule 4: i/o regions with subregions that QEMU creates with memory_region_init_io (or
# init_iommu): they fill their own holes.  Sources: docs/qemu-source-notes.md, Q4.
TERMINATING_PARENTS: tuple[tuple[str, str], ...] = (
    (r"^io$", "the I/O address space root (physmem.c memory_map_init: init_io)"),
    (r"^rtc$", "hw/rtc/mc146818rtc.c: memory_region_init_io, rtc-index inside"),
    (
        r"^\S+ base BAR \d$",
        "VFIO base BAR: memory_region_init_io with NULL ops (hw/vfio/pci.c vfio_bar_register)",
    ),
    (
        r"^\S+ BAR \d$",
        "VFIO region: memory_region_init_io with vfio_region_ops (hw/vfio/common.c "
        "vfio_region_setup)",
    ),
    (
        r"^gpex_(mmio|ioport)_window$",
        "hw/pci-host/gpex.c gpex_host_realize: init_io with unassigned_io_ops",
    ),
    (r"^vtd-.*-dmar$", "hw/i386/intel_iommu.c: memory_region_init_iommu"),
    (
        r"^.*[-.]mmio$",
        "a device's MMIO BAR (memory_region_init_io) holding msix-table/quirks: megasas-mmio, "
        "vga.mmio, bochs-display-mmio (hw/scsi/megasas.c, hw/display/vga-pci.c)",
    ),
)

# Regions QEMU creates with memory_region_init (pure containers), listed because some
# print with no visible subregion (their only child disabled and hidden, nothing mapped
# yet, or none at all, like e1000e-flash) and would otherwise pass for MMIO leaves.
KNOWN_CONTAINERS: tuple[tuple[str, str], ...] = (
    (r"^system$", "physmem.c memory_map_init: memory_region_init"),
    (r"^pci$", "hw/i386/pc_q35.c / pc_piix.c: memory_region_init"),
    (r"^bus master container$", "hw/pci/pci.c do_pci_register_device"),
    (r"^pci_bridge_(pci|io)$", "hw/pci/pci_bridge.c pci_bridge_initfn"),
    (r"^e1000e-flash$", "hw/net/e1000e.c e1000e_pci_realize: memory_region_init"),
    (r"^(virtio-pci-io|shpc-bar)$", "hw/virtio/virtio-pci.c, hw/pci-bridge"),
    (r"^(platform bus|gpex_mmio|gpex_ioport)$", "hw/core/platform-bus.c, gpex.c"),
    (r"^pci@\S+\.(mmio|io|iommu-root)$", "hw/ppc/spapr_pci.c spapr_phb_realize"),
    (
        r"^(memory|mem-container-smram|smram)$",
        "x86 SMM containers (tcg-cpu.c, kvm.c, q35.c)",
    ),
    (r"^(vtd-nodmar|vtd-[0-9a-f]{2}\.\d(-pasid-\d+)?)$", "hw/i386/intel_iommu.c"),
    (r"^tce-root-", "hw/ppc/spapr_iommu.c"),
    (r"^memhp container$", "hw/acpi/memory_hotplug.c acpi_memory_hotplug_init"),
    (
        r"^virtio-mem$",
        "hw/virtio/virtio-mem.c virtio_mem_prepare_mr (QEMU >= 8.2, dynamic-memslots=on): "
        "memory_region_init, holding the memslot-N aliases once the guest plugs blocks",
    ),
    (
        r"^device-memory$",
        "hw/mem/memory-device.c machine_memory_devices_init (7.2: hw/i386/pc.c "
        "pc_memory_init): memory_region_init, empty until a DIMM, virtio-mem or CXL maps",
    ),
    # Host-bridge bus spaces of other machines, childless until a device maps a BAR; QEMU
    # 7.2's own flat views never show them (tests/test_qemu_oracle.py, other targets).
    (r"^(pci_io|pci_mem)$", "hw/pci-host/versatile.c (arm versatilepb)"),
    (r"^pci-memory$", "hw/pci-host/raven.c (ppc 40p)"),
    (r"^(unin-)?pci-mmio$", "hw/pci-host/uninorth.c, grackle.c (ppc mac99, g3beige)"),
    (r"^isa-mem$", "hw/ppc/pnv_lpc.c (powernv)"),
    (r"^xive-vc-(end|ipi)$", "hw/intc/pnv_xive2.c (powernv9 and later)"),
)

# Two regions are named `virtio-pci` (hw/virtio/virtio-pci.c virtio_pci_realize): the
# legacy I/O BAR (memory_region_init_io: MMIO, terminates) and the modern BAR
# (memory_region_init: a pure container).  A legacy-only device (disable-modern=on) keeps
# an empty modern BAR, which QEMU >= 8.x prints as the root of `virtio-pci-cfg-mem-as`
# and renders as no FlatView at all.  I/O BARs are at most 256 bytes (PCI spec), the
# modern BAR at least 16K, so the size tells them apart.
PCI_IO_BAR_MAX = 0x100
VIRTIO_MODERN_BAR = (
    "a childless virtio-pci larger than any I/O BAR is the modern BAR: memory_region_init "
    "in hw/virtio/virtio-pci.c virtio_pci_realize, a pure container"
)

# PCI bridge windows (hw/pci/pci_bridge.c pci_bridge_region_init): an alias of
# ``limit + 1 - base`` bytes, or of 0 bytes when the window is closed (limit < base).
# Windows are whole 4 KiB (I/O) or 1 MiB (memory) units, so one printed as a single
# byte (`S-S`) is closed.
BRIDGE_WINDOW = re.compile(r"^pci_bridge_(io|mem|pref_mem)$")


# hw/i386/amd_iommu.c amdvi_host_dma_iommu sizes a device's `amdvi-sys` / `amdvi-ir`
# aliases with memory_region_size(&s->mr_sys / &s->mr_ir).  QEMU 10's AMDVI-PCI function
# asks for its own DMA address space before amdvi_sysbus_realize initialises those, so
# its aliases are 0 bytes (printed S-S, `No rendered FlatView`).  They are never 1 byte.
AMDVI_EARLY = re.compile(r"^amdvi-(sys|ir)$")
AMDVI_EARLY_WHY = (
    "an AMD IOMMU alias printed as one byte is empty: sized before amdvi_sysbus_realize "
    "(hw/i386/amd_iommu.c, QEMU 10)"
)


def printed_empty(name: str, is_alias: bool, child_offsets: Iterable[int]) -> Rule | None:
    """Size of a region printed ``S-S``: mtree_print_mr prints ``MR_SIZE(size)``, which is
    0 for size 0 and for size 1 alike (system/memory.c).  None: one byte (the default).

    - a closed PCI bridge window (``BRIDGE_WINDOW``) is empty: certain, see above;
    - a region with a subregion beyond its first byte is empty: every constructor puts
      subregions inside their container (a hidden disabled region can make a later line
      look like its child, hence a guess, listed);
    - QEMU 10's early AMD IOMMU aliases (``AMDVI_EARLY``) are empty.
    """
    if is_alias and BRIDGE_WINDOW.match(name):
        return Rule(True, "a closed PCI bridge window: 0 bytes (pci_bridge_region_init)", False)
    if is_alias and AMDVI_EARLY.match(name):
        return Rule(True, AMDVI_EARLY_WHY, False)
    if any(off >= 1 for off in child_offsets):
        return Rule(
            True,
            "printed as one byte but holds a subregion beyond it: taken as 0 bytes "
            "(MR_SIZE prints 0 and 1 alike)",
        )
    return None


def _one_pattern(rules: tuple[tuple[str, str], ...]) -> re.Pattern[str]:
    """The rules' patterns as one alternation (one match per region, not one per rule);
    ``lastgroup`` names the first rule that matched (``r<index>``).  The rules hold
    pattern text: compiling each one too would cost an import ~10 ms for nothing."""
    return re.compile("|".join(f"(?P<r{i}>{p})" for i, (p, _) in enumerate(rules)))


_KNOWN_CONTAINERS_RE = _one_pattern(KNOWN_CONTAINERS)
_TERMINATING_PARENTS_RE = _one_pattern(TERMINATING_PARENTS)


def _first_rule(
    pattern: re.Pattern[str], rules: tuple[tuple[str, str], ...], name: str
) -> str | None:
    m = pattern.match(name)
    return None if m is None or m.lastgroup is None else rules[int(m.lastgroup[1:])][1]


# Aliases QEMU marks read-only with memory_region_set_readonly (invisible in the tree).
READONLY_ALIASES: dict[str, str] = {
    "pam-rom": "hw/pci-host/pam.c init_pam: memory_region_set_readonly(&mem->alias[0], true)",
    "isa-bios": "hw/i386/x86-common.c x86_isa_bios_init (QEMU >= 9.1 also aliases pflash "
    "firmware there, hw/i386/pc_sysfw.c): read-only unless the BIOS is RAM (isapc)",
}

# Regions msix_init (hw/pci/msix.c) adds to a BAR after the BAR's own regions: among
# equal-priority siblings they were added last, so they render first.
LATE_ADDED = re.compile(r"^msix-(table|pba)$")


# ------------------------------------------------------------------------- QEMU versions

Version = tuple[int, int]  # (major, minor)


def parse_version(text: str) -> Version:
    """``X.Y`` (``X.Y.Z`` accepted) -> (X, Y); ValueError on anything else."""
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", text.strip())
    if not m:
        raise ValueError(f"not a QEMU version X.Y: {text!r}")
    return int(m[1]), int(m[2])


def _v(v: Version) -> str:
    return f"{v[0]}.{v[1]}"


class VersionRule(NamedTuple):
    """A rendering rule that holds for some QEMU versions only, and is not printed."""

    name: str
    since: Version
    source: str
    effect: str


# What `info mtree` does not print and differs between the QEMUs flatview is tested on.
UNMERGEABLE = VersionRule(
    "unmergeable memslot aliases",
    (8, 2),
    "system/memory.c can_merge (FlatRange.unmergeable, memory_region_set_unmergeable); "
    "hw/virtio/virtio-mem.c virtio_mem_prepare_memslots: each memslot-N alias unmergeable",
    "flatview_simplify never merges a range of a virtio-mem memslot-N alias with its "
    "neighbour; before 8.2 neighbouring memslot ranges of one RAM block merge into one",
)
VERSION_RULES: tuple[VersionRule, ...] = (UNMERGEABLE,)
MEMSLOT = re.compile(r"^memslot-\d+$")


class VersionEvidence(NamedTuple):
    """What the text shows about the QEMU version: bounds and the lines that set them."""

    lowest: Version | None = None  # at least this version
    below: Version | None = None  # older than this version
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        if self.lowest is None and self.below is None:
            return "QEMU version: not shown by the input"
        lo = f">= {_v(self.lowest)}" if self.lowest else ""
        hi = f"< {_v(self.below)}" if self.below else ""
        return f"QEMU version {' and '.join(x for x in (lo, hi) if x)}: " + "; ".join(self.reasons)


NO_EVIDENCE = VersionEvidence()


def infer_version(dump: MtreeDump) -> VersionEvidence:
    """Bounds on the QEMU version from what only some versions print (the dump never
    names its version).  Each bound cites the QEMU change behind it."""
    lows: list[tuple[Version, str]] = []
    belows: list[tuple[Version, str]] = []
    v = dump.variant
    if v.grouped:
        lows.append(((7, 0), "address spaces grouped by root (mtree_info, QEMU 7.0)"))
    if v.type_letters:
        belows.append(((2, 9), "type letters like RW (QEMU <= 2.8)"))
    for mr, _ in dump.regions():
        if mr.name == "isa-bios":
            target = mr.alias.target if mr.alias is not None else None
            if target is not None and target.type == "romd":
                lows.append(
                    ((9, 1), f"line {mr.line}: isa-bios aliases the pflash {target.name!r} "
                     "(hw/i386/pc_sysfw.c, QEMU 9.1; a ROM copy before)")
                )  # fmt: skip
        elif mr.alias is not None and MEMSLOT.match(mr.name):  # few aliases, every region
            lows.append(
                ((8, 2), f"line {mr.line}: virtio-mem memslot alias {mr.name!r} "
                 "(dynamic-memslots, QEMU 8.2)")
            )  # fmt: skip
    for g in dump.address_spaces:
        if "virtio-pci-cfg-mem-as" in g.names:
            lows.append(
                ((8, 0), f"line {g.line}: address space virtio-pci-cfg-mem-as "
                 "(hw/virtio/virtio-pci.c; not printed by QEMU 7.2)")
            )  # fmt: skip
            break
    lowest = max(lows)[0] if lows else None
    below = min(belows)[0] if belows else None
    reasons = [r for _, r in sorted(lows, reverse=True)[:3]] + [r for _, r in belows]
    return VersionEvidence(lowest, below, tuple(reasons))


class Rule(NamedTuple):
    """A decision, why it was taken, and whether the text alone could not settle it."""

    value: bool
    reason: str
    guess: bool = True


# The two answers of readonly() for nearly every region, made once (it runs per render).
_PRINTED_ROM = Rule(True, "printed as rom", False)
_NOT_READONLY = Rule(False, "not printed", False)


# Overlapping equal-priority siblings in render order (two, or a whole cluster of them),
# and why the first renders first.
Overlap = tuple[tuple[MemoryRegion, ...], str]


@dataclass
class Knowledge:
    """The facts rendering needs beyond the tree: rules plus what QEMU's flat view shows."""

    flat_names: frozenset[str] = frozenset()  # names in QEMU's own flat view (rule 2)
    qemu_version: Version | None = None  # --qemu-version: the user says which QEMU
    evidence: VersionEvidence = NO_EVIDENCE  # what the text shows (infer_version)
    _order: dict[int, tuple[MemoryRegion, ...]] = field(default_factory=dict)
    _term: dict[int, Rule] = field(default_factory=dict)
    _overlaps: dict[int, tuple[Overlap, ...]] = field(default_factory=dict)

    @classmethod
    def for_dump(
        cls, dump: MtreeDump, flats: Iterable[FlatDump] = (), qemu_version: Version | None = None
    ) -> Knowledge:
        """Learn from QEMU's flat views: a name shown there terminates, unless a leaf of
        the same name explains it (names repeat: the legacy `virtio-pci` I/O BAR is an
        MMIO leaf, the modern `virtio-pci` BAR a container)."""
        evidence = infer_version(dump)
        shown = {r.name for f in flats for v in f.views for r in v.ranges}
        if not shown:
            return cls(qemu_version=qemu_version, evidence=evidence)
        leaves: set[str] = set()
        parents: set[str] = set()
        for mr, _ in dump.regions():
            if mr.subregions:
                parents.add(mr.name)
            elif mr.alias is None:
                leaves.add(mr.name)
        learned = {n for n in shown if n not in parents or n not in leaves}
        return cls(flat_names=frozenset(learned), qemu_version=qemu_version, evidence=evidence)

    def unmergeable(self, mr: MemoryRegion) -> Rule | None:
        """FlatRange.unmergeable (QEMU >= 8.2, ``UNMERGEABLE``): None when it does not
        apply.  Only virtio-mem's memslot-N aliases are set unmergeable; the version is the
        user's (--qemu-version), else what the text shows (memslot aliases exist only
        since 8.2, so their presence settles it)."""
        if mr.alias is None or not MEMSLOT.match(mr.name):
            return None
        since = UNMERGEABLE.since
        if self.qemu_version is not None:
            on = self.qemu_version >= since
            return Rule(on, f"QEMU {_v(self.qemu_version)} (--qemu-version): " + (
                UNMERGEABLE.source if on else f"no unmergeable regions before {_v(since)}"
            ), False)  # fmt: skip
        lowest = self.evidence.lowest
        settled = lowest is not None and lowest >= since
        return Rule(True, f"{UNMERGEABLE.source} (QEMU >= {_v(since)})", not settled)

    def terminates(self, mr: MemoryRegion) -> Rule:
        cached = self._term.get(id(mr))
        if cached is None:
            cached = self._term[id(mr)] = self._terminates(mr)
        return cached

    def _terminates(self, mr: MemoryRegion) -> Rule:
        if mr.type in RAM_TYPES:
            return Rule(True, "RAM, ROM, ROM device and RAM device regions terminate", False)
        if mr.type[0] in "R-" and mr.type != "RW":
            return Rule(True, "ROM or ROM device (type letters of QEMU <= 2.8)", False)
        if mr.name == "virtio-pci" and mr.size > PCI_IO_BAR_MAX and not mr.subregions:
            return Rule(False, VIRTIO_MODERN_BAR, False)
        if mr.name in self.flat_names:
            return Rule(True, "QEMU's own flat view of this machine shows it", False)
        why = _first_rule(_KNOWN_CONTAINERS_RE, KNOWN_CONTAINERS, mr.name)
        if why is not None:
            return Rule(False, why)
        why = _first_rule(_TERMINATING_PARENTS_RE, TERMINATING_PARENTS, mr.name)
        if why is not None:
            return Rule(True, why)
        if any(not c.hidden for c in mr.subregions):  # what the dump printed under it
            if self.flat_names:
                return Rule(False, "pure container: never in QEMU's flat view of this machine")
            return Rule(
                False, "an i/o region with subregions is a pure container (memory_region_init)"
            )
        return Rule(True, "an i/o leaf is MMIO (memory_region_init_io)")

    def readonly(self, mr: MemoryRegion) -> Rule:
        if mr.type == "rom":
            return _PRINTED_ROM
        if mr.alias is not None and mr.name in READONLY_ALIASES:
            target = mr.alias.target
            if mr.name == "isa-bios" and target is not None and target.type == "ram":
                return Rule(False, READONLY_ALIASES[mr.name])
            return Rule(True, READONLY_ALIASES[mr.name])
        return _NOT_READONLY

    def render_order(self, mr: MemoryRegion) -> tuple[MemoryRegion, ...]:
        """Subregions in QEMU's list order (memory_region_update_container_subregions):
        priority descending; among equal priorities the newest first, which the dump shows
        only for siblings at the same address (print order sorts by address)."""
        cached = self._order.get(id(mr))
        if cached is not None:
            return cached
        if len(mr.subregions) < 2:  # most containers: nothing to order, nothing overlaps
            self._order[id(mr)] = mr.subregions
            return mr.subregions
        # Stable sort: at one address print order is list order; among overlapping
        # equal-priority siblings at different addresses the later-printed (higher) one
        # was added last in every real dump seen (an overlay on the region below it).
        subs = sorted(mr.subregions, key=lambda c: (-c.priority, -c.addr))
        subs = _late_added_first(subs)
        self._overlaps[id(mr)] = _overlaps(subs)
        self._order[id(mr)] = tuple(subs)
        return self._order[id(mr)]

    def overlaps(self, mr: MemoryRegion) -> tuple[Overlap, ...]:
        """Equal-priority siblings with different starts that overlap: which one QEMU added
        last (and so renders first) the dump does not show.  Call after render_order."""
        return self._overlaps.get(id(mr), ())


def _overlaps(subs: list[MemoryRegion]) -> tuple[Overlap, ...]:
    """Overlapping equal-priority siblings at different starts, in render order.

    Siblings are swept by address, so the cost follows the siblings and the pairs that
    really overlap, not every pair.  A cluster of siblings that overlap one another
    (transitively) with more than ``_PAIRS`` overlapping pairs is one Overlap naming
    them all: listing every pair of 6,000 siblings would take 18M entries."""
    out: list[Overlap] = []
    live = [c for c in subs if c.enabled and c.size]
    rank = {id(c): i for i, c in enumerate(live)}
    i = 0
    while i < len(live):
        j = i
        while j < len(live) and live[j].priority == live[i].priority:
            j += 1
        for cluster in _clusters(sorted(live[i:j], key=lambda c: c.addr)):
            out.extend(_cluster_overlaps(cluster, rank))
        i = j
    out.sort(key=lambda o: [rank[id(m)] for m in o[0]])
    return tuple(out)


_PAIRS = 64  # most overlapping pairs of one cluster listed one by one


def _clusters(by_addr: list[MemoryRegion]) -> list[list[MemoryRegion]]:
    """Runs of address-sorted siblings whose spans overlap (transitively)."""
    out: list[list[MemoryRegion]] = []
    reach = 0
    for c in by_addr:
        if out and c.addr < reach:
            out[-1].append(c)
            reach = max(reach, c.addr + c.size)
        else:
            out.append([c])
            reach = c.addr + c.size
    return [c for c in out if len(c) > 1]


def _why(first: MemoryRegion) -> str:
    if LATE_ADDED.match(first.name):
        return "msix_init adds msix-table/msix-pba after the BAR's own regions"
    # render order puts the higher address first: the sibling printed later
    return "printed later, at the higher address: QEMU 7.2 added it last on ppc mac99 and 40p"


def _cluster_overlaps(cluster: list[MemoryRegion], rank: dict[int, int]) -> list[Overlap]:
    pairs: list[Overlap] = []
    seen = 0
    for k, a in enumerate(cluster):
        end = a.addr + a.size
        for b in cluster[k + 1 :]:
            if b.addr >= end:
                break
            seen += 1
            if seen > _PAIRS:
                if len({m.addr for m in cluster}) < 2:
                    return []
                members = tuple(sorted(cluster, key=lambda m: rank[id(m)]))
                return [(members, _why(members[0]))]
            if a.addr != b.addr:
                first, other = (a, b) if rank[id(a)] < rank[id(b)] else (b, a)
                pairs.append(((first, other), _why(first)))
    return pairs


def _late_added_first(subs: list[MemoryRegion]) -> list[MemoryRegion]:
    """Within each priority, put msix-table/msix-pba before their siblings."""
    out: list[MemoryRegion] = []
    i = 0
    while i < len(subs):
        j = i
        while j < len(subs) and subs[j].priority == subs[i].priority:
            j += 1
        late: list[MemoryRegion] = []
        rest: list[MemoryRegion] = []
        for c in subs[i:j]:  # one match per sibling
            (late if LATE_ADDED.match(c.name) else rest).append(c)
        out += late
        out += rest
        i = j
    return out
