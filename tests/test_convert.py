"""Conversions end to end through the real converters and runtimes, and their bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit.converters.pipeline import ConvertRequest, convert
from edgekit.errors import (
    ConfigError,
    DataError,
    InputNotFoundError,
    ModelError,
    OutputError,
    QualityGateFailed,
    UnknownNameError,
)
from edgekit.formats import FORMATS, Precision, get_format

CLASSIFIERS = ("digits-cnn", "iris-mlp", "text-lstm")


def request(source: Path, to: str, precision: Precision | None = Precision.FP32, **kwargs) -> ConvertRequest:
    return ConvertRequest(source=source, target=get_format(to), precision=precision, **kwargs)


@pytest.mark.parametrize("to", list(FORMATS))
@pytest.mark.parametrize("name", ["digits-cnn", "iris-mlp", "text-lstm", "recommender", "shapes-detector"])
def test_every_example_converts_at_fp32_with_parity(example_copy, name: str, to: str) -> None:
    folder = example_copy(name)
    report = convert(request(folder / "model.keras", to))
    artifact = Path(report["artifact"])
    assert artifact.exists() and artifact.suffix == FORMATS[to].suffix
    if name in CLASSIFIERS:
        assert report["parity"]["top1_agreement"] >= 0.995
    else:
        assert report["parity"]["relative_max_error"] <= 1e-4
    manifest = json.loads(Path(report["manifest"]).read_text())
    assert manifest["format"] == to and manifest["precision"] == "fp32"
    assert manifest["task"] and manifest["inputs"] and manifest["outputs"]
    assert manifest["source"]["sha256"] and manifest["sha256"]
    if to == "openvino":
        assert artifact.with_suffix(".bin").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "staging left behind"


def test_text_lstm_converts_to_builtins_without_flex(example_copy) -> None:
    folder = example_copy("text-lstm")
    report = convert(request(folder / "model.keras", "tflite"))
    assert any("batch-1" in note for note in report["notes"])
    assert b"Flex" not in Path(report["artifact"]).read_bytes()


@pytest.mark.parametrize("to", list(FORMATS))
def test_digits_int8_is_small_and_close(example_copy, to: str) -> None:
    folder = example_copy("digits-cnn")
    report = convert(request(folder / "model.keras", to, Precision.INT8, max_drop=5.0))
    assert report["precision"] == "int8"
    assert report["metric"]["name"] == "accuracy" and report["gate"]["passed"]
    manifest = json.loads(Path(report["manifest"]).read_text())
    assert manifest["conversion"]["calibration"]["samples"] == 200
    if to == "tflite":
        fp32 = convert(request(folder / "model.keras", "tflite"))
        assert report["size_bytes"] <= 0.30 * fp32["size_bytes"]
        assert manifest["inputs"][0]["dtype"] == "int8" and "quantization" in manifest["inputs"][0]


def test_detector_int8_keeps_float_outputs(example_copy) -> None:
    folder = example_copy("shapes-detector")
    report = convert(request(folder / "model.keras", "tflite", Precision.INT8))
    manifest = json.loads(Path(report["manifest"]).read_text())
    assert manifest["outputs"][0]["dtype"] == "float32"
    assert manifest["postprocessing"]["kind"] == "yolo-grid"
    assert report["metric"]["name"] == "map50"


def test_auto_ladder_keeps_full_int8_when_it_is_within_budget(example_copy) -> None:
    folder = example_copy("digits-cnn")
    report = convert(request(folder / "model.keras", "tflite", None, max_drop=100.0))
    # int8 is what integer kernels and NPUs run: within budget, it is kept even where dynamic-range
    # would be a few bytes smaller, and the ladder climbs no further.
    assert [r["precision"] for r in report["ladder"]] == ["int8"]
    assert report["precision"] == "int8" and report["ladder"][0]["chosen"]
    assert sorted(p.name for p in folder.glob("model*.tflite")) == ["model_int8.tflite"]


def test_auto_ladder_climbs_past_a_rung_over_budget(example_copy, monkeypatch) -> None:
    from edgekit.converters import verify as pipeline

    folder = example_copy("digits-cnn")
    real = pipeline.metric_drop
    drops = iter([50.0])  # the first rung checked (int8) is far over budget, the rest as measured
    monkeypatch.setattr(pipeline, "metric_drop", lambda *a: next(drops, None) or real(*a))
    report = convert(request(folder / "model.keras", "tflite", None, max_drop=1.0))
    assert [r["precision"] for r in report["ladder"]] == ["int8", "dynamic"]
    assert report["precision"] == "dynamic" and not report["ladder"][0]["passed"]


def test_auto_with_no_rung_within_budget_keeps_fp32_and_fails(example_copy, cli, monkeypatch) -> None:
    from edgekit.converters import verify as pipeline

    folder = example_copy("iris-mlp")
    monkeypatch.setattr(pipeline, "metric_drop", lambda *a: 50.0)  # every rung far over budget
    result = cli("convert", str(folder / "model.keras"), "--to", "onnx", "--quant", "auto", "--max-drop", "1", "--json")
    assert result.exit_code == QualityGateFailed.exit_code
    document = json.loads(result.stdout)
    assert document["precision"] == "fp32" and not any(r["passed"] for r in document["ladder"])
    assert Path(document["artifact"]).exists()


def test_gate_failure_keeps_artifact_and_exits_distinctly(example_copy, cli, monkeypatch) -> None:
    from edgekit.converters import verify as pipeline

    folder = example_copy("iris-mlp")
    real = pipeline.metric_drop
    monkeypatch.setattr(pipeline, "metric_drop", lambda *a: real(*a) + 3.0)  # every artifact 3 points worse
    result = cli("convert", str(folder / "model.keras"), "--to", "tflite", "--max-drop", "1", "--json")
    assert result.exit_code == QualityGateFailed.exit_code
    document = json.loads(result.stdout)
    assert document["gate"] == {"max_drop": 1.0, "passed": False}
    assert Path(document["artifact"]).exists()
    assert json.loads(Path(document["manifest"]).read_text())["gate"]["passed"] is False
    assert "over --max-drop" in result.stderr


def test_tflite_source_converts_to_onnx_and_openvino(example_copy) -> None:
    folder = example_copy("iris-mlp")
    tflite = Path(convert(request(folder / "model.keras", "tflite"))["artifact"])
    for to in ("onnx", "openvino"):
        report = convert(request(tflite, to, out=folder / f"from_tflite{FORMATS[to].suffix}"))
        assert report["parity"]["top1_agreement"] >= 0.995
        assert report["metric"]["drop"] == pytest.approx(0.0, abs=1e-6)


def test_onnx_source_quantizes_and_converts_to_openvino(example_copy) -> None:
    folder = example_copy("digits-cnn")
    onnx_model = Path(convert(request(folder / "model.keras", "onnx"))["artifact"])
    report = convert(request(onnx_model, "openvino", Precision.INT8))
    assert report["artifact"].endswith("model_int8.xml")
    assert report["metric"]["drop"] < 5.0
    quantized = convert(request(onnx_model, "onnx", Precision.INT8))
    assert quantized["artifact"].endswith("model_int8.onnx")


def test_cli_convert_json_and_table(example_copy, cli) -> None:
    folder = example_copy("iris-mlp")
    result = cli("convert", str(folder / "model.keras"), "--to", "onnx", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    for key in ("artifact", "format", "precision", "size_bytes", "source_size_bytes", "seconds", "manifest", "parity"):
        assert key in document
    assert set(document["parity"]) >= {"top1_agreement", "max_abs_error", "snr_db"}
    table = cli("convert", str(folder / "model.keras"), "--to", "onnx", "--force")
    assert table.exit_code == 0 and "top-1 agreement" in table.stdout


# ---------------------------------------------------------------------------------------------
# bad input: one clear line, a distinct exit code, and no file left behind


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*")}


@pytest.fixture
def lone_model(trained, tmp_path) -> Path:
    """digits-cnn's model.keras alone in a folder: no data.npz, no example.json beside it."""
    folder = tmp_path / "lone"
    folder.mkdir()
    return Path(shutil.copy(trained["digits-cnn"] / "model.keras", folder / "model.keras"))


