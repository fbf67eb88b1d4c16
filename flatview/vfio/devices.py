"""Assigned devices as the sources describe them, reconciled.

A flat view names a VFIO device's regions after its host address (``<bdf> BAR N``,
``<bdf> BAR N mmaps[k]``, ``<bdf> base BAR N``; hw/vfio/pci.c) and shows where each BAR
sits in guest memory; a tree adds host BAR sizes and the dormant ``msix-pba``; ``lspci``
and ``info pci`` add BAR types and the MSI-X capability.  :func:`gather` matches them by
host address or by guest BAR address and says where they disagree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from ..flatten import FlattenResult
from ..model import FlatRange, FlatView, MemoryRegion, MtreeDump, walk
from .names import VFIO_NAME
from .pci import UNKNOWN_ADDRESS, MsixCapability, PciBar, PciDevice

__all__ = [
    "DeviceFacts",
    "Fact",
    "ObservedBar",
    "ObservedDevice",
    "fact_changes",
    "gather",
    "observe_flat",
]

FOUR_G = 1 << 32
PCI_ROM_SLOT = 6  # BAR registers 0..5


class Fact(NamedTuple):
    """One thing the advisor knows about a device, and where it came from: ``dump``,
    ``lspci``, ``info pci``, ``inferred: <from what>`` or ``assumed: <why>``."""

    bar: int | None  # BAR index; None for the MSI-X capability
    field: str  # "size", "type", "width", "guest address", "vectors", "table", "PBA"
    value: str
    source: str

    @property
    def assumed(self) -> bool:
        return self.source.startswith("assumed")

    @property
    def what(self) -> str:
        if self.bar is not None:
            return f"BAR {self.bar} {self.field}"
        return f"MSI-X {self.field}" if self.field in ("vectors", "table", "PBA") else self.field

    def __str__(self) -> str:
        return f"{self.what}: {self.value} ({self.source})"


class ObservedBar(NamedTuple):
    index: int
    guest_base: int
    guest_size: int
    host_size: int | None
    ranges: tuple[FlatRange, ...]


class ObservedDevice(NamedTuple):
    """What one FlatView shows of one assigned device."""

    bdf: str
    bars: tuple[ObservedBar, ...]
    table: tuple[int, int, int] | None  # (BAR, offset, size) of a visible msix-table
    pba: tuple[int, int, int] | None
    line: int | None

    def bar(self, index: int) -> ObservedBar | None:
        return next((b for b in self.bars if b.index == index), None)


# I/O spaces: the system's, and each bridge's own (hw/pci/pci_bridge.c: AS
# "pci_bridge_pci_io" rooted at "pci_bridge_io")
IO_SPACES = frozenset({"I/O", "pci_bridge_pci_io"})
IO_ROOTS = frozenset({"io", "pci_bridge_io"})


def is_io_space(names: Iterable[str], root: str | None) -> bool:
    """An address space of port I/O, by its names or its root region's."""
    return not IO_SPACES.isdisjoint(names) or root in IO_ROOTS


def system_view(views: Iterable[FlatView]) -> FlatView | None:
    """The FlatView of the ``memory`` address space (what CPUs see)."""
    views = list(views)
    for v in views:
        if "memory" in v.names:
            return v
    return max(views, key=lambda v: len(v.ranges), default=None)


