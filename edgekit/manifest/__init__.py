"""The manifest: an artifact's passport, ``<artifact file>.manifest.json`` beside it.

It is what lets a device with no TensorFlow run the artifact correctly: tensors with their
quantization, preprocessing, labels, task and post-processing, plus where the artifact came
from (hashes, tool versions) and how far it is from its source (parity, metric, gate).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from edgekit import __version__
from edgekit.errors import DataError, InputNotFoundError
from edgekit.manifest.processing import (
    COLOUR_ORDERS,
    GridPostprocessing,
    IdsPreprocessing,
    ImagePreprocessing,
    Preprocessing,
    StandardizePreprocessing,
    TokensPreprocessing,
)

__all__ = [  # the processing records are part of the manifest's contract: importable from here
    "COLOUR_ORDERS", "GridPostprocessing", "IdsPreprocessing", "ImagePreprocessing", "Manifest",
    "ModelDescription", "Preprocessing", "StandardizePreprocessing", "TokensPreprocessing",
    "load_manifest", "manifest_path", "model_description", "parse_manifest",
]  # fmt: skip

# The manifest's version, written as ``edgekit_manifest``. A newer one is refused in one line;
# an older one is migrated on load (``_MIGRATIONS``).
MANIFEST_VERSION = 1
_TOOLS = (
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "ai-edge-litert",
)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorQuantization(_Record):
    scale: float
    zero_point: int


class ManifestTensor(_Record):
    """One input or output tensor as the artifact's runtime sees it."""

    name: str
    shape: list[int | None] = Field(
        description="the size it was checked at (inputs) or declares (outputs); None: dynamic"
    )
    dtype: str = Field(description="the tensor's element type: float32, int8, int64 …")
    dim_names: list[str | None] | None = Field(None, description="the model's names of its dimensions (ONNX)")
    quantization: TensorQuantization | None = Field(None, description="how an integer tensor maps to real values")
    declared: list[int | None] | None = Field(None, description="the shape the model file declares (inputs)")
    dynamic: bool | None = Field(None, description="whether the model leaves any of its dimensions open (inputs)")


class OutputPlacement(_Record):
    artifact_output: int = Field(description="which of the artifact's outputs holds this source output")
    order: list[int] | None = Field(description="its axes as the artifact lays them out; None: as the source")


class ManifestLayout(_Record):
    """Axes a converter moved relative to the source (onnx2tf's NCHW → NHWC)."""

    inputs: dict[str, list[int]] | None = Field(None, description="per artifact input: the source axes, in order")
    outputs: list[OutputPlacement] | None = None


class ManifestSource(_Record):
    path: str
    format: str
    sha256: str
    size_bytes: int


class ManifestConversion(_Record):
    steps: list[str] = Field(description="the converter steps run, in order")
    notes: list[str]
    seconds: float
    calibration: dict[str, Any] | None = Field(description="origin and samples of the calibration data used")
    evaluation: dict[str, Any] = Field(description="origin and samples of the data the artifact was checked on")


class OutputParity(_Record):
    max_abs_error: float
    relative_max_error: float = Field(description="max |error| ÷ the source output's largest magnitude")
    snr_db: float = Field(description="signal-to-noise of the artifact's output in dB, capped at ±200")


class Parity(_Record):
    """How far the artifact's outputs are from the source's on the evaluation inputs."""

    top1_agreement: float | None = Field(None, description="share of inputs with the same top class (classifiers)")
    max_abs_error: float = Field(description="the largest |error| over all outputs")
    relative_max_error: float | None = Field(None, description="the largest relative error over all outputs")
    snr_db: float = Field(description="the lowest signal-to-noise over all outputs")
    outputs: list[OutputParity] | None = Field(None, description="the same, per source output")


class Manifest(_Record):
    """The contract between the server and a device: what `edgekit convert` writes beside an
    artifact, and all a device with no TensorFlow needs to run it."""

    edgekit_manifest: int = Field(MANIFEST_VERSION, description="the manifest's version")
    artifact: str = Field(description="the artifact's file name")
    files: list[str] = Field(description="every file the artifact is made of (an IR's .xml and .bin)")
    format: str
    precision: str
    size_bytes: int
    sha256: str
    inputs: list[ManifestTensor]
    outputs: list[ManifestTensor]
    layout: ManifestLayout | None = None
    dynamic_inputs: bool = False
    task: str | None = Field(None, description="classification, regression, detection … (edgekit.tasks)")
    labels: list[str] | None = None
    preprocessing: Preprocessing | None = Field(None, description="how a camera frame, text or row becomes the input")
    postprocessing: GridPostprocessing | None = Field(None, description="how the outputs become results")
    source: ManifestSource
    conversion: ManifestConversion
    parity: Parity = Field(description="how far the artifact's outputs are from the source's")
    metric: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    versions: dict[str, str] = Field(description="edgekit's and the converters' versions")
    created: str

    @property
    def input_layout(self) -> dict[str, list[int]] | None:
        """Per input, the source's axes in the artifact's order, where a converter moved them."""
        return self.layout.inputs if self.layout is not None else None

    def to_json(self) -> str:
        # Fields never given (an input's quantization on a float model) stay out, as written.
        return json.dumps(self.model_dump(exclude_unset=True), indent=2) + "\n"


