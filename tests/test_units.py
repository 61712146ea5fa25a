"""Sizes and ages as operators write and read them."""

from datetime import timedelta

import pytest

from projects.units import age, human


class TestAge:
    @pytest.mark.parametrize(
        "text, expected",
        [
            pytest.param("30d", timedelta(days=30), id="days"),
            pytest.param("12h", timedelta(hours=12), id="hours"),
            pytest.param("1d12h30m5s", timedelta(days=1, hours=12, minutes=30, seconds=5)),
            pytest.param("0s", timedelta(0), id="zero"),
        ],
    )
    def test_it_reads_ages(self, text, expected):
        assert age(text) == expected

    @pytest.mark.parametrize("text", ["", "30", "d", "-1d", "1w", "1.5d", "30 d", "1h1d"])
    def test_it_refuses_anything_else(self, text):
        with pytest.raises(ValueError, match="is not an age like 30d"):
            age(text)


class TestHuman:
    @pytest.mark.parametrize(
        "size, shown",
        [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (123_456, "123.5 kB"),
         (2_000_000_000, "2.0 GB"), (5 * 10**15, "5000.0 TB")],
    )  # fmt: skip
    def test_it_shows_decimal_units(self, size, shown):
        assert human(size) == shown
