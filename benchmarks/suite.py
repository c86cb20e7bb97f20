"""How long the README's test command takes (issue 15: at most 6 minutes on two cores).

    python benchmarks/suite.py [--runs 3] [--no-write]

Runs ``.venv/bin/python -m pytest`` (command 2 of the README, without its install step) ``--runs``
times back to back from the repository root, each a fresh session (its examples trained anew),
and reports every wall time, the median and the tests' count, beside the goal. The ``ci`` checks
that .ci/run adds are timed once after them, for the whole of CI's test time.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import publish  # noqa: E402

GOAL_S = 360.0


def timed(*args: str) -> tuple[float, str, int]:
    """Wall seconds, pytest's summary line, and its exit code."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", *args], cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = next((line for line in reversed(done.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "")
    return seconds, summary.strip("= "), done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-ci", action="store_true", help="leave out the timing of the `ci` checks")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    runs = []
    for index in range(args.runs):
        seconds, summary, code = timed()
        print(f"run {index + 1}: {seconds:.0f} s, {summary} (exit {code})", file=sys.stderr, flush=True)
        runs.append((seconds, summary, code))
    median = statistics.median(s for s, _, _ in runs)
    body = [
        "| run | wall | tests | exit |",
        "|---|---|---|---|",
        *[f"| {i + 1} | {s:.0f} s | {summary} | {code} |" for i, (s, summary, code) in enumerate(runs)],
        "",
        f"Median {median:.0f} s ({median / 60:.1f} min) against the goal of {GOAL_S:.0f} s: "
        f"{'met' if median <= GOAL_S else 'missed'} ({median / GOAL_S:.2f} of it).",
    ]
    if not args.no_ci:
        seconds, summary, code = timed("-m", "ci", "--dist", "load")
        body += [
            "",
            f"The `ci` checks .ci/run adds (`pytest -m ci --dist load`): {seconds:.0f} s, {summary} (exit {code}); "
            f"CI's tests in all: about {(median + seconds) / 60:.0f} min.",
        ]
    command = "python benchmarks/suite.py" + (f" --runs {args.runs}" if args.runs != 3 else "")
    publish("suite", "The test suite's time (issue 15)", command, body, write=not args.no_write)


if __name__ == "__main__":
    main()