def _from_version_0(data: dict[str, Any]) -> dict[str, Any]:
    """Manifests written before the version field: the same fields, no version."""
    return {**data, "edgekit_manifest": 1}


# version found → the function that lifts it one version up
_MIGRATIONS = {0: _from_version_0}


def parse_manifest(data: dict[str, Any], origin: str) -> Manifest:
    """A manifest from its JSON: a newer version is refused, an older one migrated."""
    version = data.get("edgekit_manifest", 0)
    if not isinstance(version, int) or version < 0:
        raise DataError(f"{origin}: edgekit_manifest must be a version number, got {version!r}")
    if version > MANIFEST_VERSION:
        raise DataError(
            f"{origin} was written by a newer edgekit (manifest version {version}; this one reads up to "
            f"{MANIFEST_VERSION})",
            hint="upgrade edgekit on this machine, or convert the model with this version",
        )
    while version < MANIFEST_VERSION:
        data = _MIGRATIONS[version](data)
        version = data["edgekit_manifest"]
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, origin, "re-run `edgekit convert` to rewrite it") from exc


def _invalid(exc: ValidationError, origin: str, hint: str) -> DataError:
    """pydantic's first complaint as one line: where in the file, and what."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return DataError(f"{origin}: {where}: {first['msg']}", hint=hint)


def manifest_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".manifest.json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def artifact_size(path: Path) -> int:
    """Bytes a model takes to ship: an OpenVINO .xml counts with the .bin of weights beside it."""
    weights = path.with_suffix(".bin")
    return size_of(path) + (size_of(weights) if path.suffix == ".xml" and weights.exists() else 0)


def tool_versions() -> dict[str, str]:
    versions = {"edgekit": __version__}
    for name in _TOOLS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _read_json_if_present(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def load_manifest(artifact: Path) -> Manifest | None:
    """The manifest of ``artifact`` if it has one, checked against the schema."""
    path = manifest_path(artifact)
    data = _read_json_if_present(path)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise DataError(f"{path.name} must hold a JSON object")
    return parse_manifest(data, path.name)


def read_example_description(model: Path) -> dict[str, Any] | None:
    """example.json from the folder of an example model (written by `edgekit examples train`)."""
    return _read_json_if_present((model if model.is_dir() else model.parent) / "example.json")


_PREPROCESSING: TypeAdapter[Preprocessing] = TypeAdapter(Preprocessing)


class _ExampleRecords(BaseModel):
    """The records of an example.json that a manifest copies, checked alike; the rest is the example's own."""

    model_config = ConfigDict(extra="ignore")
    preprocessing: Preprocessing | None = None
    postprocessing: GridPostprocessing | None = None


@dataclass
class ModelDescription:
    """What a model is for and how data reaches it: the part of a manifest (or an example's
    example.json) that conversion, comparison and the daemon read."""

    task: str | None = None
    labels: list[str] | None = None
    preprocessing: Preprocessing | None = None
    postprocessing: GridPostprocessing | None = None

    @classmethod
    def from_example(cls, found: dict[str, Any], origin: str) -> ModelDescription:
        """The description from an example.json, its records checked as a manifest's are."""
        if not isinstance(found, dict):
            raise DataError(f"{origin} must hold a JSON object")
        try:
            records = _ExampleRecords.model_validate(found)
        except ValidationError as exc:
            raise _invalid(exc, origin, "re-run `edgekit examples train` to rewrite it") from exc
        return cls(found.get("task"), found.get("labels"), records.preprocessing, records.postprocessing)

    def with_preprocessing(self, given: dict[str, Any]) -> ModelDescription:
        """This description with preprocessing fields given on the command line laid over its own."""
        own = self.preprocessing.model_dump(exclude_unset=True) if self.preprocessing is not None else {}
        kind = given.get("kind", own.get("kind", "image"))  # fields given alone are an image's
        if own.get("kind", kind) != kind:
            own = {}  # a record of another kind is replaced, not mixed with this one
        try:
            merged = parse_preprocessing({**own, **given, "kind": kind})
        except ValidationError as exc:
            raise _invalid(exc, "the preprocessing given", "check --image-size, --color, --scale and --offset") from exc
        return ModelDescription(self.task, self.labels, merged, self.postprocessing)


def parse_preprocessing(data: dict[str, Any] | None) -> Preprocessing | None:
    return None if data is None else _PREPROCESSING.validate_python(data)


def model_description(model: Path) -> ModelDescription:
    """Task, labels, preprocessing and post-processing of a model: from its manifest, else its example.json."""
    if not model.exists():
        raise InputNotFoundError(f"model {model} does not exist")
    manifest = load_manifest(model)
    if manifest is not None:
        return ModelDescription(manifest.task, manifest.labels, manifest.preprocessing, manifest.postprocessing)
    found = read_example_description(model)
    if found:
        return ModelDescription.from_example(found, "example.json")
    return ModelDescription()
