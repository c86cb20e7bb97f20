"""The command line as a user meets it: version, help, listing, and every bad input path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit import __version__
from edgekit.errors import ConfigError, OutputError, OutputExistsError, UnknownNameError
from tests.conftest import run_edgekit

HEAVY_MODULES = ("tensorflow", "keras", "onnxruntime", "openvino", "ai_edge_litert", "tflite_runtime", "onnx", "cv2")


def assert_one_line_error(result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgekit: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"edgekit {__version__}"


def test_help_lists_the_commands(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    assert "examples" in result.stdout and "demo" in result.stdout


def test_import_and_help_load_no_tensorflow_or_runtime() -> None:
    code = (
        "import sys\n"
        "import edgekit, edgekit.cli, edgekit.examples, edgekit.profiles, edgekit.detection\n"
        "from typer.testing import CliRunner\n"
        "from edgekit.cli import app\n"
        "for args in (['--help'], ['examples', 'list'], ['examples', 'train', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_examples_list_json_is_one_document_with_all_five(cli) -> None:
    result = cli("examples", "list", "--json")
    assert result.exit_code == 0
    names = [row["name"] for row in json.loads(result.stdout)["examples"]]
    assert names == ["digits-cnn", "iris-mlp", "text-lstm", "recommender", "shapes-detector"]


def test_examples_list_table(cli) -> None:
    result = cli("examples", "list")
    assert result.exit_code == 0
    assert "shapes-detector" in result.stdout and "mAP@0.5" in result.stdout


def test_unknown_example_suggests_the_closest(cli, tmp_path: Path) -> None:
    result = cli("examples", "train", "digit-cnn", "--out", str(tmp_path / "out"))
    assert_one_line_error(
        result, UnknownNameError.exit_code, "unknown example 'digit-cnn'", "did you mean 'digits-cnn'?"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_epochs_below_one(cli, tmp_path: Path, epochs: str) -> None:
    result = cli("examples", "train", "iris-mlp", "--out", str(tmp_path / "out"), "--epochs", epochs)
    assert_one_line_error(result, ConfigError.exit_code, "--epochs must be at least 1")
    assert not (tmp_path / "out").exists()


def test_out_not_writable(cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli("examples", "train", "iris-mlp", "--out", str(blocker / "out"))
    assert_one_line_error(result, OutputError.exit_code, "cannot create")


def test_out_is_a_file(cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli("examples", "train", "iris-mlp", "--out", str(blocker))
    assert_one_line_error(result, OutputError.exit_code, "is an existing file")


def test_out_on_a_read_only_filesystem(cli) -> None:
    # /proc refuses new folders even to root, so this holds in CI's root shell too.
    result = cli("examples", "train", "iris-mlp", "--out", "/proc/edgekit-test/out")
    assert_one_line_error(result, OutputError.exit_code, "cannot create")


def test_out_non_empty_needs_force(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = cli("examples", "train", "iris-mlp", "--out", str(out))
    assert_one_line_error(result, OutputExistsError.exit_code, "already exists", "--force")
    assert (out / "keep.txt").read_text() == "mine"


def test_usage_error_is_exit_two(cli) -> None:
    result = cli("examples", "train", "iris-mlp")  # --out missing
    assert result.exit_code == 2
    assert "--out" in result.stderr


def test_debug_shows_the_traceback() -> None:
    plain = run_edgekit("examples", "train", "nope", "--out", "/tmp/unused")
    assert plain.returncode == UnknownNameError.exit_code
    assert "Traceback" not in plain.stderr
    debug = run_edgekit("--debug", "examples", "train", "nope", "--out", "/tmp/unused")
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "UnknownNameError" in debug.stderr


def test_module_entry_point_prints_version() -> None:
    result = run_edgekit("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"edgekit {__version__}"


@pytest.mark.slow
def test_demo_tells_the_story_end_to_end(tmp_path: Path) -> None:
    result = run_edgekit("demo", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "Trained on the server" in result.stdout and "tflite int8" in result.stdout
    assert "predicted on devices, 4 threads" in result.stdout and "rpi4" in result.stdout
    files = {p.name for p in (tmp_path / "demo" / "digits").iterdir()}
    assert {"model.keras", "data.npz", "model_int8.tflite", "model_int8.tflite.manifest.json"} <= files
    assert {"model_fp16.xml", "model_fp16.bin"} <= files
    assert "4. Daemon: shapes detector int8" in result.stdout and "0 left unsent" in result.stdout
    assert "5. Server or edge: Keras over HTTP" in result.stdout
    report = tmp_path / "demo" / "compare.html"
    assert f"report: {report}" in result.stdout and "Break-even" in report.read_text()
