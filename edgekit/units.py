"""Sizes as people read them; shared by the CLI's tables and the compare report."""

from __future__ import annotations


def human_bytes(size: int) -> str:
    """``1536`` → ``1.5 KB``: binary multiples, one decimal above a kilobyte."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_ms(value: float) -> str:
    """Milliseconds with the digits that mean something at that size: ``0.042``, ``1.93``, ``41.3``."""
    magnitude = abs(value)
    decimals = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    return f"{value:.{decimals}f}"
