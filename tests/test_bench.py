"""`edgekit bench` as a user runs it: the table, JSON and CSV, and each bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.converters.pipeline import ConvertRequest, convert
from edgekit.errors import ConfigError, DataError, InputNotFoundError, ModelError, RuntimeUnavailable
from edgekit.formats import Precision, get_format
from edgekit.runtimes import RUNTIMES, RuntimeEntry

MEASURED_KEYS = {"load_ms", "first_ms", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms", "fps", "peak_rss_mb", "runs"}


@pytest.fixture(scope="module")
def models(trained, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bench-models")
    made = {}
    for to, precision in [("tflite", Precision.INT8), ("onnx", Precision.FP32), ("openvino", Precision.FP32)]:
        report = convert(
            ConvertRequest(
                source=trained["digits-cnn"] / "model.keras",
                target=get_format(to),
                precision=precision,
                out=out / f"digits{get_format(to).suffix}",
            )
        )
        made[to] = Path(report["artifact"])
    return made


def test_json_has_one_result_per_model_and_thread_count(cli, models) -> None:
    result = cli(
        "bench",
        str(models["tflite"]),
        str(models["onnx"]),
        str(models["openvino"]),
        "--threads",
        "1,2",
        "--runs",
        "20",
        "--warmup",
        "2",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    assert [(Path(r["model"]).suffix, r["runtime"], r["threads"]) for r in results] == [
        (".tflite", "tflite", 1),
        (".tflite", "tflite", 2),
        (".onnx", "onnxruntime", 1),
        (".onnx", "onnxruntime", 2),
        (".xml", "openvino", 1),
        (".xml", "openvino", 2),
    ]
    for r in results:
        assert MEASURED_KEYS <= set(r["measured"]) and r["measured"]["runs"] == 20
        m = r["measured"]
        assert 0 < m["p50_ms"] <= m["p90_ms"] <= m["p99_ms"]
        assert r["size_bytes"] > 0 and r["device"] is None and r["predicted"] is None
    # LiteRT answers for every TFLite model; an int8 softmax stays outside XNNPACK, so this one is partial.
    assert isinstance(results[0]["measured"]["fully_accelerated"], bool)
    assert results[2]["measured"]["fully_accelerated"] is True  # onnxruntime on its CPU provider
    assert results[4]["measured"]["fully_accelerated"] is True  # OpenVINO CPU plugin takes every op


def test_onnx_model_on_two_runtimes(cli, models) -> None:
    result = cli("bench", str(models["onnx"]), "--runtime", "onnxruntime,openvino", "--runs", "5", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["runtime"] for r in json.loads(result.stdout)["results"]] == ["onnxruntime", "openvino"]


def test_table_and_csv(cli, models, tmp_path) -> None:
    out = tmp_path / "bench.csv"
    result = cli("bench", str(models["tflite"]), "--runs", "10", "--csv", str(out))
    assert result.exit_code == 0, result.stderr
    assert "digits.tflite" in result.stdout and "p99" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["runtime"] == "tflite" and float(rows[0]["p50_ms"]) > 0
    again = cli("bench", str(models["tflite"]), "--runs", "10", "--csv", str(out))
    assert again.exit_code != 0 and "--force" in again.stderr


def test_duration_and_real_data(cli, models, trained) -> None:
    result = cli(
        "bench", str(models["onnx"]), "--duration", "0.3", "--data", str(trained["digits-cnn"] / "data.npz"), "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["measured"]["runs"] > 5


def test_runs_and_a_duration_together_stop_at_whichever_comes_first(models) -> None:
    """What a calibration times a model with: a few runs end a fast model's timing early, a long
    duration does not make it run on; a short duration ends it before a large run count."""
    from edgekit.bench import BenchSettings, measure
    from edgekit.runtimes import load_runtime

    def timed(settings: BenchSettings) -> int:
        return int(measure(lambda: load_runtime(models["tflite"]), settings)["runs"])

    assert timed(BenchSettings(runs=7, duration_s=30.0, warmup=0)) == 7
    assert 5 < timed(BenchSettings(runs=10_000_000, duration_s=0.2, warmup=0)) < 10_000_000


def test_runs_without_tensorflow(models) -> None:
    """A device install has no TensorFlow: bench must not need it."""
    code = (
        "import sys\n"
        "for name in ('tensorflow', 'keras', 'tf2onnx'):\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "from typer.testing import CliRunner\n"
        "from edgekit.cli import app\n"
        f"r = CliRunner().invoke(app, ['bench', {str(models['tflite'])!r}, '--runs', '5', '--json'])\n"
        "print(r.exit_code); print(r.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.splitlines()[0] == "0", out.stdout + out.stderr


def bad(cli, *args: str):
    result = cli("bench", *args)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("edgekit: error: ") and "Traceback" not in result.stderr
    assert result.stdout == ""
    return result.exit_code, lines[-1]


def test_missing_model(cli, tmp_path) -> None:
    code, _ = bad(cli, str(tmp_path / "none.tflite"))
    assert code == InputNotFoundError.exit_code


def test_unsupported_suffix(cli, tmp_path) -> None:
    (tmp_path / "model.pt").write_bytes(b"x")
    code, line = bad(cli, str(tmp_path / "model.pt"))
    assert code == ModelError.exit_code and ".pt" in line


def test_runtime_not_installed(cli, models, monkeypatch) -> None:
    entry = RUNTIMES["tflite"]
    monkeypatch.setitem(
        RUNTIMES,
        "tflite",
        RuntimeEntry(entry.name, entry.module, entry.cls, ("no_such_pkg",), "device", entry.suffixes),
    )
    code, line = bad(cli, str(models["tflite"]))
    assert code == RuntimeUnavailable.exit_code and "edgekit[device]" in line


@pytest.mark.parametrize("args", [["--threads", "0"], ["--runs", "0"], ["--threads", "two"], ["--warmup", "-1"]])
def test_bad_numbers(cli, models, args) -> None:
    code, _ = bad(cli, str(models["tflite"]), *args)
    assert code == ConfigError.exit_code


def test_data_of_the_wrong_shape(cli, models, tmp_path) -> None:
    np.savez(tmp_path / "d.npz", image=np.zeros((4, 8, 8, 1), np.float32))
    code, line = bad(cli, str(models["onnx"]), "--data", str(tmp_path / "d.npz"))
    assert code == DataError.exit_code and "shape" in line


@pytest.mark.parametrize("suffix", [".tflite", ".onnx", ".xml"])
def test_corrupt_model(cli, tmp_path, suffix: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    code, _ = bad(cli, str(path), "--runs", "3")
    assert code == ModelError.exit_code


def test_a_partial_run_says_which_operators_were_left_out(cli, models) -> None:
    """`accel. PARTIAL` alone tells a user nothing: the line under the table names what ran elsewhere."""
    result = cli("bench", str(models["tflite"]), "--runs", "5", "--json")
    measured = json.loads(result.stdout)["results"][0]["measured"]
    # The int8 digits model's softmax stays outside XNNPACK in the LiteRT edgekit installs.
    assert measured["fully_accelerated"] is False, measured
    assert measured["unaccelerated_ops"], measured  # an int8 softmax stays outside XNNPACK
    table = cli("bench", str(models["tflite"]), "--runs", "5")
    note = next(line for line in table.stdout.splitlines() if line.startswith("PARTIAL "))
    assert note.startswith("PARTIAL digits.tflite · tflite · auto threads: ")
    assert all(kind in note for kind in measured["unaccelerated_ops"]) and "outside XNNPACK" in note


def test_same_named_models_get_rows_that_tell_them_apart(cli, models, tmp_path) -> None:
    import shutil

    other = tmp_path / "copy" / "digits.tflite"
    other.parent.mkdir()
    shutil.copy(models["tflite"], other)
    result = cli("bench", str(models["tflite"]), str(other), "--runs", "5")
    assert result.exit_code == 0, result.stderr
    assert f"{models['tflite'].parent.name}/digits.tflite" in result.stdout and "copy/digits.tflite" in result.stdout


def test_a_format_a_device_lacks_is_left_out_not_fatal(cli, models) -> None:
    """An OpenVINO IR on rpi4 (no OpenVINO there): the other rows are still predicted."""
    args = ("bench", str(models["tflite"]), str(models["openvino"]), "--device", "rpi4", "--threads", "4")
    document = json.loads(cli(*args, "--json").stdout)
    assert [(Path(r["model"]).suffix, r["device"]) for r in document["results"]] == [(".tflite", "rpi4")]
    assert document["skipped"] == [
        {
            "model": str(models["openvino"]),
            "runtime": "openvino",
            "device": "rpi4",
            "reason": "profile rpi4 lists no openvino runtime; its runtimes are: tflite-xnnpack, onnxruntime-cpu",
        }
    ]
    table = cli(*args)
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any(line.startswith("basis, rpi4: ") for line in lines)
    assert "not predicted: digits.xml on rpi4: profile rpi4 lists no openvino runtime" in table.stdout
    only = cli("bench", str(models["openvino"]), "--device", "rpi4")
    assert only.exit_code == 14 and only.stderr.startswith("edgekit: error: profile rpi4 lists no openvino")


def test_basis_lines_follow_the_rows_and_name_their_device(cli, models) -> None:
    result = cli("bench", str(models["tflite"]), "--device", "rpi5,rpi4", "--threads", "4")
    assert result.exit_code == 0, result.stderr
    bases = [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith("basis")]
    assert bases == ["basis, rpi5", "basis, rpi4"]


def test_the_band_keeps_the_digits_of_the_prediction() -> None:
    from edgekit.units import format_ms

    assert [format_ms(v) for v in (0.0421, 0.104, 1.934, 41.27, 412.6)] == ["0.042", "0.104", "1.93", "41.3", "413"]


def test_an_onnx_model_on_a_device_install_names_onnxruntime_alone(cli, models, monkeypatch) -> None:
    """A device has edgekit[device]: the advice for an .onnx is ONNX Runtime, not all of TensorFlow."""
    import dataclasses

    entry = dataclasses.replace(RUNTIMES["onnxruntime"], packages=("no_such_pkg",))
    monkeypatch.setitem(RUNTIMES, "onnxruntime", entry)
    code, line = bad(cli, str(models["onnx"]))
    assert code == RuntimeUnavailable.exit_code
    assert "install it with: pip install onnxruntime (or pip install 'edgekit[convert]'" in line
