"""mypy over every module of edgekit, as the package installs.

    python tools/typecheck.py [FILE ...]

converters/ and runtimes/ live at the top of the repository and install as edgekit.converters
and edgekit.runtimes (pyproject's package-dir); mypy maps modules by folder, so with an editable
install it would resolve those imports to Any. This builds the installed layout out of symbolic
links under build/typecheck and runs mypy there with the project's settings (pyproject.toml),
then names each file by its place in the repository. Extra FILEs are checked beside the package
(a test's ``reveal_type`` probe). Exit status: mypy's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGE = REPO / "build" / "typecheck"
MAPPED = {"converters": "converters", "runtimes": "runtimes", "device_profiles": "device_profiles"}


def stage() -> Path:
    """build/typecheck/edgekit: edgekit/'s entries with the mapped folders beside them."""
    package = STAGE / "edgekit"
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    for entry in (REPO / "edgekit").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in MAPPED.items():
        (package / name).symlink_to(REPO / folder)
    return package


def main(extra: list[str]) -> int:
    stage()
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "edgekit"]
    command += [str(Path(f).resolve()) for f in extra]
    done = subprocess.run(command, cwd=STAGE, capture_output=True, text=True)
    text = done.stdout + done.stderr
    for name, folder in MAPPED.items():
        text = text.replace(f"edgekit/{name}/", f"{folder}/")
    sys.stdout.write(text)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
