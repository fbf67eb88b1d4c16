"""From cleaned lines to the model: dump boundaries, nesting, alias resolution, checks.

The structure is QEMU's printing order (system/memory.c ``mtree_info``): for a tree,
``address-space:`` groups (one heading per address space sharing the root since 7.0),
then one ``memory-region:`` section per alias target, each ended by an empty line; for
``-f``, one ``FlatView #n`` block per view (or ``address-space (flat view):`` before
2.11).  Nesting follows the indentation, two spaces a level (``mtree_print_mr``).

Building is two-phase (as QEMU's QAPI schema does it): regions are built with alias
targets recorded by name, then :func:`_resolve_aliases` links each alias to its
``memory-region:`` section and reports what cannot be resolved.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import compress, pairwise
from operator import attrgetter
from typing import NamedTuple

from .errors import SourceError, SourceLocation, warn
from .graph import alias_cycle
from .model import (
    U64,
    UNNAMED_AS,
    UNPASTED_ROOT,
    AddressSpaceTree,
    Alias,
    Dump,
    FlatDump,
    FlatRange,
    FlatView,
    FlatViewAS,
    MemoryRegion,
    MtreeDump,
    RegionSection,
    Variant,
    walk,
)
from .parse import (
    DispatchLine,
    FlatViewASLine,
    FlatViewRootLine,
    Heading,
    LineRecord,
    NoRenderedLine,
    RangeLine,
    parse_line,
)
from .source import Cleaned, Segment, clean
from .terminates import printed_empty

__all__ = ["Reading", "read_dumps", "read_text_dumps"]

TREE_HEADINGS = ("address-space", "memory-region")
_HEADING_START = frozenset("amF")  # first letter of every heading QEMU prints
FLAT_HEADINGS = ("flatview", "flat-address-space")


class Reading(NamedTuple):
    """The dumps of a text and what clean-up dropped or rewrote to find them."""

    dumps: list[Dump]
    cleaned: Cleaned


def read_dumps(text: str, file: str = "-") -> list[Dump]:
    """Every dump in ``text`` (clean-up, lark parse, model), in input order."""
    return read_text_dumps(text, file).dumps


def read_text_dumps(text: str, file: str = "-") -> Reading:
    """Every dump in ``text`` with the clean-up's counts (see flatview.source)."""
    cleaned = clean(text, file)
    dumps: list[Dump] = []
    for seg in cleaned.segments:
        for d in _DumpSplitter(seg, file).run():
            if seg.part is not None or seg.elided:
                d = replace(d, part=seg.part, partial=d.partial or seg.elided)
            dumps.append(d)
    if not dumps:
        raise SourceError(SourceLocation(file, 1), "no 'info mtree' dump found")
    return Reading(dumps, cleaned)


@dataclass
class _Block:
    """Lines from one heading group to the next empty line.  The body is parsed lazily
    and once per distinct text: a pre-7.0 dump repeats the same tree per address space."""

    headings: list[tuple[int, Heading]]
    texts: tuple[str, ...]
    linenos: tuple[int, ...]
    splitter: _DumpSplitter

    @property
    def body(self) -> list[tuple[int, LineRecord, str]]:
        recs = self.splitter.records(self.texts, self.linenos)
        return list(zip(self.linenos, recs, self.texts, strict=True))