def run_bad(cli, folder: Path, *args: str):
    before = files_in(folder)
    result = cli("convert", *args)
    assert files_in(folder) == before, "a file was left behind"
    assert result.stdout == ""
    # Progress lines may come first; the error itself is one line, the last, with no traceback.
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error: ")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr
    assert "Traceback" not in result.stderr
    return result, errors[0]


def test_missing_path(cli, tmp_path) -> None:
    result, line = run_bad(cli, tmp_path, str(tmp_path / "nope.keras"), "--to", "tflite")
    assert result.exit_code == InputNotFoundError.exit_code and "does not exist" in line


@pytest.mark.parametrize("suffix", [".keras", ".tflite", ".onnx"])
@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_corrupt_models(cli, trained, tmp_path, suffix: str, damage: str) -> None:
    if damage == "random":
        content = np.random.default_rng(0).bytes(4096)
    else:
        source = trained["iris-mlp"] / "model.keras"
        if suffix != ".keras":
            report = convert(request(source, suffix.lstrip("."), out=tmp_path / f"ok{suffix}"))
            source = Path(report["artifact"])
        content = source.read_bytes()[: len(source.read_bytes()) // 2]
        for leftover in tmp_path.iterdir():
            leftover.unlink()
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(content)
    result, line = run_bad(cli, tmp_path, str(bad), "--to", "openvino" if suffix != ".keras" else "tflite")
    assert result.exit_code == ModelError.exit_code, line


def test_unknown_target_suggests_the_closest(cli, lone_model) -> None:
    result, line = run_bad(cli, lone_model.parent, str(lone_model), "--to", "tflit")
    assert result.exit_code == UnknownNameError.exit_code and "did you mean 'tflite'?" in line


def test_int8_without_calibration_data(cli, lone_model) -> None:
    result, line = run_bad(cli, lone_model.parent, str(lone_model), "--to", "tflite", "--quant", "int8")
    assert result.exit_code == ConfigError.exit_code and "--calib" in line


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"image": np.zeros((10, 8, 8, 1), np.float32)}, "shape"),
        ({"image": np.zeros((10, 28, 28, 1), np.int32)}, "dtype"),
        ({"image": np.full((10, 28, 28, 1), np.nan, np.float32)}, "NaN"),
        ({"image": np.zeros((0, 28, 28, 1), np.float32)}, "empty"),
    ],
    ids=["wrong-shape", "wrong-dtype", "nan", "empty"],
)
def test_bad_calibration_data(cli, lone_model, tmp_path, arrays, fragment: str) -> None:
    data = write_npz(tmp_path / "calib.npz", **arrays)
    result, line = run_bad(
        cli, lone_model.parent, str(lone_model), "--to", "tflite", "--quant", "int8", "--calib", str(data)
    )
    assert result.exit_code == DataError.exit_code and fragment in line


