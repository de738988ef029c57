"""Tests for cluster.cpulist: kernel CPU lists and hex masks."""

import pytest

from cluster.cpulist import format_cpulist, parse_cpulist, parse_cpumask


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("", ()),
        ("\n", ()),
        ("0", (0,)),
        ("0-3,8,10-11", (0, 1, 2, 3, 8, 10, 11)),
        ("8,0-1,1", (0, 1, 8)),
        (" 2-3 \n", (2, 3)),
        ("0-7:2", (0, 2, 4, 6)),
    ],
)
def test_parse_cpulist(text, cpus):
    assert parse_cpulist(text) == cpus


@pytest.mark.parametrize("text", ["a", "3-1", "1-", "-1"])
def test_parse_cpulist_rejects_malformed(text):
    with pytest.raises(ValueError):
        parse_cpulist(text)


@pytest.mark.parametrize(
    ("cpus", "text"),
    [
        ((), ""),
        ((0,), "0"),
        ((0, 1, 2, 3, 8, 10, 11), "0-3,8,10-11"),
        ([3, 1, 2, 2], "1-3"),
        ((0, 2, 4), "0,2,4"),
    ],
)
def test_format_cpulist(cpus, text):
    assert format_cpulist(cpus) == text


def test_round_trip():
    cpus = (0, 1, 5, 6, 7, 16, 31, 32, 100)
    assert parse_cpulist(format_cpulist(cpus)) == cpus


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("00000000,0000ffff", tuple(range(16))),
        ("00000003", (0, 1)),
        ("0000,00000000,00000000,00ff00ff", tuple(range(8)) + tuple(range(16, 24))),
        ("ff000000,00000000", tuple(range(56, 64))),
        ("00000001,00000000", (32,)),
        ("0", ()),
        ("", ()),
    ],
)
def test_parse_cpumask(text, cpus):
    assert parse_cpumask(text) == cpus


def test_parse_cpumask_rejects_non_hex():
    with pytest.raises(ValueError):
        parse_cpumask("zz")
