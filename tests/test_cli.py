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
        "import edgekit, edgekit.cli, edgekit.examples, edgekit.predict, edgekit.tasks.detection\n"
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


def _every_command(cli) -> list[list[str]]:
    from edgekit.cli import app

    commands = []
    for info in app.registered_commands:
        commands.append([info.name])
    for group in app.registered_groups:
        for info in group.typer_instance.registered_commands:
            commands.append([group.name, info.name])
    return commands


def test_help_shows_no_framework_placeholders(cli) -> None:
    """Usage lines read `edgekit bench [OPTIONS] MODEL...`, never `{models}` or `<list[Path]>`."""
    commands = _every_command(cli)
    assert len(commands) >= 15
    for command in commands:
        result = cli(*command, "--help")
        assert result.exit_code == 0, command
        for placeholder in ("{", "<list[", "[[", "]..."):
            assert placeholder not in result.stdout, (command, placeholder, result.stdout)
    assert "Usage: edgekit bench [OPTIONS] MODEL..." in cli("bench", "--help").stdout
    assert "Usage: edgekit convert [OPTIONS] SOURCE" in cli("convert", "--help").stdout


def test_demo_help_tells_every_step(cli) -> None:
    text = " ".join(cli("demo", "--help").stdout.split())
    for step in ("train", "convert", "daemon", "MQTT", "compare"):
        assert step in text, step


def test_calibrate_takes_out_like_every_other_command(cli, tmp_path: Path) -> None:
    target = tmp_path / "mine.yaml"
    target.write_text("exists")
    result = cli("profiles", "calibrate", "--name", "mine", "--out", str(target))
    assert_one_line_error(result, OutputExistsError.exit_code, str(target), "--force")


def test_embedded_broker_on_a_busy_port_is_one_line() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = run_edgekit("broker", "--port", str(port), timeout=60)
    assert result.returncode == 15
    assert result.stderr.strip().splitlines() == [
        f"edgekit: error: port {port} on 127.0.0.1 is in use (a broker already running?); choose another with --port"
    ]


def test_examples_script_prints_no_framework_lines_and_plain_numbers(tmp_path: Path) -> None:
    from tests.conftest import REPO

    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "use_trained_example.py"), str(tmp_path / "iris")],
        capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "EDGEKIT_DEBUG": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[6.3, 3.3, 6, 2.5] cm → " in done.stdout
    framework = [line for line in done.stderr.splitlines() if "tensorflow" in line.lower() or "onednn" in line.lower()]
    assert not framework, framework


def test_a_forked_worker_stopped_with_sigterm_dies_quietly() -> None:
    """A converter's worker pool, forked from edgekit, is stopped with SIGTERM when it closes:
    the workers must not raise edgekit's KeyboardInterrupt (a traceback each) on the way out."""
    script = (
        "import os, signal, sys, time\n"
        "from edgekit.cli import _install_signal_handlers\n"
        "_install_signal_handlers()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\n"
        "os.kill(child, signal.SIGTERM)\n"
        "_, status = os.waitpid(child, 0)\n"
        "print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
