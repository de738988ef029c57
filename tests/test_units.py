"""The one size parser, byte formatter and plural."""

from __future__ import annotations

import pytest

from workloads.units import MIB, format_bytes, parse_size, plural


@pytest.mark.parametrize("text,size", [
    ("64MiB", 64 << 20), ("32KiB", 32 << 10), ("1GiB", 1 << 30), ("4096", 4096),
    ("2 MiB", 2 << 20), ("1.5KiB", 1536), ("8m", 8 << 20), ("1GB", 10**9), ("100B", 100),
    ("32768K", 32 * MIB), ("1M", MIB), ("512", 512),  # sysfs cache sizes
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-64MiB", "64 MiBs", "lots", "1e3", "64Ki", "MiB", "big"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_bytes():
    assert format_bytes(96 * MIB) == "96 MiB"
    assert format_bytes(48 * 1024) == "48 KiB"
    assert format_bytes(1280 * 1024) == "1.25 MiB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(2 << 40) == "2 TiB"


def test_plural():
    assert (plural(1, "core"), plural(2, "core"), plural(0, "PU")) == ("1 core", "2 cores", "0 PUs")