def observe_flat(view: FlatView) -> list[ObservedDevice]:
    """Group a view's ranges by device and BAR; attach the MSI-X and quirk ranges that
    sit inside or right against a BAR's ranges (they carry no device name)."""
    spans: dict[tuple[str, int], list[FlatRange]] = {}
    for r in view.ranges:
        m = VFIO_NAME.match(r.name)
        if m:
            spans.setdefault((m["bdf"], int(m["bar"])), []).append(r)
    loose = [r for r in view.ranges if not VFIO_NAME.match(r.name)]
    bars: dict[str, list[ObservedBar]] = {}
    tables: dict[str, tuple[int, int, int]] = {}
    pbas: dict[str, tuple[int, int, int]] = {}
    for (bdf, k), rs in sorted(spans.items(), key=lambda kv: kv[1][0].start):
        lo, hi = rs[0].start, rs[-1].end
        grown = True
        while grown:  # take unnamed ranges (msix-table, quirks) inside or just before it
            grown = False
            for r in loose:
                if r in rs or not (r.end == lo or lo <= r.start < hi):
                    continue
                if r.name in ("msix-table", "msix-pba") or "quirk" in r.name:
                    rs.append(r)
                    lo, hi = min(lo, r.start), max(hi, r.end)
                    grown = True
        rs.sort(key=lambda r: r.start)
        host = (
            max(
                (
                    r.end
                    for r in rs
                    if not r.name.startswith(f"{bdf} base ")
                    and r.name not in ("msix-table", "msix-pba")
                ),
                default=lo,
            )
            - lo
        )
        has_base = any(r.name.startswith(f"{bdf} base ") for r in rs)
        bars.setdefault(bdf, []).append(
            ObservedBar(k, lo, hi - lo, host if has_base else hi - lo, tuple(rs))
        )
        for r in rs:
            if r.name == "msix-table":
                tables[bdf] = (k, r.start - lo, r.size)
            elif r.name == "msix-pba":
                pbas[bdf] = (k, r.start - lo, r.size)
    return [
        ObservedDevice(
            bdf,
            tuple(sorted(bs, key=lambda b: b.index)),
            tables.get(bdf),
            pbas.get(bdf),
            min(r.line or 0 for b in bs for r in b.ranges) or None,
        )
        for bdf, bs in bars.items()
    ]


class TreeBar(NamedTuple):
    index: int
    base: MemoryRegion  # <bdf> base BAR N
    host_size: int | None
    table: tuple[int, int] | None  # (offset, size) of msix-table in this base BAR
    pba: tuple[int, int] | None


def observe_tree(tree: MtreeDump) -> dict[str, dict[int, TreeBar]]:
    out: dict[str, dict[int, TreeBar]] = {}
    for mr, _ in tree.regions():
        m = VFIO_NAME.match(mr.name)
        if not (m and m["base"] and not m["mmap"]):
            continue
        host = next((c.size for c in mr.subregions if c.name == f"{m['bdf']} BAR {m['bar']}"), None)
        table = next(((c.addr, c.size) for c in mr.subregions if c.name == "msix-table"), None)
        pba = next(((c.addr, c.size) for c in mr.subregions if c.name == "msix-pba"), None)
        out.setdefault(m["bdf"], {})[int(m["bar"])] = TreeBar(int(m["bar"]), mr, host, table, pba)
    return out


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """One assigned device: the host's description and where the guest sees its BARs."""

    device: PciDevice  # host BARs (sizes, types) and the native MSI-X layout
    guest_bases: dict[int, int] = field(default_factory=dict)
    observed: ObservedDevice | None = None
    observed_msix: MsixCapability | None = None  # the layout the dump shows
    relocated_to: int | None = None  # BAR index the dump shows MSI-X relocated to
    notes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    emulated: bool = False  # a QEMU-emulated device: simulated as if assigned
    host_bases: dict[int, int] = field(default_factory=dict)  # from the host's own lspci
    provenance: tuple[Fact, ...] = ()  # every fact used, with its source
    open_width: frozenset[int] = frozenset()  # memory BARs that may be 32- or 64-bit
    # True when a listing of every BAR (lspci with "Region N:", info pci) was matched; a
    # dump shows only the BARs the guest mapped, so a slot it does not show may hide one
    slots_listed: bool = True
    # BARs whose `mmaps[k]` the tree prints [disabled] (info mtree -D): vfio_intx_interrupt
    # turns every mmap of the device off while an INTx is pending (hw/vfio/pci.c)
    mmaps_disabled: tuple[int, ...] = ()

    def sources_of(self, bar: int | None) -> dict[str, str]:
        """field -> source for one BAR (None: the MSI-X capability)."""
        return {f.field: f.source for f in self.provenance if f.bar == bar}

    @property
    def assumptions(self) -> tuple[Fact, ...]:
        return tuple(f for f in self.provenance if f.assumed)

    @property
    def native_msix_unknown(self) -> bool:
        """The dump shows MSI-X relocated and nothing in the input gives its native place."""
        return self.relocated_to is not None and any(
            f.bar is None and f.field == "table" and f.assumed for f in self.provenance
        )

    def seen_slots(self) -> frozenset[int]:
        """BAR slots the input shows something in (a BAR or a 64-bit BAR's upper half)."""
        out: set[int] = set()
        for b in self.device.bars:
            if b.size or b.is_io:
                out.update(b.slots if b.index not in self.open_width else (b.index,))
        out.update(self.guest_bases)
        return frozenset(out)


