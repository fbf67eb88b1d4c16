"""The ``flatview`` command line: argument handling only, the work is in flatview.api.

Exit status: 0 fine, 1 a finding (a mismatch, a regression), 2 a usage or input error
(one line on stderr naming the file, line and offending text; never a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from . import __version__, files
from .errors import FlatviewError, FlatviewWarning, UsageError
from .render.layout import WIDTH, wrap, wrap_lines

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (4 ms a run)

if TYPE_CHECKING:
    from typing import IO

    from .model import FlatDump, MemoryRegion, MtreeDump
    from .terminates import Version

# Each command imports what it uses when it runs (lark for dumps, tabulate for tables),
# so `flatview --help` and usage errors pay for argparse only (render.layout imports
# tabulate only when it lays out a table).

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_ERROR = 2
MAX_INPUT = "--max-input"  # also before the command name: _command_named must skip its value

# A command returns its output, its exit status and, optionally, report files staged
# to be committed once the output is written (flatview.files.OutputFile).
Command = Callable[[argparse.Namespace], tuple]


def _add_input(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("files", nargs="*", metavar="FILE", help="dump files ('-' for stdin)")
    else:
        p.add_argument("file", nargs="?", metavar="FILE", help="dump file ('-' for stdin)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_live(p)
    _add_wide(p)


def _add_live(p: argparse.ArgumentParser) -> None:
    """--qmp / --domain: capture a running QEMU in place of a FILE (every command that
    reads dumps takes them; see _inputs)."""
    g = p.add_argument_group("a running QEMU in place of a FILE (captured on the fly)")
    g.add_argument("--qmp", metavar="SOCKET", help="QEMU's QMP unix socket (-qmp unix:SOCKET)")
    g.add_argument("--domain", metavar="NAME", help="a running libvirt domain")
    g.add_argument("--connect", metavar="URI", help="libvirt URI for --domain (as virsh -c)")
    g.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up waiting for QEMU or libvirt after this long (default 10, virsh 30)",
    )


def _capture_live(args: argparse.Namespace):
    """The bundle of --qmp or --domain, or None when neither is given (captured once per
    command, however many times its inputs are read)."""
    if "_live" not in vars(args):
        args._live = _capture_once(args)
    return args._live


def _capture_once(args: argparse.Namespace):
    qmp, domain = getattr(args, "qmp", None), getattr(args, "domain", None)
    if qmp and domain:
        raise UsageError("give --qmp or --domain, not both")
    if getattr(args, "connect", None) and not domain:
        raise UsageError("--connect goes with --domain")
    timeout = {} if args.timeout is None else {"timeout": args.timeout}
    if qmp:
        from .capture.qmp import capture_qmp

        return capture_qmp(qmp, **timeout)
    if domain:
        from .capture.libvirt import capture_domain

        return capture_domain(domain, args.connect, **timeout)
    return None


def _inputs(args: argparse.Namespace, files: Sequence[str | None], need: int = 0):
    """(text, name) of each input: the FILEs given, then the running QEMU of --qmp /
    --domain (captured once, read as its bundle).  ``need``: how many inputs the command
    takes (0: one or more)."""
    from . import api

    out = [(api.read_text(f), f) for f in files if f is not None]
    bundle = _capture_live(args)
    if bundle is not None:
        from .capture.bundle import format_bundle

        out.append((format_bundle(bundle, __version__), bundle.source))
    if not out:
        raise UsageError(f"{args.command}: give a FILE, --qmp SOCKET or --domain NAME")
    if need and len(out) != need:
        raise UsageError(
            f"{args.command} takes {need} input(s) (FILEs, or one of them --qmp SOCKET / "
            f"--domain NAME); got {len(out)}"
        )
    return out


def _reading(args: argparse.Namespace):
    """The dumps of FILE, or of the running QEMU of --qmp / --domain, with what clean-up
    did to read them; and the input's name."""
    from . import api

    [(text, name)] = _inputs(args, [args.file], 1)
    return api.parse_reading(text, name), name


def _add_wide(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wide",
        action="store_true",
        help="one line per row, however long (default: text fits 100 columns)",
    )


def _width(args: argparse.Namespace) -> int | None:
    return None if getattr(args, "wide", False) else WIDTH


