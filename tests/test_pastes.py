"""Pastes as people make them (issue 16, issue 9 "input as people really have it").

The corpus (tests/pastes_corpus.py) is made from our real dumps; what each item must give
is derived here from its original: the same model (printed back in QEMU's format), or the
partial model the paste still holds (the original with the elided lines removed, the
rows of one view or tree, a tree without its alias-target sections).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flatview.api import flatten, parse_text
from flatview.build import read_text_dumps
from flatview.errors import SourceError
from flatview.model import UNNAMED_AS, FlatDump, MtreeDump, walk
from flatview.render.qemu import format_dump, format_range, format_region

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pastes_corpus import (
    MARKERS,
    SAMPLES,
    diff_paste,
    elided,
    flat_rows,
    fold,
    indent,
    mail,
    old_format,
    quote,
    same_model_items,
    tree_rows,
    ungrouped,
    without_sections,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "pastes"
TREES = [p for p in SAMPLES if p.name in ("info-mtree.txt", "info-mtree-o.txt")]
FLATS = [p for p in SAMPLES if p.name in ("info-mtree-f.txt", "info-mtree-f-o.txt")]
MAIL_PROSE = 4  # mail(): "Hi,", "this is what I see...", "Thanks,", "A. User"


def printed(dumps) -> list[str]:
    """A model as QEMU would print it: equal text, equal model (line numbers aside)."""
    return [format_dump(d) for d in dumps]


def _id(p: Path) -> str:
    return f"{p.parent.name}/{p.name}"


# ------------------------------------------------------------------ same model


ITEMS = same_model_items()


@pytest.mark.parametrize("item", ITEMS, ids=[i.name for i in ITEMS])
def test_corpus_item_parses_to_the_model_of_its_original(item):
    original = parse_text(item.source.read_text(), str(item.source))
    pasted = parse_text(item.text, item.name)
    assert printed(pasted) == printed(original)
    assert not any(d.partial for d in pasted)


def test_corpus_covers_every_sample_folded_at_72_columns_and_quoted():
    folded = {i.source for i in ITEMS if i.name.endswith("-fold72-quoted")}
    assert folded == set(SAMPLES) and len(SAMPLES) >= 40


@pytest.mark.parametrize("width", [72, 76, 80])
def test_fold_really_splits_lines_where_the_issue_says(width):
    """The folded corpus holds wraps inside alias tails, names and owners (else the
    test above would prove nothing)."""
    text = (REPO / "samples/qemu/x86_64-q35/info-mtree-o.txt").read_text()
    pieces = [ln for ln in fold(text, width).split("\n") if ln and ln[0] not in " am"]
    assert any(re.match(r"@\S+ [0-9a-f]{16}-", p) for p in pieces)  # alias tail
    assert any(p.startswith("owner:{") or p.endswith("}") for p in pieces)  # owner
    assert max(len(ln) for ln in fold(text, width).split("\n")) <= width


def test_quoted_printable_paste_decodes_soft_breaks_escapes_and_nbsp():
    item = next(i for i in ITEMS if i.name.endswith("crlf-folded") and i.source.stem.endswith("-o"))
    assert "=C2=A0" in item.text and "=3D" in item.text and "=0D" in item.text
    assert re.search(r"=\n", item.text)  # soft line breaks
    counts = read_text_dumps(item.text, "qp").cleaned.counts
    assert counts["quoted-printable"] > 0 and counts["nbsp"] > 0


def test_flatview_body_offset_by_one_column():
    """A FlatView pasted with its `AS`/`Root` lines at 2 columns and rows at 3."""
    src = REPO / "samples/vfio/q35-base/info-mtree-f.txt"
    text = src.read_text()
    shifted = "\n".join(" " + ln if ln.startswith(" ") else ln for ln in text.split("\n"))
    assert "\n  AS " in shifted and "\n   0000" in shifted
    assert printed(parse_text(shifted)) == printed(parse_text(text))


def test_latin1_quoted_printable_no_break_space():
    src = REPO / "samples/vfio/q35-base/info-mtree-f.txt"
    text = src.read_text()
    lines = [
        ln.replace("  ", "=A0=A0", 1) if ln.startswith("  ") else ln for ln in text.split("\n")
    ]
    paste = "Content-Transfer-Encoding: quoted-printable\n\n" + "\n".join(lines)
    reading = read_text_dumps(paste, "latin1")
    assert printed(reading.dumps) == printed(parse_text(text))
    assert reading.cleaned.counts["nbsp"] > 0


def test_dispatch_tree_whose_tabs_became_spaces():
    """`info mtree -f -d` pasted through a client that turned its TABs into spaces, then
    quoted, with the rows one column off (as in a 2020 qemu-devel reply)."""
    src = REPO / "samples/qemu/x86_64-q35/info-mtree-f-d.txt"
    text = src.read_text()
    assert "\t" in text
    paste = quote(
        "\n".join(" " + ln if ln[:1] == " " else ln for ln in text.expandtabs(8).split("\n"))
    )
    assert printed(parse_text(paste)) == printed(parse_text(text))


def _shared(text: str) -> str:
    """Grouped headings as a 2021 RFC of mtree_info printed them."""
    out, group = [], []
    for line in [*text.split("\n"), ""]:
        if line.startswith("address-space: "):
            group.append(line.removeprefix("address-space: "))
            continue
        if len(group) > 1:
            out.append(f"address-space shared {len(group)} times:")
            out.extend(f"  - {name}" for name in group)
        elif group:
            out.append(f"address-space: {group[0]}")
        group = []
        out.append(line)
    return "\n".join(out[:-1])


@pytest.mark.parametrize("src", TREES[:4], ids=_id)
def test_shared_address_space_list_of_the_2021_rfc(src):
    text = src.read_text()
    paste = indent(_shared(text), "  ")
    assert "address-space shared" in paste
    assert printed(parse_text(paste)) == printed(parse_text(text))


def test_qmp_array_of_replies_is_read_as_the_dumps_they_carry():
    tree = (REPO / "samples/vfio/q35-base/info-mtree.txt").read_text()
    flat = (REPO / "samples/vfio/q35-base/info-mtree-f.txt").read_text()
    reply = json.dumps([{"return": tree.replace("\n", "\r\n")}, {"return": flat}])
    expected = parse_text(tree) + parse_text(flat)
    assert printed(parse_text(reply)) == printed(expected)
    transcript = (
        '{"execute": "human-monitor-command", "arguments": {"command-line": "info mtree"}}\n'
        + json.dumps({"return": tree})
        + "\n"
    )
    assert printed(parse_text(transcript)) == printed(parse_text(tree))


def test_several_dumps_in_one_mail_are_all_read_in_order():
    parts = [
        REPO / "samples/qemu/x86_64-pc/info-mtree.txt",
        REPO / "samples/qemu/x86_64-pc/info-mtree-f.txt",
        REPO / "samples/qemu/aarch64-virt/info-mtree.txt",
    ]
    text = "\n\nand then:\n\n".join(quote(fold(p.read_text(), 76)) for p in parts)
    expected = [d for p in parts for d in parse_text(p.read_text())]
    assert printed(parse_text(text)) == printed(expected)


# ------------------------------------------------------------------ skipped lines


def test_parse_reports_every_prose_line_it_skipped(tmp_path):
    src = REPO / "samples/vfio/q35-base/info-mtree-f.txt"
    paste = tmp_path / "mail.txt"
    paste.write_text(mail(quote(fold(src.read_text(), 72))))
    out = _run("parse", str(paste))
    assert f"{MAIL_PROSE} lines skipped as elisions/prose" in out.stdout
    doc = json.loads(_run("parse", "--json", str(paste)).stdout)
    assert doc["cleanup"]["skipped"] == MAIL_PROSE
    assert doc["cleanup"]["lines"]["prose"] == MAIL_PROSE


@pytest.mark.parametrize("marker", MARKERS)
@pytest.mark.parametrize("src", [*TREES[:2], *FLATS[:2]], ids=_id)
def test_elided_paste_gives_the_original_without_the_elided_lines(marker, src):
    paste, kept = elided(src.read_text(), marker)
    n_markers = paste.split("\n").count(marker)
    assert n_markers > 0
    reading = read_text_dumps(mail(quote(paste)), "elided")
    assert printed(reading.dumps) == printed(parse_text(kept))
    assert all(d.partial for d in reading.dumps)
    assert reading.cleaned.counts["elision"] == n_markers
    assert reading.cleaned.skipped == n_markers + MAIL_PROSE


# ------------------------------------------------------------------ fragments


@pytest.mark.parametrize("src", FLATS, ids=_id)
@pytest.mark.parametrize("form", ["bare", "quoted", "indented"])
def test_flat_rows_without_header_are_a_view_with_no_header(src, form):
    paste, rows = flat_rows(src.read_text())
    paste = {"bare": paste, "quoted": quote(paste), "indented": indent(paste, "    ")}[form]
    (dump,) = parse_text(paste)
    assert isinstance(dump, FlatDump) and dump.partial
    (view,) = dump.views
    assert view.number is None and view.address_spaces == () and view.root is None
    assert [format_range(r) for r in view.ranges] == rows


@pytest.mark.parametrize("src", TREES, ids=_id)
def test_tree_rows_without_heading_are_an_unnamed_address_space(src):
    paste, rows = tree_rows(src.read_text())
    (dump,) = parse_text(mail(quote(paste)))
    assert isinstance(dump, MtreeDump) and dump.partial
    (group,) = dump.address_spaces
    assert group.names == (UNNAMED_AS,)
    assert [format_region(mr, depth + 1) for mr, depth in walk(group.root)] == rows
    assert f"address-space: {UNNAMED_AS}" in format_dump(dump)


def test_rows_pasted_without_their_indentation_of_two():
    """Flat rows whose two leading spaces were lost (a web page, a chat client)."""
    src = REPO / "samples/vfio/q35-base/info-mtree-f.txt"
    _, rows = flat_rows(src.read_text())
    (dump,) = parse_text("\n".join(r.lstrip(" ") for r in rows) + "\n")
    assert [format_range(r) for r in dump.views[0].ranges] == rows


def test_rows_with_several_roots_get_a_root_that_was_not_pasted():
    _, rows = tree_rows((REPO / "samples/qemu/x86_64-q35/info-mtree.txt").read_text())
    children = [r[2:] for r in rows[1:]]  # the subregions of `system`, one level up
    (dump,) = parse_text("\n".join(children) + "\n")
    root = dump.address_spaces[0].root
    assert root.type == "container" and root.size == 1 << 64
    assert [format_region(mr, depth) for mr, depth in walk(root)][1:] == children
    (amb,) = [a for a in flatten(dump).ambiguities if a.kind == "parent not pasted"]
    assert amb.regions == root.subregions
    assert amb.start == min(c.start for c in root.subregions)


@pytest.mark.parametrize("src", TREES, ids=_id)
def test_tree_without_alias_targets_keeps_them_unknown_and_flatten_says_so(src):
    full = parse_text(src.read_text())[0]
    (dump,) = parse_text(quote(without_sections(src.read_text())))
    assert dump.partial and not dump.sections
    aliases = [mr for mr, _ in dump.regions() if mr.alias is not None]
    assert aliases and all(mr.alias.target is None for mr in aliases)
    assert len(dump.diagnostics) == len(aliases)
    # the regions are those of the full dump's address-space trees
    assert printed([dump])[0] in printed([full])[0]
    # every enabled alias reached through enabled containers from a root is undecided,
    # unless it is 0 bytes (q35's closed bridge windows: an empty intersection, so
    # render_memory_region returns before it looks at the alias)
    reached = set()
    for group in dump.address_spaces:
        stack = [group.root] if group.root is not None else []
        while stack:
            mr = stack.pop()
            if not mr.enabled:
                continue
            if mr.alias is not None:
                if mr.size:
                    reached.add(id(mr))
            else:
                stack.extend(mr.subregions)
    result = flatten(dump)
    undecided = [a for a in result.ambiguities if a.kind == "alias target not pasted"]
    assert {id(a.regions[0]) for a in undecided} == reached
    for a in undecided:
        mr = a.regions[0]
        assert mr.start <= a.start < a.end <= mr.start + mr.size


# ------------------------------------------------------------------ diff pastes


PAIR = (
    REPO / "samples/vfio/q35-base/info-mtree-f.txt",
    REPO / "samples/vfio/q35-no-mmap/info-mtree-f.txt",
)


def test_diff_paste_holds_the_before_and_the_after():
    before, after = (p.read_text() for p in PAIR)
    dumps = parse_text(quote(diff_paste(before, after, 10**6)))
    assert [d.part for d in dumps] == ["before", "after"]
    assert printed(dumps[:1]) == printed(parse_text(before))
    assert printed(dumps[1:]) == printed(parse_text(after))


def test_diff_paste_with_hunks_only_gives_partial_sides():
    before, after = (p.read_text() for p in PAIR)
    dumps = parse_text(diff_paste(before, after, 3))
    assert {d.part for d in dumps} == {"before", "after"}
    assert all(d.partial for d in dumps)


@pytest.mark.parametrize("command", ["diff", "gate"])
def test_diff_and_gate_take_a_diff_paste_as_before_and_after(tmp_path, command):
    before, after = (p.read_text() for p in PAIR)
    paste = tmp_path / "paste.txt"
    paste.write_text(diff_paste(before, after, 10**6))
    one = _run(command, "--json", str(paste))
    two = _run(command, "--json", *map(str, PAIR))
    assert one.returncode == two.returncode
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    for doc in (a, b):  # the inputs' names differ, nothing else
        doc.pop("before", None), doc.pop("after", None)
        doc.pop("baseline", None), doc.pop("candidate", None)
    assert _without_names(a) == _without_names(b)


def _without_names(doc):
    text = json.dumps(doc)
    for p in PAIR:
        text = text.replace(str(p), "X")
    text = re.sub(r'"(\w*line)": \d+', r'"\1": 0', text)  # lines of the inputs differ
    return re.sub(r'"[^"]*paste\.txt[^"]*"', '"X"', text)


def test_one_input_without_a_diff_is_a_usage_error(tmp_path):
    proc = _run("diff", str(PAIR[0]))
    assert proc.returncode == 2 and "holds no diff of two dumps" in proc.stderr


@pytest.mark.parametrize("command", ["diff", "gate"])
def test_one_input_with_qmp_is_compared_with_the_running_qemu(tmp_path, command):
    """With --qmp, one FILE is the first side and the capture the second: the diff paste
    is not read as both sides, the socket is asked (here: none, so one error line)."""
    paste = tmp_path / "paste.txt"
    paste.write_text(diff_paste(*(p.read_text() for p in PAIR), 10**6))
    sock = tmp_path / "none"
    proc = _run(command, str(paste), "--qmp", str(sock))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"flatview: {sock}: no such socket"), proc.stderr


# ------------------------------------------------------------------ old formats


def _memory_and_io(text: str) -> str:
    """The `memory` and `I/O` trees and the sections: what QEMU 1.x printed."""
    spaces: dict[str, str] = {}
    sections = []
    for block in text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        heads = [ln for ln in lines if ln.startswith("address-space: ")]
        body = [ln for ln in lines if not ln.startswith("address-space: ")]
        for name in ("memory", "I/O"):
            if f"address-space: {name}" in heads:
                spaces[name] = "\n".join([f"address-space: {name}", *body])
        if lines[0].startswith("memory-region: "):
            sections.append(block)
    return "\n\n".join([spaces["memory"], spaces["I/O"], *sections]) + "\n"


@pytest.mark.parametrize(
    "src", [REPO / "samples/qemu/x86_64-pc/info-mtree.txt", *TREES[:3]], ids=_id
)
def test_qemu_1x_bare_memory_heading(src):
    modern = _memory_and_io(src.read_text())
    old = old_format(modern)
    assert old.startswith("memory\n0000")
    reading = read_text_dumps(mail(old), "1.x")
    assert printed(reading.dumps) == printed(parse_text(modern))
    assert reading.cleaned.counts["old-format"] > 0


@pytest.mark.parametrize("src", TREES[:4], ids=_id)
def test_qemu_1x_every_address_space_by_its_bare_name(src):
    """QEMU 1.6-2.0 printed every AddressSpace's name alone, its tree in column 0."""
    modern = ungrouped(src.read_text())
    old = old_format(modern)
    assert "\naliases\n" in old
    assert printed(parse_text(quote(old))) == printed(parse_text(modern))


