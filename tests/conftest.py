from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.cli import app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli():
    """Invoke the CLI in-process; returns the Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def mount_small_tmpfs(folder: Path, size: str) -> Path:
    """A tmpfs of ``size`` at ``folder`` (made), so a filesystem can really fill up; unmount it
    with ``umount -l``. Needs root: without it the test is skipped, except in CI (which runs as
    root), where not being able to mount is a failure, never a silent skip."""
    folder.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if made.returncode != 0:
        why = "mounting a tmpfs needs root: " + made.stderr.decode(errors="replace").strip()
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return folder


def run_edgekit(
    *args: str, timeout: float = 300, env_extra: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``python -m edgekit`` as a real process, the way a user's shell would."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    env.pop("EDGEKIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )


# Epochs for the shared, quickly trained examples: enough to give the metrics meaning.
QUICK_EPOCHS = {"digits-cnn": 3, "iris-mlp": 30, "text-lstm": 2, "recommender": 3, "shapes-detector": 2}


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Every example trained briefly once per test run: name → its folder (read-only for tests).

    With pytest-xdist the workers share one copy: the first to get here trains, the others wait
    for it and read the same folders."""
    from edgekit.examples import train_example

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root, done = shared / "trained", shared / "trained.done"
    with _exclusive(shared / "trained.lock"):
        if not done.exists():
            for name, epochs in QUICK_EPOCHS.items():
                train_example(name, root / name, epochs=epochs, seed=0)
            done.touch()
    return {name: root / name for name in QUICK_EPOCHS}


@pytest.fixture
def example_copy(trained, tmp_path):
    """A private copy of a trained example's folder, so a test may write beside the model."""
    import shutil

    def copy(name: str) -> Path:
        return Path(shutil.copytree(trained[name], tmp_path / name))

    return copy


@pytest.fixture(scope="module")
def detector(trained, tmp_path_factory) -> Path:
    """The shapes detector, int8 TFLite: the model the daemon's tests run."""
    from edgekit.converters.pipeline import ConvertRequest, convert
    from edgekit.formats import Precision, get_format

    out = tmp_path_factory.mktemp("daemon-model") / "shapes_int8.tflite"
    source = trained["shapes-detector"] / "model.keras"
    return Path(
        convert(ConvertRequest(source=source, target=get_format("tflite"), precision=Precision.INT8, out=out))[
            "artifact"
        ]
    )


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A short recording of moving shapes for the daemon to read."""
    from edgekit.examples.shapes_video import write_shapes_video

    return write_shapes_video(tmp_path_factory.mktemp("video") / "shapes.avi", frames=90, width=320, height=240)
