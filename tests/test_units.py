"""The one size style every renderer uses (flatview/render/units.py)."""

from __future__ import annotations

import re

import pytest

from flatview.api import parse_page_sizes
from flatview.errors import UsageError
from flatview.render.units import addr, human_size

K, M, G = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (512, "512B"),
        (4 * K, "4K"),
        (64 * K, "64K"),
        (1024 * K, "1M"),  # never 1024K
        (16 * G, "16G"),
        (1 << 64, "16E"),  # the whole 64-bit address space
        (62 * K + K // 2, "62.5K"),  # 0xfa00: never hex next to 256K
        (639 * K, "639K"),  # 0x9fc00, conventional memory below the EBDA
        (M + K, "1025K"),  # no exact short fraction of 1M: the largest whole unit
        (M + M // 4, "1.25M"),
        (4 * K + 1, "4097B"),
    ],
)
def test_size_style(n: int, text: str) -> None:
    assert human_size(n) == text


@pytest.mark.parametrize("shift", range(10, 64))
def test_power_of_two_sizes_read_back_as_page_sizes(shift: int) -> None:
    """Every power of two from 1K up prints as a whole unit; --page-size reads it back
    when it is a host page size (4K to 1G, issue 15) and refuses it otherwise."""
    text = human_size(1 << shift)
    assert re.fullmatch(r"\d+[KMGTPE]", text)
    if 12 <= shift <= 30:
        assert parse_page_sizes([text]) == [1 << shift]
    else:
        with pytest.raises(UsageError, match=rf"--page-size: '{text}' is not a"):
            parse_page_sizes([text])


def test_fraction_is_exact() -> None:
    """A fraction is printed only when it is exact: value x unit gives back the bytes."""
    units = {"K": K, "M": M, "G": G}
    for n in range(K, 4 * M, 3 * K // 8):
        text = human_size(n)
        if "." in text:
            assert float(text[:-1]) * units[text[-1]] == n


def test_addresses_are_hex_as_qemu_prints_them() -> None:
    assert addr(0xFE200000) == "0xfe200000"
    assert addr(0) == "0x0"