def test_qemu_1x_type_letters_print_back_as_they_were():
    path = FIXTURES / "qemu-1.x-letters.txt"
    text = path.read_text()
    dump = parse_text(text)[0]
    assert dump.variant.type_letters
    types = [mr.type for mr, _ in dump.regions()]
    assert {"RW", "R-"} <= set(types) and "rom" not in types
    # a read-only alias of RAM renders R- there (readable, not writable), never `rom`
    view = flatten(dump).views[0]
    pam = [r for r in view.ranges if r.start == 0xC0000]
    assert [r.type for r in pam] == ["R-"]
    assert "rom" not in {r.type for v in flatten(dump).views for r in v.ranges}
    out = _run("parse", "--format", "qemu", str(path)).stdout
    rows = [ln for ln in text.split("\n") if re.match(r"^ *[0-9a-f]{16}-", ln)]
    assert [ln.strip() for ln in rows] == [
        ln.strip() for ln in out.split("\n") if re.match(r"^ *[0-9a-f]{16}-", ln)
    ]


def test_qemu_1x_32bit_target_addresses_of_8_digits():
    """QEMU < 1.3 printed target_phys_addr_t with %08x on 32-bit targets (sh4, xtensa,
    arm): the same tree with 8-digit addresses reads as with 16."""
    text = (FIXTURES / "qemu-1.x-letters.txt").read_text()
    text = text.replace("7ffffffffffffffe", "00000000ffffffff")
    narrow = re.sub(r"\b0{8}([0-9a-f]{8})\b", r"\1", text)
    assert "\n  000a0000-000bffff (prio 1, RW)" in narrow
    reading = read_text_dumps(narrow, "narrow")
    assert printed(reading.dumps) == printed(parse_text(text))


