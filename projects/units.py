"""Sizes and ages, as people write and read them."""

from __future__ import annotations

import re
from datetime import timedelta


def human(size: int) -> str:
    """Bytes for people: 1.5 GB (decimal units, as storage is billed)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


_AGE = re.compile(
    r"^(?:(?P<days>\d+)d)?(?:(?P<hours>\d+)h)?(?:(?P<minutes>\d+)m)?(?:(?P<seconds>\d+)s)?$"
)


def age(text: str) -> timedelta:
    """`30d`, `12h`, `1d12h`, `90m`, `0s` as a timedelta; ValueError for anything else."""
    match = _AGE.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not an age like 30d, 12h, 1d12h or 90m")
    return timedelta(**{unit: int(value) for unit, value in match.groupdict().items() if value})