def _norm_bdf(addr: str) -> str:
    return addr if addr.count(":") == 2 else f"0000:{addr}"


def gather(
    *,
    view: FlatView | None,
    tree: MtreeDump | None,
    flattened: FlattenResult | None,
    pci: Iterable[PciDevice] = (),
) -> list[DeviceFacts]:
    """Every assigned device the dumps show, reconciled with lspci / info pci devices;
    with no dump, every PCI device with an MSI-X capability."""
    pci = list(pci)
    observed = {d.bdf: d for d in observe_flat(view)} if view is not None else {}
    treebars = observe_tree(tree) if tree is not None else {}
    bdfs = list(dict.fromkeys([*observed, *treebars]))
    if bdfs:
        return [_one(b, observed.get(b), treebars.get(b, {}), flattened, pci) for b in bdfs]
    # lspci alone: its addresses are the host's (or another guest's), not where this guest
    # will put the BARs, so guest placement is left to the simulation.
    out = [
        DeviceFacts(
            d,
            _guest_addresses(d),
            sources=(d.source,),
            host_bases=_host_addresses(d),
            provenance=tuple(_listing_facts(d)),
            slots_listed=_lists_every_bar(d),
        )
        for d in pci
        if d.msix is not None
    ]
    if view is not None:
        out += _emulated(view, [d for d in pci if d.msix is None])
    return out


def _lists_every_bar(d: PciDevice) -> bool:
    """info pci prints every BAR the device has, mapped or not, and so does lspci for a
    device (lspci.c show_bases); an excerpt without the device's header line may have left
    some out."""
    return d.source != "lspci" or d.address != UNKNOWN_ADDRESS


def _src(d: PciDevice | PciBar, inferred: bool = False) -> str:
    if inferred:
        return "inferred: lspci -v lists BARs in order without 'Region N:'"
    return d.source or "input"


def _listing_facts(d: PciDevice) -> list[Fact]:
    """The facts an lspci or info pci block states, each with that source."""
    out: list[Fact] = []
    for b in d.bars:
        src = _src(b, b.index_inferred)
        out.append(Fact(b.index, "size", human(b.size) if b.size else "unknown", src))
        out.append(Fact(b.index, "type", "I/O" if b.is_io else "memory", src))
        if not b.is_io:
            out.append(Fact(b.index, "width", "64-bit" if b.is_64bit else "32-bit", src))
        if b.address is not None:
            where = "host address" if d.source == "lspci" else "guest address"
            out.append(Fact(b.index, where, f"{b.address:#x}", src))
    out += _msix_facts(d.msix, d.source or "input")
    return out


def _msix_facts(m: MsixCapability | None, src: str, pba_src: str | None = None) -> list[Fact]:
    if m is None:
        return []
    return [
        Fact(None, "vectors", str(m.vectors), src),
        Fact(None, "table", f"BAR{m.table_bar}+{m.table_offset:#x}", src),
        Fact(None, "PBA", f"BAR{m.pba_bar}+{m.pba_offset:#x}", pba_src or src),
    ]


def human(n: int) -> str:
    """Sizes in the one style every renderer uses: 4K, 1M, 16G (render.units)."""
    from ..render.units import human_size

    return human_size(n)


def _host_addresses(d: PciDevice) -> dict[int, int]:
    """BAR addresses an lspci block gives on the host (the kernel needs a sub-page BAR
    page aligned there to mmap it: vfio_pci_probe_mmaps).  Guessed indices give none."""
    if d.source != "lspci":
        return {}
    return {b.index: b.address for b in d.bars if b.address is not None and not b.index_inferred}


def _guest_addresses(d: PciDevice) -> dict[int, int]:
    if d.source == "lspci":
        return {}
    return {b.index: b.address for b in d.bars if b.address is not None}


