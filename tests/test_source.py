"""flatview.source: every named normalisation of the module docstring (CR, quote, tabs,
trailing, prompt, rejoin, prose), original line numbers, and several dumps in one text.

Constructed pastes are built from real lines of seed 003 (the 2017 MSI-X relocation RFC);
the seed itself is read as-is, and what is expected of it is computed in the tests with
regular expressions over the same file, independently of flatview.source.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flatview.api import parse_text
from flatview.errors import SourceError
from flatview.source import segments, strip_quote, unquote_lines

REPO = Path(__file__).resolve().parents[1]
SEEDS = Path(__file__).resolve().parent / "fixtures" / "seeds"

# Real lines of seed 003 ("Test #1: x-msix-relocation = off").
FV = "FlatView #1"
AS_MEMORY = ' AS "memory", root: system'
AS_CPU = ' AS "cpu-memory", root: system'
ROOT = " Root memory region: system"
RAM = "  0000000000000000-000000007fffffff (prio 0, ram): ppc_spapr.ram"
BAR1 = "  000021000000e600-000021000000ffff (prio 0, i/o): 0001:03:00.0 BAR 1"  # 70 columns
OFFSET_TAIL = "@000000000000e600"
BAR3 = "  0000210000040000-000021000007ffff (prio 0, ramd): 0001:03:00.0 BAR 3 mmaps[0]"
# The tree line of seed 003 that mail wrapped after "BAR" (80 columns before the wrap).
MMAP_HEAD = "        0000210000040000-000021000007ffff (prio 0, ramd): 0001:03:00.0 BAR"
MMAP_TAIL = "3 mmaps[0]"
VIEW = [FV, AS_MEMORY, AS_CPU, ROOT, RAM, BAR1 + " " + OFFSET_TAIL, BAR3]

# A short region line (52 columns): too short to have been wrapped by a mail client.
SHORT = "  0000000000000000-0000000000000fff (prio 0, i/o): x"

# Our own recognisers for the tests (not flatview's).
QUOTE_PREFIX = re.compile(r"^(?:> ?)*")
HEADING = re.compile(r"^(?:FlatView #\d+|memory-region: |address-space: )")
DUMP_START = re.compile(
    r"^(?:address-space|memory-region|FlatView #| AS \"| Root memory region: |  No rendered"
    r"|  Dispatch$|    Physical sections$|      #\d+ @|    Nodes \(|      \[\d+\]$|\t"
    r"| +[0-9a-f]{16}-[0-9a-f]{16} )"
)


def _seed003() -> tuple[Path, str]:
    found = sorted(SEEDS.glob("003_*.txt"))
    if not found:
        pytest.fail(f"seed 003 not found under {SEEDS}")
    return found[0], found[0].read_text(encoding="utf-8")


def _unquote(raw: str) -> tuple[int, str]:
    """(number of '>' in the quote prefix, rest without trailing blanks)."""
    m = QUOTE_PREFIX.match(raw)
    return m.group(0).count(">"), raw[m.end() :].rstrip()


def _flat(segs) -> list[tuple[int, str]]:
    return [(n, line) for s in segs for n, line in zip(s.linenos, s.lines, strict=True)]


def _only(segs):
    assert len(segs) == 1, [s.start_line for s in segs]
    return segs[0]


# --------------------------------------------------------------------------- CR


@pytest.mark.parametrize("eol", ["\r\n", "\r", "\n"], ids=["CRLF", "lone-CR", "LF"])
def test_cr_line_ends_become_lf(eol):
    seg = _only(segments(eol.join(VIEW) + eol))
    assert seg.lines == tuple(VIEW)
    assert tuple(seg.linenos) == (1, 2, 3, 4, 5, 6, 7)


def test_cr_mixed_line_ends_keep_line_numbers():
    text = FV + "\r\n" + AS_MEMORY + "\n" + ROOT + "\r" + RAM + "\r\n"
    seg = _only(segments(text))
    assert list(zip(seg.linenos, seg.lines, strict=True)) == [
        (1, FV),
        (2, AS_MEMORY),
        (3, ROOT),
        (4, RAM),
    ]


def test_cr_real_crlf_sample_equals_its_lf_copy():
    """The real -f -d dump (CRLF, dispatch tabs) and the same text with LF give the same
    segments: the clean-up path and the fast path agree."""
    path = REPO / "samples" / "vfio" / "q35-base" / "info-mtree-f-d.txt"
    if not path.exists():
        pytest.fail(f"{path} missing")
    crlf = path.read_bytes().decode("utf-8")
    assert "\r\n" in crlf
    lf = crlf.replace("\r\n", "\n")
    assert segments(crlf, "a") == segments(lf, "b")
    raw = lf.split("\n")
    seg = _only(segments(crlf))
    # every line kept verbatim at its own number (the file is QEMU's output, nothing to undo)
    assert all(raw[n - 1] == line for n, line in zip(seg.linenos, seg.lines, strict=True))
    assert seg.linenos[0] == 1
    assert len(seg.lines) == len(raw) - 2  # the file ends with an empty CRLF line, then EOF


# --------------------------------------------------------------------------- quote


@pytest.mark.parametrize(
    ("prefix", "depth"),
    [("> ", 1), ("> > ", 2), (">> ", 2), (">>>> ", 4), ("> >> ", 3), (">>> ", 3)],
)
def test_quote_prefix_removed_at_any_depth(prefix, depth):
    text = "".join(prefix + line + "\n" for line in VIEW)
    seg = _only(segments(text))
    assert seg.lines == tuple(VIEW)
    assert seg.quote_depth == depth
    assert seg.linenos == tuple(range(1, len(VIEW) + 1))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('>>>>  AS "memory", root: system', (4, AS_MEMORY)),
        ("> >>   0000", (3, "  0000")),
        ("> > " + RAM, (2, RAM)),
        (">" + FV, (1, FV)),
        (FV, (0, FV)),
        ("", (0, "")),
    ],
)
def test_strip_quote(raw, expected):
    assert strip_quote(raw) == expected


def test_quote_bare_marker_line_is_an_empty_line_of_the_dump():
    text = "> " + FV + "\n> " + ROOT + "\n> " + RAM + "\n>\n> FlatView #2\n> " + ROOT + "\n"
    seg = _only(segments(text))
    assert seg.lines == (FV, ROOT, RAM, "", "FlatView #2", ROOT)
    assert seg.linenos == (1, 2, 3, 4, 5, 6)


def test_quote_change_of_depth_ends_a_run():
    text = "".join("> " + v + "\n" for v in VIEW[:5]) + "".join(">> " + v + "\n" for v in VIEW[:5])
    segs = segments(text)
    assert [(s.start_line, s.quote_depth, len(s.lines)) for s in segs] == [(1, 1, 5), (6, 2, 5)]


def test_unquote_lines_keeps_tabs():
    assert unquote_lines("> a\tb  \r\n>> c\n") == [(1, "a\tb"), (2, "c")]


# --------------------------------------------------------------------------- tabs


def test_tabs_expand_to_8_column_stops():
    tree = [
        "address-space: memory",
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system",
        "    0000000000000000-ffffffffffffffff (prio -1, i/o): pci",
        "      00000000000c0000-00000000000dffff (prio 1, rom): pc.rom",
    ]
    deep = "00000000000c0000-00000000000c0fff (prio 0, i/o): child"
    text = "\n".join([*tree, "\t" + deep, "\t  " + deep]) + "\n"
    seg = _only(segments(text))
    assert seg.lines[4] == " " * 8 + deep
    assert seg.lines[5] == " " * 10 + deep


def test_tabs_stops_counted_after_the_quote_prefix():
    """A tab in the quoted text was in the original line: its stops do not count '> '."""
    deep = "0000000000000000-0000000000000fff (prio 0, i/o): x"
    text = "> address-space: memory\n> \t" + deep + "\n"
    assert _only(segments(text)).lines == ("address-space: memory", " " * 8 + deep)


def test_tabs_inside_a_line():
    head = "  0000000000000000-0000000000000fff (prio 0, i/o): a"
    text = "address-space: memory\n" + head + "\tb\n"
    col = len(head)  # 52: the tab goes to the next multiple of 8
    pad = 8 - col % 8
    assert _only(segments(text)).lines[1] == head + " " * pad + "b"


@pytest.mark.parametrize("quote", ["", "> "])
def test_tabs_dispatch_node_entry_keeps_its_leading_tab(quote):
    """QEMU prints '\\t%3d..%-3d skip=...' for dispatch node entries (mtree_print_phys_entries);
    the lines below are from samples/vfio/q35-base/info-mtree-f-d.txt."""
    lines = [
        "FlatView #0",
        ' AS "I/O", root: io',
        " Root memory region: io",
        "  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan",
        "  Dispatch",
        "    Physical sections",
        "      #0 @0000000000000000..ffffffffffffffff (noname) [unassigned]",
        "    Nodes (9 bits per level, 6 levels) ptr=[5] skip=6",
        "      [0]",
        "\t  0       skip=5  ptr=[5]",
        "\t  1..511  skip=1  ptr=NIL",
    ]
    text = "".join(quote + line + "\r\n" for line in lines)
    assert _only(segments(text)).lines == tuple(lines)


# --------------------------------------------------------------------------- trailing


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_trailing_blanks_removed(eol):
    """Trailing blanks go whatever the line ends (a clean LF dump takes a fast path)."""
    lines = ["address-space: memory", "  0000000000000000-ffffffffffffffff (prio 0, i/o): system"]
    text = "".join(line + "   " + eol for line in lines)
    assert _only(segments(text)).lines == tuple(lines)


def test_trailing_blanks_and_tabs_removed_from_quoted_lines():
    text = "> " + FV + " \t\n> " + ROOT + "  \n"
    assert _only(segments(text)).lines == (FV, ROOT)


# --------------------------------------------------------------------------- prompt


def test_prompt_ends_a_run_and_is_dropped():
    text = "\n".join(
        [
            "(qemu) info mtree -f",  # 1
            "FlatView #0",  # 2
            AS_MEMORY,
            ROOT,
            RAM,  # 5
            "(qemu) info mtree",  # 6
            "address-space: memory",  # 7
            "  0000000000000000-ffffffffffffffff (prio 0, i/o): system",
            "(qemu) info mtree -f",  # 9
            "FlatView #0",  # 10
            ROOT,
            "(qemu)",  # 12
        ]
    )
    segs = segments(text)
    assert [(s.start_line, s.linenos[-1]) for s in segs] == [(2, 5), (7, 8), (10, 11)]
    assert not any(line.startswith("(qemu)") for _, line in _flat(segs))
    assert [(d.kind, d.line) for d in parse_text(text)] == [("flat", 2), ("tree", 7), ("flat", 10)]


def test_prompt_quoted_after_a_long_line_is_not_a_wrapped_tail():
    text = "> " + FV + "\n> " + ROOT + "\n> " + BAR1 + "\n> (qemu)\n> " + FV + "\n"
    segs = segments(text)
    assert [s.lines for s in segs] == [(FV, ROOT, BAR1), (FV,)]


# --------------------------------------------------------------------------- rejoin


@pytest.mark.parametrize("quote", ["", "> ", "> >> ", ">>>> "])
def test_rejoin_seed003_offset_wrap(quote):
    text = "".join(quote + line + "\n" for line in [FV, ROOT, BAR1, OFFSET_TAIL])
    seg = _only(segments(text))
    assert seg.lines == (FV, ROOT, BAR1 + " " + OFFSET_TAIL)
    assert seg.linenos == (1, 2, 3)  # the tail's own number is gone: it is part of line 3


@pytest.mark.parametrize("quote", ["", "> ", "> >> ", ">>>> "])
def test_rejoin_seed003_name_wrap(quote):
    text = "".join(quote + line + "\n" for line in ["memory-region: x", MMAP_HEAD, MMAP_TAIL])
    seg = _only(segments(text))
    assert seg.lines == ("memory-region: x", MMAP_HEAD + " " + MMAP_TAIL)
    assert seg.linenos == (1, 2)


def test_rejoin_every_wrap_of_seed003():
    """Every wrapped tail of seed 003 (a lone ' @offset' or '3 mmaps[0]' line, found with our
    own regex) is joined onto the line before it, which keeps its number."""
    path, text = _seed003()
    raw = text.split("\n")
    tails = [
        n
        for n, line in enumerate(raw, 1)
        if re.fullmatch(r"(?:> ?)*(?:@[0-9a-f]{16}|3 mmaps\[0\])", line)
    ]
    assert len(tails) == 20  # 15 flat views wrap ' @offset', 5 trees wrap 'BAR 3 mmaps[0]'
    got = dict(_flat(segments(text, str(path))))
    for n in tails:
        depth_prev, prev = _unquote(raw[n - 2])
        depth_tail, tail = _unquote(raw[n - 1])
        assert depth_prev == depth_tail
        assert got[n - 1] == prev + " " + tail
        assert n not in got


@pytest.mark.parametrize(
    "short_dump_line",
    [
        "FlatView #2",
        "  Dispatch",
        "    Physical sections",
        "      [3]",
        "\t  0       skip=5  ptr=[5]",
        "memory-region: x",
        "address-space: x",
        ' AS "x", root: y',
        " Root memory region: y",
        "  No rendered FlatView",
    ],
)
def test_rejoin_never_glues_two_dump_lines(short_dump_line):
    text = FV + "\n" + ROOT + "\n" + BAR1 + "\n" + short_dump_line + "\n"
    assert _only(segments(text)).lines == (FV, ROOT, BAR1, short_dump_line)


def test_rejoin_never_glues_two_long_dump_lines():
    text = "\n".join([FV, ROOT, BAR1, BAR1, BAR3]) + "\n"
    assert _only(segments(text)).lines == (FV, ROOT, BAR1, BAR1, BAR3)


@pytest.mark.parametrize(
    ("before", "tail"),
    [
        # a line too short to have been wrapped (52 columns)
        ([FV, ROOT, SHORT], "Ok works"),
        # the end of a sentence (seed 003: "Ok, works." after the test #1 view)
        ([FV, ROOT, BAR1], "Ok, works."),
        ([FV, ROOT, BAR1], 'This is "mtree":'),
        ([FV, ROOT, BAR1], "Why?"),
        ([FV, ROOT, BAR1], "It works!"),
        # indented text
        ([FV, ROOT, BAR1], "  see below"),
        # too long to be a wrapped-off tail
        ([FV, ROOT, BAR1], "this line is far too long to be a tail"),
        # separated by an empty line
        ([FV, ROOT, BAR1, ""], "Ok works"),
    ],
    ids=["short-line", "sentence", "colon", "question", "bang", "indented", "long", "blank"],
)
def test_rejoin_prose_after_a_dump_line_is_not_joined(before, tail):
    text = "\n".join([*before, tail, FV, ROOT]) + "\n"
    segs = segments(text)
    kept = tuple(line for line in before if line)
    assert [s.lines for s in segs] == [kept, (FV, ROOT)]
    assert not any(tail in line for _, line in _flat(segs))


def test_rejoin_not_across_an_unquoted_empty_line_inside_a_quote():
    """A reply often leaves an unquoted empty line between quoted paragraphs: the short
    quoted line after it is not "directly after" the long dump line."""
    text = "> " + FV + "\n> " + ROOT + "\n> " + BAR1 + "\n\n> Ok works\n"
    assert [s.lines for s in segments(text)] == [(FV, ROOT, BAR1)]


def test_rejoin_not_across_a_change_of_quote_depth():
    text = "> " + FV + "\n> " + ROOT + "\n> " + BAR1 + "\nOk works\n"
    assert [s.lines for s in segments(text)] == [(FV, ROOT, BAR1)]


def test_rejoin_a_line_gets_one_tail_only():
    text = "\n".join([FV, ROOT, BAR1, OFFSET_TAIL, "more", FV, ROOT]) + "\n"
    segs = segments(text)
    assert [s.lines for s in segs] == [(FV, ROOT, BAR1 + " " + OFFSET_TAIL), (FV, ROOT)]
    assert [s.linenos for s in segs] == [(1, 2, 3), (6, 7)]


def test_rejoin_of_a_wrapped_heading():
    name = "a-rather-long-address-space-name-of-a-device-behind-a-bridge"
    region = "  0000000000000000-ffffffffffffffff (prio 0, i/o): bmc"
    text = "address-space: " + name + "\nport0\n" + region + "\n"
    seg = _only(segments(text))
    assert seg.lines[0] == "address-space: " + name + " port0"
    assert seg.linenos == (1, 3)


def test_rejoin_alias_line_wrapped_before_its_offsets_is_not_misread():
    """A T2 alias line (QEMU 5.0+) is 110 columns; a mail client wrapping at 72-80 columns
    puts 'OOOO-QQQQ' (33 characters) on a line of its own.  The paste must either be
    rejoined (an alias to pc.ram) or rejected; it must not silently become a plain region
    named 'alias ram-below-4g @pc.ram'."""
    text = (
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram\n"
        "0000000000000000-0000000007ffffff\n"
        "\n"
        "memory-region: pc.ram\n"
        "  0000000000000000-0000000007ffffff (prio 0, ram): pc.ram\n"
    )
    try:
        dumps = parse_text(text, "wrapped.txt")
    except SourceError as exc:
        assert exc.loc.line == 3
        return
    names = [mr.name for d in dumps if d.kind == "tree" for mr, _ in d.regions()]
    assert "alias ram-below-4g @pc.ram" not in names
    assert "ram-below-4g" in names


# --------------------------------------------------------------------------- prose


def test_prose_around_and_between_dumps_is_dropped():
    text = "\n".join(
        [
            'Test #1: x-msix-relocation = "off":',  # 1
            "",
            FV,  # 3
            ROOT,
            RAM,  # 5
            "",
            "Ok, works.",  # 7
            "",
            "Capabilities: [c0] MSI-X: Enable+ Count=96 Masked-",  # 9
            "        Vector table: BAR=1 offset=0000e000",
            "FlatView #2",  # 11
            ROOT,
            "Thanks,",  # 13
            "Alex",
        ]
    )
    segs = segments(text)
    assert [(s.linenos, s.lines) for s in segs] == [
        ((3, 4, 5), (FV, ROOT, RAM)),
        ((11, 12), ("FlatView #2", ROOT)),
    ]


def test_prose_only_text_has_no_segment():
    assert segments("Hello,\n\nthis mail has no dump.\n") == []


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("text", ["", "\n\n", "   \n\t\n", "\r\n"])
def test_empty_input_is_an_error_at_line_1(text):
    with pytest.raises(SourceError) as exc:
        segments(text, "e.txt")
    assert str(exc.value) == "e.txt:1: empty input: no dump found"


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "lone-CR"])
def test_binary_junk_is_located_on_its_line(eol):
    junk = RAM + "\x00\x00"
    text = eol.join([FV, ROOT, junk, BAR3]) + eol
    with pytest.raises(SourceError) as exc:
        segments(text, "j.txt")
    assert exc.value.loc.line == 3
    assert exc.value.text == junk


def test_binary_junk_shows_its_own_line_after_a_form_feed():
    """A form feed (^L, common in mailed patches) is not a line end for the line count."""
    junk = RAM + "\x00"
    text = "\n".join(["\x0c", FV, ROOT, junk]) + "\n"
    with pytest.raises(SourceError) as exc:
        segments(text, "j.txt")
    assert (exc.value.loc.line, exc.value.text) == (4, junk)


# --------------------------------------------------------------------------- the seed


def test_seed003_every_line_keeps_its_original_number():
    """Each cleaned line is its raw line without quote prefix and trailing blanks; a joined
    line is that plus ' ' plus the next raw line, cleaned the same way."""
    path, text = _seed003()
    raw = text.split("\n")
    pairs = _flat(segments(text, str(path)))
    dump_lines = [n for n, line in enumerate(raw, 1) if DUMP_START.match(_unquote(line)[1])]
    assert [n for n, line in pairs if line] == dump_lines
    joined = 0
    for n, line in pairs:
        own = _unquote(raw[n - 1])[1]
        if line != own:
            assert line == own + " " + _unquote(raw[n])[1], n
            joined += 1
    assert joined == 20


def test_seed003_segments_hold_only_dump_lines_at_one_quote_depth():
    path, text = _seed003()
    raw = text.split("\n")
    for seg in segments(text, str(path)):
        for n, line in zip(seg.linenos, seg.lines, strict=True):
            depth, _ = _unquote(raw[n - 1])
            assert line == "" or DUMP_START.match(line), (n, line)
            if line:
                assert depth == seg.quote_depth, n


def test_seed003_several_dumps_with_their_start_lines():
    """Seed 003 holds 15 flat views and 5 trees, each a dump of its own (one heading each):
    their start lines and kinds are those of the heading lines, found with our own regex."""
    path, text = _seed003()
    headings = []
    for n, line in enumerate(text.split("\n"), 1):
        depth, rest = _unquote(line)
        if HEADING.match(rest):
            headings.append((n, "flat" if rest.startswith("FlatView") else "tree", depth))
    assert [k for _, k, _ in headings].count("flat") == 15
    assert [k for _, k, _ in headings].count("tree") == 5
    dumps = parse_text(text, str(path))
    assert [(d.line, d.kind) for d in dumps] == [(n, k) for n, k, _ in headings]
    # quote depths seen: unquoted, '>', '>>', '> >>', '>>>>'
    assert sorted({depth for _, _, depth in headings}) == [0, 1, 2, 3, 4]
    segs = segments(text, str(path))
    depth_of = {n: s.quote_depth for s in segs for n in s.linenos}
    assert all(depth_of[n] == depth for n, _, depth in headings)
