"""Train all five example models at their defaults and record quality and training time.

    python benchmarks/examples.py [--seeds 0,1,2] [--no-write]

Each example is trained by the real CLI (`edgekit examples train NAME --json`) in its own
process, once per seed; the table gives every seed's metric against the issue's floor, the
median, and training seconds against the 3-minute budget. The section between the markers in
benchmarks/RESULTS.md is replaced with the new table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_BUDGET_S = 180.0

sys.path.insert(0, str(HERE.parent))
from benchmarks.results_file import publish  # noqa: E402
from edgekit.examples import EXAMPLES  # noqa: E402


def train(name: str, seed: int, out: Path) -> tuple[dict, float]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "edgekit", "examples", "train", name, "--out", str(out), "--seed", str(seed), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} seed {seed} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--only", default="", help="comma-separated example names (default: all five)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n for n in args.only.split(",") if n] or list(EXAMPLES)

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-examples-") as tmp:
        for name in names:
            spec = EXAMPLES[name]
            values, met, train_s, wall_s = [], [], [], []
            for seed in seeds:
                result, wall = train(name, seed, Path(tmp) / f"{name}-{seed}")
                metric = result["metric"]
                shown = metric["value"]
                if metric["name"] == "rmse":
                    shown = f"{metric['value']} ({metric['improvement']:.0%} below mean-baseline {metric['baseline']})"
                values.append((seed, shown, metric["value"]))
                met.append(spec.meets_floor(metric))
                train_s.append(result["train_seconds"])
                wall_s.append(wall)
                print(
                    f"{name} seed {seed}: {metric['name']} {shown}, floor met {met[-1]}, "
                    f"train {result['train_seconds']:.1f} s, wall {wall:.1f} s",
                    file=sys.stderr,
                )
            rows.append(
                {
                    "name": name,
                    "metric": spec.metric.value,
                    "floor": spec.floor_text,
                    "per_seed": "; ".join(f"s{seed}: {shown}" for seed, shown, _ in values),
                    "median": statistics.median(v for _, _, v in values),
                    "met": f"{sum(met)}/{len(met)}",
                    "train_median": statistics.median(train_s),
                    "train_max": max(train_s),
                    "wall_median": statistics.median(wall_s),
                }
            )

    command = f"python benchmarks/examples.py --seeds {args.seeds}" + (f" --only {args.only}" if args.only else "")
    body = [
        "| example | metric | floor | per seed | median | floor met | train s (median / max) "
        f"| ≤ {TRAIN_BUDGET_S:.0f} s | process wall s (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        within = "yes" if r["train_max"] <= TRAIN_BUDGET_S else "NO"
        body.append(
            f"| {r['name']} | {r['metric']} | {r['floor']} | {r['per_seed']} | {r['median']} | {r['met']} "
            f"| {r['train_median']:.1f} / {r['train_max']:.1f} | {within} | {r['wall_median']:.1f} |"
        )
    publish("examples", "Example models (issue 2)", command, body, write=not args.no_write)


if __name__ == "__main__":
    main()
