"""The advisor simulates each relocation once per device shape (advisor._simulated_pages,
and advisor.relocate):
a device alike another in all but its address and the whole host pages its BARs sit at
gets the other's simulated pages, moved.  A device alike another in all it is advised on
gets the other's whole advice, moved (advisor._likeness, advisor._repeated), and its
report repeats the other's lines (render.advice).  Here every shared answer is checked
against the one worked out afresh for that device alone, on devices hypothesis makes up,
on the real q35 machine with 70 devices (130 MSI-X functions) and on every sample."""

from __future__ import annotations

from dataclasses import replace
from itertools import product
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st

from flatview import advisor, api
from flatview.errors import SourceError
from flatview.render.advice import advice_data, advice_text
from flatview.vfio.devices import DeviceFacts
from flatview.vfio.infopci import parse_info_pci
from flatview.vfio.pci import MsixCapability, PciBar, PciDevice
from flatview.vfio.stack import OPTIONS, place_bars, relocate

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SEEDS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "seeds"
K = 1 << 10
PAGES = (4 * K, 16 * K, 64 * K)


def _fresh(facts: DeviceFacts, option: str, page: int, era: str):
    """The simulation of this very device, sharing nothing."""
    advisor._SIMULATED.clear()
    return advisor._simulated_pages(facts, option, page, era, facts.device)


@st.composite
def devices(draw):
    """A device of 1-3 memory BARs (16 B to 1 MiB, some 64-bit), maybe an I/O BAR, and an
    MSI-X table (up to 2048 vectors, 32 KiB) and PBA somewhere in them (sometimes
    past the BAR's end)."""
    slots = draw(st.lists(st.sampled_from((0, 2, 4)), min_size=1, max_size=3, unique=True))
    bars = [PciBar(i, 1 << draw(st.integers(4, 20)), is_64bit=draw(st.booleans())) for i in slots]
    if draw(st.booleans()):
        bars.append(PciBar(5 if 4 not in slots else 1, 32, is_io=True))
    vectors = draw(st.integers(1, 2048))
    table = draw(st.sampled_from(slots))
    pba = draw(st.sampled_from(slots))
    size = {b.index: b.size for b in bars}
    msix = MsixCapability(vectors, table, _offset(draw, size[table]), pba, _offset(draw, size[pba]))
    return PciDevice("0000:01:00.0", tuple(bars), msix, vendor_id=0x1234, device_id=0x5678)


