"""README command 1 (`edgekit demo`) with and without a Mosquitto on the machine (issue 13).

    python benchmarks/demo.py [--runs 1] [--clone] [--no-write]

Each run is the demo as a new user starts it, in a folder of its own:

- **with Mosquitto**: the machine's own broker answers on 127.0.0.1:1883 (the script checks);
- **no broker**: the demo runs in a network namespace of its own (``unshare -n``, loopback only)
  with no ``mosquitto`` on its path, so nothing answers on 1883 and it must start its embedded
  broker.

Per run: the exit code, the wall time, which broker carried the results, the results the
daemon produced against those a subscriber received through the broker, and every line of
output that is not edgekit's own (a third-party log line, a traceback). ``--clone`` makes the
runs from a fresh ``git clone`` of this checkout's HEAD with its own venv installed by the
README's command (the install is timed and reported apart). Wall times are reported as medians
and as the ratio no-broker ÷ with-Mosquitto measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import publish  # noqa: E402

# What edgekit itself writes on stderr during the demo: its title, step headers and indented
# progress. Anything else is somebody else's line.
OWN_STDERR = ("edgekit demo", "step ", "          ")
# On stdout: the numbered summary, its indented continuation lines, and the closing notes.
OWN_STDOUT = re.compile(r"^(edgekit demo|\d\. |   |Every artifact|Next: |$)")


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def mosquitto_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=0.5):
            return True
    except OSError:
        return False


def no_network_prefix() -> list[str]:
    ip = shutil.which("ip") or "ip"
    return ["unshare", "-n", "sh", "-c", f'{ip} link set lo up && exec "$@"', "no-network"]


def fresh_clone(work: Path) -> tuple[Path, float]:
    """A clone of HEAD set up by README command 1's install half; returns its python and the seconds."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    start = time.perf_counter()
    subprocess.run(
        f'{sys.executable} -m venv .venv && .venv/bin/pip install -q -e ".[all,dev]"',
        shell=True, cwd=clone, check=True,
    )  # fmt: skip
    return clone / ".venv" / "bin" / "python", time.perf_counter() - start


def run_demo(python: Path, out: Path, isolated: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    if isolated:
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if not (Path(p) / "mosquitto").exists()
        )  # fmt: skip
    command = [str(python), "-m", "edgekit", "demo", "--out", str(out)]
    if isolated:
        command = no_network_prefix() + command
    start = time.perf_counter()
    # From the run's own folder: `python -m` puts the working directory first on the path, and
    # this checkout's edgekit/ must not shadow the one under test.
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, cwd=out.parent)
    wall = time.perf_counter() - start
    found = re.search(r"\((embedded broker|local Mosquitto)\): (\d+) results at .*?(\d+) delivered", done.stdout)
    foreign = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(OWN_STDERR)]
    foreign += [line for line in done.stdout.splitlines() if not OWN_STDOUT.match(line)]
    return {
        "exit": done.returncode,
        "wall_s": wall,
        "broker": found.group(1) if found else "—",
        "produced": int(found.group(2)) if found else 0,
        "delivered": int(found.group(3)) if found else 0,
        "foreign": foreign,
        "error": done.stderr.strip().splitlines()[-1] if done.returncode and done.stderr.strip() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="demo runs per setting")
    parser.add_argument("--clone", action="store_true", help="run from a fresh clone with its own venv")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave RESULTS.md alone")
    args = parser.parse_args()
    if not mosquitto_answers():
        raise SystemExit("no Mosquitto answers on 127.0.0.1:1883: start it (mosquitto -d) for the with-broker runs")

    with tempfile.TemporaryDirectory(prefix="edgekit-demo-bench-") as folder:
        work = Path(folder)
        python, install_s = (Path(sys.executable), None)
        if args.clone:
            log("cloning HEAD and installing it as README command 1 does")
            python, install_s = fresh_clone(work)
        rows: dict[str, list[dict]] = {"with Mosquitto": [], "no broker": []}
        for index in range(args.runs):
            for setting, isolated in (("with Mosquitto", False), ("no broker", True)):
                log(f"run {index + 1}/{args.runs}: {setting}")
                result = run_demo(python, work / f"demo-{index}-{int(isolated)}", isolated)
                log(f"  exit {result['exit']}, {result['wall_s']:.0f} s, {result['delivered']}/{result['produced']}")
                rows[setting].append(result)

    body = [
        "| setting | runs | exit codes | broker used | results produced → delivered | third-party lines | "
        "wall s (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for setting, results in rows.items():
        brokers = ", ".join(sorted({r["broker"] for r in results}))
        delivery = "; ".join(f"{r['produced']} → {r['delivered']}" for r in results)
        foreign = sum(len(r["foreign"]) for r in results)
        wall = statistics.median(r["wall_s"] for r in results)
        codes = ", ".join(str(r["exit"]) for r in results)
        body.append(f"| {setting} | {len(results)} | {codes} | {brokers} | {delivery} | {foreign} | {wall:.0f} |")
    ratio = statistics.median(r["wall_s"] for r in rows["no broker"]) / statistics.median(
        r["wall_s"] for r in rows["with Mosquitto"]
    )
    body += ["", f"Wall time, no broker ÷ with Mosquitto (medians, same run): {ratio:.2f}."]
    if install_s is not None:
        body.append(f"From a fresh `git clone` of HEAD; README command 1's install took {install_s:.0f} s.")
    for setting, results in rows.items():
        for r in results:
            for line in r["foreign"][:5]:
                body.append(f"- {setting}: not edgekit's: `{line[:160]}`")
            if r["error"]:
                body.append(f"- {setting}: failed: `{r['error'][:200]}`")
    command = "python benchmarks/demo.py" + (f" --runs {args.runs}" if args.runs != 1 else "")
    command += " --clone" if args.clone else ""
    publish("demo", "The first hour: `edgekit demo` with and without a broker (issue 13)", command, body,
            write=not args.no_write)  # fmt: skip


if __name__ == "__main__":
    main()