def _emulated(view: FlatView, pci: list[PciDevice]) -> list[DeviceFacts]:
    """QEMU-emulated devices with MSI-X (no VFIO names): their BARs from ``info pci``,
    the table and PBA from the msix-table / msix-pba ranges inside those BARs."""
    out = []
    # the only ranges looked for, in address order (a pasted flat view may not be): each
    # BAR finds its own by bisection, not by a scan of all (130 devices, 260 ranges: q35-70dev)
    msix_ranges = sorted(
        (r for r in view.ranges if r.name in ("msix-table", "msix-pba")), key=lambda r: r.start
    )
    starts = [r.start for r in msix_ranges]
    for d in pci:
        table = pba = None
        for b in d.bars:
            if b.address is None or not b.size or b.is_io:
                continue
            lo = bisect_left(starts, b.address)
            for r in msix_ranges[lo : bisect_left(starts, b.address + b.size, lo)]:
                if r.name == "msix-table":
                    table = (b.index, r.start - b.address, r.size)
                else:
                    pba = (b.index, r.start - b.address, r.size)
        if table is None:
            continue
        notes = (
            "emulated by QEMU: every access traps by design; the figures simulate assigning "
            "a device with this layout through vfio-pci",
        )
        msix = _observed_msix(table, pba, {})
        facts = [f for f in _listing_facts(d) if f.bar is not None]
        facts += _msix_facts(msix, "dump: msix-table region", _pba_source(pba))
        out.append(
            DeviceFacts(
                replace(d, msix=msix),
                _guest_addresses(d),
                notes=notes,
                sources=(d.source, "dump"),
                emulated=True,
                provenance=tuple(facts),
                slots_listed=_lists_every_bar(d),
            )
        )
    return out


def _one(
    bdf: str,
    obs: ObservedDevice | None,
    tb: dict[int, TreeBar],
    flattened: FlattenResult | None,
    pci: list[PciDevice],
) -> DeviceFacts:
    notes: list[str] = []
    guest: dict[int, int] = {}
    gsize: dict[int, int] = {}
    host: dict[int, int] = {}
    if obs is not None:
        for b in obs.bars:
            guest[b.index], gsize[b.index] = b.guest_base, b.guest_size
            if b.host_size:
                host[b.index] = b.host_size
    io_bars: set[int] = set()
    # SeaBIOS 1.16.3 (with QEMU 10) leaves a root port's I/O window closed, so an I/O BAR
    # behind it shows only in the bridge's own I/O space.
    io_views = (
        {i for i, v in enumerate(flattened.views) if is_io_space(v.names, v.root)}
        if flattened is not None
        else set()
    )
    for k, t in tb.items():
        gsize[k] = t.base.size
        if t.host_size:
            host[k] = t.host_size
        spots = flattened.placements.get(id(t.base), ()) if flattened is not None else ()
        mem_spots = [sp for sp in spots if sp[0] not in io_views]
        if spots and not mem_spots:  # rendered only in the I/O address space
            io_bars.add(k)
        elif k not in guest and mem_spots:
            guest[k] = mem_spots[0][1]
    matches = [d for d in pci if _describes(d, bdf, set(guest.values()))]
    facts: list[Fact] = []
    bars, open_width = _merge_bars(host, guest, matches, notes, io_bars, facts)
    table_k, pba_k = _msix_from_dump(obs, tb)
    observed_msix = _observed_msix(table_k, pba_k, gsize)
    relocated = None
    if table_k is not None and (table_k[0] not in host or table_k[1] >= host[table_k[0]]):
        relocated = table_k[0]
    native = _native_msix(matches, observed_msix, relocated, notes)
    if native is not None and native is observed_msix:
        facts += _msix_facts(
            native,
            "dump"
            if relocated is None
            else "assumed: the dump shows MSI-X relocated and no host lspci gives its native place",
            _pba_source(pba_k) if relocated is None else None,
        )
        if relocated is None:
            facts[-3] = facts[-3]._replace(source="inferred: msix-table size / 16 bytes")
    elif native is not None:
        facts += _msix_facts(native, native.source or "lspci")
    ids = next(((d.vendor_id, d.device_id) for d in matches if d.vendor_id), (None, None))
    dev = PciDevice(
        bdf,
        bars,
        native,
        next((d.description for d in matches if d.description), None),
        ids[0],
        ids[1],
        source="dump",
    )
    return DeviceFacts(
        dev,
        guest,
        obs,
        observed_msix,
        relocated,
        tuple(notes),
        tuple(dict.fromkeys(["dump", *(d.source for d in matches)])),
        host_bases={
            k: a
            for d in matches
            if _norm_bdf(d.address) == bdf
            for k, a in _host_addresses(d).items()
        },
        provenance=tuple(facts + _unseen_slots(bars, guest, open_width, matches)),
        open_width=frozenset(open_width),
        slots_listed=any(_lists_every_bar(d) and d.bars for d in matches),
        mmaps_disabled=tuple(
            sorted(
                k
                for k, t in tb.items()
                if any(" mmaps[" in mr.name and not mr.enabled for mr, _ in walk(t.base))
            )
        ),
    )