class _DumpSplitter:
    """Cut a segment into dumps: a tree after a flat view (or the reverse), a FlatView
    number that restarts, or an address space after memory-region sections, all mean a
    new monitor command."""

    def __init__(self, seg: Segment, file: str) -> None:
        self.seg = seg
        self.file = file
        self._parsed: dict[tuple[str, ...], list[LineRecord]] = {}

    def loc(self, lineno: int) -> SourceLocation:
        return SourceLocation(self.file, lineno)

    def text(self, lineno: int | None) -> str | None:
        """The cleaned line that carries this original line number (for messages)."""
        try:
            return self.seg.lines[self.seg.linenos.index(lineno)]
        except ValueError:
            return None

    def run(self) -> list[Dump]:
        dumps: list[Dump] = []
        blocks: list[_Block] = []
        kind: str | None = None
        last_fv = -1
        seen_section = False
        for block in self._blocks():
            hkind = block.headings[0][1].kind if block.headings else None
            if hkind is None:
                bkind = kind or _headless_kind(block)
            else:
                bkind = "flat" if hkind in FLAT_HEADINGS else "tree"
            number = int(block.headings[0][1].name) if hkind == "flatview" else None
            new = kind is not None and (
                bkind != kind
                or (number is not None and number <= last_fv)
                or (hkind == "address-space" and seen_section)
            )
            if new:
                dumps.append(self._build(kind, blocks))
                blocks, last_fv, seen_section = [], -1, False
            if number is not None:
                last_fv = number
            kind = bkind
            seen_section = seen_section or hkind == "memory-region"
            blocks.append(block)
        if blocks:
            dumps.append(self._build(kind or "tree", blocks))
        return dumps

    def _blocks(self) -> Iterator[_Block]:
        """Cut the lines into blocks: heading lines (they start in column 0 with ``a``,
        ``m`` or ``F``), then body lines, up to an empty line or the next heading."""
        lines, nos = self.seg.lines, self.seg.linenos
        n, i = len(lines), 0
        while i < n:
            if not lines[i]:
                i += 1
                continue
            heads: list[tuple[int, Heading]] = []
            while i < n and lines[i] and lines[i][0] in _HEADING_START:
                rec = parse_line(lines[i], self.file, nos[i])
                if not isinstance(rec, Heading):
                    raise SourceError(self.loc(nos[i]), "not a dump line", lines[i])
                heads.append((nos[i], rec))
                i += 1
            j = i
            while j < n and lines[j] and lines[j][0] not in _HEADING_START:
                j += 1
            yield _Block(heads, lines[i:j], nos[i:j], self)
            i = j

    def records(self, texts: tuple[str, ...], linenos: tuple[int, ...]) -> list[LineRecord]:
        recs = self._parsed.get(texts)
        if recs is None:
            recs = [parse_line(t, self.file, n) for t, n in zip(texts, linenos, strict=True)]
            self._parsed[texts] = recs
        return recs

    def _build(self, kind: str, blocks: list[_Block]) -> Dump:
        """A tree or a flat dump; rows pasted without their heading make a partial one."""
        if kind == "flat":
            return _FlatBuilder(self, blocks).build()
        return _TreeBuilder(self, blocks).build()


def _headless_kind(block: _Block) -> str:
    """Rows pasted without any heading: flat-view rows (`` AS``/`` Root`` lines, or rows
    all at one indentation with no alias or ``[disabled]``, in address order) or tree
    rows."""
    recs = [rec for _, rec, _ in block.body]
    if any(isinstance(r, (FlatViewASLine, FlatViewRootLine, NoRenderedLine)) for r in recs):
        return "flat"
    ranges = [r for r in recs if isinstance(r, RangeLine)]
    if (
        ranges
        and len({r.indent for r in ranges}) == 1
        and not any(r.is_alias or r.disabled for r in ranges)
        and all(a.end < b.start for a, b in pairwise(ranges))
    ):
        return "flat"
    return "tree"


# --------------------------------------------------------------------------- trees


class _Node:
    """A region while its tree is being built: open until a line at its level or above
    closes it, when its subregions are all closed (frozen) and so is it."""

    __slots__ = ("children", "level", "line", "rec", "start")

    def __init__(self, rec: RangeLine | None, level: int, line: int, start: int) -> None:
        self.rec = rec  # None: a disabled region QEMU did not print
        self.level = level
        self.line = line
        self.start = start
        self.children: list[MemoryRegion] = []

    def freeze(self, parent_start: int | None, notes: list[tuple[int, str]]) -> MemoryRegion:
        subs = tuple(self.children)
        addr = self.start if parent_start is None else (self.start - parent_start) % U64
        rec = self.rec
        if rec is None:
            return _hidden_region("", addr, self.start, self.line, subs)
        alias = None
        if rec.alias_target is not None:
            alias = Alias(rec.alias_target, rec.alias_start or 0)
        size = rec.size
        if size == 1:  # printed S-S: 0 or 1 bytes
            empty = printed_empty(rec.name, alias is not None, (c.addr for c in subs))
            if empty is not None:
                size = 0
                if empty.guess:
                    notes.append((self.line, f"{rec.name!r} is empty: {empty.reason}"))
        # positional, in MemoryRegion's field order (name, addr, start, size, priority,
        # type, nonvolatile, enabled, alias, owner, overflow, subregions, line): matching
        # thirteen keywords cost a fifth of building the region
        return MemoryRegion(
            rec.name,
            addr,
            rec.start,
            size,
            rec.priority,
            rec.type,
            rec.nonvolatile,
            not rec.disabled,
            alias,
            rec.owner,
            rec.overflow,
            subs,
            self.line,
        )


