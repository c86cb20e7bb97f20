"""Writing one benchmark's section of benchmarks/RESULTS.md, between its markers.

Each script owns the text between ``<!-- KEY:start -->`` and ``<!-- KEY:end -->``; a new run
replaces it whole, and a first run appends the section under its title.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (figures from different CPUs are not comparable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def section(key: str, command: str, body: list[str]) -> str:
    """The marked section: the command, when and where it ran, then the body lines."""
    header = (
        f"Command: `{command}` — {dt.date.today().isoformat()}, {cpu_name()} ({platform.machine()}), "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}."
    )
    return "\n".join([f"<!-- {key}:start -->", header, "", *body, f"<!-- {key}:end -->"])


def publish(key: str, title: str, command: str, body: list[str], *, write: bool = True) -> None:
    """Print the section and, unless ``write`` is false, put it into RESULTS.md."""
    text_block = section(key, command, body)
    print(text_block)
    if not write:
        return
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# edgekit benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + text_block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + f"\n\n## {title}\n\n" + text_block + "\n"
    RESULTS.write_text(text)