def _unseen_slots(
    bars: tuple[PciBar, ...],
    guest: dict[int, int],
    open_width: set[int],
    matches: list[PciDevice],
) -> list[Fact]:
    """A dump shows only the BARs the guest mapped: the slots it does not show are
    assumed empty unless a listing of every BAR (lspci, info pci) says so."""
    if any(_lists_every_bar(d) and d.bars for d in matches):
        return []
    seen = set(guest)
    for b in bars:
        seen.update((b.index,) if b.index in open_width else b.slots)
    unseen = [k for k in range(PCI_ROM_SLOT) if k not in seen]
    if not unseen:
        return []
    return [
        Fact(
            None,
            "BAR slots not in the dump",
            ", ".join(map(str, unseen)),
            "assumed: empty (a dump shows only the BARs the guest mapped: one left "
            "unmapped would be extended by x-msix-relocation, or refused if it is I/O)",
        )
    ]


def _pba_source(pba: tuple[int, int, int] | None) -> str:
    if pba is not None:
        return "dump: msix-pba region"
    return (
        "assumed: right after the table (vfio disables msix-pba, so only 'info mtree -D' shows it)"
    )


def _describes(d: PciDevice, bdf: str, guest_bases: set[int]) -> bool:
    """Does this lspci / info pci block describe the device of the dump?  Same host
    address, or (a guest-side listing) every addressed memory BAR where the dump has one:
    a listing of another configuration (MSI-X relocated elsewhere) does not match."""
    if _norm_bdf(d.address) == bdf:
        return True
    addressed = [b.address for b in d.bars if b.address is not None and not b.is_io]
    return bool(addressed) and all(a in guest_bases for a in addressed)


def _merge_bars(
    host: dict[int, int],
    guest: dict[int, int],
    matches: list[PciDevice],
    notes: list[str],
    io_bars: set[int],
    facts: list[Fact],
) -> tuple[tuple[PciBar, ...], set[int]]:
    """Host BARs: indices and sizes from the dump, types from lspci / info pci, else
    inferred from the dump where it shows them; the BARs whose width stays open."""
    typed: dict[int, PciBar] = {}
    for d in matches:
        inferred = [b for b in d.bars if b.index_inferred]
        remap = _reindex(inferred, guest, host) if inferred else {}
        for b in d.bars:
            k = remap.get(id(b), b.index)
            if k in typed:
                prev = typed[k]
                if (prev.is_io, prev.is_64bit) != (b.is_io, b.is_64bit):
                    notes.append(f"BAR {k}: {prev.source} and {b.source} disagree on its type")
                continue
            typed[k] = replace(b, index=k, index_inferred=False)
    out: dict[int, PciBar] = {}
    open_width: set[int] = set()
    seen = set(host) | set(guest) | io_bars
    for k, size in host.items():
        t = typed.get(k)
        if t is not None and t.size and t.size != size and not t.is_io:
            notes.append(f"BAR {k}: {t.source} says {human(t.size)}, the dump {human(size)}")
        is_io = t.is_io if t else k in io_bars
        facts.append(Fact(k, "size", human(size), "dump"))
        if t is not None:
            facts.append(Fact(k, "type", "I/O" if is_io else "memory", t.source))
        else:
            space = "I/O" if is_io else "memory"
            facts.append(Fact(k, "type", space, f"dump: mapped in the {space} address space"))
        if t is not None:
            wide = t.is_64bit
            if not is_io:
                facts.append(Fact(k, "width", "64-bit" if wide else "32-bit", t.source))
        elif is_io:
            wide = False
        else:
            wide, why = _infer_width(k, size, guest.get(k), seen)
            if wide is None:
                open_width.add(k)
                facts.append(Fact(k, "width", "32-bit or 64-bit", why))
                wide = False
            else:
                facts.append(Fact(k, "width", "64-bit" if wide else "32-bit", why))
        if not is_io and k in guest:
            facts.append(Fact(k, "guest address", f"{guest[k]:#x}", "dump"))
        out[k] = PciBar(
            k,
            size,
            is_io,
            wide,
            t.prefetchable if t else False,
            None if is_io else guest.get(k),
            "dump",
        )
    for k, t in typed.items():
        if k not in out and (t.is_io or not host):
            out[k] = t
            facts += [f for f in _listing_facts(PciDevice("", (t,), source=t.source))]
    return tuple(out[k] for k in sorted(out)), open_width


