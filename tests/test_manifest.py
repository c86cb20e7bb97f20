"""The manifest is a typed contract: written with its version, checked when read."""

from __future__ import annotations

import json

import pytest

from edgekit.errors import DataError
from edgekit.manifest import (
    MANIFEST_VERSION,
    ImagePreprocessing,
    Manifest,
    ModelDescription,
    load_manifest,
    manifest_path,
    model_description,
)


def _fields() -> dict:
    tensor = {"name": "image", "shape": [1, 28, 28, 1], "dtype": "int8", "declared": [1, 28, 28, 1],
              "quantization": {"scale": 0.0039, "zero_point": -128}, "dynamic": False}  # fmt: skip
    return {
        "edgekit_manifest": MANIFEST_VERSION, "artifact": "m.tflite", "files": ["m.tflite"], "format": "tflite",
        "precision": "int8", "size_bytes": 10, "sha256": "0" * 64, "inputs": [tensor],
        "outputs": [{"name": "probabilities", "shape": [1, 10], "dtype": "float32"}], "layout": None,
        "dynamic_inputs": False, "task": "classification", "labels": None, "preprocessing": None,
        "postprocessing": None,
        "source": {"path": "m.keras", "format": "keras", "sha256": "1" * 64, "size_bytes": 9},
        "conversion": {"steps": ["keras_to_tflite"], "notes": [], "seconds": 1.5, "calibration": None,
                       "evaluation": {"origin": "data.npz", "samples": 8}},
        "parity": {"top1_agreement": 1.0, "max_abs_error": 0.004, "relative_max_error": 0.001, "snr_db": 41.5,
                   "outputs": [{"max_abs_error": 0.004, "relative_max_error": 0.001, "snr_db": 41.5}]},
        "metric": None, "gate": None, "versions": {"edgekit": "0"},
        "created": "2026-12-02T00:00:00+00:00",
    }  # fmt: skip


def _write(tmp_path, fields: dict):
    artifact = tmp_path / "m.tflite"
    artifact.write_bytes(b"")
    manifest_path(artifact).write_text(json.dumps(fields))
    return artifact


def test_what_is_written_reads_back_as_it_was(tmp_path) -> None:
    fields = _fields()
    manifest = Manifest.model_validate(fields)
    assert json.loads(manifest.to_json()) == fields  # keys never given stay out, None stays None
    assert load_manifest(_write(tmp_path, fields)) == manifest


def test_a_manifest_from_a_newer_edgekit_is_one_line(tmp_path) -> None:
    artifact = _write(tmp_path, {**_fields(), "edgekit_manifest": MANIFEST_VERSION + 1, "a_new_field": 1})
    with pytest.raises(DataError) as caught:
        load_manifest(artifact)
    assert "newer edgekit" in caught.value.one_line() and "upgrade edgekit" in caught.value.one_line()


def test_a_manifest_from_before_the_version_field_is_migrated(tmp_path) -> None:
    old = _fields()
    del old["edgekit_manifest"]
    manifest = load_manifest(_write(tmp_path, old))
    assert manifest is not None and manifest.edgekit_manifest == MANIFEST_VERSION


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"inputs": [{"name": "x"}]}, "inputs.0.shape"),
        ({"brokr": 1}, "brokr"),
        ({"edgekit_manifest": "one"}, "version"),
        ({"preprocessing": {"kind": "image", "size": [28, 28], "colour": "gray"}}, "preprocessing.image.colour"),
        ({"preprocessing": {"kind": "image", "size": [28, 0]}}, "preprocessing.image.size.1"),
        ({"preprocessing": {"kind": "audio"}}, "'image', 'tokens', 'standardize', 'ids'"),
        ({"postprocessing": {"kind": "yolo-grid", "grid": [4, 4]}}, "postprocessing.image_size"),
        ({"preprocessing": {"kind": "image", "size": [28, 28], "dtype": "float33"}}, "not an element type"),
        ({"preprocessing": {"kind": "ids", "inputs": {"user": {"range": [9, 0]}}}}, "runs backwards"),
    ],
)
def test_a_damaged_manifest_names_the_field(tmp_path, change: dict, says: str) -> None:
    with pytest.raises(DataError) as caught:
        load_manifest(_write(tmp_path, {**_fields(), **change}))
    assert says in caught.value.one_line() and "\n" not in caught.value.one_line()


