"""The MSI-X advisor: which host pages of an assigned device's BARs are lost to
emulation, and which ``x-msix-relocation`` would recover them, at what cost.

For every device and host page size it reports what the dump shows (when there is one),
simulates each relocation option by building the MemoryRegion stack vfio-pci would
build (flatview.vfio.stack) and rendering it with the flattener, and ranks the valid options
(pages recovered, then hazards, then added MMIO).  Rules: docs and
/work/shared/spec/vfio-msix.md; QEMU functions named in flatview.vfio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import pairwise, product
from math import lcm
from typing import NamedTuple

from .flatten import flatten
from .model import FlatView, MtreeDump
from .pages import BarPages, PagePart, PageRun, bar_pages
from .terminates import Knowledge
from .vfio.devices import DeviceFacts
from .vfio.pci import MsixCapability, PciDevice
from .vfio.stack import (
    OPTIONS,
    PCI_ROM_SLOT,
    Relocation,
    StackOptions,
    build_stack,
    msix_relocation_size,
    place_bars,
)
from .vfio.stack import relocate as _relocate_uncached

# vfio_pci_relocate_msix is a pure function of the device, option and page size, and the
# advisor asks it again per option, world and strategy, of devices often alike (a
# machine's root ports).  Memoised here, not where it is defined: mutmut does not mutate
# decorated functions.  Each memo of this module is bounded: a run of the CLI advises one
# input, and a long-lived caller's memory stays flat.
_MEMO_MAX = 4096
_RELOCATED: dict[tuple, tuple[str, Relocation]] = {}


def relocate(dev: PciDevice, option: str, page: int) -> Relocation:
    """vfio_pci_relocate_msix, worked out once for all devices that read the same to it
    (BARs, MSI-X capability, ids, capability list); the address is only in its error."""
    key = (
        tuple((b.index, b.size, b.is_io, b.is_64bit, b.prefetchable) for b in dev.bars),
        dev.msix,
        dev.vendor_id,
        dev.device_id,
        dev.capabilities,
        option,
        page,
    )
    hit = _RELOCATED.get(key)
    if hit is None:
        if len(_RELOCATED) >= _MEMO_MAX:
            _RELOCATED.clear()
        hit = _RELOCATED[key] = (dev.address, _relocate_uncached(dev, option, page))
    was, reloc = hit
    if was == dev.address or reloc.error is None:
        return reloc
    return reloc._replace(error=reloc.error.replace(f"vfio {was}: ", f"vfio {dev.address}: ", 1))


__all__ = [
    "REPORTED_PAIRS",
    "DeviceAdvice",
    "Hazard",
    "Recommended",
    "RelocationReport",
    "advise",
    "simulate",
]


class Hazard(NamedTuple):
    code: str
    text: str
    source: str


class ReportedPair(NamedTuple):
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
        "qemu-devel, 2017-12-19, Alexey Kardashevskiy (MSI-X relocation RFC): 'it fails "
        "probing with MSIX in bar0 but succeeds with bar5'",
    ),
    ReportedPair(
        "Silicon Motion SM2262/SM2263 NVMe",
        None,
        "bar2",
        "'table & pba overlap' at realize",
        "kernel bugzilla 202055, via Proxmox and TrueNAS write-ups",
    ),
    ReportedPair(
        "AMD EPYC onboard SATA",
        None,
        "bar5",
        "'MSIX PBA outside of specified BAR'",
        "a user's write-up, Proxmox on an ASRock EPYC board",
    ),
    ReportedPair(
        "Atheros AR9280",
        None,
        "bar2",
        "'table & pba overlap'",
        "a blog post citing the Proxmox forum",
    ),
    ReportedPair(
        "unnamed device, BAR0 16M 64-bit, BAR2/BAR3 4K",
        None,
        "bar2",
        "4K hole at BAR0+0x6000",
        "qemu-devel, January 2020, Alex Williamson",
    ),
)

SRC_MPT3SAS = (
    "qemu-devel, 2017-12-19, Alexey Kardashevskiy (MSI-X relocation RFC): mpt3sas takes the "
    "first memory BAR as its registers (mpt3sas_base.c)"
)
SRC_BAR_END = (
    "qemu-devel, 2017-12-19, Alex Williamson (MSI-X relocation RFC): 'drivers dumb enough "
    "to index registers from the end for the BAR'"
)
SRC_ATTRS = (
    "qemu-devel, 2017-12-19, Alexey Kardashevskiy (MSI-X relocation RFC), pointing at "
    "Linux drivers/rapidio/devices/tsi721.c"
)
SRC_GUEST = (
    "QEMU commit 89d5202edc 'vfio/pci: Allow relocating MSI-X MMIO': no foolproof automatic "
    "choice; known-good combinations must come from users"
)
SRC_KERNEL = (
    "QEMU commit 89d5202edc (Linux 4.16 lets the MSI-X table page be mmap'd); hw/vfio/pci.c "
    "vfio_pci_fixup_msix_region"
)
SRC_SUBPAGE = (
    "qemu-devel 2012 (sub-page BARs on POWER) and hw/vfio/pci.c vfio_sub_page_bar_update_mapping"
)
SRC_WINDOW = (
    "hw/vfio/pci.c vfio_pci_relocate_msix (a new BAR is 64-bit only if the next slot is free)"
)

# code -> (what it means, where it was reported); the text report prints this legend
HAZARDS: dict[str, tuple[str, str]] = {
    "first-memory-bar": (
        "the new BAR comes before the device's first memory BAR: drivers that take the "
        "first memory BAR as their registers break",
        SRC_MPT3SAS,
    ),
    "32-bit-window": ("the BAR must fit in the guest's 32-bit PCI window", SRC_WINDOW),
    "bar-grows": (
        "an existing BAR doubles: drivers that check BAR sizes or index registers from "
        "the BAR's end may misbehave",
        SRC_BAR_END,
    ),
    "new-bar-attributes": (
        "the new BAR is prefetchable: drivers that validate BAR attributes may refuse it",
        SRC_ATTRS,
    ),
    "sub-page-bar": (
        "a BAR smaller than a host page is direct-mapped only if the guest puts it on a "
        "page boundary",
        SRC_SUBPAGE,
    ),
    "old-kernel": (
        "host kernel before 4.16: the MSI-X table page stays unmappable, relocation "
        "recovers nothing",
        SRC_KERNEL,
    ),
    "guest-dependent": (
        "whether the guest driver accepts the new layout depends on the driver: test it",
        SRC_GUEST,
    ),
}

# vfio_kernel_era's eras in words a user knows
ERA_WORDS = {
    "E0": "host kernel before 4.6",
    "E1": "host kernel 4.6 to 4.15",
    "E2": "host kernel 4.16 or later",
}


def era_words(era: str) -> str:
    return ERA_WORDS.get(era, era)


@cache  # a report asks for the same few sizes thousands of times
def size_text(n: int) -> str:
    """Sizes in one style, as QEMU and lspci print them: 4K, 64K, 1M, 16G."""
    from .vfio.devices import human

    return human(n)


class Recommended(NamedTuple):
    """The one option the report recommends, and what it rests on."""

    option: str | None  # "off", "bar5", ... or None (no option helps)
    pages_recovered: int
    added_mmio: int
    assumptions: tuple[str, ...]  # facts not from the input that the answer rests on
    conditions: tuple[str, ...] = ()  # "only if ..." (empty: QEMU accepts it in any case)
    alternative: str | None = None  # a cheaper option that needs a check first


class RelocationReport(NamedTuple):
    option: str
    valid: bool
    error: str | None
    added_mmio: int
    pages_lost: int  # over the device's host BARs, after this option
    pages_recovered: int  # compared with `off`
    relocation: Relocation
    hazards: tuple[Hazard, ...] = ()
    bars: tuple[BarPages, ...] = ()
    # what QEMU's acceptance depends on, when the input leaves it open ("BAR 0 is 32-bit")
    conditions: tuple[str, ...] = ()

    @property
    def certain(self) -> bool:
        """QEMU accepts it under every possibility the input leaves open."""
        return self.valid and not self.conditions


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
    recommended: Recommended | None = None
    headline: str = ""
    changed: tuple[str, ...] = ()  # what a richer input changed in the answer, and why
    no_mmap: bool = False  # the dump shows no BAR of the device direct-mapped at all
    action: str = ""  # what to do, the second half of the recommendation
    # the device whose advice this one repeats, moved to this device (see advise): its
    # report reads the same but for the address
    same_as: str | None = field(default=None, compare=False)

    @property
    def bars(self) -> tuple[BarPages, ...]:
        return self.observed or self.simulated

    @property
    def basis(self) -> str:
        return "dump" if self.observed else "simulated"


def simulate(
    facts: DeviceFacts, option: str, page: int, era: str = "E2", no_mmap: bool = False
) -> tuple[Relocation, MtreeDump | None, FlatView | None]:
    """Build and render the stack QEMU would build for ``option`` (invalid: no stack)."""
    reloc, _bases, tree, view = _simulate(facts, option, page, era, no_mmap)
    return reloc, tree, view


def _simulate(
    facts: DeviceFacts,
    option: str,
    page: int,
    era: str,
    no_mmap: bool = False,
    dev: PciDevice | None = None,
):
    """simulate, also returning where each BAR was placed in guest memory (``dev``: one
    of the devices the input leaves possible, see _worlds)."""
    dev = dev or facts.device
    reloc = relocate(dev, option, page)
    if not reloc.valid and option != "off":
        return reloc, {}, None, None
    bases = place_bars(reloc, facts.guest_bases, page)
    opts = StackOptions(page, era, no_mmap, facts.host_bases)
    tree = build_stack(dev, reloc, bases, dev.msix, opts)
    return reloc, bases, tree, flatten(tree, Knowledge()).views[0]


# Simulated pages by device shape (see _shape): 70 root ports of one machine are one
# simulation each option, not 70.
_SIMULATED: dict[tuple, tuple[str, tuple[BarPages, ...]]] = {}


def _simulated_pages(
    facts: DeviceFacts, option: str, page: int, era: str, dev: PciDevice
) -> tuple[Relocation, tuple[BarPages, ...]]:
    """The BARs' host pages of the stack _simulate builds and renders for ``option``.

    Devices of one shape (BARs, MSI-X layout, each BAR's place within its host page)
    share one simulation: moving a BAR by whole pages, alone on its pages, moves its
    flat ranges and nothing else, so only the guest bases and the names (``<bdf> BAR
    N``) of the result differ; _moved carries them over."""
    reloc = relocate(dev, option, page)
    bases = place_bars(reloc, facts.guest_bases, page)
    key = _shape(dev, reloc, bases, page, era, facts.host_bases)
    hit = _SIMULATED.get(key) if key is not None else None
    if hit is not None:
        return reloc, _moved(hit, dev.address, bases)
    _reloc, _bases, _tree, view = _simulate(facts, option, page, era, dev=dev)
    assert view is not None  # simulated: `off`, or an option QEMU accepts
    bars = _host_bar_pages(dev, view, bases, {b.index: b.size for b in reloc.bars}, page)
    if key is not None:
        if len(_SIMULATED) >= _MEMO_MAX:
            _SIMULATED.clear()
        _SIMULATED[key] = (dev.address, bars)
    return reloc, bars


def _geometry(msix: MsixCapability | None) -> tuple[int, ...] | None:
    """What of an MSI-X capability the stack and the pages read (not where it was read)."""
    if msix is None:
        return None
    return (msix.vectors, msix.table_bar, msix.table_offset, msix.pba_bar, msix.pba_offset)


def _shape(
    dev: PciDevice,
    reloc: Relocation,
    bases: dict[int, int],
    page: int,
    era: str,
    host_bases: dict[int, int],
) -> tuple | None:
    """What a simulation's pages depend on besides the device's address and the whole
    pages its BARs sit at; None when two BARs share a host page (then where they sit
    relative to each other matters, and the simulation is not shared)."""
    # A sub-page BAR's widened mmap ends on its page; an MSI-X table placed past its BAR's
    # end (a layout QEMU refuses, still simulated for `off`) loses to the next BAR there.
    spans = sorted(
        (g // page, -(-(g + gb.size) // page))
        for gb in reloc.bars
        if (g := bases.get(gb.index)) is not None
    )
    if any(a[1] > b[0] for a, b in pairwise(spans)):
        return None
    return (
        tuple((b.index, b.size, b.is_io, b.is_64bit) for b in dev.bars),
        _geometry(dev.msix),
        reloc.bars,
        _geometry(reloc.msix),
        tuple(sorted((i, g % page) for i, g in bases.items())),
        page,
        era,
        tuple(sorted(host_bases.items())),
    )


def _moved(hit: tuple[str, tuple[BarPages, ...]], address: str, bases: dict[int, int]):
    """A shared simulation's pages for the device at ``address`` with ``bases``."""
    was, bars = hit
    if was == address:
        return tuple(
            b if b.is_io or b.guest_base == bases[b.index] else b.moved(bases[b.index], b.runs)
            for b in bars
        )
    old, new = f"{was} ", f"{address} "
    cut = len(old)
    out = []
    for b in bars:
        if b.is_io:
            out.append(b)
            continue
        runs = tuple(
            PageRun(
                r.start,
                r.count,
                r.page_size,
                r.state,
                tuple(
                    PagePart(p.start, p.end, new + p.name[cut:], p.type, p.what)
                    if p.name.startswith(old)
                    else p
                    for p in r.parts
                ),
            )
            for r in b.runs
        )
        out.append(b.moved(bases[b.index], runs))
    return tuple(out)


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
    """Advice for every device and host page size, in BDF order.  Devices alike in all
    but their address and where their BARs sit (_likeness: a machine's root ports) get
    the first one's advice, moved to them (_repeated)."""
    ordered = sorted(facts_list, key=lambda f: f.device.address)  # BDF order
    out: list[DeviceAdvice] = []
    first: dict[tuple, DeviceAdvice] = {}
    for f in ordered:
        for page in page_sizes:
            key = _likeness(f, page)
            hit = first.get(key) if key is not None else None
            if hit is not None:
                out.append(_repeated(hit, f))
                continue
            advice = _advise_one(f, page, era, _observed(f, view, page, kvm_labels))
            if key is not None:
                first[key] = advice
            out.append(advice)
    return out


def _observed(
    facts: DeviceFacts, view: FlatView | None, page: int, kvm: bool
) -> tuple[BarPages, ...]:
    """The device's host pages as the dump's FlatView shows them (no dump: none)."""
    if view is None or facts.observed is None:
        return ()
    sizes = {b.index: b.guest_size for b in facts.observed.bars}
    return _host_bar_pages(facts.device, view, facts.guest_bases, sizes, page, kvm)


def _likeness(facts: DeviceFacts, page: int) -> tuple | None:
    """What a device's advice reads besides its address and where its BARs sit, for
    devices whose BARs sit apart by a multiple of every alignment place_bars uses (so
    each option's BARs are placed alike, moved by whole pages).  None for a device the
    dump shows mapped (its own pages are read off the dump) and for an address that is
    not a whole BDF: such a device is advised alone."""
    dev = facts.device
    if facts.observed is not None or dev.address.count(":") != 2:
        return None
    # Every fact _advise_one reads is here: tests/test_advisor_shapes.py advises every
    # sample's devices together and each alone, and compares.
    msix = dev.msix
    sizes = [page] + [2 * b.size for b in dev.bars if b.size]  # a BAR at most doubles
    if msix is not None:
        sizes.append(2 * msix_relocation_size(msix.vectors, page))
    step = lcm(*sizes)
    bases = sorted(facts.guest_bases.items())
    anchor = bases[0][1] if bases else 0
    return (
        tuple(
            (b.index, b.size, b.is_io, b.is_64bit, b.prefetchable, b.address is None)
            for b in dev.bars
        ),
        msix,
        dev.vendor_id,
        dev.device_id,
        dev.capabilities,
        dev.description,
        anchor % step,
        tuple((i, g - anchor) for i, g in bases),
        facts.relocated_to,
        facts.emulated,
        tuple(sorted(facts.host_bases.items())),
        facts.mmaps_disabled,
        facts.open_width,
        facts.slots_listed,
        facts.assumptions,
        page,
    )


def _repeated(hit: DeviceAdvice, facts: DeviceFacts) -> DeviceAdvice:
    """``hit``, the advice of a device alike (_likeness), for the device of ``facts``:
    the simulated pages moved to its BARs, placed as _simulated_pages places them, and
    every text naming the device (QEMU's errors, the lspci command) readdressed.  Neither
    is in the dump (_likeness): no pages of their own to read off it."""
    was, now = hit.facts.device.address, facts.device.address

    def text(s: str) -> str:
        return s.replace(was, now)

    reports = []
    for r in hit.relocations:
        reloc = r.relocation
        if reloc.error is not None:
            reloc = reloc._replace(error=text(reloc.error))
        bars = r.bars
        if bars:
            bars = _moved(
                (was, bars), now, place_bars(r.relocation, facts.guest_bases, hit.page_size)
            )
        error = None if r.error is None else text(r.error)
        reports.append(r._replace(error=error, relocation=reloc, bars=bars))
    rec = hit.recommended
    if rec is not None and rec.alternative is not None:
        rec = rec._replace(alternative=text(rec.alternative))
    return replace(
        hit,
        facts=facts,
        simulated=next(r.bars for r in reports if r.option == "off"),
        relocations=tuple(reports),
        explanations=tuple(map(text, hit.explanations)),
        recommendation=text(hit.recommendation),
        recommended=rec,
        headline=text(hit.headline),
        action=text(hit.action),
        same_as=was,
    )


def _worlds(facts: DeviceFacts) -> list[tuple[PciDevice, dict[int, bool]]]:
    """Every device the input leaves possible: each BAR of unknown width 32- or 64-bit
    (the first is the one facts.device holds: unknown widths as 32-bit)."""
    dev = facts.device
    ks = sorted(facts.open_width)
    if not ks:  # every width known: the one device
        return [(dev, {})]
    out = []
    for combo in product((False, True), repeat=len(ks)):
        widths = dict(zip(ks, combo, strict=True))
        bars = tuple(replace(b, is_64bit=widths.get(b.index, b.is_64bit)) for b in dev.bars)
        out.append((replace(dev, bars=bars), widths))
    return out


def _verdict(
    facts: DeviceFacts, option: str, page: int, worlds: list[tuple[PciDevice, dict[int, bool]]]
) -> tuple[PciDevice | None, Relocation, tuple[str, ...]]:
    """vfio_pci_relocate_msix over every possible device: the first device QEMU accepts
    the option for (None: refused in every one), and what acceptance depends on."""
    results = [(relocate(d, option, page), d, w) for d, w in worlds]
    ok = [(r, d, w) for r, d, w in results if r.valid]
    if not ok:
        return None, results[0][0], ()
    conds: list[str] = []
    if len(ok) < len(results):
        for k in sorted(facts.open_width):
            vals = {w[k] for _r, _d, w in ok}
            if len(vals) == 1:
                conds.append(f"BAR {k} is {'64' if vals.pop() else '32'}-bit")
        if not conds:
            conds.append("the BAR widths lspci shows allow it")
    if option.startswith("bar") and not facts.slots_listed:
        t = int(option[3:])
        if t not in facts.seen_slots():
            conds.append(f"BAR slot {t} is empty on the host")
    return ok[0][1], ok[0][0], tuple(conds)


def _advise_one(
    facts: DeviceFacts, page: int, era: str, observed: tuple[BarPages, ...]
) -> DeviceAdvice:
    dev = facts.device
    worlds = _worlds(facts)
    reports = []
    baseline: tuple[BarPages, ...] = ()
    for option in OPTIONS:
        world, verdict, conds = _verdict(facts, option, page, worlds)
        if option == "off" and facts.native_msix_unknown:
            # QEMU's checks of the native layout cannot be run on a layout not in the input
            verdict = verdict._replace(valid=True, error=None)
            conds = ("its native MSI-X place (not in the input) passes QEMU's checks",)
        if world is None and option != "off":
            reports.append(RelocationReport(option, False, verdict.error, 0, 0, 0, verdict))
            continue
        reloc, bars = _simulated_pages(facts, option, page, era, world or dev)
        if option == "off":
            baseline = bars
            reloc = reloc._replace(valid=verdict.valid, error=verdict.error)
        reports.append(
            RelocationReport(
                option,
                reloc.valid,
                reloc.error,
                reloc.added_mmio,
                _lost(bars),
                _lost(baseline) - _lost(bars) if option != "off" else 0,
                reloc,
                _hazards(world or dev, reloc, page, era) if reloc.valid and option != "off" else (),
                bars,
                conds,
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
                bool(r.conditions),
                r.added_mmio,
                r.option not in good,
                len(r.hazards),
                r.option,
            ),
        )
    )
    no_mmap = _no_mmap_at_all(observed, baseline)
    explanations = _explain(facts, observed, baseline, page, era, no_mmap)
    rec = _recommended(facts, observed, baseline, reports, ranking, page, era, no_mmap)
    headline = _headline(facts, observed, baseline, page, era, no_mmap)
    action = _action(dev, rec, reports, observed, era)
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
        f"{headline}; {action}",
        rec,
        headline,
        (),
        no_mmap,
        action,
    )


