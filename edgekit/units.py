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
