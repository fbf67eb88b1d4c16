"""The CI gate: does a candidate dump lose direct-mapped pages the baseline had?

:func:`gate` compares a baseline and a candidate (:class:`flatview.diff.Side`) device by
device, BAR by BAR, at each requested host page size (:func:`flatview.diff.bar_diffs`).
A check *regresses* when a page that was direct-mapped (``ramd``, whole in one KVM
slot) is not any more, when the BAR's count of direct pages drops, or when a device of
the baseline is gone from the candidate.  Each regression says which ranges of the
candidate now trap the lost pages.

Allow-list (``--allow FILE``): one rule per line; blank lines and lines starting with
``#`` are comments (a reason may itself contain ``#``)::

    # DEVICE        BAR  PAGE_SIZE  reason (required, free text)
    0001:03:00.0    1    64K        MSI-X table page traps on 64K hosts, tracked in #42
    0000:02:00.0    *    *          device retired, see the release notes

``DEVICE`` is a host address (``BB:DD.F`` means domain 0000) or a pattern with ``*``
and ``?`` wildcards; ``BAR`` is ``*``, ``N`` or ``BARN``; ``PAGE_SIZE`` is ``*`` or a size
such as ``4K``, ``16K``, ``64K``.  A regression a rule matches is reported as allowed,
with the rule's reason, and does not fail the gate; a device that is gone matches only
rules whose BAR is ``*``.  Rules that match nothing are reported.  A malformed line is
an input error (``FILE:LINE: ...``, exit status 2).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from . import api
from .diff import BarDiff, Side, bar_diffs, verdict
from .errors import FlatviewError, SourceError, SourceLocation, UsageError
from .pages import PageRun

__all__ = [
    "AllowRule",
    "Check",
    "ConfigVerdict",
    "GateReport",
    "MatrixReport",
    "Regression",
    "gate",
    "gate_matrix",
    "pair_bundles",
    "parse_allow",
    "why_text",
]


@dataclass(frozen=True, slots=True)
class AllowRule:
    device: str  # fnmatch pattern over the host address
    bar: int | None  # None: any BAR (``*``)
    page_size: int | None  # None: any page size
    reason: str
    file: str
    line: int

    def matches(self, device: str, bar: int | None, page_size: int) -> bool:
        return (
            fnmatch.fnmatchcase(device, self.device)
            and (self.bar is None or self.bar == bar)
            and (self.page_size is None or self.page_size == page_size)
        )

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Regression:
    device: str
    bar: int | None  # None: the whole device is gone
    page_size: int
    pages_before: int
    pages_after: int
    why: str  # which region of the candidate now traps which range
    pages: tuple[PageRun, ...] = ()  # the pages lost (candidate's runs, flatview.pages)
    allowed_by: AllowRule | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One device/BAR/page size the gate looked at."""

    device: str
    bar: int | None
    page_size: int
    pages_before: int
    pages_after: int
    verdict: str  # "unchanged", "gains 1 page", "stays trapped (no mmap in either dump)", ...
    regression: Regression | None = None


