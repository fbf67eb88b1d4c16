"""The MSI-X advisor: which host pages of an assigned device's BARs are lost to
emulation, and which ``x-msix-relocation`` would recover them, at what cost.

For every device and host page size it reports what the dump shows (when there is one),
simulates each relocation option by building the MemoryRegion stack vfio-pci would
build (flatview.vfio) and rendering it with the flattener, and ranks the valid options
(pages recovered, then hazards, then added MMIO).  Rules: docs and
/work/shared/spec/vfio-msix.md; QEMU functions named in flatview.vfio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .devices import DeviceFacts
from .flatten import flatten
from .model import FlatView, MtreeDump
from .pages import BarPages, bar_pages
from .pci import PciDevice
from .terminates import Knowledge
from .vfio import (
    OPTIONS,
    PCI_ROM_SLOT,
    Relocation,
    StackOptions,
    build_stack,
    msix_relocation_size,
    place_bars,
    relocate,
)

__all__ = [
    "REPORTED_PAIRS",
    "DeviceAdvice",
    "Hazard",
    "RelocationReport",
    "advise",
    "simulate",
]


@dataclass(frozen=True, slots=True)
class Hazard:
    code: str
    text: str
    source: str


@dataclass(frozen=True, slots=True)
class ReportedPair:
    """A device/BAR combination someone reported working (reported, not verified)."""

    device: str
    ids: str | None  # vendor:device
    option: str
    problem: str
    source: str


# vfio-msix.md §4.2 and the seeds; each entry names where it was reported.
REPORTED_PAIRS: tuple[ReportedPair, ...] = (
    ReportedPair(
        "LSI SAS3008",
        "1000:0097",
        "bar5",
        "MSI-X table page shares BAR1 with registers (64K pages)",
        "seed 003: Alexey Kardashevskiy, qemu-devel "
        "2017-12-19, 'it fails probing with MSIX in bar0 but succeeds with bar5'",
    ),
    ReportedPair(
        "Silicon Motion SM2262/SM2263 NVMe",
        None,
        "bar2",
        "'table & pba overlap' at realize",
        "kernel bugzilla 202055 via Proxmox/TrueNAS write-ups (vfio-msix.md §4.2)",
    ),
    ReportedPair(
        "AMD EPYC onboard SATA",
        None,
        "bar5",
        "'MSIX PBA outside of specified BAR'",
        "user write-up, Proxmox on an ASRock EPYC board (vfio-msix.md §4.2)",
    ),
    ReportedPair(
        "Atheros AR9280",
        None,
        "bar2",
        "'table & pba overlap'",
        "blog post citing the Proxmox forum (vfio-msix.md §4.2)",
    ),
    ReportedPair(
        "unnamed device, BAR0 16M 64-bit, BAR2/BAR3 4K",
        None,
        "bar2",
        "4K hole at BAR0+0x6000",
        "qemu-devel, Jan 2020, Alex Williamson (vfio-msix.md §4.2)",
    ),
)

SRC_MPT3SAS = (
    "seed 003: Alexey Kardashevskiy, qemu-devel 2017-12-19 (mpt3sas takes the first "
    "MMIO BAR as its registers: mpt3sas_base.c)"
)
SRC_BAR_END = (
    "seed 003: Alex Williamson, qemu-devel 2017-12-19 ('drivers dumb enough to index "
    "registers from the end for the BAR')"
)
SRC_ATTRS = "seed 003: Alexey Kardashevskiy, 2017-12-19, linking rapidio/devices/tsi721.c"
SRC_GUEST = (
    "seed 000: commit 89d5202edc 'vfio/pci: Allow relocating MSI-X MMIO' (no foolproof "
    "automatic selection; known-good combinations must come from users)"
)
SRC_KERNEL = (
    "seed 000: commit 89d5202edc (kernel v4.16 allows mmap of the MSI-X table area); "
    "hw/vfio/pci.c vfio_pci_fixup_msix_region"
)
SRC_SUBPAGE = "seed 002 (2012 powernv thread) and hw/vfio/pci.c vfio_sub_page_bar_update_mapping"


@dataclass(frozen=True, slots=True)
class RelocationReport:
    option: str
    valid: bool
    error: str | None
    added_mmio: int
    pages_lost: int  # over the device's host BARs, after this option
    pages_recovered: int  # compared with `off`
    relocation: Relocation
    hazards: tuple[Hazard, ...] = ()
    bars: tuple[BarPages, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceAdvice:
    facts: DeviceFacts
    page_size: int
    era: str
    observed: tuple[BarPages, ...]  # what the dump shows ((): no dump)
    simulated: tuple[BarPages, ...]  # flatview's simulation of `off`
    relocations: tuple[RelocationReport, ...]
    ranking: tuple[str, ...]
    strategies: tuple[tuple[str, str | None, str], ...]  # (strategy, option, why)
    reported: tuple[ReportedPair, ...]
    explanations: tuple[str, ...]
    recommendation: str

    @property
    def bars(self) -> tuple[BarPages, ...]:
        return self.observed or self.simulated


def simulate(
    facts: DeviceFacts, option: str, page: int, era: str = "E2", no_mmap: bool = False
) -> tuple[Relocation, MtreeDump | None, FlatView | None]:
    """Build and render the stack QEMU would build for ``option`` (invalid: no stack)."""
    reloc, _bases, tree, view = _simulate(facts, option, page, era, no_mmap)
    return reloc, tree, view


def _simulate(facts: DeviceFacts, option: str, page: int, era: str, no_mmap: bool = False):
    """simulate, also returning where each BAR was placed in guest memory."""
    dev = facts.device
    reloc = relocate(dev, option, page)
    if not reloc.valid and option != "off":
        return reloc, {}, None, None
    bases = place_bars(reloc, facts.guest_bases, page)
    opts = StackOptions(page, era, no_mmap, facts.host_bases)
    tree = build_stack(dev, reloc, bases, dev.msix, opts)
    return reloc, bases, tree, flatten(tree, Knowledge()).views[0]


def _host_bar_pages(
    dev: PciDevice,
    view: FlatView,
    bases: dict[int, int],
    sizes: dict[int, int],
    page: int,
    kvm: bool = False,
) -> tuple[BarPages, ...]:
    out = []
    for b in dev.bars:
        if b.is_io:
            size = b.size or 0
            out.append(BarPages(b.index, size, 0, size, page, True, False, 0, size, 0, 0, ()))
            continue
        if not b.size:
            continue
        g = bases.get(b.index)
        if g is None:
            continue
        dedicated = dev.msix is not None and dev.msix.dedicated_bar(b.size) == b.index
        out.append(
            bar_pages(
                view.ranges,
                index=b.index,
                guest_base=g,
                size=b.size,
                guest_size=sizes.get(b.index, b.size),
                page=page,
                is_64bit=b.is_64bit,
                kvm_labels=kvm,
                msix_only=dedicated,
            )
        )
    return tuple(out)


def _lost(bars: Sequence[BarPages]) -> int:
    return sum(b.pages_lost for b in bars)


def advise(
    facts_list: Sequence[DeviceFacts],
    page_sizes: Sequence[int],
    *,
    era: str = "E2",
    view: FlatView | None = None,
    kvm_labels: bool = False,
) -> list[DeviceAdvice]:
    return [_advise_one(f, p, era, view, kvm_labels) for f in facts_list for p in page_sizes]


def _advise_one(
    facts: DeviceFacts, page: int, era: str, view: FlatView | None, kvm: bool
) -> DeviceAdvice:
    dev = facts.device
    observed: tuple[BarPages, ...] = ()
    if view is not None and facts.observed is not None:
        sizes = {b.index: b.guest_size for b in facts.observed.bars}
        observed = _host_bar_pages(dev, view, facts.guest_bases, sizes, page, kvm)
    reports = []
    baseline: tuple[BarPages, ...] = ()
    for option in OPTIONS:
        reloc, bases, _tree, sim = _simulate(facts, option, page, era)
        if sim is None:
            reports.append(RelocationReport(option, False, reloc.error, 0, 0, 0, reloc))
            continue
        sizes = {b.index: b.size for b in reloc.bars}
        bars = _host_bar_pages(dev, sim, bases, sizes, page)
        if option == "off":
            baseline = bars
        reports.append(
            RelocationReport(
                option,
                reloc.valid,
                reloc.error,
                reloc.added_mmio,
                _lost(bars),
                _lost(baseline) - _lost(bars) if option != "off" else 0,
                reloc,
                _hazards(dev, reloc, page, era) if reloc.valid and option != "off" else (),
                bars,
            )
        )
    valid = [r for r in reports if r.valid and r.option != "off"]
    reported = _reported(dev)
    good = {p.option for p in reported}
    ranking = tuple(
        r.option
        for r in sorted(
            valid,
            key=lambda r: (
                -r.pages_recovered,
                r.added_mmio,
                r.option not in good,
                len(r.hazards),
                r.option,
            ),
        )
    )
    explanations = _explain(facts, observed, baseline, page, era)
    return DeviceAdvice(
        facts,
        page,
        era,
        observed,
        baseline,
        tuple(reports),
        ranking,
        _strategies(dev, page),
        reported,
        explanations,
        _recommend(dev, observed or baseline, reports, ranking, page, era),
    )


def _reported(dev: PciDevice) -> tuple[ReportedPair, ...]:
    """Reported working pairs for this device, by vendor:device id or by model name."""
    ids = (
        f"{dev.vendor_id:04x}:{dev.device_id:04x}"
        if dev.vendor_id is not None and dev.device_id is not None
        else None
    )
    desc = dev.description or ""
    return tuple(
        p
        for p in REPORTED_PAIRS
        if (ids and p.ids == ids) or (p.ids and p.device.split()[-1] in desc)
    )


def _hazards(dev: PciDevice, reloc: Relocation, page: int, era: str) -> tuple[Hazard, ...]:
    out = []
    t = int(reloc.option[3:])
    new = reloc.bar(t)
    mem = sorted(b.index for b in dev.bars if b.size and not b.is_io)
    assert new is not None
    if new.created and mem and t < mem[0]:
        out.append(
            Hazard(
                "first-memory-bar",
                f"the new BAR {t} comes before BAR {mem[0]}: drivers "
                "that take the first memory BAR as their registers (mpt3sas) break",
                SRC_MPT3SAS,
            )
        )
    if new.created and not new.is_64bit:
        out.append(
            Hazard(
                "32-bit-window",
                f"the new BAR {t} is 32-bit: it needs room in the guest's 32-bit PCI hole",
                "hw/vfio/pci.c vfio_pci_relocate_msix (64-bit only if the next slot is free too)",
            )
        )
    if not new.created:
        out.append(
            Hazard(
                "bar-grows",
                f"BAR {t} doubles to {new.size:#x}: drivers that check BAR "
                "sizes or index registers from the BAR end may misbehave",
                SRC_BAR_END,
            )
        )
        if not new.is_64bit:
            out.append(
                Hazard(
                    "32-bit-window",
                    f"BAR {t} is 32-bit and grows to {new.size:#x} below 4G",
                    "vfio-msix.md §2.6 (window pressure)",
                )
            )
    if new.created:
        out.append(
            Hazard(
                "new-bar-attributes",
                f"the new BAR {t} is prefetchable"
                f"{' and 64-bit' if new.is_64bit else ''}: drivers that validate BAR "
                "attributes (tsi721) may refuse the device",
                SRC_ATTRS,
            )
        )
    for b in dev.bars:
        if b.size and not b.is_io and b.size < page and b.index != t:
            out.append(
                Hazard(
                    "sub-page-bar",
                    f"BAR {b.index} ({b.size:#x}) is smaller than a "
                    "host page: it is direct-mapped only if the guest puts it on a page "
                    "boundary",
                    SRC_SUBPAGE,
                )
            )
    if era != "E2":
        out.append(
            Hazard(
                "old-kernel",
                "host kernel before 4.16: the MSI-X table page stays "
                "unmappable, relocation recovers nothing",
                SRC_KERNEL,
            )
        )
    out.append(
        Hazard(
            "guest-dependent",
            "whether a guest driver accepts the new layout depends "
            "on the driver and its version: test it",
            SRC_GUEST,
        )
    )
    return tuple(out)


def _strategies(dev: PciDevice, page: int) -> tuple[tuple[str, str | None, str], ...]:
    return (
        (
            "RFC v1 least-cost auto",
            _rfc_v1_auto(dev, page),
            "Dec 2017 RFC: the slot adding the least MMIO, first BAR first (seed 003)",
        ),
        (
            "last BAR first",
            _last_bar_first(dev, page),
            "Alexey Kardashevskiy's suggestion: search from BAR5 down (seed 003)",
        ),
        (
            "extend only",
            _extend_only(dev, page),
            "Alex Williamson's variant: only extend existing BARs (seed 003)",
        ),
        ("QEMU auto", None, "merged QEMU: 'auto' is an empty lookup table and always fails"),
    )


def _rfc_v1_auto(dev: PciDevice, page: int) -> str | None:
    """The auto loop of the RFC (seed 003): least ``max(2*size, size ? 2*msix : msix)``."""
    if dev.msix is None:
        return None
    unit = msix_relocation_size(dev.msix.vectors, page)
    by = {b.index: b for b in dev.bars if b.size or b.is_io}
    best, target, i = None, None, 0
    while i < PCI_ROM_SLOT:
        b = by.get(i)
        size = b.size if b is not None and b.size else 0
        if b is not None and b.is_io:
            i += 1
            continue
        if size > 0xFFFFFFFF // 2:
            i += 1
            continue
        cost = max(size * 2, unit * 2 if size else unit)
        if best is None or cost < best:
            best, target = cost, i
        i += 2 if b is not None and b.is_64bit else 1
    return f"bar{target}" if target is not None else None


def _last_bar_first(dev: PciDevice, page: int) -> str | None:
    for t in range(PCI_ROM_SLOT - 1, -1, -1):
        if relocate(dev, f"bar{t}", page).valid:
            return f"bar{t}"
    return None


def _extend_only(dev: PciDevice, page: int) -> str | None:
    cands = [(relocate(dev, f"bar{b.index}", page), b) for b in dev.bars if b.size and not b.is_io]
    ok = [(r.added_mmio, r.option) for r, _ in cands if r.valid]
    return min(ok)[1] if ok else None


def _explain(
    facts: DeviceFacts, observed: Sequence[BarPages], sim: Sequence[BarPages], page: int, era: str
) -> tuple[str, ...]:
    """Where the dump and the simulation of `off` part ways, and the likely reason."""
    out = []
    sim_by = {b.index: b for b in sim}
    for b in observed:
        s = sim_by.get(b.index)
        if s is None or b.is_io:
            continue
        if b.ramd_bytes == 0 and s.ramd_bytes > 0 and b.index in facts.mmaps_disabled:
            out.append(
                f"BAR {b.index}: the dump shows no direct mapping because QEMU had turned "
                "this device's mmaps off (info mtree -D prints its mmaps [disabled]): "
                "vfio_intx_interrupt (hw/vfio/pci.c) disables them while an INTx is pending "
                "and a QEMU_CLOCK_VIRTUAL timer (x-intx-mmap-timeout-ms, 1100 ms) turns them "
                "back on, which a stopped VM never runs. Running, the BAR is mapped as "
                f"simulated ({s.pages_lost} of {s.pages_total} pages lost)."
            )
        elif b.ramd_bytes == 0 and s.ramd_bytes > 0:
            out.append(
                f"BAR {b.index}: the dump shows no direct mapping (no ramd) at all, flatview's "
                f"simulation (kernel era {era}) loses {s.pages_lost} of {s.pages_total} pages. "
                "QEMU did not mmap this BAR: its MSI-X fixup (vfio_pci_fixup_msix_region) "
                "excludes the table's host page(s) when the kernel does not report "
                "MSIX_MAPPABLE (before 4.16, or the fixup left on), or x-no-mmap=on, or mmaps "
                "were off while an INTx was pending."
            )
        elif b.pages_lost == s.pages_lost:
            continue
        elif b.pages_lost > s.pages_lost:
            out.append(
                f"BAR {b.index}: the dump loses {b.pages_lost} pages, the simulation "
                f"{s.pages_lost}: look at the lost pages below (quirks, sparse mmaps)."
            )
        else:
            out.append(
                f"BAR {b.index}: the dump loses fewer pages ({b.pages_lost}) than the "
                f"simulation ({s.pages_lost})."
            )
    if facts.relocated_to is not None:
        out.append(
            f"the dump shows MSI-X already relocated to BAR {facts.relocated_to}; the "
            "options below start again from the device's native layout"
        )
    dev = facts.device
    for b in dev.bars:
        if b.is_io and b.size is None and b.address is None:
            out.append(
                f"BAR {b.index} is an I/O BAR the host left unassigned (lspci <unassigned>): "
                f"VFIO may then report it empty, and QEMU accepts bar{b.index} as a new BAR "
                "instead of refusing it (seed 003, test #2 on a PowerNV host; mpt3sas then "
                "failed to probe)"
            )
    used = {s for b in dev.bars if b.size or b.is_io for s in b.slots}
    if dev.msix is not None and used >= set(range(PCI_ROM_SLOT)):
        out.append(
            "every BAR slot is taken: only extending a BAR (doubling it) can move MSI-X "
            "(vfio-msix.md §4.1, fully packed BARs; seed 003's BCM5719)"
        )
    return tuple(out)


def _recommend(
    dev: PciDevice,
    now: Sequence[BarPages],
    reports: Sequence[RelocationReport],
    ranking: Sequence[str],
    page: int,
    era: str,
) -> str:
    lost = _lost(now)
    size = f"{page // 1024}K" if page % 1024 == 0 else str(page)
    if dev.msix is None:
        return f"{dev.address}: no MSI-X capability: nothing to relocate"
    if lost == 0:
        return f"{dev.address} at {size} pages: no page lost: keep x-msix-relocation=off"
    if era != "E2":
        return (
            f"{dev.address} at {size} pages: {lost} page(s) lost; a host kernel before 4.16 "
            "keeps the table page unmappable, so no relocation helps: upgrade the host kernel"
        )
    best = next((r for r in reports if ranking and r.option == ranking[0]), None)
    if best is None or best.pages_recovered <= 0:
        return f"{dev.address} at {size} pages: {lost} page(s) lost; no relocation recovers any"
    codes = ", ".join(h.code for h in best.hazards if h.code != "guest-dependent") or "none"
    return (
        f"{dev.address} at {size} pages: {lost} page(s) lost; x-msix-relocation="
        f"{best.option} recovers {best.pages_recovered} for +{best.added_mmio:#x} bytes of "
        f"MMIO (hazards: {codes})"
    )
