"""Assigned devices as the sources describe them, reconciled.

A flat view names a VFIO device's regions after its host address (``<bdf> BAR N``,
``<bdf> BAR N mmaps[k]``, ``<bdf> base BAR N``; hw/vfio/pci.c) and shows where each BAR
sits in guest memory; a tree adds host BAR sizes and the dormant ``msix-pba``; ``lspci``
and ``info pci`` add BAR types and the MSI-X capability.  :func:`gather` matches them by
host address or by guest BAR address and says where they disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .flatten import FlattenResult
from .model import FlatRange, FlatView, MemoryRegion, MtreeDump, walk
from .pci import MsixCapability, PciBar, PciDevice
from .vfio import VFIO_NAME

__all__ = ["DeviceFacts", "ObservedBar", "ObservedDevice", "gather", "observe_flat"]


@dataclass(frozen=True, slots=True)
class ObservedBar:
    index: int
    guest_base: int
    guest_size: int
    host_size: int | None
    ranges: tuple[FlatRange, ...]


@dataclass(frozen=True, slots=True)
class ObservedDevice:
    """What one FlatView shows of one assigned device."""

    bdf: str
    bars: tuple[ObservedBar, ...]
    table: tuple[int, int, int] | None  # (BAR, offset, size) of a visible msix-table
    pba: tuple[int, int, int] | None
    line: int | None

    def bar(self, index: int) -> ObservedBar | None:
        return next((b for b in self.bars if b.index == index), None)


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


@dataclass(frozen=True, slots=True)
class TreeBar:
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
    # BARs whose `mmaps[k]` the tree prints [disabled] (info mtree -D): vfio_intx_interrupt
    # turns every mmap of the device off while an INTx is pending (hw/vfio/pci.c)
    mmaps_disabled: tuple[int, ...] = ()


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
        DeviceFacts(d, _guest_addresses(d), sources=(d.source,), host_bases=_host_addresses(d))
        for d in pci
        if d.msix is not None
    ]
    if view is not None:
        out += _emulated(view, [d for d in pci if d.msix is None])
    return out


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
    for d in pci:
        table = pba = None
        for b in d.bars:
            if b.address is None or not b.size or b.is_io:
                continue
            for r in view.ranges:
                if b.address <= r.start < b.address + b.size:
                    if r.name == "msix-table":
                        table = (b.index, r.start - b.address, r.size)
                    elif r.name == "msix-pba":
                        pba = (b.index, r.start - b.address, r.size)
        if table is None:
            continue
        notes = (
            "emulated by QEMU: every access traps by design; the figures simulate assigning "
            "a device with this layout through vfio-pci",
        )
        out.append(
            DeviceFacts(
                replace(d, msix=_observed_msix(table, pba, {})),
                _guest_addresses(d),
                notes=notes,
                sources=(d.source, "dump"),
                emulated=True,
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
    io_views = (
        {i for i, v in enumerate(flattened.views) if "I/O" in v.names or v.root == "io"}
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
    bars = _merge_bars(host, guest, matches, notes, io_bars)
    table_k, pba_k = _msix_from_dump(obs, tb)
    observed_msix = _observed_msix(table_k, pba_k, gsize)
    relocated = None
    if table_k is not None and (table_k[0] not in host or table_k[1] >= host[table_k[0]]):
        relocated = table_k[0]
    native = _native_msix(matches, observed_msix, relocated, notes)
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
        mmaps_disabled=tuple(
            sorted(
                k
                for k, t in tb.items()
                if any(" mmaps[" in mr.name and not mr.enabled for mr, _ in walk(t.base))
            )
        ),
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
) -> tuple[PciBar, ...]:
    """Host BARs: indices and sizes from the dump, types from lspci / info pci."""
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
    for k, size in host.items():
        t = typed.get(k)
        if t is not None and t.size and t.size != size and not t.is_io:
            notes.append(f"BAR {k}: {t.source} says {t.size:#x} bytes, the dump {size:#x}")
        is_io = t.is_io if t else k in io_bars
        out[k] = PciBar(
            k,
            size,
            is_io,
            t.is_64bit if t else False,
            t.prefetchable if t else False,
            None if is_io else guest.get(k),
            "dump",
        )
        if t is None and not is_io:
            notes.append(f"BAR {k}: width unknown (no lspci/info pci): assumed 32-bit")
    for k, t in typed.items():
        if k not in out and (t.is_io or not host):
            out[k] = t
    return tuple(out[k] for k in sorted(out))


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
