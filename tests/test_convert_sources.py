"""Other sources (.h5, SavedModel), image-folder flags, unsupported operators and Flex."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.converters.pipeline import ConvertRequest, convert
from edgekit.errors import ConfigError, ConversionError, UnknownNameError
from edgekit.formats import Precision, get_format


def request(source: Path, to: str, precision: Precision = Precision.FP32, **kwargs) -> ConvertRequest:
    return ConvertRequest(source=source, target=get_format(to), precision=precision, **kwargs)


def test_h5_source(example_copy) -> None:
    import keras

    folder = example_copy("iris-mlp")
    keras.models.load_model(folder / "model.keras").save(folder / "model.h5")
    report = convert(request(folder / "model.h5", "tflite"))
    assert report["parity"]["top1_agreement"] >= 0.995
    assert json.loads(Path(report["manifest"]).read_text())["source"]["format"] == "keras"


@pytest.mark.parametrize("to", ["tflite", "onnx", "openvino"])
def test_saved_model_folder_source(example_copy, to: str) -> None:
    import keras

    folder = example_copy("digits-cnn")
    saved = folder / "saved"
    keras.models.load_model(folder / "model.keras").export(str(saved), verbose=False)
    report = convert(request(saved, to, eval=folder / "data.npz", out=folder / f"from_saved{get_format(to).suffix}"))
    assert report["parity"]["max_abs_error"] < 1e-4


def test_image_flags_give_preprocessing_to_a_bare_model(trained, tmp_path, cli) -> None:
    import shutil

    import cv2

    model = Path(shutil.copy(trained["digits-cnn"] / "model.keras", tmp_path / "model.keras"))
    images = tmp_path / "images"
    images.mkdir()
    for i, image in enumerate(np.load(trained["digits-cnn"] / "data.npz")["calib/image"][:16]):
        cv2.imwrite(str(images / f"{i}.png"), (image[..., 0] * 255).round().astype(np.uint8))
    args = ["convert", str(model), "--to", "tflite", "--quant", "int8", "--calib", str(images), "--json"]
    without = cli(*args)
    assert without.exit_code != 0 and "--image-size" in without.stderr
    result = cli(*args, "--image-size", "28x28", "--color", "gray", "--scale", str(1 / 255))
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(Path(json.loads(result.stdout)["manifest"]).read_text())
    assert manifest["preprocessing"]["size"] == [28, 28] and manifest["preprocessing"]["color"] == "gray"
    assert manifest["conversion"]["calibration"]["samples"] == 16


@pytest.mark.parametrize(
    ("flag", "value", "error"),
    [("--image-size", "28", ConfigError), ("--color", "rgbb", UnknownNameError)],
)
def test_bad_image_flags(trained, cli, flag: str, value: str, error) -> None:
    result = cli("convert", str(trained["digits-cnn"] / "model.keras"), "--to", "tflite", flag, value)
    assert result.exit_code == error.exit_code


def inverse_model():
    """A model with an operator TFLite builtins lack (MatrixInverse)."""
    import keras
    import tensorflow as tf

    class Inverse(keras.layers.Layer):
        def call(self, x):
            return tf.linalg.inv(x)

    inputs = keras.Input(shape=(3, 3), name="matrix")
    return keras.Model(inputs, Inverse()(inputs))


def test_unsupported_op_is_named(tmp_path) -> None:
    from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite

    with pytest.raises(ConversionError, match="MatrixInverse") as caught:
        keras_to_tflite(inverse_model(), tmp_path / "m.tflite", TFLiteOptions())
    assert "--allow-flex" in str(caught.value)
    assert not (tmp_path / "m.tflite").exists()


def test_allow_flex_converts_with_a_warning(tmp_path) -> None:
    from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite

    options = TFLiteOptions(allow_flex=True)
    keras_to_tflite(inverse_model(), tmp_path / "m.tflite", options)
    assert b"Flex" in (tmp_path / "m.tflite").read_bytes()
    assert any("device runtimes cannot run it" in note for note in options.notes)
