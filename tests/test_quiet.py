"""The CLI keeps native start-up chatter (TensorFlow's oneDNN notice) off the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def _run(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    # A module that writes to file descriptor 2 from "native" code while it is imported.
    (tmp_path / "noisy_native.py").write_text("import os\nos.write(2, b'native chatter\\n')\nVALUE = 42\n")
    (tmp_path / "broken_native.py").write_text("import os\nos.write(2, b'chatter\\n')\nraise ImportError('no')\n")
    script = "from edgekit.quiet import quiet_first_import\n" + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )


def test_first_import_is_silent_and_later_output_is_not(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import importlib.util, sys
        quiet_first_import("noisy_native")
        importlib.util.find_spec("noisy_native")  # a probe (as edgekit's extras check) is not the import
        import noisy_native
        print(noisy_native.VALUE)
        print("after", file=sys.stderr)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
    assert result.stderr.strip() == "after"


def test_a_failing_import_still_raises(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        quiet_first_import("broken_native")
        try:
            import broken_native
        except ImportError as exc:
            print("raised", exc)
        """,
    )
    assert result.stdout.strip() == "raised no"


def test_filtered_stderr_drops_only_the_known_notices(tmp_path: Path) -> None:
    body = """
        import os
        from edgekit.quiet import filtered_stderr
        with filtered_stderr("INFO: Created"):
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
            os.write(2, b"ERROR: Didn't find op for builtin opcode\\n")
        os.write(2, b"after\\n")
        """
    quiet = _run(tmp_path, body)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.splitlines() == ["ERROR: Didn't find op for builtin opcode", "after"]
    script = textwrap.dedent(body)
    debug = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "EDGEKIT_DEBUG": "1"},
    )
    assert "INFO: Created" in debug.stderr  # --debug keeps everything
