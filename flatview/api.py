"""The library facade: one obvious entry point per stage (as python-hcl2's ``api.py``).

    dumps = flatview.api.load("dump.txt")          # text -> clean-up -> parse -> model
    result = flatview.api.flatten(dumps[0])         # model -> FlatViews (+ guesses)
    report = flatview.api.check(tree, flat)         # recomputed vs QEMU's own -f

Every function raises only :class:`~flatview.errors.FlatviewError` subclasses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import NamedTuple

from . import files
from .build import Reading, read_dumps, read_text_dumps
from .errors import SourceError, UsageError
from .model import Dump, FlatDump, FlatView, MtreeDump

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (4 ms a run)

if TYPE_CHECKING:  # the analyses are imported by the functions that run them
    from .check import CheckReport
    from .flatten import FlattenResult
    from .terminates import Version
    from .vfio.devices import DeviceFacts
    from .vfio.pci import PciDevice

__all__ = [
    "Machine",
    "advise",
    "advise_on",
    "bundled_sample",
    "check",
    "flatten",
    "inputs",
    "load",
    "load_reading",
    "machine",
    "monitor_pci",
    "parse_page_sizes",
    "parse_text",
    "read_text",
    "select_dumps",
    "split_inputs",
    "split_kinds",
]


def read_text(path: str) -> str:
    """Read a file (``-`` for standard input) as text, within the input size limit
    (flatview.files.INPUT_LIMIT); binary input is an input error."""
    return files.read_text(path)


def parse_text(text: str, name: str = "-") -> list[Dump]:
    """Every dump in a text, in order (pasted mail, monitor output, files)."""
    return read_dumps(text, name)


def load(path: str) -> list[Dump]:
    return parse_text(read_text(path), path)


def load_reading(path: str) -> Reading:
    """The dumps of a file and what clean-up dropped or rewrote to read them."""
    return read_text_dumps(read_text(path), path)


def parse_reading(text: str, name: str = "-") -> Reading:
    """The dumps of a text (a file read, a capture bundle) and what clean-up dropped or
    rewrote to read them."""
    return read_text_dumps(text, name)


def split_kinds(dumps: Iterable[Dump]) -> tuple[list[MtreeDump], list[FlatDump]]:
    trees = [d for d in dumps if isinstance(d, MtreeDump)]
    flats = [d for d in dumps if isinstance(d, FlatDump)]
    return trees, flats


def flatten(
    tree: MtreeDump,
    flats: Iterable[FlatDump] = (),
    qemu_version: Version | None = None,
    *,
    devices_only: bool = False,
) -> FlattenResult:
    """Recompute the FlatViews of a tree; QEMU's own flat views of the same machine, when
    given, teach which regions terminate (see flatview.terminates).  ``qemu_version``
    (major, minor) decides the version-dependent rules (terminates.VERSION_RULES); without
    it they follow what the text shows (terminates.infer_version).  ``devices_only``: only
    the views of the address spaces devices are read from (_device_spaces), the rules
    still learnt from the whole tree."""
    from .flatten import flatten as _flatten
    from .terminates import Knowledge

    know = Knowledge.for_dump(tree, flats, qemu_version)
    return _flatten(_device_spaces(tree) if devices_only else tree, know)


def check(
    tree: MtreeDump, flat: FlatDump, learn: bool = True, qemu_version: Version | None = None
) -> CheckReport:
    """Compare the FlatViews recomputed from ``tree`` with QEMU's printed ``flat``."""
    from .check import compare

    result = flatten(tree, [flat] if learn else [], qemu_version)
    return compare(result, flat)


BUNDLED = "seed003-sas3008.txt"


def bundled_sample() -> tuple[str, str]:
    """The sample shipped in the package: seed 003, the SAS3008 relocation thread."""
    from importlib.resources import files

    return files("flatview.data").joinpath(BUNDLED).read_text(encoding="utf-8"), BUNDLED


PAGE_MIN, PAGE_MAX = 4 << 10, 1 << 30


def parse_page_sizes(values: Iterable[str]) -> list[int]:
    """``4K``, ``16K``, ``64K``, ``65536``, ``0x10000``, comma-separated or repeated: host
    page sizes, powers of two from 4K (x86, the smallest Linux page) to 1G (the largest
    huge page)."""
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            size = files.parse_size(part, "--page-size")
            if size & (size - 1) or not PAGE_MIN <= size <= PAGE_MAX:
                raise UsageError(f"--page-size: {part!r} is not a power of two from 4K to 1G")
            out.append(size)
    return list(dict.fromkeys(out))