# ------------------------------------------------------------------ what stays an error


CUTS = [
    ("  0000000000000000-00000000000", "truncated"),
    ("  00000000000", "cut"),
    ("  0000000000000000-0000000007ffffff (prio 0,", "truncated"),
    ("  0000000000000000-0000000007ffffff (prio 0, ram):", "truncated"),
    ("  00000000000000000-0000000007ffffff (prio 0, ram): pc.ram", "hex"),
]


@pytest.mark.parametrize(("last", "why"), CUTS, ids=[c[1] + str(i) for i, c in enumerate(CUTS)])
@pytest.mark.parametrize("form", ["bare", "quoted"])
def test_dump_cut_mid_line_is_an_error_on_that_line(last, why, form):
    src = (REPO / "samples/vfio/q35-base/info-mtree-f.txt").read_text().rstrip("\n")
    text = src + "\n" + last + "\n"
    if form == "quoted":
        text = quote(text)
    with pytest.raises(SourceError) as exc:
        parse_text(text, "cut.txt")
    assert exc.value.loc.line == src.count("\n") + 2


@pytest.mark.parametrize("wrap", ["| {} |", "* {}", "[12:01] <dev> {}"])
def test_region_line_behind_other_text_is_an_error_not_dropped(wrap):
    src = (REPO / "samples/vfio/q35-base/info-mtree-f.txt").read_text()
    lines = src.split("\n")
    n = next(i for i, ln in enumerate(lines) if ln.startswith("  0000"))
    lines[n] = wrap.format(lines[n].strip())
    with pytest.raises(SourceError) as exc:
        parse_text("\n".join(lines), "table.txt")
    assert exc.value.loc.line == n + 1