def _infer_width(k: int, size: int, guest: int | None, seen: set[int]) -> tuple[bool | None, str]:
    """What the dump alone says of a memory BAR's width (PCI: a 32-bit BAR lies below
    4G and is at most 2G; a 64-bit BAR takes the next BAR register as its upper half)."""
    if guest is not None and guest + size > FOUR_G:
        return True, f"inferred: the guest placed it at {guest:#x}, above 4G"
    if size > 1 << 31:
        return True, "inferred: larger than 2G, which only a 64-bit BAR can be"
    if k == PCI_ROM_SLOT - 1:
        return False, "inferred: BAR 5 has no next register to be its upper half"
    if k + 1 in seen:
        return False, f"inferred: BAR {k + 1} appears in the dump, so it is no upper half"
    return None, (
        f"assumed: the dump cannot tell (below 4G, BAR {k + 1} not shown); "
        "lspci -vvv on the host says"
    )


def _reindex(inferred: list[PciBar], guest: dict[int, int], host: dict[int, int]) -> dict[int, int]:
    """lspci -v without ``Region N:``: its guessed indices give way to the dump's,
    matched by guest address, else by order of memory BARs."""
    out = {}
    by_addr = {g: k for k, g in guest.items()}
    for b in inferred:
        if b.address is not None and b.address in by_addr:
            out[id(b)] = by_addr[b.address]
    mem = [b for b in inferred if not b.is_io and id(b) not in out]
    free = [k for k in sorted(host) if k not in out.values()]
    if len(mem) == len(free):
        for b, k in zip(mem, free, strict=True):
            out[id(b)] = k
    return out


def _msix_from_dump(obs: ObservedDevice | None, tb: dict[int, TreeBar]):
    table = pba = None
    for k, t in tb.items():
        if t.table:
            table = (k, *t.table)
        if t.pba:
            pba = (k, *t.pba)
    if obs is not None:
        table = obs.table or table
        pba = obs.pba or pba
    return table, pba


def _observed_msix(table, pba, gsize) -> MsixCapability | None:
    if table is None:
        return None
    k, off, size = table
    n = size // 16
    if pba is None:  # msix-pba is disabled (dormant) and hidden: assume packed after the table
        pba = (k, off + size, (n + 63) // 64 * 8)
    return MsixCapability(n, k, off, pba[0], pba[1], source="dump")


def _native_msix(
    matches: list[PciDevice],
    observed: MsixCapability | None,
    relocated: int | None,
    notes: list[str],
) -> MsixCapability | None:
    caps = [d.msix for d in matches if d.msix is not None]
    if relocated is None and observed is not None:
        for c in caps:
            if (c.table_bar, c.table_offset, c.vectors) != (
                observed.table_bar,
                observed.table_offset,
                observed.vectors,
            ):
                continue
            return c
        if caps and not any(c.table_bar == observed.table_bar for c in caps):
            notes.append("lspci's MSI-X capability does not match the msix-table the dump shows")
        return observed
    native = [c for c in caps if relocated is None or c.table_bar != relocated]
    if native:
        return native[0]
    if relocated is not None:
        notes.append("MSI-X is relocated in the dump and no host lspci gives its native place")
    return observed


def fact_changes(before: DeviceFacts, after: DeviceFacts) -> list[str]:
    """The facts a richer input settled or changed: 'BAR 0 width: 64-bit (lspci), was
    32-bit or 64-bit (assumed: ...)'."""
    was = {f.what: f for f in before.provenance}
    out = []
    for f in after.provenance:
        w = was.get(f.what)
        if w is not None and (w.value, w.source) != (f.value, f.source) and w.value != f.value:
            out.append(f"{f.what}: {f.value} ({f.source}), was {w.value} ({w.source})")
        elif w is not None and w.value == f.value and w.assumed and not f.assumed:
            out.append(f"{f.what}: {f.value}, now from {f.source}")
    for f in after.provenance:
        if f.what not in was and f.field in ("guest address", "width", "type", "size"):
            out.append(f"{f.what}: {f.value} ({f.source}), which it does not show")
    now = {f.what for f in after.provenance}
    for w in before.provenance:
        if w.what not in now and w.assumed:
            out.append(f"{w.what}: no longer assumed ({w.value}); the input lists it")
    return out
