"""mypy sees every module: converters and runtimes by their real types, not Any."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_reports_nothing_and_resolves_the_mapped_packages(tmp_path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from edgekit.runtimes.base import TensorSpec\n"
        "from edgekit.converters.pipeline import ConvertRequest\n"
        "reveal_type(TensorSpec)\n"
        "reveal_type(ConvertRequest)\n"
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "typecheck.py"), str(probe)], capture_output=True, text=True, timeout=600
    )
    revealed = [line for line in done.stdout.splitlines() if "Revealed type" in line]
    assert len(revealed) == 2, done.stdout + done.stderr
    assert all('Revealed type is "Any"' not in line for line in revealed), revealed
    assert revealed[0].endswith('-> edgekit.runtimes.base.TensorSpec"'), revealed[0]
    assert revealed[1].endswith('-> edgekit.converters.request.ConvertRequest"'), revealed[1]
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert not errors, "\n".join(errors)