def _relocation_option(value: str) -> str:
    from .vfio.stack import OPTIONS  # only when the option is given: --help stays light

    if value not in OPTIONS:
        choices = ", ".join(repr(o) for o in OPTIONS)
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {choices})")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse's parser, except that a help, usage or version text that cannot be
    written is an error (argparse drops the OSError: ``flatview --help > /dev/full``
    exited 0 with nothing written).  Subparsers are made of the same class."""

    def _print_message(self, message: str, file: IO[str] | None = None) -> None:
        if message:
            (file or sys.stderr).write(message)


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    ap = _Parser(
        prog="flatview",
        description="Read QEMU 'info mtree' dumps, recompute FlatViews, and advise on VFIO "
        "MSI-X relocation.",
    )
    ap.add_argument("--version", action="version", version=f"flatview {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = _command_named(sys.argv[1:] if argv is None else argv)
    for name, (build, kwargs) in _PARSERS.items():
        if run in (None, name):
            build(sub.add_parser(name, **kwargs))
    _add_max_input(ap, sub)
    return ap


def _command_named(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, or None (no command, ``--help``, a usage error).

    Only that command's parser is built: building all eight costs ~8 ms a run, most of it
    argparse looking up translations of its own messages for each parser.  None builds
    them all, so help and "invalid choice" list every command."""
    args = iter(argv)
    for a in args:
        if a == MAX_INPUT:  # the one option before the command that takes a value
            next(args, None)
        elif not a.startswith(MAX_INPUT + "="):
            return a if a in COMMANDS else None
    return None


def _parse_options(p: argparse.ArgumentParser) -> None:
    _add_input(p)
    p.add_argument(
        "--format",
        choices=("table", "qemu"),
        default="table",
        help="table summary (default) or the dumps printed back in QEMU's format",
    )


def _flatten_options(p: argparse.ArgumentParser) -> None:
    _add_input(p)
    p.add_argument(
        "--format",
        choices=("qemu", "table"),
        default="qemu",
        help="QEMU's 'info mtree -f' layout (default) or a table per view",
    )
    p.add_argument(
        "--as",
        dest="address_spaces",
        action="append",
        metavar="NAME",
        help="only the views of these address spaces (repeatable)",
    )
    p.add_argument(
        "--region",
        metavar="NAME",
        help="which parts of this region are visible, and what shadows the rest",
    )
    p.add_argument(
        "--no-learn",
        action="store_true",
        help="ignore QEMU's own flat view in the input when deciding what terminates",
    )
    _add_qemu_version(p)
    _add_dump(
        p,
        "only the tree starting at this line, as 'flatview parse' lists them "
        "(repeatable; default: every tree in the input)",
    )


def _advise_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        help="dumps and/or lspci text ('-' for stdin; default: the bundled SAS3008 "
        "sample at 64K pages)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_live(p)
    p.add_argument(
        "--lspci",
        action="append",
        default=[],
        metavar="FILE",
        help="lspci -vvv output (host or guest), repeatable",
    )
    p.add_argument(
        "--info-pci",
        action="append",
        default=[],
        metavar="FILE",
        help="QEMU 'info pci' output, repeatable",
    )
    _add_page_device_options(p)
    _add_dump(
        p,
        "the dump(s) starting at this line, as 'flatview parse' lists them (default: "
        "the first dump, with the next one if it is of the other kind)",
    )
    p.add_argument(
        "--kernel",
        default="6.1",
        metavar="VERSION",
        help="host kernel version (before 4.16 the MSI-X table page cannot be "
        "mmap'd; default %(default)s)",
    )
    p.add_argument(
        "--wide",
        action="store_true",
        help="one line per table row and per note (default: fit 100 columns)",
    )
    p.add_argument(
        "--emit-mtree",
        metavar="OPTION",
        type=_relocation_option,
        help="print the simulated 'info mtree' for an x-msix-relocation option "
        "(off, auto, bar0 to bar5)",
    )
    p.add_argument(
        "--emit-flat",
        metavar="OPTION",
        type=_relocation_option,
        help="print the simulated 'info mtree -f' for an x-msix-relocation option",
    )


def _check_options(p: argparse.ArgumentParser) -> None:
    _add_input(p, many=True)
    p.add_argument(
        "--no-learn",
        action="store_true",
        help="do not learn from QEMU's flat view; test flatview's rules alone",
    )
    _add_qemu_version(p)


def _qemu_version(text: str) -> Version:
    from .terminates import parse_version

    try:
        return parse_version(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_qemu_version(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--qemu-version",
        type=_qemu_version,
        metavar="X.Y",
        help="the QEMU that printed the dump, for rules that differ by version "
        "(default: what the text shows)",
    )


def _add_max_input(ap: argparse.ArgumentParser, sub) -> None:
    """--max-input, before or after the command name (every command reads input)."""
    limit = files.format_size(files.DEFAULT_MAX_INPUT)
    text = f"read at most this much of any input (default {limit})"
    ap.add_argument(MAX_INPUT, metavar="SIZE", help=text)
    for p in sub.choices.values():
        p.add_argument(MAX_INPUT, metavar="SIZE", help=text, default=argparse.SUPPRESS)


def _add_dump(p: argparse.ArgumentParser, text: str) -> None:
    """--dump LINE (repeatable): pick dumps of the input by the line they start at."""
    p.add_argument("--dump", action="append", type=int, default=[], metavar="LINE", help=text)


def _add_page_device_options(p: argparse.ArgumentParser) -> None:
    """--page-size and --device, shared by advise, diff and gate."""
    p.add_argument(
        "--page-size",
        action="append",
        default=[],
        metavar="SIZE",
        help="host page size(s): 4K, 16K, 64K (repeatable or comma-separated; default 4K)",
    )
    p.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="BDF",
        help="only this host device (repeatable)",
    )