def _hidden_region(
    name: str, addr: int, start: int, line: int, subs: tuple[MemoryRegion, ...] = ()
) -> MemoryRegion:
    """A disabled region QEMU >= 5.1 did not print (no -D): it renders nothing."""
    return MemoryRegion(
        name=name,
        addr=addr,
        start=start,
        size=0,
        priority=0,
        type="i/o",
        enabled=False,
        hidden=True,
        subregions=subs,
        line=line,
    )


class _TreeBuilder:
    def __init__(self, splitter: _DumpSplitter, blocks: list[_Block]) -> None:
        self.sp = splitter
        self.blocks = blocks
        self.hidden = False
        self.notes: list[tuple[int, str]] = []  # (line, what): the guesses of the build
        self.memo: dict[tuple[str, ...], MemoryRegion | None] = {}
        # the regions of the trees named like a section (see _printed_again)
        self.mapped: dict[str, list[MemoryRegion]] | None = None
        self.by_line: dict[str, list[MemoryRegion]] | None = None

    def build(self) -> MtreeDump:
        groups: list[AddressSpaceTree] = []
        sections: list[RegionSection] = []
        pre70 = not any(len(b.headings) > 1 for b in self.blocks)  # no grouped headings
        partial = False
        reused: set[int] = set()  # sections that are a region of a tree printed again
        for block in self.blocks:
            if not block.headings:
                # tree rows without their heading: an address space whose name is unknown
                partial = True
                root = self._nest(block, headless=True)
                groups.append(AddressSpaceTree((UNNAMED_AS,), root, block.linenos[0]))
                continue
            kinds = {h.kind for _, h in block.headings}
            if len(kinds) > 1 or (kinds == {"memory-region"} and len(block.headings) > 1):
                lineno, h = block.headings[1]
                raise SourceError(
                    self.sp.loc(lineno), "heading inside a heading group", f"{h.kind}: {h.name}"
                )
            first = block.headings[0][0]
            root = None
            if "memory-region" in kinds:
                root = self._printed_again(block, groups)
                if root is not None:
                    reused.add(id(block))
            if root is None:
                root = self._tree(block, pre70 and "address-space" in kinds)
            if root is None and "memory-region" in kinds:
                # a disabled alias target prints its heading only (QEMU >= 5.1, no -D)
                root = _hidden_region(block.headings[0][1].name, 0, 0, first)
            if "address-space" in kinds:
                groups.append(
                    AddressSpaceTree(tuple(h.name for _, h in block.headings), root, first)
                )
            else:
                sections.append(RegionSection(block.headings[0][1].name, root, first))
        # repeated trees once; a section printed again reads like its tree's lines
        unique = {b.texts: b for b in self.blocks if id(b) not in reused}.values()
        recs = [rec for b in unique for rec in self.sp.records(b.texts, b.linenos)]
        variant = _tree_variant(recs, groups, self.hidden)
        first = self.blocks[0]
        start = first.headings[0][0] if first.headings else first.linenos[0]
        dump = MtreeDump(
            tuple(groups), tuple(sections), variant, self.sp.file, start, partial=partial
        )
        dump = _unify_sections(dump)
        notes = [f"line {line}: {what}" for line, what in self.notes]
        return _resolve_aliases(dump, self.sp, notes)

    def _printed_again(self, block: _Block, groups: list[AddressSpaceTree]) -> MemoryRegion | None:
        """The region of an address-space tree that a ``memory-region:`` section prints
        again (``system``, ``pci``: a third of a q35's lines), found without building the
        section: its lines are that region's lines moved left, and no other region of the
        trees has its shape there.  Then _unify_sections would take that region for the
        section and drop the section's own tree, so it is not built.  None: build it."""
        if not block.texts:
            return None
        seg = self.sp.seg
        if self.mapped is None:  # the trees are built: address spaces come first
            self._map_trees(groups)
        assert self.mapped is not None and self.by_line is not None
        for m in self.by_line.get(block.texts[0].lstrip(" "), ()):
            last = m
            while last.subregions:  # the subtree's last printed line
                last = last.subregions[-1]
            i = seg.linenos.index(m.line)
            j = seg.linenos.index(last.line) + 1
            if j - i != len(block.texts):
                continue
            shift = len(seg.lines[i]) - len(block.texts[0])
            pad = " " * shift
            if shift < 0 or any(
                t[shift:] != x or t[:shift] != pad
                for t, x in zip(seg.lines[i:j], block.texts, strict=True)
            ):
                continue
            # as _unify_sections decides: the one region of that name and shape there
            same = [x for x in self.mapped[m.name] if x.addr == m.start and _same_shape(x, m)]
            if same != [m]:
                return None
            # building would repeat the guesses noted on the tree's lines (line numbers
            # of the section): build then, the notes are what the user reads
            if any(m.line <= line <= seg.linenos[j - 1] for line, _ in self.notes):
                return None
            return m
        return None

    def _map_trees(self, groups: list[AddressSpaceTree]) -> None:
        """The regions of the address-space trees named like a section, by name and by
        their printed line without its indentation (for _printed_again)."""
        wanted = {
            b.headings[0][1].name
            for b in self.blocks
            if b.headings and b.headings[0][1].kind == "memory-region"
        }
        self.mapped, self.by_line = {}, {}
        kinds = [b.headings[0][1].kind if b.headings else None for b in self.blocks]
        if any(k != "memory-region" for k in kinds[kinds.index("memory-region") :]):
            return  # a tree after a section (rows pasted alone): _unify_sections sees it
        seg = self.sp.seg
        roots = {id(g.root): g.root for g in groups if g.root is not None}
        for root in roots.values():
            for mr, _ in walk(root):
                if mr.name in wanted:
                    self.mapped.setdefault(mr.name, []).append(mr)
                    if not mr.hidden and mr.line is not None:
                        text = seg.lines[seg.linenos.index(mr.line)].lstrip(" ")
                        self.by_line.setdefault(text, []).append(mr)

    def _tree(self, block: _Block, shared: bool) -> MemoryRegion | None:
        """The tree of a block.  Before QEMU 7.0 every address space printed its root's
        whole tree, so identical address-space trees there are one MemoryRegion shown
        again (``shared``); from 7.0 on QEMU groups them, and equal text means equal
        content only."""
        key = block.texts
        if shared and key in self.memo:
            return self.memo[key]
        root = self._nest(block)
        if shared:
            self.memo[key] = root
        return root

    def _nest(self, block: _Block, headless: bool = False) -> MemoryRegion | None:
        """Nest region lines by indentation (two spaces a level; level 1 is the root).

        Rows pasted without their heading whose least indented rows are several get a
        root that was not pasted: a container over the whole address range."""
        # The open regions, root first (each one's parent is the one below it).  A region
        # is frozen when the line after its last subregion closes it, in one pass over the
        # lines (post-order, as a recursive freeze after nesting would go).
        stack: list[_Node] = []
        rooted = False
        root: MemoryRegion | None = None
        notes = self.notes

        def close() -> None:
            nonlocal root
            node = stack.pop()
            if stack:
                parent = stack[-1]
                parent.children.append(node.freeze(parent.start, notes))
            else:
                root = node.freeze(None, notes)

        body = block.body
        if headless:
            levels = [r.indent for _, r, _ in body if isinstance(r, RangeLine)]
            if levels.count(min(levels, default=0)) > 1:
                top = RangeLine(0, 0, U64 - 1, 0, "container", False, UNPASTED_ROOT)
                stack.append(_Node(top, min(levels) // 2 - 1, body[0][0], 0))
                rooted = True
        for lineno, rec, text in body:
            if not isinstance(rec, RangeLine):
                raise SourceError(self.sp.loc(lineno), "not a region line inside a tree", text)
            if rec.indent % 2 or rec.indent == 0:
                raise SourceError(
                    self.sp.loc(lineno), "indentation is not a multiple of two spaces", text
                )
            if rec.end < rec.start and rec.overflow is None:
                raise SourceError(self.sp.loc(lineno), "region ends before it starts", text)
            level = rec.indent // 2
            if level > MAX_DEPTH:
                raise SourceError(self.sp.loc(lineno), _TOO_DEEP, text.lstrip())
            while stack and stack[-1].level >= level:
                close()
            if not stack:
                if rooted:
                    raise SourceError(
                        self.sp.loc(lineno),
                        "a second root line in one section (missing empty line or heading?)",
                        text,
                    )
                rooted = True
                if level != 1:  # the root itself is a hidden disabled region
                    stack.append(_Node(None, 1, lineno, rec.start))
            while stack and stack[-1].level < level - 1:
                # An indentation jump: QEMU >= 5.1 hid a disabled region here (no -D).
                self.hidden = True
                stack.append(_Node(None, stack[-1].level + 1, lineno, rec.start))
            stack.append(_Node(rec, level, lineno, rec.start))
        while stack:
            close()
        return root


def _tree_variant(recs: list, groups: list[AddressSpaceTree], hidden: bool) -> Variant:
    ranges = [r for r in recs if isinstance(r, RangeLine)]
    # each field over all lines by map() in C: a generator per question cost more
    types = set(map(attrgetter("type"), ranges))
    overflow = set(map(attrgetter("overflow"), ranges)) - {None, ""}
    return Variant(
        type_letters=any(t[0] in "R-" for t in types),
        container_type="container" in types,
        grouped=any(len(g.names) > 1 for g in groups),
        disabled_marks=any(map(attrgetter("disabled"), ranges)),
        hidden_disabled=hidden,
        owners=any(o is not None for o in map(attrgetter("owner"), ranges)),
        overflow_before_indent=(overflow == {"before"}) if overflow else None,
    )


def _same_shape(a: MemoryRegion, b: MemoryRegion) -> bool:
    """Two printed copies of one MemoryRegion object: same name, size, type, subtree.
    Field by field, no tuples: it compares whole trees (``system`` is printed twice)."""
    if a is b:
        return True
    if (
        a.name != b.name
        or a.size != b.size
        or a.priority != b.priority
        or a.type != b.type
        or a.enabled != b.enabled
        or a.alias != b.alias
        or len(a.subregions) != len(b.subregions)
    ):
        return False
    for x, y in zip(a.subregions, b.subregions, strict=True):
        if x.addr != y.addr or not _same_shape(x, y):
            return False
    return True


def _unify_sections(dump: MtreeDump) -> MtreeDump:
    """Use the tree copy of a region for its ``memory-region:`` section when the two are
    one object printed twice (QEMU prints a section per alias-target *object*; a target
    that is also mapped, like ``pci`` or ``system``, appears in an address-space tree too).

    Identity matters: flatview_simplify only merges ranges of the same MemoryRegion.
    """
    # only the regions named like a section can be one: most sections are alias targets
    # that no address space maps (70 ``pci_bridge_pci`` of a q35 with 70 root ports)
    wanted = {sec.root.name for sec in dump.sections if sec.root is not None}
    by_name: dict[str, list[MemoryRegion]] = {}
    roots = {id(g.root): g.root for g in dump.address_spaces if g.root is not None}
    for root in roots.values():
        for mr, _ in walk(root):
            if mr.name in wanted:
                by_name.setdefault(mr.name, []).append(mr)
    if not by_name:
        return dump
    sections = []
    for sec in dump.sections:
        root = sec.root
        if root is not None:
            same = [
                m
                for m in by_name.get(root.name, ())
                if m.addr == root.start and _same_shape(m, root)
            ]
            if len({id(m) for m in same}) == 1:
                root = same[0]
        sections.append(sec if root is sec.root else replace(sec, root=root))
    return replace(dump, sections=tuple(sections))


def _resolve_aliases(dump: MtreeDump, sp: _DumpSplitter, diagnostics: list[str]) -> MtreeDump:
    """Link every alias to its target section (phase two of the build).

    An alias line reads ``alias NAME @TARGET``; names may hold `` @``, so when TARGET
    names no section the other splits are tried.  QEMU prints a section for every alias
    target, so a target that no section names means a partial paste: the alias is kept
    with its target unknown, a diagnostic says so and the dump is marked partial.
    """
    targets: dict[str, list[MemoryRegion]] = {}
    for sec in dump.sections:
        if sec.root is not None:
            targets.setdefault(sec.name, []).append(sec.root)
    order = {id(sec.root): i for i, sec in enumerate(dump.sections) if sec.root is not None}
    # Aliases inside a region named like their target (a bridge's bus holding the window
    # of the bridge behind it) go first: the sections they claim are downstream, so an
    # alias from elsewhere (the root bus) prefers a section nobody downstream claims.
    todo: list[tuple[int, MemoryRegion, MemoryRegion]] = []
    seen: set[int] = set()
    missing = False
    indexes = {name: _SectionIndex(secs) for name, secs in targets.items()}
    # Each name's sections in dump order, so "the later ones" is a suffix found by
    # bisection, not a scan of all 70 ``pci_bridge_pci`` for each of hundreds of aliases
    # (None: a section shared under two headings broke the order; scan then).
    positions: dict[str, list[int] | None] = {}
    for name, secs in targets.items():
        pos = [order.get(id(t), -1) for t in secs]
        positions[name] = pos if all(a < b for a, b in itertools.pairwise(pos)) else None
    for root in dump.roots():
        for mr, _ in walk(root):
            if mr.alias is not None and mr.alias.target is None and id(mr) not in seen:
                seen.add(id(mr))
                inner = _split_alias(mr, targets)[1] == root.name
                todo.append((0 if inner else 1, root, mr))
    claimed: set[int] = set()
    for inner, root, mr in sorted(todo, key=lambda t: t[0]):
        here = order.get(id(root), -1)
        name, target = _split_alias(mr, targets)
        # Not the section holding the alias, nor another printed copy of it (a bridge
        # window into its own bus would loop); QEMU queues a target when it meets the
        # alias, so later sections first.
        own = here < 0 and root.name == target  # an AS tree printing a section's region
        secs = targets.get(target, [])
        pos = positions.get(target)
        if pos is not None:  # the sections after this one (never the one holding it)
            later = secs[bisect.bisect_right(pos, here) :]
        else:
            later = [t for t in secs if t is not root and order.get(id(t), -1) > here]
        if own:
            later = [t for t in later if not _same_shape(t, root)]
        named = (
            later
            or [t for t in secs if t is not root and not (own and _same_shape(t, root))]
            or secs
        )
        cands = _candidates(named, mr, indexes.get(target) or _SectionIndex([]))
        if inner == 1 and len(cands) > 1:
            cands = [c for c in cands if id(c) not in claimed] or cands
        if not cands:
            # A partial paste: QEMU prints a section for every alias target, so this
            # one was not pasted.  The alias is kept with its target unknown.
            diagnostics.append(
                f"{sp.file}:{mr.line}: alias {mr.name!r} points to {target!r}, which "
                "no 'memory-region:' section of this paste defines: target unknown"
            )
            missing = True
            continue
        if len(cands) > 1:
            diagnostics.append(
                f"{sp.file}:{mr.line}: alias {name!r}: {len(cands)} sections named "
                f"{target!r} have regions in its window; the first is used"
            )
        if inner == 0:
            claimed.add(id(cands[0]))
        # Phase two of a two-phase build: the region is otherwise immutable.
        object.__setattr__(mr, "name", name)
        object.__setattr__(mr, "alias", Alias(target, mr.alias.offset, cands[0]))
        _check_window(mr, cands[0], sp)
    if _check_alias_cycles(dump, sp) > MAX_DEPTH:
        _check_depth(dump, sp)  # which region: the one this walk has always named
    return replace(dump, diagnostics=tuple(diagnostics), partial=dump.partial or missing)


# Deepest nesting read, through subregions and alias targets alike (render_memory_region
# follows both).  QEMU machines nest a dozen levels or so; the stages after the build
# recurse per level, and this bound keeps them well inside Python's recursion limit.
MAX_DEPTH = 100
_TOO_DEEP = (
    f"regions nested more than {MAX_DEPTH} levels deep (through subregions and aliases); "
    "QEMU machines nest a dozen or so"
)


def _check_depth(dump: MtreeDump, sp: _DumpSplitter) -> None:
    """Longest path from a root through subregions and resolved aliases (a DAG once
    _check_alias_cycles passed), computed without recursion.  Run only when that check
    measured a path too long, to name the same region as ever in the error."""
    depth: dict[int, int] = {}
    for root in dump.roots():
        stack: list[tuple[MemoryRegion, bool]] = [(root, False)]
        while stack:
            mr, done = stack.pop()
            if id(mr) in depth:
                continue
            below = list(mr.subregions)
            if mr.alias is not None and mr.alias.target is not None:
                below.append(mr.alias.target)
            if not done:
                stack.append((mr, True))
                stack.extend((c, False) for c in below if id(c) not in depth)
                continue
            d = 1 + max((depth[id(c)] for c in below), default=0)
            if d > MAX_DEPTH:
                line = mr.line or 1
                text = sp.text(line)
                raise SourceError(
                    SourceLocation(sp.file, line), _TOO_DEEP, text.lstrip() if text else text
                )
            depth[id(mr)] = d


def _check_window(mr: MemoryRegion, target: MemoryRegion, sp: _DumpSplitter) -> None:
    """An alias window past the end of its target: memory_region_init_alias does not
    check it, but no machine builds one and QEMU renders nothing past the target
    (render_memory_region clips to the target's size): most likely a mangled dump."""
    assert mr.alias is not None
    # "X-X" is size 1 or size 0 (q35's tseg-window: size 0 at the end of pc.ram)
    size = 0 if mr.size == 1 else mr.size
    if target.hidden or mr.alias.offset + size <= target.size:
        return
    warn(
        f"{sp.file}:{mr.line}: alias {mr.name!r}: window "
        f"{mr.alias.offset:#x}-{mr.alias.offset + mr.size - 1:#x} runs past the end of "
        f"{target.name!r} (size {target.size:#x}); that part renders nothing"
    )


def _candidates(
    sections: list[MemoryRegion], alias: MemoryRegion, index: _SectionIndex
) -> list[MemoryRegion]:
    """The sections an alias can point to.  Names repeat (every PCI bridge has a
    ``pci_bridge_pci``): keep the ones with regions inside the alias window; if none
    has, they all render the same there and the first will do."""
    if len(sections) <= 1:
        return sections
    assert alias.alias is not None
    lo = alias.alias.offset
    hits = index.holding(lo, lo + alias.size)
    if not hits:
        return sections[:1]
    # in the order given, filtered in C: 70 sections for each of hundreds of aliases
    inside = list(compress(sections, map(hits.__contains__, map(id, sections))))
    return inside or sections[:1]


class _SectionIndex:
    """The enabled subregions of the sections of one name, by address: which sections
    hold a region inside a window, without looking at every section (a q35 with 70 root
    ports has 70 ``pci_bridge_pci`` sections and hundreds of aliases into them)."""

    def __init__(self, sections: list[MemoryRegion]) -> None:
        spans = sorted(
            (c.addr, c.addr + c.size, id(s)) for s in sections for c in s.subregions if c.enabled
        )
        self.spans = spans
        self.starts = [a for a, _, _ in spans]
        self.reach = list(itertools.accumulate((b for _, b, _ in spans), max))

    def holding(self, lo: int, hi: int) -> set[int]:
        """ids of the sections with an enabled subregion overlapping [lo, hi)."""
        out: set[int] = set()
        j = bisect.bisect_left(self.starts, hi) - 1  # spans[0..j] start before hi
        while j >= 0 and self.reach[j] > lo:  # one of spans[0..j] ends after lo
            _, end, key = self.spans[j]
            if end > lo:
                out.add(key)
            j -= 1
        return out


def _split_alias(mr: MemoryRegion, targets: dict[str, list[MemoryRegion]]) -> tuple[str, str]:
    assert mr.alias is not None
    if mr.alias.target_name in targets:
        return mr.name, mr.alias.target_name
    whole = f"{mr.name} @{mr.alias.target_name}"
    parts = whole.split(" @")
    for i in range(1, len(parts)):
        name, target = " @".join(parts[:i]), " @".join(parts[i:])
        if target in targets:
            return name, target
    return mr.name, mr.alias.target_name


def _check_alias_cycles(dump: MtreeDump, sp: _DumpSplitter) -> int:
    """A loop through aliases never ends (memory_region_init_alias forbids it, and
    render_memory_region would recurse for ever): a dump showing one is corrupt.
    Returns the number of regions on the longest path from a root (measured by the
    same walk: see _check_depth)."""
    cycle, deepest = alias_cycle(dump)
    if cycle:
        chain = " -> ".join(repr(m.name) for m in cycle)
        raise SourceError(
            SourceLocation(sp.file, cycle[0].line), f"alias cycle: {chain}", sp.text(cycle[0].line)
        )
    return deepest


# --------------------------------------------------------------------------- flat views


class _FlatBuilder:
    def __init__(self, splitter: _DumpSplitter, blocks: list[_Block]) -> None:
        self.sp = splitter
        self.blocks = blocks

    def build(self) -> FlatDump:
        views = [self._view(b) for b in self.blocks]
        partial = any(not b.headings for b in self.blocks)
        ranges = [r for v in views for r in v.ranges]
        variant = Variant(
            old_flat_format=any(
                b.headings[0][1].kind == "flat-address-space" for b in self.blocks if b.headings
            ),
            owners=any(r.owner is not None for r in ranges),
            accel_labels=tuple(sorted({a for r in ranges for a in r.accel})),
            dispatch=any(v.dispatch for v in views),
        )
        return FlatDump(tuple(views), variant, self.sp.file, views[0].line or 1, partial=partial)

    def _view(self, block: _Block) -> FlatView:
        if not block.headings:  # rows pasted without their `FlatView #n` header
            lineno, heading = block.linenos[0], Heading("flatview", "")
        else:
            lineno, heading = block.headings[0]
        if len(block.headings) > 1:
            raise SourceError(
                self.sp.loc(block.headings[1][0]),
                "two flat-view headings in a row",
                block.headings[1][1].name,
            )
        ases: list[FlatViewAS] = []
        root: str | None = None
        ranges: list[FlatRange] = []
        dispatch: list[str] = []
        rendered = True
        if heading.kind == "flat-address-space":
            ases.append(FlatViewAS(heading.name))
        for ln, rec, text in block.body:
            if isinstance(rec, FlatViewASLine) and not ranges:
                ases.append(FlatViewAS(rec.name, rec.root, rec.root_alias))
            elif isinstance(rec, FlatViewRootLine) and not ranges:
                root = rec.name
            elif isinstance(rec, NoRenderedLine) and not ranges:
                rendered = False
            elif isinstance(rec, RangeLine) and rendered and not dispatch:
                ranges.append(self._range(ln, rec, text, ranges))
            elif isinstance(rec, DispatchLine) and rendered:
                dispatch.append(rec.text)
            else:
                raise SourceError(self.sp.loc(ln), "line out of place in a flat view", text)
        number = int(heading.name) if heading.kind == "flatview" and heading.name else None
        return FlatView(tuple(ases), root, tuple(ranges), number, lineno, tuple(dispatch), rendered)

    def _range(self, ln: int, rec: RangeLine, text: str, before: list[FlatRange]) -> FlatRange:
        if rec.indent != 2 or rec.is_alias or rec.disabled:
            raise SourceError(self.sp.loc(ln), "not a flat-view range line", text)
        if rec.end < rec.start:
            raise SourceError(self.sp.loc(ln), "range ends before it starts", text)
        if before and rec.start < before[-1].end:
            raise SourceError(
                self.sp.loc(ln), "range overlaps or is out of order with the one before it", text
            )
        # positional, in FlatRange's field order (start, size, priority, type, name,
        # offset, nonvolatile, owner, accel, line): keywords cost a fifth more per range
        return FlatRange(
            rec.start,
            rec.end - rec.start + 1,
            rec.priority,
            rec.type,
            rec.name,
            rec.offset or 0,
            rec.nonvolatile,
            rec.owner,
            rec.accel,
            ln,
        )