def _offset(draw, size: int) -> int:
    """An 8-byte aligned offset in a BAR of ``size``, its ends and middle as often as not."""
    return draw(st.sampled_from((0, size // 2, size)) | st.integers(0, size // 8).map((8).__mul__))


def _bases(draw, dev: PciDevice) -> dict[int, int]:
    """Naturally aligned guest addresses, packed into 64 KiB where the BARs fit (so
    sub-page BARs often share a page, where nothing may be shared)."""
    return {
        b.index: 0x8000_0000 + b.size * draw(st.integers(0, max(1, (64 << 10) // b.size) - 1))
        for b in dev.bars
        if not b.is_io
    }


@given(
    dev=devices(),
    data=st.data(),
    page=st.sampled_from(PAGES),
    era=st.sampled_from(("E0", "E1", "E2")),
    moved=st.booleans(),
)
def test_a_shared_simulation_is_the_devices_own(dev, data, page, era, moved):
    first = DeviceFacts(dev, _bases(data.draw, dev))
    if moved:  # the same layout, every BAR moved by whole pages of its own (a cache hit)
        bases = {
            i: g + max(page, dev.bar(i).size) * data.draw(st.integers(0, 3))
            for i, g in first.guest_bases.items()
        }
    else:
        bases = _bases(data.draw, dev)
    second = DeviceFacts(replace(dev, address="0000:02:00.0"), bases)
    for option in OPTIONS:  # relocate is shared too: QEMU's error names each device
        advisor._RELOCATED.clear()
        advisor.relocate(first.device, option, page)
        assert advisor.relocate(second.device, option, page) == relocate(
            second.device, option, page
        )
    for option in OPTIONS:
        if option != "off" and not relocate(dev, option, page).valid:
            continue
        advisor._SIMULATED.clear()
        advisor._simulated_pages(first, option, page, era, first.device)
        reloc, bars = advisor._simulated_pages(second, option, page, era, second.device)
        assert (reloc, bars) == _fresh(second, option, page, era), option
        one, two = (_shape_of(f, option, page, era) for f in (first, second))
        if one is not None and one == two:
            assert len(advisor._SIMULATED) == 1  # one shape, one simulation


def _shape_of(facts: DeviceFacts, option: str, page: int, era: str):
    reloc = relocate(facts.device, option, page)
    bases = place_bars(reloc, facts.guest_bases, page)
    return advisor._shape(facts.device, reloc, bases, page, era, facts.host_bases)


@given(
    size=st.integers(4, 11).map(lambda k: 1 << k),
    page=st.sampled_from(PAGES),
    gap=st.integers(1, 8),
)
def test_two_sub_page_bars_on_one_page_are_not_shared(size, page, gap):
    """BAR 0 and BAR 2 on one host page: where they sit relative to each other decides the
    page, so such a device has no shape (and is simulated alone)."""
    dev = PciDevice(
        "0000:01:00.0",
        (PciBar(0, size), PciBar(2, size)),
        MsixCapability(1, 0, 0, 0, 8),
        vendor_id=0x1234,
        device_id=0x5678,
    )
    assume(gap * size < page)
    facts = DeviceFacts(dev, {0: 0x8000_0000, 2: 0x8000_0000 + gap * size})
    reloc = relocate(dev, "off", page)
    assert advisor._shape(dev, reloc, facts.guest_bases, page, "E2", {}) is None
    apart = {0: 0x8000_0000, 2: 0x8000_0000 + page}  # a page each: a shape
    assert advisor._shape(dev, reloc, apart, page, "E2", {}) is not None


def test_the_70_device_machine_shares_and_answers_as_alone():
    """The real q35 with 70 devices: its 130 MSI-X functions are a few models (70 root
    ports alike, 10 of each other device), so the simulations are at most one per model
    and option; every device's advice is the one it gets when advised alone, with
    nothing shared."""
    root = SAMPLES / "qemu" / "x86_64-q35-70dev"
    extra = parse_info_pci((root / "info-pci.txt").read_text(), "info-pci.txt")
    m = api.machine(*api.inputs((root / "info-mtree.txt").read_text(), "tree", extra))
    facts = sorted(m.facts, key=lambda f: f.device.address)
    advisor._SIMULATED.clear()
    together = advisor.advise(facts, [4 * K], view=m.view)
    assert len(together) == 130
    simulated = {}  # per model: the options simulated (those with pages)
    for f, a in zip(facts, together, strict=True):
        d = f.device
        model = (
            d.vendor_id,
            d.device_id,
            tuple((b.index, b.size, b.is_io, b.is_64bit) for b in d.bars),
            d.msix,
            tuple(sorted((i, g % (4 * K)) for i, g in f.guest_bases.items())),
        )
        simulated[model] = sum(1 for r in a.relocations if r.bars)
    unshared = sum(1 for a in together for r in a.relocations if r.bars)
    assert len(advisor._SIMULATED) <= sum(simulated.values()) < unshared // 10
    for f, a in zip(facts, together, strict=True):
        advisor._SIMULATED.clear()
        advisor._RELOCATED.clear()
        assert advisor.advise([f], [4 * K], view=m.view) == [a], f.device.address


def test_advise_flattens_only_the_address_spaces_devices_are_read_from():
    """advise's machine skips the FlatViews no device is read from (a q35's SMM space
    renders all of system memory again) and reads the same devices as the whole machine,
    on every sample with a tree (and its info pci, if it has one) and every seed's dump
    (assigned devices with I/O BARs: seed 003's SAS3008)."""
    trees = sorted(SAMPLES.glob("*/*/info-mtree.txt")) + sorted(SEEDS.glob("*.txt"))
    assert len(trees) > 40
    skipped = io_bars = 0
    for tree, alone in product(trees, (False, True)):
        pci = tree.parent / "info-pci.txt"  # without it, a BAR's type is read off the tree
        extra = parse_info_pci(pci.read_text(), pci.name) if pci.exists() and not alone else []
        try:
            dumps, listed = api.inputs(tree.read_text(), str(tree), extra)
        except SourceError:
            continue  # a seed without a dump
        if not any(d.kind == "tree" for d in dumps):
            continue
        whole = api.machine(dumps, listed)
        io_bars += sum(b.is_io for f in whole.facts for b in f.device.bars)
        lean = api.machine(dumps, listed, devices_only=True)
        assert lean.facts == whole.facts, tree
        assert lean.view is not None and lean.view.ranges == whole.view.ranges, tree
        names = {n for v in lean.flattened.views for n in v.names}
        assert "memory" in names, tree
        skipped += any(n.startswith("cpu-smm") for v in whole.views for n in v.names) and not any(
            n.startswith("cpu-smm") for n in names
        )
    assert skipped >= 10  # the q35 machines' SMM spaces
    assert io_bars  # devices with I/O BARs were read, from the I/O space's view


def _alone(facts: list[DeviceFacts], pages, view=None, era: str = "E2", kvm: bool = False):
    """Each device advised by itself: nothing repeated from another device."""
    out = []
    for f in facts:
        advisor._SIMULATED.clear()
        advisor._RELOCATED.clear()
        out += advisor.advise([f], pages, view=view, era=era, kvm_labels=kvm)
    assert not any(a.same_as for a in out)
    return out


@given(
    dev=devices(),
    data=st.data(),
    page=st.sampled_from(PAGES),
    era=st.sampled_from(("E0", "E2")),
    whole=st.integers(0, 3),
)
def test_a_repeated_advice_is_the_devices_own(dev, data, page, era, whole):
    """Two devices of one layout, the second's BARs moved together by a multiple of the
    largest alignment placing them may use, or put anywhere: the second's advice is the
    one it gets alone, and so is its report; moved together, it repeats the first's."""
    first = DeviceFacts(dev, _bases(data.draw, dev))
    # a BAR at most doubles; a new MSI-X BAR is at most 64K (a 32K table and its PBA,
    # page aligned and rounded up to a power of 2: vfio_pci_relocate_msix)
    step = max(page, 2 * max(b.size for b in dev.bars), 2 * (64 * K))
    together = data.draw(st.booleans())
    bases = (
        {i: g + step * whole for i, g in first.guest_bases.items()}
        if together
        else _bases(data.draw, dev)
    )
    second = DeviceFacts(replace(dev, address="0000:02:00.0"), bases)
    both = advisor.advise([first, second], [page], era=era)
    assert both == _alone([first, second], [page], era=era)
    assert advice_text(both) == advice_text(_alone([first, second], [page], era=era))
    if together:
        assert both[1].same_as == first.device.address


def _sample_inputs():
    """Every sample's tree (with its info pci, and without) and every seed's dump."""
    trees = sorted(SAMPLES.glob("*/*/info-mtree*.txt")) + sorted(SEEDS.glob("*.txt"))
    for tree in trees:
        pci = tree.parent / "info-pci.txt"
        for extra in ([], [pci]) if pci.exists() else ([],):
            yield tree, extra


def test_every_sample_advised_together_is_advised_alone():
    """On every sample and seed, at 4K and 64K pages: the advice for all devices at once
    (where alike devices repeat one another's) is each device's own, in data, in JSON and
    in the text report, line for line; and some samples do repeat."""
    repeated = inputs = 0
    for tree, extra in _sample_inputs():
        listed = [d for p in extra for d in parse_info_pci(p.read_text(), p.name)]
        try:
            dumps, pci = api.inputs(tree.read_text(), str(tree), listed)
        except SourceError:
            continue
        m = api.machine(dumps, pci, devices_only=True)
        if not m.facts:
            continue
        inputs += 1
        facts = sorted(m.facts, key=lambda f: f.device.address)
        pages = [4 * K, 64 * K]
        together = advisor.advise(facts, pages, view=m.view, kvm_labels=m.kvm)
        alone = _alone(facts, pages, view=m.view, kvm=m.kvm)
        assert together == alone, tree
        assert advice_data(together) == advice_data(alone), tree
        assert advice_text(together) == advice_text(alone), tree
        assert advice_text(together, wide=True) == advice_text(alone, wide=True), tree
        repeated += sum(1 for a in together if a.same_as)
    assert inputs > 20
    assert repeated  # the 70-device q35's: counted in the next test


def test_the_70_device_machine_repeats_one_advice_per_layout():
    """Its 130 functions are a few layouts: the advice is worked out once per layout and
    per class of BAR placement (guest addresses modulo the largest alignment placing
    the BARs may use: the page, a BAR doubled, a new MSI-X BAR), and repeated for the
    rest."""
    root = SAMPLES / "qemu" / "x86_64-q35-70dev"
    extra = parse_info_pci((root / "info-pci.txt").read_text(), "info-pci.txt")
    m = api.machine(*api.inputs((root / "info-mtree.txt").read_text(), "tree", extra))
    for page in (4 * K, 64 * K):
        advice = advisor.advise(list(m.facts), [page], view=m.view)
        layouts = set()
        for f in m.facts:
            d = f.device
            # vfio_pci_relocate_msix's msix_sz: pow2ceil(REAL_HOST_PAGE_ALIGN(table + PBA))
            aligned = -(-(d.msix.table_size + d.msix.pba_size) // page) * page
            reloc = 1 << (aligned - 1).bit_length()
            step = max(page, 2 * max(b.size for b in d.bars if b.size), 2 * reloc)
            anchor = min(f.guest_bases.values())
            bars = tuple((b.index, b.size, b.is_io, b.is_64bit) for b in d.bars)
            where = tuple((i, g - anchor) for i, g in sorted(f.guest_bases.items()))
            layouts.add((d.vendor_id, d.device_id, bars, d.msix, anchor % step, where))
        fresh = [a for a in advice if a.same_as is None]
        assert len(fresh) <= len(layouts) < len(advice), page
