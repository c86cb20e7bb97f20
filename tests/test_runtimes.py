"""The runtimes behind one interface: float in and out, inputs by name, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.converters.pipeline import ConvertRequest, convert
from edgekit.errors import DataError, InputNotFoundError, ModelError, RuntimeUnavailable
from edgekit.formats import Precision, get_format
from edgekit.runtimes import RUNTIMES, RuntimeEntry, load_runtime


@pytest.fixture(scope="module")
def artifacts(trained, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("artifacts")
    made = {}
    for key, name, to, precision in [
        ("digits-int8.tflite", "digits-cnn", "tflite", Precision.INT8),
        ("digits.onnx", "digits-cnn", "onnx", Precision.FP32),
        ("digits.xml", "digits-cnn", "openvino", Precision.FP32),
        ("recommender.tflite", "recommender", "tflite", Precision.FP32),
        ("recommender.onnx", "recommender", "onnx", Precision.FP32),
    ]:
        report = convert(
            ConvertRequest(
                source=trained[name] / "model.keras",
                target=get_format(to),
                precision=precision,
                out=out / key,
                eval=trained[name] / "data.npz",
                calib=trained[name] / "data.npz",
            )
        )
        made[key] = Path(report["artifact"])
    return made


def digits_sample(trained) -> np.ndarray:
    return np.load(trained["digits-cnn"] / "data.npz")["test/image"][:1]


def test_int8_tflite_takes_and_gives_floats(artifacts, trained) -> None:
    with load_runtime(artifacts["digits-int8.tflite"]) as runtime:
        (spec,) = runtime.inputs
        assert spec.dtype == "int8" and spec.quantization is not None
        out = runtime.run({spec.name: digits_sample(trained)})
        probabilities = next(iter(out.values()))
        assert probabilities.dtype == np.float32
        assert abs(float(probabilities.sum()) - 1.0) < 0.05
        raw = runtime.run({spec.name: np.zeros((1, 28, 28, 1), np.int8)}, raw=True)
        assert next(iter(raw.values())).dtype == np.int8


@pytest.mark.parametrize("key", ["digits.onnx", "digits.xml"])
def test_float_runtimes_agree_with_keras(artifacts, trained, key: str) -> None:
    import keras

    sample = digits_sample(trained)
    expected = keras.models.load_model(trained["digits-cnn"] / "model.keras").predict(sample, verbose=0)
    with load_runtime(artifacts[key]) as runtime:
        out = runtime.run({runtime.inputs[0].name: sample})
    np.testing.assert_allclose(next(iter(out.values())), expected, atol=1e-5)


@pytest.mark.parametrize("key", ["recommender.tflite", "recommender.onnx"])
def test_two_inputs_by_name(artifacts, key: str) -> None:
    with load_runtime(artifacts[key]) as runtime:
        names = sorted(s.name for s in runtime.inputs)
        assert len(names) == 2
        user = next(n for n in names if "user" in n)
        item = next(n for n in names if "item" in n)
        ids = np.array([[3]], dtype=np.int32)
        first = runtime.run({user: ids, item: np.array([[5]], dtype=np.int32)})
        second = runtime.run({user: ids, item: np.array([[6]], dtype=np.int32)})
        assert not np.allclose(next(iter(first.values())), next(iter(second.values())))


def test_wrong_shape_names_the_input(artifacts) -> None:
    with load_runtime(artifacts["digits.onnx"]) as runtime:
        name = runtime.inputs[0].name
        with pytest.raises(DataError, match=rf"input '{name}' has shape \(1, 8, 8, 1\), expected \(\?, 28, 28, 1\)"):
            runtime.run({name: np.zeros((1, 8, 8, 1), np.float32)})


def test_wrong_name_lists_what_the_model_expects(artifacts) -> None:
    with load_runtime(artifacts["digits.xml"]) as runtime:
        with pytest.raises(DataError, match="the model expects"):
            runtime.run({"nope": np.zeros((1, 28, 28, 1), np.float32)})


def test_wrong_dtype_names_the_input(artifacts) -> None:
    with load_runtime(artifacts["recommender.onnx"]) as runtime:
        feeds = {s.name: np.zeros((1, 1), np.float32) for s in runtime.inputs}
        with pytest.raises(DataError, match="has dtype float32, expected int32"):
            runtime.run(feeds)


def test_missing_package_names_the_extra(monkeypatch, artifacts) -> None:
    entry = RUNTIMES["onnxruntime"]
    fake = RuntimeEntry(entry.name, entry.module, entry.cls, ("edgekit_no_such_package",), "device", entry.suffixes)
    monkeypatch.setitem(RUNTIMES, "onnxruntime", fake)
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'edgekit\[device\]'"):
        load_runtime(artifacts["digits.onnx"])


def test_missing_and_unknown_models(tmp_path) -> None:
    with pytest.raises(InputNotFoundError):
        load_runtime(tmp_path / "none.tflite")
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(ModelError, match="no runtime runs '.pt' files"):
        load_runtime(tmp_path / "model.pt")


def test_importing_edgekit_runtimes_loads_no_runtime_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, edgekit.runtimes, edgekit.bench, edgekit.cli.bench\n"
        "print([m for m in ('tensorflow', 'onnxruntime', 'openvino', 'ai_edge_litert') if m in sys.modules])"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
