"""Where the CLI writes: reports on stdout, everything else on stderr.

With ``--json`` stdout carries exactly one JSON document, so ``edgekit … --json | jq`` works
whatever the command logs while it runs.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)


def print_wide(renderable: object, min_width: int = 160) -> None:
    """A wide table on stdout: never squeezed into 80 columns when stdout is a pipe or a file."""
    Console(highlight=False, width=max(stdout.width, min_width)).print(renderable)


def log(message: str) -> None:
    """A progress or status line for the human watching (stderr)."""
    stderr.print(message, markup=False)


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