@dataclass(frozen=True, slots=True)
class GateReport:
    baseline: str
    candidate: str
    page_sizes: tuple[int, ...]
    checks: tuple[Check, ...]
    unused_rules: tuple[AllowRule, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def regressions(self) -> tuple[Regression, ...]:
        """The regressions that fail the gate (not allowed)."""
        return tuple(
            c.regression
            for c in self.checks
            if c.regression is not None and c.regression.allowed_by is None
        )

    @property
    def allowed(self) -> tuple[Regression, ...]:
        return tuple(
            c.regression
            for c in self.checks
            if c.regression is not None and c.regression.allowed_by is not None
        )

    @property
    def ok(self) -> bool:
        return not self.regressions


_SHORT_BDF = re.compile(r"^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def _norm_bdf(addr: str) -> str:
    return addr if addr.count(":") != 1 else f"0000:{addr}"


def _norm_pattern(pattern: str) -> str:
    pattern = pattern.lower()
    return f"0000:{pattern}" if _SHORT_BDF.match(pattern) else pattern


def _parse_bar(text: str) -> int | None:
    if text == "*":
        return None
    digits = text[3:] if text.upper().startswith("BAR") else text
    if not (digits.isascii() and digits.isdigit() and 0 <= int(digits) <= 5):
        raise ValueError(f"BAR {text!r} is not '*', 0..5 or BAR0..BAR5")
    return int(digits)


def _parse_page(text: str) -> int | None:
    if text == "*":
        return None
    try:
        return api.parse_page_sizes([text])[0]
    except (FlatviewError, IndexError):
        raise ValueError(f"page size {text!r} is not '*' or a size like 4K, 16K, 64K") from None


def parse_allow(text: str, name: str) -> tuple[AllowRule, ...]:
    """Read an allow-list (format in the module docstring)."""
    rules = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 3)
        loc = SourceLocation(name, lineno)
        if len(fields) < 4:
            raise SourceError(
                loc, "allow-list rule needs DEVICE BAR PAGE_SIZE and a reason", raw.strip()
            )
        device, bar, page, reason = fields
        try:
            rule = AllowRule(
                _norm_pattern(device), _parse_bar(bar), _parse_page(page), reason, name, lineno
            )
        except ValueError as exc:
            raise SourceError(loc, f"allow-list: {exc}", raw.strip()) from None
        rules.append(rule)
    return tuple(rules)


def why_text(d: BarDiff, most: int = 4) -> str:
    """Which ranges of the candidate now trap the lost pages, in words."""
    if d.gone or not d.traps:
        # ramd parts are no traps (diff._traps), so a page only part of a ramd range
        # covers, with nothing else in it, ends here
        return d.why or "the direct-mapped pages dropped"
    parts = []
    for t in d.traps[:most]:
        where = f"BAR{d.index}+{t.start:#x}-{t.end - 1:#x}"
        if t.guest is not None:
            parts.append(
                f"{t.name} now traps {t.guest:#x}-{t.guest + t.end - t.start - 1:#x} ({where})"
            )
        else:
            parts.append(f"{t.name} now traps {where}")
    if len(d.traps) > most:
        parts.append(f"and {len(d.traps) - most} more range(s)")
    return "; ".join(parts)


def _regression(d: BarDiff, rules: Sequence[AllowRule], used: set[int]) -> Regression:
    # a gone device (index None) matches only rules whose BAR is * (AllowRule.matches)
    rule = next((r for r in rules if r.matches(d.device, d.index, d.page_size)), None)
    if rule is not None:
        used.add(id(rule))
    return Regression(
        d.device, d.index, d.page_size, d.pages_before, d.pages_after, why_text(d), d.lost, rule
    )


def gate(
    baseline: Side,
    candidate: Side,
    page_sizes: Sequence[int],
    devices: Iterable[str] = (),
    allow: Sequence[AllowRule] = (),
) -> GateReport:
    """Check every device of either side (or only ``devices``) at each page size."""
    wanted = [_norm_bdf(d) for d in devices]
    known = {f.device.address for s in (baseline, candidate) for f in s.facts}
    if not known:
        raise UsageError(
            f"no VFIO-assigned device in {baseline.name} or {candidate.name}: nothing to gate"
        )
    missing = [d for d in wanted if d not in known]
    if missing:
        raise UsageError(f"no assigned device {', '.join(missing)} in either input")
    used: set[int] = set()
    checks = []
    for d in bar_diffs(baseline, candidate, page_sizes, wanted):
        reg = _regression(d, allow, used) if d.regressed else None
        checks.append(
            Check(d.device, d.index, d.page_size, d.pages_before, d.pages_after, verdict(d), reg)
        )
    unused = tuple(r for r in allow if id(r) not in used)
    notes = [*baseline.notes, *candidate.notes]
    notes += [
        f"{s.name}: flat views recomputed from the tree"
        for s in (baseline, candidate)
        if s.recomputed
    ]
    return GateReport(
        baseline.label, candidate.label, tuple(page_sizes), tuple(checks), unused, tuple(notes)
    )


# ------------------------------------------------------------------ a matrix of bundles


@dataclass(frozen=True, slots=True)
class ConfigVerdict:
    """The gate of one configuration of a matrix (``flatview gate BASE_DIR CAND_DIR``)."""

    name: str
    status: str  # "pass", "regression", "missing" (no candidate), "nothing to gate", "new"
    message: str
    report: GateReport | None = None


@dataclass(frozen=True, slots=True)
class MatrixReport:
    baseline: str
    candidate: str
    page_sizes: tuple[int, ...]
    verdicts: tuple[ConfigVerdict, ...]

    @property
    def ok(self) -> bool:
        return not any(v.status in ("regression", "missing") for v in self.verdicts)


BUNDLE_SUFFIX = ".txt"


def pair_bundles(baseline: str, candidate: str) -> list[tuple[str, str | None, str | None]]:
    """(name, baseline file, candidate file) for every ``NAME.txt`` in either folder."""
    import os

    def names(folder: str) -> dict[str, str]:
        try:
            entries = sorted(os.listdir(folder))
        except OSError as exc:
            raise UsageError(f"{folder}: cannot list: {exc.strerror}") from None
        return {
            e[: -len(BUNDLE_SUFFIX)]: os.path.join(folder, e)
            for e in entries
            if e.endswith(BUNDLE_SUFFIX) and not e.startswith(".")
        }

    b, c = names(baseline), names(candidate)
    if not b:
        raise UsageError(f"{baseline}: no bundle (*{BUNDLE_SUFFIX}) to gate")
    return [(n, b.get(n), c.get(n)) for n in sorted({*b, *c})]


def gate_matrix(
    baseline: str,
    candidate: str,
    page_sizes: Sequence[int],
    devices: Iterable[str] = (),
    allow: Sequence[AllowRule] = (),
) -> MatrixReport:
    """Gate every configuration: the bundles of ``baseline`` and ``candidate`` (folders
    written by ``flatview capture --matrix``) paired by name, one verdict each."""
    from .diff import load_side

    verdicts = []
    for name, b, c in pair_bundles(baseline, candidate):
        if c is None:
            verdicts.append(
                ConfigVerdict(name, "missing", f"no {name}{BUNDLE_SUFFIX} in {candidate}")
            )
            continue
        if b is None:
            verdicts.append(ConfigVerdict(name, "new", f"not in {baseline}: nothing to compare"))
            continue
        sides = [load_side(api.read_text(p), p) for p in (b, c)]
        try:
            report = gate(sides[0], sides[1], page_sizes, devices, allow)
        except UsageError as exc:
            if "nothing to gate" not in str(exc):
                raise
            verdicts.append(
                ConfigVerdict(
                    name, "nothing to gate", "no assigned device and no device with MSI-X"
                )
            )
            continue
        status = "pass" if report.ok else "regression"
        n = len(report.regressions)
        msg = f"{len(report.checks)} check(s), {n} regression(s), {len(report.allowed)} allowed"
        verdicts.append(ConfigVerdict(name, status, msg, report))
    return MatrixReport(baseline, candidate, tuple(page_sizes), tuple(verdicts))
