"""Sizes for people."""

from __future__ import annotations


def human(size: int) -> str:
    """Bytes for people: 1.5 GB (decimal units, as storage is billed)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