class Machine(NamedTuple):
    """What one input's dumps say about a machine: its first tree and first flat view
    (the tree recomputed when there is no flat view) and the devices in them."""

    tree: MtreeDump | None
    flat: FlatDump | None
    flattened: FlattenResult | None
    views: tuple[FlatView, ...]
    view: FlatView | None  # the `memory` address space's view
    facts: tuple[DeviceFacts, ...]
    kvm: bool  # QEMU printed accelerator labels


def select_dumps(dumps: Sequence[Dump], name: str, lines: Sequence[int] = ()) -> list[Dump]:
    """The dumps of one machine state: those starting at ``lines`` (as ``flatview parse``
    lists them), else the first dump and, when the next one is of the other kind (``info
    mtree`` and ``info mtree -f`` taken together), that one too."""
    if lines:
        by_line = {d.line: d for d in dumps}
        missing = [n for n in lines if n not in by_line]
        if missing:
            have = ", ".join(str(d.line) for d in dumps)
            raise UsageError(f"{name}: no dump starts at line {missing[0]} (dumps start at {have})")
        chosen = [by_line[n] for n in dict.fromkeys(lines)]
        kinds = Counter(d.kind for d in chosen)
        if max(kinds.values()) > 1:
            raise UsageError(f"{name}: choose at most one tree and one flat-view dump per side")
        return chosen
    chosen = list(dumps[:1])
    if len(dumps) > 1 and dumps[1].kind != dumps[0].kind:
        chosen.append(dumps[1])
    return chosen


def machine(
    dumps: Sequence[Dump],
    pci: Iterable[PciDevice] = (),
    flattened: FlattenResult | None = None,
    *,
    devices_only: bool = False,
) -> Machine:
    """The assigned devices of one machine state (``flattened``: its tree's FlatViews when
    already computed, e.g. by a machine of the same dumps with more PCI listings).

    ``devices_only``: a tree's FlatViews only of the address spaces a device's BARs are
    read from (_device_spaces), for a caller that uses nothing else of them."""
    from .vfio.devices import gather, system_view

    trees, flats = split_kinds(dumps)
    tree = trees[0] if trees else None
    flat = flats[0] if flats else None
    if flattened is None and tree is not None:
        flattened = flatten(tree, flats[:1], devices_only=devices_only)
    views = flat.views if flat is not None else flattened.views if flattened else ()
    view = system_view(views) if views else None
    facts = gather(view=view, tree=tree, flattened=flattened, pci=list(pci))
    kvm = bool(flat is not None and flat.variant.accel_labels)
    return Machine(tree, flat, flattened, tuple(views), view, tuple(facts), kvm)


def _device_spaces(tree: MtreeDump) -> MtreeDump:
    """The tree with only the address spaces a device's BARs are read from: the CPU's
    ``memory`` (vfio.devices.system_view) and the I/O spaces (vfio.devices.gather).  A
    q35's SMM space (cpu-smm-0: SMRAM over all of system memory) would render the system
    tree a second time.  A tree without a ``memory`` space (a pasted excerpt, whose
    largest view stands for it) keeps them all."""
    from .vfio.devices import is_io_space

    if not any("memory" in g.names for g in tree.address_spaces):
        return tree
    kept = tuple(
        g
        for g in tree.address_spaces
        if "memory" in g.names or is_io_space(g.names, g.root.name if g.root else None)
    )
    return replace(tree, address_spaces=kept)


def inputs(
    text: str, name: str, extra_pci: Iterable[PciDevice] = (), lines: Sequence[int] = ()
) -> tuple[list[Dump], list[PciDevice]]:
    """The dumps of one machine state (see select_dumps) and every PCI listing (lspci and
    the ``(qemu) info pci`` part of a bundle in the text, plus ``extra_pci``) of one input."""
    try:
        dumps = parse_text(text, name)
    except SourceError as exc:
        if "no 'info mtree' dump found" not in exc.msg and "empty input" not in exc.msg:
            raise
        dumps = []
    pci = monitor_pci(text, name) + list(extra_pci)
    if any(word in text for word in _LSPCI_WORDS):  # a dump alone: skip the lspci pass
        from .vfio.lspci import parse_lspci

        try:
            pci = parse_lspci(text, name) + pci
        except SourceError as exc:
            if "no lspci device information" not in exc.msg or not (dumps or pci):
                raise
    return (select_dumps(dumps, name, lines) if dumps else []), pci


def gather_devices(
    text: str, name: str, extra_pci: Iterable[PciDevice] = (), lines: Sequence[int] = ()
):
    """Dumps and PCI listings of one input, reconciled into assigned devices (the dumps
    of one machine state: see select_dumps)."""
    return _gathered(machine(*inputs(text, name, extra_pci, lines)))