def test_object_arrays_are_refused(cli, lone_model, tmp_path) -> None:
    data = tmp_path / "calib.npy"
    np.save(data, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result, line = run_bad(
        cli, lone_model.parent, str(lone_model), "--to", "tflite", "--quant", "int8", "--calib", str(data)
    )
    assert result.exit_code == DataError.exit_code and "Python objects" in line


def test_image_folder_without_images(cli, lone_model, tmp_path) -> None:
    empty = tmp_path / "images"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    result, line = run_bad(
        cli, lone_model.parent, str(lone_model), "--to", "tflite", "--quant", "int8", "--calib", str(empty)
    )
    assert result.exit_code == DataError.exit_code and "no images" in line


def test_image_folder_calibrates_with_the_example_preprocessing(example_copy, tmp_path) -> None:
    import cv2

    folder = example_copy("digits-cnn")
    images = tmp_path / "images"
    images.mkdir()
    test = np.load(folder / "data.npz")["test/image"][:20]
    for i, image in enumerate(test):
        cv2.imwrite(str(images / f"{i:02d}.png"), (image[..., 0] * 255).round().astype(np.uint8))
    report = convert(request(folder / "model.keras", "tflite", Precision.INT8, calib=images))
    manifest = json.loads(Path(report["manifest"]).read_text())
    assert manifest["conversion"]["calibration"] == {"origin": str(images), "samples": 20}


def test_unwritable_output(cli, lone_model, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result, line = run_bad(
        cli, lone_model.parent, str(lone_model), "--to", "tflite", "--out", str(blocker / "m.tflite")
    )
    assert result.exit_code == OutputError.exit_code and "cannot write" in line


def test_existing_output_needs_force(cli, example_copy) -> None:
    folder = example_copy("iris-mlp")
    assert cli("convert", str(folder / "model.keras"), "--to", "onnx").exit_code == 0
    first = (folder / "model.onnx").read_bytes()
    result, line = run_bad(cli, folder, str(folder / "model.keras"), "--to", "onnx")
    assert "--force" in line and (folder / "model.onnx").read_bytes() == first


def test_negative_max_drop(cli, lone_model) -> None:
    result, line = run_bad(cli, lone_model.parent, str(lone_model), "--to", "tflite", "--max-drop", "-1")
    assert result.exit_code == ConfigError.exit_code and "--max-drop" in line


def test_precision_the_target_does_not_support(cli, lone_model) -> None:
    result, line = run_bad(cli, lone_model.parent, str(lone_model), "--to", "onnx", "--quant", "fp16")
    assert result.exit_code == ConfigError.exit_code and "does not support --quant fp16" in line


@pytest.mark.parametrize("flag", ["calib", "eval"])
def test_data_of_a_kind_edgekit_cannot_read_is_refused_before_the_model_loads(trained, monkeypatch, flag) -> None:
    from edgekit.converters import prepare as pipeline

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the data path was checked")

    monkeypatch.setattr(pipeline, "_load_reference", never)
    folder = trained["digits-cnn"]
    with pytest.raises(DataError, match=f"--{flag} labels.txt: data must be .npz, .npy or a folder of images"):
        convert(request(folder / "model.keras", "tflite", Precision.INT8, **{flag: folder / "labels.txt"}))
