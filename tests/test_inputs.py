"""One input specification, resolved one way: --shape, else data, else the manifest, else the model."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.data import Dataset, validate_dataset
from edgekit.errors import ConfigError, DataError, ModelError, UnknownNameError
from edgekit.inputs import INTEGER_RANGE, ShapeOrigin, ShapeRequest, random_inputs, resolve
from edgekit.manifest import ManifestTensor
from edgekit.runtimes.base import TensorSpec

IMAGE = TensorSpec("x", (None, 3, None, None), "float32", dim_names=("batch", None, "height", "width"))
STATE = TensorSpec("state", (2, None, 128), "float32")
RATE = TensorSpec("sr", (), "int64")


def test_the_order_is_shape_then_data_then_manifest_then_model() -> None:
    fixed = TensorSpec("y", (None, 10), "float32")
    manifest = [ManifestTensor(name="x", shape=[1, 3, 320, 320], dtype="float32")]
    resolved = resolve([IMAGE, fixed], manifest_inputs=manifest)
    assert [(r.shape, r.origin) for r in resolved] == [
        ((1, 3, 320, 320), ShapeOrigin.MANIFEST),
        ((1, 10), ShapeOrigin.MODEL),
    ]
    assert resolved[1].batch_defaulted and not resolved[0].batch_defaulted
    data = resolve([IMAGE, fixed], data_shapes={"x": (1, 3, 64, 64)}, manifest_inputs=manifest)
    assert data[0].shape == (1, 3, 64, 64) and data[0].origin is ShapeOrigin.DATA
    flag = resolve([IMAGE, fixed], request=ShapeRequest.parse(["x=2,3,128,96"]), manifest_inputs=manifest)
    assert flag[0].shape == (2, 3, 128, 96) and flag[0].origin is ShapeOrigin.FLAG


def test_only_a_leading_batch_is_set_unasked() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve([IMAGE], model="det.onnx")
    line = caught.value.one_line()
    assert "input 'x' of det.onnx (?, 3, ?, ?) has dynamic dimensions 2, 3 (height, width)" in line
    assert "--shape x=1,3,224,224" in line
    with pytest.raises(ConfigError, match="dimension 1"):
        resolve([STATE])  # a state's batch is not its first dimension: never set to 1 unasked


def test_scalars_and_several_inputs() -> None:
    resolved = resolve([STATE, RATE], request=ShapeRequest.parse(["state=2,1,128"]))
    assert [r.shape for r in resolved] == [(2, 1, 128), ()]
    with pytest.raises(ConfigError, match="one-input model"):
        resolve([STATE, RATE], request=ShapeRequest.parse(["2,1,128"]))
    with pytest.raises(UnknownNameError, match="did you mean 'state'"):
        resolve([STATE, RATE], request=ShapeRequest.parse(["stat=2,1,128"]))


@pytest.mark.parametrize(
    ("value", "says"),
    [("x=1,3,-2,4", "at least 1"), ("x=1,3,a,4", "not a whole number"), ("=1,2", "name before '=' is empty")],
)
def test_bad_shape_text(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        ShapeRequest.parse([value])


def test_random_inputs_respect_dtype_and_rank() -> None:
    specs = [
        RATE,
        TensorSpec("ids", (1, 16), "int32"),
        TensorSpec("mask", (1, 16), "bool"),
        TensorSpec("half", (1, 4), "float16"),
    ]
    feeds = random_inputs(resolve(specs))
    assert feeds["sr"].shape == () and feeds["sr"].dtype == np.int64
    assert feeds["ids"].dtype == np.int32 and INTEGER_RANGE[0] <= feeds["ids"].min() <= feeds["ids"].max() < 8
    assert feeds["mask"].dtype == np.bool_ and feeds["half"].dtype == np.float16
    stacked = random_inputs(resolve(specs), 5)
    assert stacked["sr"].shape == (5,) and stacked["ids"].shape == (5, 1, 16)


def test_a_string_input_is_refused_plainly() -> None:
    with pytest.raises(ModelError, match="string tensor"):
        resolve([TensorSpec("text", (1,), "string")])


def test_data_holds_whole_inputs_or_a_batch() -> None:
    """A state [2, 1, 128] comes as [N, 2, 1, 128], a scalar as [N]; an image batch as [N, H, W, C]."""
    data = Dataset({"state": np.zeros((4, 2, 1, 128), np.float32), "sr": np.full(4, 16000, np.int64)}, origin="vad.npz")
    assert validate_dataset(data, [STATE, RATE]) == frozenset({"state", "sr"})
    data.whole = frozenset({"state", "sr"})
    assert data.sample_shapes() == {"state": (2, 1, 128), "sr": ()}
    assert data.sample(2, "sr").shape == () and data.sample(2, "state").shape == (2, 1, 128)
    images = Dataset({"x": np.zeros((4, 3, 8, 8), np.float32)}, origin="images.npz")
    assert validate_dataset(images, [IMAGE]) == frozenset()
    assert images.sample_shapes() == {"x": (1, 3, 8, 8)}
    with pytest.raises(DataError, match="give N samples as one array of shape"):
        validate_dataset(Dataset({"state": np.zeros((2, 128), np.float32)}, origin="bad.npz"), [STATE])


def test_an_input_may_be_named_without_its_tensor_suffix() -> None:
    """TFLite names inputs serving_default_x:0; --shape serving_default_x=… is what a user types."""
    spec = TensorSpec("serving_default_x:0", (None, None), "float32")
    (resolved,) = resolve([spec], request=ShapeRequest.parse(["serving_default_x=1,16"]))
    assert resolved.name == "serving_default_x:0" and resolved.shape == (1, 16)


def test_one_rule_matches_arrays_and_request_keys_to_inputs_best_first() -> None:
    from edgekit.data import best_match, match_inputs

    assert best_match("x", ["x_len", "x"]) == "x"  # a part of a name never beats the name
    assert best_match("image", ["serving_default_image:0"]) == "serving_default_image:0"
    assert best_match("mage", ["serving_default_image:0"], loosest=2) is None  # the serving API's limit
    specs = [TensorSpec("x_len", (1,), "int64"), TensorSpec("x", (1, 4), "float32")]
    assert match_inputs(["x", "x_len"], specs, "d.npz") == {"x": "x", "x_len": "x_len"}


def test_comma_lists_refuse_an_empty_item() -> None:
    from edgekit.cli.lists import comma_list

    assert comma_list("tflite, onnxruntime", "--runtime") == ["tflite", "onnxruntime"]
    assert comma_list(None, "--device") == []
    with pytest.raises(ConfigError, match="empty item"):
        comma_list("rpi4,", "--device")