def _no_mmap_at_all(observed: Sequence[BarPages], sim: Sequence[BarPages]) -> bool:
    """The dump shows no memory BAR of the device direct-mapped while the simulation of
    `off` maps some: x-no-mmap=on, or mmaps off while an INTx was pending."""
    mem = [b for b in observed if not b.is_io and b.size and not b.msix_only]
    return (
        bool(mem)
        and all(b.ramd_bytes == 0 for b in mem)
        and any(b.ramd_bytes > 0 for b in sim if not b.is_io)
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
                SRC_WINDOW,
            )
        )
    if not new.created:
        out.append(
            Hazard(
                "bar-grows",
                f"BAR {t} doubles to {size_text(new.size)}: drivers that check BAR "
                "sizes or index registers from the BAR end may misbehave",
                SRC_BAR_END,
            )
        )
        if not new.is_64bit:
            out.append(
                Hazard(
                    "32-bit-window",
                    f"BAR {t} is 32-bit and grows to {size_text(new.size)} below 4G",
                    SRC_WINDOW,
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
                    f"BAR {b.index} ({size_text(b.size)}) is smaller than a "
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
            "December 2017 RFC on qemu-devel: the slot adding the least MMIO, first BAR first",
        ),
        (
            "last BAR first",
            _last_bar_first(dev, page),
            "Alexey Kardashevskiy's suggestion on qemu-devel: search from BAR5 down",
        ),
        (
            "extend only",
            _extend_only(dev, page),
            "Alex Williamson's variant on qemu-devel: only extend existing BARs",
        ),
        ("QEMU auto", None, "merged QEMU: 'auto' is an empty lookup table and always fails"),
    )


