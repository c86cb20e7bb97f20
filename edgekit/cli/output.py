"""Where the CLI writes: reports on stdout, everything else on stderr.

With ``--json`` stdout carries exactly one JSON document, so ``edgekit … --json | jq`` works
whatever the command logs while it runs.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from edgekit.units import human_bytes as human_bytes  # the CLI's tables print sizes with it

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
