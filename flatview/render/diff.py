"""``flatview diff`` and ``flatview gate`` for a person (tables, grouped by device) and
for tools (plain data for ``--json``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..diff import BarDiff, BarFigures, DiffReport, RangeChange, RegionChange, ViewDiff, verdict
from ..gate import AllowRule, GateReport, Regression, why_text
from .layout import WIDTH, table, wrap, wrap_lines
from .pages import run_data
from .units import human_size, page_label

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (4 ms a run)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["diff_data", "diff_text", "gate_data", "gate_line", "gate_text", "page_label"]


def _pair(before: str | None, after: str | None) -> str:
    before, after = before or "-", after or "-"
    return before if before == after else f"{before} -> {after}"


# ------------------------------------------------------------------------------ the diff


def _fig_size(f: BarFigures | None) -> str | None:
    if f is None:
        return None
    if f.is_io:
        return "I/O"
    size = human_size(f.guest_size)
    return size if f.host_size else f"{size} (no host BAR)"


def _fig_pages(f: BarFigures | None) -> str | None:
    if f is None or f.is_io or not f.host_size:
        return None
    return f"{f.pages_direct}/{f.pages_total}"


def _bar_rows(bars: Sequence[BarDiff]) -> list[list[str]]:
    rows = []
    for d in bars:
        b, a = d.before, d.after
        base = [
            f"{x.guest_base:#x}" if x is not None and x.guest_base is not None else None
            for x in (b, a)
        ]
        ramd = [human_size(x.ramd_bytes) if x and x.host_size else None for x in (b, a)]
        rows.append(
            [
                page_label(d.page_size),
                f"BAR{d.index}" if d.index is not None else "device",
                _pair(*base),
                _pair(_fig_size(b), _fig_size(a)),
                _pair(*ramd),
                _pair(_fig_pages(b), _fig_pages(a)),
                verdict(d),
            ]
        )
    return rows


_BAR_HEADS = ["page", "BAR", "guest base", "size", "ramd", "direct pages", "change"]


def _range_ref(ref) -> str:
    if ref is None:
        return "(unassigned)"
    off = f" @{ref.offset:#x}" if ref.offset else ""
    return f"{ref.name}{off} ({ref.type})"


def _range_rows(changes: Sequence[RangeChange]) -> list[list[str]]:
    rows = []
    for c in changes:
        what = c.what
        if what == "kind" and c.before is not None and c.after is not None:
            what = f"{c.before.type} -> {c.after.type}"
        elif what == "region":
            what = "other region"
        rows.append(
            [
                f"{c.start:#x}",
                f"{c.end - 1:#x}",
                human_size(c.end - c.start),
                what,
                _range_ref(c.before),
                _range_ref(c.after),
            ]
        )
    return rows


_RANGE_HEADS = ["start", "end", "size", "change", "before", "after"]


def _region_span(ref) -> str:
    return f"{ref.start:#x}-{ref.start + ref.size - 1:#x}"


def _region_detail(c: RegionChange) -> str:
    b, a = c.before, c.after
    if b is None or a is None:
        ref = a or b
        assert ref is not None
        below = f", with {c.below} subregion(s)" if c.below else ""
        off = "" if ref.enabled else " [disabled]"
        return f"{_region_span(ref)} (prio {ref.priority}, {ref.type}){off}{below}"
    bits = []
    for what in c.what:
        if what == "moved":
            bits.append(f"at {b.start:#x} -> {a.start:#x}")
        elif what == "resized":
            bits.append(f"size {human_size(b.size)} -> {human_size(a.size)}")
        elif what == "re-prioritised":
            bits.append(f"prio {b.priority} -> {a.priority}")
        elif what == "type changed":
            bits.append(f"type {b.type} -> {a.type}")
        elif what == "alias retargeted":
            bits.append(f"alias {b.alias or '-'} -> {a.alias or '-'}")
        else:
            bits.append(what)
    return "; ".join(bits)


def _region_rows(changes: Sequence[RegionChange]) -> list[list[str]]:
    return [[", ".join(c.what), " / ".join(c.path), c.where, _region_detail(c)] for c in changes]


_REGION_HEADS = ["change", "region (path)", "in", "detail"]


def _views_of(views: Sequence[ViewDiff], device: str | None) -> list[tuple[ViewDiff, list]]:
    out = []
    for v in views:
        mine = [c for c in v.changes if c.device == device]
        if mine or (device is None and v.only_in):
            out.append((v, mine))
    return out


def _changes_block(
    views: Sequence[ViewDiff],
    regions: Sequence[RegionChange],
    device: str | None,
    width: int | None = WIDTH,
) -> list[str]:
    out = []
    for v, mine in _views_of(views, device):
        label = ", ".join(v.address_spaces)
        if v.only_in:
            out.extend(wrap(f"flat view of {label}: only {v.only_in}", width))
        if mine:
            out.extend(wrap(f"flat ranges that changed [{label}]:", width))
            out.append(table(_range_rows(mine), _RANGE_HEADS, width))
    mine_r = [c for c in regions if c.device == device]
    if mine_r:
        out.append("regions that changed:")
        out.append(table(_region_rows(mine_r), _REGION_HEADS, width))
    return out


def _gate_summary(report: DiffReport, width: int | None = WIDTH) -> list[str]:
    sizes = ", ".join(page_label(p) for p in report.page_sizes)
    out = []
    for label, regs in (
        ("gate BEFORE -> AFTER", report.regressions),
        ("reversed (gate AFTER -> BEFORE)", report.reverse_regressions),
    ):
        if not regs:
            out.extend(
                wrap(f"{label}: passes (no BAR loses a direct-mapped page at {sizes})", width)
            )
        else:
            out.append(f"{label}: fails")
            out.extend(wrap_lines([f"  {gate_line(r)}" for r in _as_regressions(regs)], width))
    return out


def _as_regressions(regs: Sequence[BarDiff]) -> list[Regression]:
    return [
        Regression(d.device, d.index, d.page_size, d.pages_before, d.pages_after, why_text(d))
        for d in regs
    ]


def diff_text(report: DiffReport, width: int | None = WIDTH) -> str:
    """The diff for a person: fits ``width`` columns (None: one line per row)."""
    out = [f"before: {report.before}", f"after:  {report.after}", ""]
    for dev in report.devices:
        where = (
            "in both"
            if dev.in_before and dev.in_after
            else "before only: gone"
            if dev.in_before
            else "after only: new"
        )
        out.append(f"== {dev.bdf} ({where})")
        if dev.bars:
            out.append(table(_bar_rows(dev.bars), _BAR_HEADS, width))
        out.extend(_changes_block(report.views, report.regions, dev.bdf, width))
        out.append("")
    other = _changes_block(report.views, report.regions, None, width)
    if other:
        out.append("== other changes (no assigned device)")
        out.extend(other)
        out.append("")
    if not report.views and not report.regions:
        out.append("no flat range and no region changed")
    for names in report.unchanged:
        out.extend(wrap(f"unchanged flat view: {', '.join(names)}", width))
    out.extend(_gate_summary(report, width))
    out.extend(wrap_lines([f"note: {n}" for n in report.notes], width))
    return "\n".join(out) + "\n"


def _figures_data(f: BarFigures | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "guest_base": f.guest_base,
        "guest_size": f.guest_size,
        "host_size": f.host_size,
        "is_io": f.is_io,
        "ramd_bytes": f.ramd_bytes,
        "pages_total": f.pages_total,
        "pages_direct": f.pages_direct,
        "msix_only": f.msix_only,
        "holds": list(f.holds),
        "lost_pages": [run_data(r) for r in f.lost],
    }


def _bar_data(d: BarDiff) -> dict[str, Any]:
    return {
        "device": d.device,
        "bar": d.index,
        "page_size": d.page_size,
        "pages_before": d.pages_before,
        "pages_after": d.pages_after,
        "regressed": d.regressed,
        "verdict": verdict(d),
        "lost_pages": [run_data(r) for r in d.lost],
        "gained_pages": [run_data(r) for r in d.gained],
        "traps": [
            {"name": t.name, "start": t.start, "end": t.end - 1, "what": t.what, "guest": t.guest}
            for t in d.traps
        ],
        "why": d.why,
        "before": _figures_data(d.before),
        "after": _figures_data(d.after),
    }


def _ref_data(ref) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {k: getattr(ref, k) for k in ref.__slots__}


def _range_data(c: RangeChange) -> dict[str, Any]:
    return {
        "start": c.start,
        "end": c.end - 1,
        "size": c.end - c.start,
        "what": c.what,
        "before": _ref_data(c.before),
        "after": _ref_data(c.after),
        "device": c.device,
        "bar": c.bar,
    }


def _region_data(c: RegionChange) -> dict[str, Any]:
    return {
        "where": c.where,
        "path": list(c.path),
        "what": list(c.what),
        "before": _ref_data(c.before),
        "after": _ref_data(c.after),
        "subregions": c.below,
        "device": c.device,
    }


def diff_data(report: DiffReport) -> dict[str, Any]:
    return {
        "before": report.before,
        "after": report.after,
        "page_sizes": list(report.page_sizes),
        "devices": [
            {
                "device": d.bdf,
                "in_before": d.in_before,
                "in_after": d.in_after,
                "bars": [_bar_data(b) for b in d.bars],
                "regions": [_region_data(c) for c in d.regions],
                "ranges": [_range_data(c) for c in d.ranges],
            }
            for d in report.devices
        ],
        "views": [
            {
                "address_spaces": list(v.address_spaces),
                "before_line": v.before_line,
                "after_line": v.after_line,
                "only_in": v.only_in,
                "changes": [_range_data(c) for c in v.changes],
            }
            for v in report.views
        ],
        "unchanged_views": [list(n) for n in report.unchanged],
        "regions": [_region_data(c) for c in report.regions],
        "gate": {
            "passes": not report.regressions,
            "regressions": [_bar_data(b) for b in report.regressions],
            "reverse_passes": not report.reverse_regressions,
            "reverse_regressions": [_bar_data(b) for b in report.reverse_regressions],
        },
        "notes": list(report.notes),
    }


# ------------------------------------------------------------------------------ the gate


def gate_line(r: Regression) -> str:
    """One line per regression: device, BAR, page size, pages before and after, why."""
    bar = f"BAR{r.bar}" if r.bar is not None else "(whole device)"
    return (
        f"{r.device} {bar} {page_label(r.page_size)}: {r.pages_before} direct-mapped "
        f"page(s) before, {r.pages_after} after: {r.why}"
    )


def _rule_text(rule: AllowRule) -> str:
    return f"{rule.where}: {rule.reason}"


def gate_text(report: GateReport, width: int | None = WIDTH) -> str:
    """The gate's verdict for a person: fits ``width`` columns (None: one line per row)."""
    sizes = ", ".join(page_label(p) for p in report.page_sizes)
    out = [f"baseline:  {report.baseline}", f"candidate: {report.candidate}"]
    hang = " " * len("REGRESSION ")
    for r in report.regressions:
        out.extend(wrap(f"REGRESSION {gate_line(r)}", width, hang))
    for r in report.allowed:
        assert r.allowed_by is not None
        line = f"ALLOWED    {gate_line(r)} [allowed by {_rule_text(r.allowed_by)}]"
        out.extend(wrap(line, width, hang))
    rows = [
        [
            c.device,
            f"BAR{c.bar}" if c.bar is not None else "(device)",
            page_label(c.page_size),
            c.pages_before,
            c.pages_after,
            ("REGRESSION: " if c.regression and not c.regression.allowed_by else "")
            + ("allowed: " if c.regression and c.regression.allowed_by else "")
            + c.verdict,
        ]
        for c in report.checks
    ]
    heads = ["device", "BAR", "page", "direct before", "direct after", "verdict"]
    out.append(table(rows, heads, width))
    notes = [f"note: allow-list rule {r.where} matched no regression" for r in report.unused_rules]
    out += wrap_lines(notes + [f"note: {n}" for n in report.notes], width)
    devices = len({c.device for c in report.checks})
    out.append(
        f"{'PASS' if report.ok else 'FAIL'}: {len(report.checks)} check(s) of {devices} "
        f"device(s) at {sizes}: {len(report.regressions)} regression(s), "
        f"{len(report.allowed)} allowed"
    )
    return "\n".join(out) + "\n"