def test_preprocessing_reads_back_typed_and_writes_only_what_was_given(tmp_path) -> None:
    image = {"kind": "image", "size": [28, 28], "color": "gray", "scale": 0.00392}
    fields = {**_fields(), "preprocessing": image}
    description = model_description(_write(tmp_path, fields))
    assert isinstance(description.preprocessing, ImagePreprocessing)
    assert description.preprocessing.size == (28, 28) and description.preprocessing.layout == "NHWC"  # the default
    assert json.loads(Manifest.model_validate(fields).to_json())["preprocessing"] == image


def test_an_example_json_is_checked_as_a_manifest_is(tmp_path) -> None:
    model = tmp_path / "model.keras"
    model.write_bytes(b"")
    (tmp_path / "example.json").write_text(json.dumps({"task": "regression", "preprocessing": {"kind": "ids"}}))
    with pytest.raises(DataError) as caught:
        model_description(model)
    assert caught.value.one_line().startswith("example.json: preprocessing.ids.inputs: ")
    (tmp_path / "example.json").write_text(json.dumps({"task": "regression"}))
    assert model_description(model) == ModelDescription(task="regression")


def test_image_flags_lay_over_the_examples_record_or_replace_another_kind() -> None:
    image = ModelDescription(preprocessing=ImagePreprocessing(kind="image", size=(28, 28), color="gray"))
    flags = {"kind": "image", "layout": "NHWC", "resize": "linear", "dtype": "float32", "scale": 0.5}
    merged = image.with_preprocessing(flags).preprocessing
    assert isinstance(merged, ImagePreprocessing) and (merged.size, merged.color, merged.scale) == (
        (28, 28),
        "gray",
        0.5,
    )
    tokens = ModelDescription.from_example(
        {"preprocessing": {"kind": "tokens", "vocabulary": "v.txt", "max_len": 8, "pad_id": 0, "oov_id": 1}}, "e"
    )
    replaced = tokens.with_preprocessing({**flags, "size": [8, 8]}).preprocessing
    assert isinstance(replaced, ImagePreprocessing) and replaced.size == (8, 8)
    with pytest.raises(DataError) as caught:
        image.with_preprocessing({**flags, "color": "cmyk"})
    assert caught.value.one_line().startswith("the preprocessing given: image.color:")


def test_a_written_image_record_keeps_the_examples_order_and_any_case_of_layout(tmp_path) -> None:
    # digits-cnn's record, as the example writes it
    record = {"kind": "image", "layout": "NHWC", "size": [28, 28], "color": "gray", "resize": "linear",
              "scale": 1 / 255, "offset": 0.0, "dtype": "float32"}  # fmt: skip
    written = Manifest.model_validate({**_fields(), "preprocessing": record}).to_json()
    assert list(json.loads(written)["preprocessing"].items()) == list(record.items())  # key for key, in order
    lower = model_description(_write(tmp_path, {**_fields(), "preprocessing": {**record, "layout": "nchw"}}))
    assert isinstance(lower.preprocessing, ImagePreprocessing) and lower.preprocessing.layout == "NCHW"


def test_fields_given_without_a_kind_lay_over_the_record() -> None:
    image = ModelDescription(preprocessing=ImagePreprocessing(kind="image", size=(28, 28), color="gray"))
    merged = image.with_preprocessing({"size": [32, 32]}).preprocessing
    assert isinstance(merged, ImagePreprocessing) and (merged.size, merged.color) == ((32, 32), "gray")
    alone = ModelDescription().with_preprocessing({"size": [8, 8]}).preprocessing
    assert isinstance(alone, ImagePreprocessing) and alone.size == (8, 8)