def _rfc_v1_auto(dev: PciDevice, page: int) -> str | None:
    """The auto loop of the December 2017 RFC: least ``max(2*size, size ? 2*msix : msix)``."""
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
    facts: DeviceFacts,
    observed: Sequence[BarPages],
    sim: Sequence[BarPages],
    page: int,
    era: str,
    no_mmap: bool = False,
) -> tuple[str, ...]:
    """Where the dump and the simulation of `off` part ways, and the likely reason."""
    out = []
    sim_by = {b.index: b for b in sim}
    if no_mmap and facts.mmaps_disabled:
        out.append(
            "no BAR of this device is direct-mapped in the dump because QEMU had turned its "
            "mmaps off (info mtree -D prints them [disabled]): vfio_intx_interrupt "
            "(hw/vfio/pci.c) disables every mmap of the device while an INTx is pending, and "
            "a QEMU_CLOCK_VIRTUAL timer (x-intx-mmap-timeout-ms, 1100 ms) turns them back "
            "on, which a stopped VM never runs. Running, the BARs are mapped as simulated."
        )
    elif no_mmap:
        out.append(
            "no BAR of this device is direct-mapped in the dump: QEMU mmaps nothing with "
            "x-no-mmap=on (remove it), and when KVM does not take the INTx (legacy "
            "interrupt) EOI itself (no resample irqfd, e.g. under TCG) it turns every mmap "
            "off while an INTx is pending and for x-intx-mmap-timeout-ms (1100 ms) after "
            "(vfio_intx_interrupt, vfio_intx_mmap_enable): take the dump again once the "
            "guest's driver uses MSI-X. "
            "Relocating MSI-X cannot help either way."
        )
    for b in observed:
        s = sim_by.get(b.index)
        if s is None or b.is_io or no_mmap:
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
                f"simulation ({era_words(era)}) loses {s.pages_lost} of {s.pages_total} pages. "
                "QEMU did not mmap this BAR: its MSI-X fixup (vfio_pci_fixup_msix_region) "
                "excludes the table's host page(s) when the kernel does not report "
                "MSIX_MAPPABLE (before 4.16), which at the dump's host page size can be the "
                "whole BAR."
            )
        elif b.pages_lost == s.pages_lost:
            continue
        elif b.pages_lost > s.pages_lost and b.size < page and b.ramd_bytes == b.size:
            out.append(
                f"BAR {b.index} ({size_text(b.size)}) is smaller than a {size_text(page)} "
                "page and the dump maps only the BAR itself: that host used smaller pages, "
                "or the guest put the BAR off a page boundary. At this page size QEMU widens "
                "the mapping to a whole page when the guest address is page aligned "
                "(vfio_sub_page_bar_update_mapping), as the simulation does."
            )
        elif b.pages_lost > s.pages_lost:
            out.append(
                f"BAR {b.index}: the dump loses {b.pages_lost} pages, the simulation "
                f"{s.pages_lost}: look at the lost pages below (quirks, sparse mmaps)."
            )
        else:
            out.append(
                f"BAR {b.index}: the dump loses fewer pages ({b.pages_lost}) than the "
                f"simulation ({s.pages_lost}), which puts a sub-page BAR off a page boundary "
                "where the guest's placement is not known."
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
                f"QEMU refuses bar{b.index} for an I/O BAR, as the table says; but where VFIO "
                f"reports such a BAR as empty, QEMU took bar{b.index} as a new BAR instead "
                "(reported on qemu-devel in December 2017 on a POWER host; mpt3sas then "
                "failed to probe): do not use it"
            )
    used = {s for b in dev.bars if b.size or b.is_io for s in b.slots}
    if dev.msix is not None and used >= set(range(PCI_ROM_SLOT)):
        out.append(
            "every BAR slot is taken: only extending a BAR (doubling it) can move MSI-X "
            "(as on the fully packed BCM5719 reported on qemu-devel in December 2017)"
        )
    return tuple(out)


