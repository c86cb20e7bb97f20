"""The calibration kit's cost (issue 16), measured in one run.

    python benchmarks/kit.py [--work DIR] [--no-write]

1. The server part: `edgekit profiles kit --out DIR` (the full set, TFLite and ONNX, fp32 and
   int8) in this venv: wall time and the largest process's peak memory. Goal ≤ 3 GB.
2. The device part: `edgekit profiles calibrate --kit DIR` in a venv with `edgekit[device]` only
   (TensorFlow checked not importable there), at its defaults (1 thread and all cores): wall time
   and peak memory. Goal ≤ 4 minutes and ≤ 1 GB on two cores.

Peak memory is the largest process's maximum resident set (getrusage of the waited-for children
of a wrapper process): the kit's converting children are counted, one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import publish  # noqa: E402

# Runs a command and prints its wall time and the largest descendant's peak RSS (KiB) as JSON.
WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.monotonic()\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)\n"
    "print(json.dumps({'rc': done.returncode, 'seconds': time.monotonic() - start,\n"
    "                  'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,\n"
    "                  'stdout': done.stdout[-2000:], 'stderr': done.stderr[-2000:]}))\n"
)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def measured(command: list[str], env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, env=env)
    result: dict[str, object] = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result['rc']}): {result['stderr']}")
    return result


def device_venv(folder: Path) -> Path:
    python = folder / "bin" / "python"
    if not python.exists():
        log(f"making a venv with edgekit[device] only in {folder} …")
        venv.create(folder, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{REPO}[device]"], check=True)
    probe = subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True, text=True)
    if probe.returncode == 0:
        raise SystemExit(f"{folder} has TensorFlow: not a device's install")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="keep the kit and the device venv here")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgekit-kit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    kit = work / "kit"
    env = {**os.environ, "EDGEKIT_PROFILE_DIR": str(work / "profiles"), "TF_CPP_MIN_LOG_LEVEL": "3"}

    log("building the kit (the full set) …")
    build = measured([sys.executable, "-m", "edgekit", "profiles", "kit", "--out", str(kit), "--force"], env)
    manifest = json.loads((kit / "kit.json").read_text())
    size_mb = sum((kit / m["file"]).stat().st_size for m in manifest["models"]) / 1e6
    device = device_venv(work / "device-venv")
    log("calibrating from the kit in the device venv …")
    time.sleep(2)
    calibrate = measured(
        [str(device / "bin" / "edgekit"), "profiles", "calibrate", "--kit", str(kit), "--name", "kit-host", "--force"],
        env,
    )
    fit_line = str(calibrate["stdout"]).strip().splitlines()[-1]

    def gb(kib: object) -> float:
        return int(str(kib)) / 1024 / 1024

    build_gb, device_gb = gb(build["peak_kib"]), gb(calibrate["peak_kib"])
    device_min = float(str(calibrate["seconds"])) / 60
    body = [
        f"Kit: {len(manifest['models'])} models ({size_mb:.0f} MB), TFLite and ONNX, fp32 and int8.",
        "",
        "| part | command | wall time | peak memory (largest process) | goal |",
        "|---|---|---|---|---|",
        f"| server: build the kit | `edgekit profiles kit --out kit` | {float(str(build['seconds'])) / 60:.1f} min "
        f"| {build_gb:.2f} GB | ≤ 3 GB: {'met' if build_gb <= 3 else 'MISSED'} |",
        f"| device: time and fit (`edgekit[device]` only, no TensorFlow) | `edgekit profiles calibrate --kit kit` "
        f"| {device_min:.1f} min | {device_gb:.2f} GB | ≤ 4 min: {'met' if device_min <= 4 else 'MISSED'}; "
        f"≤ 1 GB: {'met' if device_gb <= 1 else 'MISSED'} |",
        "",
        f"The device run ends: `{fit_line}`",
    ]
    publish("kit", "The calibration kit (issue 16)", "python benchmarks/kit.py", body, write=not args.no_write)


if __name__ == "__main__":
    main()
