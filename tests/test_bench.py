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
