"""Comma-separated option values (``--threads 1,2,4``, ``--device rpi4,pixel``), parsed one way."""

from __future__ import annotations

from edgekit.errors import ConfigError


def comma_list(text: str | None, flag: str) -> list[str]:
    """``"a, b"`` → ``["a", "b"]``: spaces around items dropped; an empty item (``"a,,b"``,
    ``"a,"``) is refused, as it is nearly always a typo; no text at all is no items."""
    if not text:
        return []
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise ConfigError(f"{flag} '{text}' has an empty item", hint="separate the values with single commas")
    return parts