def _headline(
    facts: DeviceFacts,
    observed: Sequence[BarPages],
    sim: Sequence[BarPages],
    page: int,
    era: str,
    no_mmap: bool,
) -> str:
    """The page figures, on one basis: the dump's and the simulation's, and why they differ."""
    total = sum(b.pages_total for b in sim if not b.is_io)
    s = _lost(sim)
    sim_text = f"{s} of {total} host page(s) lost with x-msix-relocation=off"
    if not observed:
        return f"{sim_text} (simulated, {era_words(era)})"
    d = _lost(observed)
    if facts.relocated_to is not None and not no_mmap:
        shown = (
            f"the dump, taken with MSI-X relocated to BAR {facts.relocated_to}, shows {d} of "
            f"{total} host page(s) lost"
        )
        if facts.native_msix_unknown:
            return f"{shown}; what off would lose needs the device's native MSI-X place"
        return f"{shown}; the simulation of x-msix-relocation=off ({era_words(era)}) loses {s}"
    if no_mmap:
        return (
            f"the dump shows no BAR direct-mapped: all {d} page(s) trap, not because of "
            f"MSI-X; with mmaps working, off would lose {s} (simulated)"
        )
    if d == s:
        return f"{sim_text} (the dump and the simulation agree)"
    unmapped = [b.index for b in observed if not b.is_io and b.ramd_bytes == 0 and b.pages_total]
    why = (
        f"QEMU did not mmap BAR {', '.join(map(str, unmapped))} (a host kernel before 4.16 "
        "keeps the MSI-X table's page out)"
        if unmapped and d > s
        else "see the explanations below"
    )
    return (
        f"the dump shows {d} of {total} page(s) lost; the simulation with a "
        f"{era_words(era)} loses {s}: {why}"
    )