def monitor_pci(text: str, name: str) -> list[PciDevice]:
    """The devices of an ``(qemu) info pci`` part of a monitor session in the input (a
    capture bundle, a pasted session); none when there is no such part or it is empty."""
    if "info pci" not in text:  # most inputs: no scan of every line (nor these imports)
        return []
    from .source import monitor_part
    from .vfio.infopci import parse_info_pci

    part = monitor_part(text, "info pci")
    if part is None or not part.strip():
        return []
    return parse_info_pci(part, name)


# Words every lspci block that says anything about BARs or MSI-X contains.
_LSPCI_WORDS = ("Region ", "Memory at", "I/O ports at", "MSI-X")


def _gathered(m: Machine):
    return list(m.facts), m.view, m.kvm


INPUT_KINDS = ("dump", "lspci", "info pci")


def _kind(d: PciDevice) -> str:
    return "info pci" if d.source in ("info pci", "query-pci") else "lspci"


def split_inputs(
    dumps: Sequence[Dump], pci: Sequence[PciDevice]
) -> dict[str, tuple[list[Dump], list[PciDevice]]]:
    """The input kinds one input holds, each alone: {'dump': (dumps, []), 'lspci': ...}."""
    out: dict[str, tuple[list[Dump], list[PciDevice]]] = {}
    if dumps:
        out["dump"] = (list(dumps), [])
    for kind in INPUT_KINDS[1:]:
        mine = [d for d in pci if _kind(d) == kind]
        if mine:
            out[kind] = ([], mine)
    return out


def advise(
    text: str,
    name: str,
    page_sizes: Iterable[int],
    *,
    extra_pci=(),
    devices: Iterable[str] = (),
    era: str = "E2",
    lines: Sequence[int] = (),
):
    """The advisor on one input (dumps and/or lspci text)."""
    dumps, pci = inputs(text, name, extra_pci, lines)
    return advise_on(dumps, pci, page_sizes, devices=devices, era=era, name=name)


def advise_on(
    dumps: Sequence[Dump],
    pci: Sequence[PciDevice],
    page_sizes: Iterable[int],
    *,
    devices: Iterable[str] = (),
    era: str = "E2",
    name: str = "-",
    compare: bool = True,
):
    """The advisor on one machine state's dumps and PCI listings.  When they hold more
    than one kind of input, each kind is also advised on alone, and every answer the
    whole input changes says which facts changed it."""

    from .advisor import advise as _advise
    from .vfio.devices import fact_changes

    sizes = list(page_sizes)
    m = machine(dumps, pci, devices_only=True)
    facts = list(m.facts)
    wanted = {d if d.count(":") == 2 else f"0000:{d}" for d in devices}
    if wanted:
        facts = [f for f in facts if f.device.address in wanted]
        if not facts:
            raise UsageError(f"no assigned device {', '.join(sorted(wanted))} in the input")
    if not facts:
        if pci and not dumps and not any(d.msix for d in pci):
            raise UsageError(
                f"{name}: no MSI-X capability in the input ('info pci' does not show "
                "capabilities): add 'lspci -vvv' of the host or an 'info mtree' dump"
            )
        raise UsageError(f"{name}: no VFIO-assigned device and no PCI device with MSI-X found")
    advice = _advise(facts, sizes, era=era, view=m.view, kvm_labels=m.kvm)
    kinds = split_inputs(dumps, pci)
    if not compare or len(kinds) < 2:
        return advice, facts
    out = []
    partial = {}
    for kind, (d, p) in kinds.items():
        if kind == "dump" and all(f.emulated for f in m.facts):
            continue  # no VFIO device in the dump: alone, it has nothing to advise on
        sub = machine(d, p, m.flattened if kind == "dump" else None)  # the same tree
        for f in sub.facts:
            partial[(kind, f.device.address)] = f
        if sub.facts:
            for a in _advise(list(sub.facts), sizes, era=era, view=sub.view, kvm_labels=sub.kvm):
                partial[(kind, a.facts.device.address, a.page_size)] = a
    for a in advice:
        changed = []
        for kind in kinds:
            b = partial.get((kind, a.facts.device.address, a.page_size))
            if b is None or b.recommended is None or a.recommended is None:
                continue
            if b.recommended.option == a.recommended.option:
                continue
            why = fact_changes(b.facts, a.facts) or [
                "the input's other sources place or size the BARs differently"
            ]
            alone = "the dump" if kind == "dump" else kind
            changed.append(
                f"{alone} alone gives {_opt(b.recommended.option)}; the whole input gives "
                f"{_opt(a.recommended.option)} because " + "; ".join(why)
            )
        out.append(replace(a, changed=tuple(changed)) if changed else a)
    return out, facts


def _opt(option: str | None) -> str:
    return f"x-msix-relocation={option}" if option else "no option"