def test_bom_is_not_blamed_on_any_line(tmp_path):
    src = REPO / "samples/qemu/x86_64-q35/info-mtree.txt"
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    proc = _run("parse", str(path))
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ every command


def test_flatten_takes_every_tree_and_dump_picks_one(tmp_path):
    a = (REPO / "samples/qemu/x86_64-pc/info-mtree.txt").read_text()
    b = (REPO / "samples/qemu/ppc64-pseries/info-mtree.txt").read_text()
    path = tmp_path / "two.txt"
    path.write_text("first:\n\n" + a + "\nsecond:\n\n" + b)
    both = _run("flatten", str(path))
    assert both.returncode == 0, both.stderr
    starts = [d.line for d in parse_text(path.read_text())]
    assert len(starts) == 2
    for n, src in zip(starts, (a, b), strict=True):
        assert f"# info mtree at {path}:{n}" in both.stdout
        one = _run("flatten", "--dump", str(n), str(path)).stdout
        alone = tmp_path / "alone.txt"
        alone.write_text(src)
        views = [ln for ln in one.split("\n") if not ln.startswith("#")]
        # the notes name lines of the input: those differ, the views do not
        assert views == [
            ln for ln in _run("flatten", str(alone)).stdout.split("\n") if not ln.startswith("#")
        ]
        assert "\n".join(views).strip() in both.stdout


def test_public_pastes_in_the_fixtures_parse(tmp_path):
    for path in sorted(FIXTURES.glob("*.txt")):
        proc = _run("parse", str(path))
        assert proc.returncode == 0, (path.name, proc.stderr)


def test_public_doc_paste_keeps_every_region_and_its_unknown_alias_targets():
    path = FIXTURES / "public-loongarch-docs.txt"
    text = path.read_text()
    rows = re.findall(r"^ +[0-9a-f]{16}-[0-9a-f]{16} \(prio", text, re.MULTILINE)
    aliases = re.findall(r"\): alias (\S+) @(\S+) ", text)
    reading = read_text_dumps(text, path.name)
    (dump,) = reading.dumps
    assert dump.partial and len(list(dump.regions())) == len(rows)
    assert sorted((mr.name, mr.alias.target_name) for mr, _ in dump.regions() if mr.alias) == (
        sorted(aliases)
    )
    assert reading.cleaned.skipped == text[: text.index("address-space")].count("\n") - 1
    result = flatten(dump)
    assert len([a for a in result.ambiguities if a.kind == "alias target not pasted"]) == 4


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flatview", *args], capture_output=True, text=True, check=False
    )