def _recommended(
    facts: DeviceFacts,
    observed: Sequence[BarPages],
    sim: Sequence[BarPages],
    reports: Sequence[RelocationReport],
    ranking: Sequence[str],
    page: int,
    era: str,
    no_mmap: bool,
) -> Recommended:
    """The option to paste: one QEMU accepts under every possibility the input leaves
    open when there is one; else the best one, with the conditions it needs."""
    dev = facts.device
    assumed = tuple(
        f"{f.what} = {f.value}: {f.source.removeprefix('assumed: ')}" for f in facts.assumptions
    ) + tuple(
        f"BAR {b.index} guest address = off a {size_text(page)} boundary: the worst case (a "
        "BAR smaller than a host page is direct-mapped only on a page boundary, and the "
        "input does not say where the guest puts it)"
        for b in dev.bars
        if b.size and not b.is_io and b.size < page and b.index not in facts.guest_bases
    )
    if facts.observed is None and not facts.emulated:
        assumed += (
            "mmap = on (no x-no-mmap=on, no INTx pending): only a dump of the running "
            "guest shows it",
        )
    none = Recommended(None, 0, 0, assumed)
    if dev.msix is None or no_mmap or era != "E2":
        return none
    by = {r.option: r for r in reports}
    if facts.native_msix_unknown and facts.relocated_to is not None:
        # the dump proves QEMU accepted this relocation; what off would cost is unknown
        shown = by[f"bar{facts.relocated_to}"]
        if shown.valid:
            return Recommended(shown.option, 0, shown.added_mmio, assumed)
    off = by["off"]
    ranked = [by[o] for o in ranking]
    if off.valid and _lost(sim) == 0:
        return Recommended("off", 0, 0, assumed)
    need = ranked if not off.valid else [r for r in ranked if r.pages_recovered > 0]
    if not need:
        return Recommended("off", 0, 0, assumed) if off.valid else none
    sure = [r for r in need if r.certain]
    best = sure[0] if sure else need[0]
    alt = None
    for r in sorted(need, key=lambda r: len(r.conditions)):
        if r is best or not r.conditions:
            continue
        better = r.pages_recovered > best.pages_recovered or (
            r.pages_recovered == best.pages_recovered and r.added_mmio < best.added_mmio
        )
        if better:
            alt = (
                f"x-msix-relocation={r.option} would recover {r.pages_recovered} for "
                f"+{size_text(r.added_mmio)}, but only if {' and '.join(r.conditions)}: "
                f"check with `lspci -vvv -s {_bdf(dev)}` on the host"
            )
        break
    return Recommended(
        best.option, best.pages_recovered, best.added_mmio, assumed, best.conditions, alt
    )