def _regression_data(r: Regression) -> dict[str, Any]:
    rule = r.allowed_by
    return {
        "device": r.device,
        "bar": r.bar,
        "page_size": r.page_size,
        "pages_before": r.pages_before,
        "pages_after": r.pages_after,
        "why": r.why,
        "lost_pages": [run_data(p) for p in r.pages],
        "allowed_by": None
        if rule is None
        else {"file": rule.file, "line": rule.line, "reason": rule.reason},
    }


def gate_data(report: GateReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "baseline": report.baseline,
        "candidate": report.candidate,
        "page_sizes": list(report.page_sizes),
        "checks": [
            {
                "device": c.device,
                "bar": c.bar,
                "page_size": c.page_size,
                "pages_before": c.pages_before,
                "pages_after": c.pages_after,
                "verdict": c.verdict,
                "status": "pass"
                if c.regression is None
                else "allowed"
                if c.regression.allowed_by
                else "regression",
            }
            for c in report.checks
        ],
        "regressions": [_regression_data(r) for r in report.regressions],
        "allowed": [_regression_data(r) for r in report.allowed],
        "unused_allow_rules": [
            {"file": r.file, "line": r.line, "reason": r.reason} for r in report.unused_rules
        ],
        "notes": list(report.notes),
    }


def matrix_gate_text(report) -> str:
    """One verdict line per configuration, the regressions under it, then the total."""
    out = [f"baseline:  {report.baseline}", f"candidate: {report.candidate}"]
    for v in report.verdicts:
        out.append(f"{v.status.upper():16} {v.name}: {v.message}")
        if v.report is not None:
            out += [f"    REGRESSION {gate_line(r)}" for r in v.report.regressions]
    bad = [v.name for v in report.verdicts if v.status in ("regression", "missing")]
    sizes = ", ".join(page_label(p) for p in report.page_sizes)
    out.append(
        f"{'PASS' if report.ok else 'FAIL'}: {len(report.verdicts)} configuration(s) at "
        f"{sizes}: {len(bad)} failing{': ' + ', '.join(bad) if bad else ''}"
    )
    return "\n".join(out) + "\n"


def matrix_gate_data(report) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "baseline": report.baseline,
        "candidate": report.candidate,
        "page_sizes": list(report.page_sizes),
        "configurations": [
            {
                "name": v.name,
                "status": v.status,
                "message": v.message,
                "gate": gate_data(v.report) if v.report is not None else None,
            }
            for v in report.verdicts
        ],
    }