def _add_compare_options(p: argparse.ArgumentParser, first: str, second: str) -> None:
    p.add_argument("first", metavar=first.upper(), help="dump file ('-' for stdin)")
    p.add_argument(
        "second",
        nargs="?",
        metavar=second.upper(),
        help=f"dump file ('-' for stdin); leave it out to capture it with --qmp / --domain, "
        f"or when {first.upper()} is a diff of two dumps (' ', '+', '-' lines) holding both",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_live(p)
    _add_wide(p)
    _add_page_device_options(p)
    for side, dest in ((first, "first_dumps"), (second, "second_dumps")):
        p.add_argument(
            f"--{side}-dump",
            dest=dest,
            action="append",
            type=int,
            default=[],
            metavar="LINE",
            help=f"compare the dump of {side.upper()} starting at this line (as 'flatview "
            "parse' lists them; repeatable: a tree and a flat view); default: the first "
            "dump, with the next one if it is of the other kind",
        )


def _diff_options(p: argparse.ArgumentParser) -> None:
    _add_compare_options(p, "before", "after")


def _gate_options(p: argparse.ArgumentParser) -> None:
    _add_compare_options(p, "baseline", "candidate")
    p.add_argument(
        "--allow",
        metavar="FILE",
        help="allow-list of known regressions: 'DEVICE BAR PAGE_SIZE reason' per line",
    )
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE")
    p.add_argument("--html", metavar="FILE", help="also write the picture of the diff to FILE")


def _map_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="a dump (default: the bundled "
        "sample at 64K pages), or BEFORE AFTER for the picture of diff",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE.svg|FILE.html")
    p.add_argument(
        "--lspci",
        action="append",
        default=[],
        metavar="FILE",
        help="lspci -vvv output (where the MSI-X table and PBA really are), repeatable",
    )
    _add_page_device_options(p)
    _add_live(p)


def cmd_parse(args: argparse.Namespace) -> tuple[str, int]:
    reading, _ = _reading(args)
    dumps, cleaned = reading.dumps, reading.cleaned
    if args.json:
        from .render import json as json_render

        payload = {
            "dumps": [json_render.to_data(d) for d in dumps],
            "cleanup": {"skipped": cleaned.skipped, "lines": dict(sorted(cleaned.counts.items()))},
        }
        return json_render.dumps_json("parse", payload), EXIT_OK
    if args.format == "qemu":
        from .render import qemu as qemu_render

        return "\n".join(qemu_render.format_dump(d) for d in dumps), EXIT_OK
    from .render import table as table_render

    lines = [table_render.dump_summary(dumps, _width(args))]
    lines.extend(table_render.cleanup_text(cleaned.counts, cleaned.skipped))
    for d in dumps:
        lines.extend(wrap_lines(getattr(d, "diagnostics", ()), _width(args)))
    return "\n".join(lines) + "\n", EXIT_OK


def cmd_flatten(args: argparse.Namespace) -> tuple[str, int]:
    from . import api

    reading, name = _reading(args)
    dumps = list(reading.dumps)
    if args.dump:
        dumps = [d for n in dict.fromkeys(args.dump) for d in api.select_dumps(dumps, name, [n])]
    pairs = _trees_with_flats(dumps)
    if len(pairs) == 1:
        return _flatten_one(args, *pairs[0])
    outs = [_flatten_one(args, tree, flats) for tree, flats in pairs]
    if args.json:
        import json

        from .render import json as json_render

        docs = []
        for (t, _), (o, _) in zip(pairs, outs, strict=True):
            doc = json.loads(o)
            doc = {k: v for k, v in doc.items() if k not in ("schema_version", "command")}
            docs.append({"file": t.file, "line": t.line, **doc})
        return json_render.dumps_json("flatten", {"dumps": docs}), EXIT_OK
    return "".join(
        f"# info mtree at {t.file}:{t.line}\n{o}"
        for (t, _), (o, _) in zip(pairs, outs, strict=True)
    ), EXIT_OK


def _trees_with_flats(dumps: list) -> list[tuple[MtreeDump, list[FlatDump]]]:
    """Every tree of a text, each with QEMU's own flat view of the same machine when the
    text gives one next to it (``info mtree`` and ``info mtree -f`` taken together)."""
    from . import api
    from .model import FlatDump, MtreeDump

    trees, _ = api.split_kinds(dumps)
    if not trees:
        raise UsageError("no 'info mtree' tree in the input (flatten needs a tree)")
    out = []
    for i, d in enumerate(dumps):
        if isinstance(d, MtreeDump):
            near = [x for x in dumps[max(i - 1, 0) : i + 2] if isinstance(x, FlatDump)]
            if len(trees) == 1:
                near = [x for x in dumps if isinstance(x, FlatDump)]
            out.append((d, near[:1]))
    return out


def _flatten_one(args: argparse.Namespace, tree: MtreeDump, flats: list[FlatDump]):
    from . import api
    from .render import table as table_render

    result = api.flatten(tree, [] if args.no_learn else flats, args.qemu_version)
    views = result.views
    if args.address_spaces:
        wanted = set(args.address_spaces)
        views = tuple(v for v in views if wanted & set(v.names) or v.root in wanted)
        if not views:
            raise UsageError(f"no address space named {', '.join(sorted(wanted))}")
    if args.json:
        from .render import json as json_render
    if args.region:
        from .visibility import visibility

        vis = visibility(tree, result, args.region)
        if args.json:
            return json_render.dumps_json("flatten", {"visibility": vis}), EXIT_OK
        return table_render.visibility_text(vis, _width(args)), EXIT_OK
    from .terminates import infer_version

    if args.json:
        evidence = infer_version(tree)
        payload = json_render.to_data(result)
        payload["views"] = [json_render.flatview(v) for v in views]
        payload["qemu_version"] = {
            "given": ".".join(map(str, args.qemu_version)) if args.qemu_version else None,
            "at_least": ".".join(map(str, evidence.lowest)) if evidence.lowest else None,
            "below": ".".join(map(str, evidence.below)) if evidence.below else None,
            "evidence": list(evidence.reasons),
        }
        return json_render.dumps_json("flatten", payload), EXIT_OK
    if args.format == "qemu":
        from .render import qemu as qemu_render

        out = "".join(
            "\n".join(qemu_render.format_flatview(v, _flat_variant(tree, flats))) + "\n\n"
            for v in views
        )
    else:
        parents, width = _parents(tree), _width(args)
        out = "".join(
            "\n".join(
                wrap(
                    f"FlatView #{v.number}: {', '.join(v.names)} (root {v.root or '(none)'})", width
                )
            )
            + "\n"
            + (
                table_render.flatten_table(v, parents, width)
                if v.ranges
                else "  No rendered FlatView"
            )
            + "\n\n"
            for v in views
        )
    # QEMU's own lines are printed as QEMU prints them; the notes fit the width after '# '
    width = _width(args)
    notes = table_render.guesses_text(result, None if width is None else width - 2)
    if args.qemu_version or any(a.kind == "version-dependent" for a in result.ambiguities):
        evidence = infer_version(tree)  # only when it is reported: it walks the tree again
        given = args.qemu_version
        note = (
            f"QEMU version {given[0]}.{given[1]} (--qemu-version); the text shows: "
            + evidence.text()
            if given
            else evidence.text()
        )
        notes.extend(wrap(note, None if width is None else width - 2))
    return out + "".join(f"# {n}\n" for n in notes), EXIT_OK


def _root(v) -> str:
    return f"root {v.root or '(none)'}"


def _flat_variant(tree: MtreeDump, flats: list[FlatDump]):
    """Print in the layout of the QEMU that printed the input."""
    return flats[0].variant if flats else None


def _parents(tree: MtreeDump) -> dict[int, MemoryRegion]:
    from .model import walk

    parents: dict[int, MemoryRegion] = {}
    for root in tree.roots():
        for mr, _ in walk(root):
            for c in mr.subregions:
                parents.setdefault(id(c), mr)
    return parents


def cmd_advise(args: argparse.Namespace) -> tuple[str, int]:
    from . import api
    from .render import advice as advice_render
    from .vfio.stack import kernel_era

    live = bool(args.qmp or args.domain)
    if args.file is None and not live and _stdin_has_input():
        args.file = "-"  # `cat dump | flatview advise`
    if args.file is None and not live:
        text, name = api.bundled_sample()
        sizes = api.parse_page_sizes(args.page_size or ["64K"])
    else:
        [(text, name)] = _inputs(args, [args.file], 1)
        sizes = api.parse_page_sizes(args.page_size or ["4K"])
    extra = _pci_listings(args)
    era = kernel_era(args.kernel)
    advice, facts = api.advise(
        text, name, sizes, extra_pci=extra, devices=args.device, era=era, lines=args.dump
    )
    if args.emit_mtree or args.emit_flat:
        return _emit(args, facts, sizes, era)
    if args.json:
        from .render import json as json_render

        return json_render.dumps_json("advise", advice_render.advice_data(advice)), EXIT_OK
    return advice_render.advice_text(advice, wide=args.wide), EXIT_OK


def _pci_listings(args: argparse.Namespace) -> list:
    """The devices of --lspci and --info-pci files (each parser imported when used;
    ``map`` has no --info-pci)."""
    from . import api

    extra = []
    if args.lspci:
        from .vfio.lspci import parse_lspci

        extra += [d for f in args.lspci for d in parse_lspci(api.read_text(f), f)]
    if getattr(args, "info_pci", None):
        from .vfio.infopci import parse_info_pci

        extra += [d for f in args.info_pci for d in parse_info_pci(api.read_text(f), f)]
    return extra


def _emit(args: argparse.Namespace, facts, sizes: list[int], era: str) -> tuple[str, int]:
    """--emit-mtree / --emit-flat: the simulated stacks, each device and page size (both
    kinds when both are asked for; JSON with --json)."""
    from .advisor import simulate
    from .render import json as json_render
    from .render import qemu as qemu_render

    out, data = [], []
    for f in facts:
        for page in sizes:
            for kind, option in (
                ("info mtree", args.emit_mtree),
                ("info mtree -f", args.emit_flat),
            ):
                if not option:
                    continue
                reloc, tree, view = simulate(f, option, page, era)
                if tree is None or view is None:
                    raise UsageError(f"x-msix-relocation={option}: {reloc.error}")
                if kind == "info mtree":
                    text = qemu_render.format_mtree(tree)
                else:
                    text = "\n".join(qemu_render.format_flatview(view)) + "\n\n"
                head = f"# {f.device.address}, host pages {page // 1024}K, "
                out.append((head, option, kind, text))
                data.append(
                    {
                        "device": f.device.address,
                        "page_size": page,
                        "option": option,
                        "command": kind,
                        "text": text,
                    }
                )
    if args.json:
        return json_render.dumps_json("advise", {"simulated": data}), EXIT_OK
    if len(out) == 1:  # one stack: exactly what QEMU would print
        return out[0][3], EXIT_OK
    return "".join(f"{h}x-msix-relocation={o}: {k}\n{t}" for h, o, k, t in out), EXIT_OK


def _stdin_has_input() -> bool:
    """A pipe, a file or a socket on stdin is input; a terminal or /dev/null is not."""
    import stat

    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (AttributeError, OSError, ValueError):  # closed, or replaced (pytest)
        return False
    return not stat.S_ISCHR(mode)


def cmd_check(args: argparse.Namespace) -> tuple[str, int]:
    from . import api

    dumps = [d for text, name in _inputs(args, args.files) for d in api.parse_text(text, name)]
    trees, flats = api.split_kinds(dumps)
    if len(trees) != len(flats) or not trees:
        raise UsageError(
            f"check needs 'info mtree' and 'info mtree -f' of the same machine in pairs; "
            f"got {len(trees)} tree(s) and {len(flats)} flat view dump(s)"
        )
    reports = [
        api.check(t, f, learn=not args.no_learn, qemu_version=args.qemu_version)
        for t, f in zip(trees, flats, strict=True)
    ]
    bad = any(not r.ok for r in reports)
    if args.json:
        from .render import json as json_render

        payload = {"ok": not bad, "pairs": [json_render.to_data(r) for r in reports]}
        return json_render.dumps_json("check", payload), EXIT_FINDING if bad else EXIT_OK
    from .render import table as table_render

    lines = []
    width = _width(args)
    for t, f, r in zip(trees, flats, reports, strict=True):
        # the head names two files and the mismatches carry QEMU's own lines: never wrapped
        lines.append(
            f"{t.file}:{t.line} vs {f.file}:{f.line}: {r.views_compared} flat views, "
            f"{r.ranges_compared} ranges compared, {len(r.mismatches)} mismatch(es)"
        )
        lines.extend(table_render.mismatch_text(r))
        lines.extend(table_render.guesses_text(r.result, width))
    lines.append("FAIL" if bad else "OK")
    return "\n".join(lines) + "\n", EXIT_FINDING if bad else EXIT_OK


def _sides(args: argparse.Namespace):
    from . import api
    from .diff import load_sides

    if args.first == "-" and args.second == "-":
        raise UsageError("only one of the two inputs can be '-' (standard input)")
    sizes = api.parse_page_sizes(args.page_size or ["4K"])
    live = bool(getattr(args, "qmp", None) or getattr(args, "domain", None))
    if args.second is None and not live:
        # one FILE and no running QEMU: a hand-made diff holding both sides
        return _diff_paste_sides(args), sizes
    inputs = _inputs(args, [args.first, args.second], 2)
    lines = (args.first_dumps, args.second_dumps)
    sides = load_sides((text, name, ln) for (text, name), ln in zip(inputs, lines, strict=True))
    return sides, sizes


def _diff_paste_sides(args: argparse.Namespace):
    """One input holding a diff of two dumps: its before and after sides."""
    from . import api
    from .diff import side_from_dumps

    dumps = api.load(args.first)
    sides = []
    for part, lines in (("before", args.first_dumps), ("after", args.second_dumps)):
        mine = [d for d in dumps if d.part == part]
        if not mine:
            raise UsageError(
                f"{args.first}: one input given, but it holds no diff of two dumps "
                "(' ', '+' and '-' lines); give two inputs"
            )
        chosen = api.select_dumps(mine, args.first, lines)
        sides.append(side_from_dumps(chosen, f"{args.first} ({part})", []))
    return tuple(sides)


def cmd_diff(args: argparse.Namespace) -> tuple[str, int]:
    from .diff import diff
    from .render import diff as diff_render

    (before, after), sizes = _sides(args)
    devices = [d if d.count(":") != 1 else f"0000:{d}" for d in args.device]
    report = diff(before, after, sizes, devices)
    if args.json:
        from .render import json as json_render

        return json_render.dumps_json("diff", diff_render.diff_data(report)), EXIT_OK
    return diff_render.diff_text(report, _width(args)), EXIT_OK


def cmd_gate(args: argparse.Namespace) -> tuple:
    from . import api
    from .gate import gate, parse_allow
    from .render import diff as diff_render

    inputs = [f for f in (args.first, args.second, args.allow) if f]
    report_file = files.OutputFile(args.junit, "--junit", inputs) if args.junit else None
    html_file = files.OutputFile(args.html, "--html", inputs) if args.html else None
    if report_file is not None and html_file is not None and args.junit == args.html:
        raise UsageError(f"--junit and --html name the same file {args.junit!r}")
    rules = parse_allow(api.read_text(args.allow), args.allow) if args.allow else ()
    if args.second is not None and os.path.isdir(args.first) and os.path.isdir(args.second):
        return _gate_matrix(args, rules, report_file)
    (baseline, candidate), sizes = _sides(args)
    report = gate(baseline, candidate, sizes, args.device, rules)
    status = EXIT_OK if report.ok else EXIT_FINDING
    if args.json:
        from .render import json as json_render

        out = json_render.dumps_json("gate", diff_render.gate_data(report))
    else:
        out = diff_render.gate_text(report, _width(args))
    reports = []
    if report_file is not None:
        from .render.junit import junit_xml

        report_file.stage(junit_xml(report))  # each committed once the output is written
        reports.append(report_file)
    if html_file is not None:
        verdict = "pass" if report.ok else f"FAIL, {len(report.regressions)} regression(s)"
        title = f"flatview gate ({verdict}): {args.first} → {args.second}"
        html_file.stage(_diff_picture(args, title, "html"))
        reports.append(html_file)
    return out, status, reports


def _gate_matrix(args: argparse.Namespace, rules, report_file) -> tuple:
    """``gate BASELINE_DIR CANDIDATE_DIR``: the bundles of two matrix captures."""
    from . import api
    from .gate import gate_matrix
    from .render import diff as diff_render
    from .render import json as json_render
    from .render.junit import junit_matrix_xml

    if args.first_dumps or args.second_dumps or args.qmp or args.domain:
        raise UsageError("gate of two folders takes no --...-dump, --qmp or --domain")
    sizes = api.parse_page_sizes(args.page_size or ["4K"])
    report = gate_matrix(args.first, args.second, sizes, args.device, rules)
    status = EXIT_OK if report.ok else EXIT_FINDING
    if args.json:
        out = json_render.dumps_json("gate", diff_render.matrix_gate_data(report))
    else:
        out = diff_render.matrix_gate_text(report)
    if report_file is None:
        return out, status
    report_file.stage(junit_matrix_xml(report))  # committed once the output is written
    return out, status, [report_file]


def _diff_picture(args: argparse.Namespace, title: str, fmt: str) -> str:
    from .diff import diff
    from .pictures import diff_picture

    (before, after), sizes = _sides(args)
    devices = [d if d.count(":") != 1 else f"0000:{d}" for d in args.device]
    return diff_picture(diff(before, after, sizes, devices), before, after, title, fmt)


def cmd_map(args: argparse.Namespace) -> tuple:
    from . import api
    from .pictures import map_picture

    fmt = {"svg": "svg", "html": "html", "htm": "html"}.get(args.output.rpartition(".")[2].lower())
    if fmt is None:
        raise UsageError(f"-o: {args.output!r} must end in .svg or .html")
    live = 1 if args.qmp or args.domain else 0
    count = len(args.inputs) + live
    if count > 2 or (count == 2 and args.lspci):
        raise UsageError("map takes one input (with --lspci), or two: BEFORE AFTER")
    picture = files.OutputFile(args.output, "-o", [*args.inputs, *args.lspci])
    if count == 2:
        args.first, args.second = [*args.inputs, None][:2]
        args.first_dumps = args.second_dumps = []
        title = f"flatview map: {args.first} → {args.second}"
        picture.stage(_diff_picture(args, title, fmt))
        return "", EXIT_OK, [picture]
    if count:
        [(text, name)] = _inputs(args, args.inputs, 1)
    else:
        text, name = api.bundled_sample()
    sizes = api.parse_page_sizes(args.page_size or ["4K" if count else "64K"])
    extra = _pci_listings(args)
    picture.stage(map_picture(text, name, sizes, args.device, extra, fmt))
    return "", EXIT_OK, [picture]


def _write_file(path: str, text: str) -> None:
    """Write all or nothing: a temporary file beside ``path``, then os.replace."""
    from .capture.bundle import write_atomic

    write_atomic(path, text)


def cmd_capture(args: argparse.Namespace) -> tuple[str, int]:
    """The three capture forms and the matrix (flatview.capture)."""
    import time

    from . import api
    from .capture.bundle import format_bundle

    forms = [bool(args.qmp or args.domain), bool(args.qemu_argv), bool(args.matrix)]
    if sum(forms) != 1:
        raise UsageError(
            "capture needs one of: --qmp SOCKET, --domain NAME, -- QEMU ARGS..., "
            "or --matrix MATRIX --qemu BINARY --out DIR"
        )
    timing = {} if args.timeout is None else {"timeout": args.timeout}
    if args.matrix:
        from .capture.matrix import load_matrix, run_matrix

        if not args.qemu or not args.out_dir or args.output:
            raise UsageError("--matrix takes --qemu BINARY and --out DIR (not -o)")
        matrix = load_matrix(api.read_text(args.matrix), args.matrix)
        done = run_matrix(
            matrix,
            args.qemu,
            args.out_dir,
            lambda path, b: _write_file(path, format_bundle(b, __version__)),
            settle=args.settle,
            **timing,
        )
        lines = [
            f"{c.name}: {path} ({secs:.1f} s){''.join(f'; note: {n}' for n in notes)}"
            for c, path, secs, notes in done
        ]
        return "\n".join(lines) + "\n", EXIT_OK
    if args.qemu or args.out_dir:
        raise UsageError("--qemu and --out go with --matrix")
    if not args.output:
        raise UsageError("capture needs -o FILE ('-' for standard output)")
    t0 = time.monotonic()
    if args.qemu_argv:
        from .capture.launch import capture_launch

        bundle = capture_launch(args.qemu_argv, paused=args.paused, settle=args.settle, **timing)
    else:
        bundle = _capture_live(args)
    text = format_bundle(bundle, __version__)
    notes = "".join(f"note: {n}\n" for n in bundle.notes)
    if args.output == "-":
        return text, EXIT_OK
    _write_file(args.output, text)
    secs = time.monotonic() - t0
    return f"{args.output}: QEMU {bundle.version} ({bundle.source}), {secs:.2f} s\n{notes}", EXIT_OK


def _capture_options(p: argparse.ArgumentParser) -> None:
    from .capture import DEFAULT_SETTLE

    p.add_argument("-o", "--output", metavar="FILE", help="the bundle ('-' for stdout)")
    _add_live(p)
    p.add_argument(
        "--paused",
        action="store_true",
        help="launch with -S: capture before any guest code runs (no BAR mapped)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=DEFAULT_SETTLE,
        metavar="SECONDS",
        help="launch: the BAR map must stay the same this long (default %(default)s)",
    )
    p.add_argument("--matrix", metavar="MATRIX", help="TOML file of configurations")
    p.add_argument("--qemu", metavar="BINARY", help="the QEMU binary for --matrix")
    p.add_argument("--out", dest="out_dir", metavar="DIR", help="--matrix: one NAME.txt each")
    p.add_argument(
        "qemu_argv",
        nargs="*",
        metavar="-- QEMU ARGS",
        help="launch this QEMU command line with a QMP socket of its own",
    )


COMMANDS: dict[str, Command] = {
    "parse": cmd_parse,
    "flatten": cmd_flatten,
    "check": cmd_check,
    "advise": cmd_advise,
    "diff": cmd_diff,
    "gate": cmd_gate,
    "capture": cmd_capture,
    "map": cmd_map,
}


# Each command's parser: how to build it, and what the top-level help says of it (in
# this order).
_PARSERS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], dict[str, str]]] = {
    "parse": (_parse_options, {"help": "read dumps and summarise them"}),
    "flatten": (_flatten_options, {"help": "recompute the FlatViews of an 'info mtree' tree"}),
    "advise": (_advise_options, {"help": "MSI-X page loss and relocation options per device"}),
    "check": (
        _check_options,
        {"help": "compare recomputed FlatViews with QEMU's own 'info mtree -f'"},
    ),
    "diff": (
        _diff_options,
        {"help": "what changed between two dumps; direct-mapped pages per device/BAR"},
    ),
    "gate": (
        _gate_options,
        {"help": "CI gate: fail when a device loses direct-mapped pages (exit 1)"},
    ),
    "map": (_map_options, {"help": "picture of each BAR's host pages and the memory map"}),
    "capture": (
        _capture_options,
        {
            "help": "write a bundle (info mtree, -f, info pci, version) of a running or "
            "launched QEMU",
            "description": "flatview capture --qmp SOCKET -o FILE | --domain NAME -o FILE | "
            "-o FILE -- QEMU ARGS... | --matrix MATRIX --qemu BINARY --out DIR",
        },
    ),
}