def _bdf(dev: PciDevice) -> str:
    """The device's address for a command line (an lspci excerpt without its header line
    does not say it)."""
    return dev.address if dev.address.count(":") == 2 else "BDF"


def _action(
    dev: PciDevice,
    rec: Recommended,
    reports: Sequence[RelocationReport],
    observed: Sequence[BarPages] = (),
    era: str = "E2",
) -> str:
    if dev.msix is None:
        return "no MSI-X capability: nothing to relocate"
    by = {r.option: r for r in reports}
    if rec.option is None:
        if any(h.code == "old-kernel" for r in reports for h in r.hazards):
            return (
                "a host kernel before 4.16 keeps the table page unmappable, so no relocation "
                "helps: upgrade the host kernel"
            )
        if by["off"].valid and by["off"].pages_lost == 0:
            return "fix the mapping first (see the explanation); MSI-X costs no page"
        if all(r.pages_recovered <= 0 for r in reports):
            return "no relocation recovers any page; keep x-msix-relocation=off"
        return "relocating MSI-X cannot help: see the explanation"
    if rec.option and rec.option != "off" and rec.pages_recovered == 0 and by["off"].valid:
        return (
            f"keep x-msix-relocation={rec.option}: the dump shows QEMU running with it; "
            "what x-msix-relocation=off would cost depends on the device's native MSI-X "
            f"place, which the input does not show: `lspci -vvv -s {_bdf(dev)}` on the "
            "host gives it"
        )
    if rec.option == "off" and by["off"].pages_lost:
        return "no relocation recovers any page; keep x-msix-relocation=off"
    if rec.option == "off":
        return "no page lost to MSI-X: keep x-msix-relocation=off"
    r = by[rec.option]
    codes = ", ".join(h.code for h in r.hazards if h.code != "guest-dependent") or "none"
    must = "" if by["off"].valid else "QEMU refuses the native layout, so relocate: "
    text = (
        f"{must}x-msix-relocation={rec.option} recovers {rec.pages_recovered} page(s) for "
        f"+{size_text(rec.added_mmio)} of MMIO (hazards: {codes})"
    )
    unmapped = [b.index for b in observed if not b.is_io and b.ramd_bytes == 0 and b.size]
    if unmapped:
        text += (
            f"; this counts on a {era_words(era)} (--kernel): the dump's host left BAR "
            f"{', '.join(map(str, unmapped))} unmapped, as older kernels do"
        )
    if rec.conditions:
        text += (
            f", but only if {' and '.join(rec.conditions)}: check with "
            f"`lspci -vvv -s {_bdf(dev)}` on the host"
        )
    if rec.alternative:
        text += f"; {rec.alternative}"
    return text
