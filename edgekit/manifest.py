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
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.errors import DataError, InputNotFoundError

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


def read_manifest(artifact: Path) -> dict[str, Any] | None:
    """The manifest of ``artifact`` if it has one."""
    return _read_json_if_present(manifest_path(artifact))


def read_example_description(model: Path) -> dict[str, Any] | None:
    """example.json from the folder of an example model (written by `edgekit examples train`)."""
    return _read_json_if_present((model if model.is_dir() else model.parent) / "example.json")


def model_description(model: Path) -> dict[str, Any]:
    """Task, labels, preprocessing and post-processing of a model: from its manifest, else its example.json."""
    if not model.exists():
        raise InputNotFoundError(f"model {model} does not exist")
    for found in (read_manifest(model), read_example_description(model)):
        if found:
            return {key: found.get(key) for key in ("task", "labels", "preprocessing", "postprocessing")}
    return {"task": None, "labels": None, "preprocessing": None, "postprocessing": None}