EXIT_BUG = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped
BUG_REPORT = (
    "please report it with the command line and its input (set FLATVIEW_TRACEBACK=1 for "
    "the details; see 'Reporting a bug' in the README)"
)


def run() -> None:
    """The console script and ``python -m flatview``: :func:`main` in a process of its own.

    A run builds one model with no reference cycles and exits, so the cyclic garbage
    collector has little to find: it runs less often (as mypy tunes it), and the
    collection at interpreter exit skips what the run built (``gc.freeze``).  Together
    ~5% of a run on a 3,000-line dump.  Not in :func:`main`: callers in a longer-lived
    process keep their own collector settings."""
    import gc

    # Tables are measured with len(), as render.layout measures what it wraps; tabulate
    # measures with wcwidth wherever another package installed it: another layout of
    # the same input on another machine, and 6% of an advise run (56M of 936M
    # instructions) to import wcwidth 0.7.  Only in a process of flatview's own: a
    # program that imports flatview keeps its tabulate as it set it up.
    sys.modules.setdefault("wcwidth", None)
    gc.set_threshold(100_000, 50, 100)
    status = main()
    gc.freeze()
    sys.exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever happens, one line on stderr and a documented exit status.

    0 fine, 1 a finding, 2 bad usage or input (also an unwritable output), 3 a bug in
    flatview (never 1: ``gate`` must not read a crash as a regression), 130 interrupted.
    """
    _tolerant_streams()
    staged: list[files.OutputFile] = []
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", FlatviewWarning)
            status = _run(argv, staged)
        if status in (EXIT_OK, EXIT_FINDING):  # an error's one line stays the only one
            for msg in dict.fromkeys(
                str(w.message) for w in seen if issubclass(w.category, FlatviewWarning)
            ):
                _say(f"warning: {msg}")
        return status
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("FLATVIEW_TRACEBACK"):
            raise
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = ""
        if tb is not None:
            where = f" at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        _say(
            f"internal error (a bug in flatview {__version__}): {type(exc).__name__}"
            f"{': ' + text if text else ''}{where}; {BUG_REPORT}"
        )
        return EXIT_BUG
    finally:
        for f in staged:
            f.discard()  # a report not committed by a successful run is never left behind


def _run(argv: Sequence[str] | None, staged: list[files.OutputFile]) -> int:
    try:
        args = _parser(argv).parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error argparse printed
        code = done.code if isinstance(done.code, int) else EXIT_ERROR
        return code if _flush_stdout() else EXIT_ERROR
    except BrokenPipeError:  # `flatview --help | head -1`: the reader had enough
        _quiet_stdout()
        return EXIT_OK
    except OSError as exc:  # the help or usage could not be written (/dev/full)
        _quiet_stdout()
        _say(f"cannot write the output: {exc.strerror}")
        return EXIT_ERROR
    if sys.stdout is None:
        _say("cannot write the output: standard output is closed")
        return EXIT_ERROR
    token = files.INPUT_LIMIT.set(files.DEFAULT_MAX_INPUT)
    try:
        if args.max_input:
            files.INPUT_LIMIT.set(files.parse_size(args.max_input, MAX_INPUT))
        result = COMMANDS[args.command](args)
    except FlatviewError as exc:
        _say(str(exc))
        return EXIT_ERROR
    except RecursionError:
        _say("region tree too deep to render")
        return EXIT_ERROR
    finally:
        files.INPUT_LIMIT.reset(token)
    out, status = result[0], result[1]
    reports: Sequence[files.OutputFile] = result[2] if len(result) > 2 else ()
    staged.extend(reports)
    try:
        sys.stdout.write(out)
    except BrokenPipeError:  # `flatview ... | head`: the reader has what it wanted
        _quiet_stdout()
        return status
    except OSError as exc:
        _quiet_stdout()
        _say(f"cannot write the output: {exc.strerror}")
        return EXIT_ERROR
    if not _flush_stdout():
        return EXIT_ERROR
    try:
        for f in reports:
            f.commit()
    except FlatviewError as exc:
        _say(str(exc))
        return EXIT_ERROR
    return status


def _say(msg: str) -> None:
    """One line on stderr, always: control characters (from an option value, a file
    name) are shown escaped."""
    if not msg.isprintable():
        msg = "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)
    if sys.stderr is not None:  # else nowhere is left to say it; the exit status still does
        with contextlib.suppress(OSError, ValueError):
            print(f"flatview: {msg}", file=sys.stderr, flush=True)


def _flush_stdout() -> bool:
    """Flush now, while an error can still be reported (not at interpreter exit)."""
    if sys.stdout is None:
        return True
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except OSError as exc:  # /dev/full, a closed descriptor
        _quiet_stdout()
        _say(f"cannot write the output: {exc.strerror}")
        return False
    return True


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush has nothing to fail on."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _tolerant_streams() -> None:
    """A terminal that cannot show a character (PYTHONIOENCODING=ascii, LANG=C) gets an
    escape (``\\u2192``) instead of a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors="backslashreplace")


if __name__ == "__main__":
    sys.exit(main())
