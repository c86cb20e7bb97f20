"""Inference runtimes behind one interface (edgekit.runtimes.base.Runtime).

``RUNTIMES`` is an explicit table of lazy loaders: importing edgekit never imports TensorFlow,
onnxruntime or OpenVINO, and a runtime whose package is missing raises RuntimeUnavailable
naming the pip extra, rather than vanishing from a registry.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import InputNotFoundError, ModelError, RuntimeUnavailable, UnknownNameError
from edgekit.runtimes.base import Runtime, TensorSpec

__all__ = ["RUNTIMES", "Runtime", "RuntimeEntry", "TensorSpec", "load_runtime", "runtime_for_path"]


@dataclass(frozen=True)
class RuntimeEntry:
    name: str
    module: str  # edgekit.runtimes.<module>
    cls: str
    packages: tuple[str, ...]  # any one of these makes the runtime available
    extra: str  # the pip extra that installs it with the rest of its side (device or server)
    suffixes: tuple[str, ...]  # model files it runs
    # The smallest install that adds it, where that is less than the extra: a device running an
    # .onnx needs ONNX Runtime, not the server's TensorFlow.
    alone: str | None = None

    def load_class(self) -> Callable[..., Runtime]:
        if not any(importlib.util.find_spec(p) is not None for p in self.packages):
            extra = f"pip install 'edgekit[{self.extra}]'"
            raise RuntimeUnavailable(
                f"the {self.name} runtime needs the Python package '{self.packages[0]}', which is not installed",
                hint=f"install it with: pip install {self.alone} (or {extra} for the whole {self.extra} side)"
                if self.alone
                else f"install it with: {extra}",
            )
        cls: Callable[..., Runtime] = getattr(importlib.import_module(self.module), self.cls)
        return cls


RUNTIMES: dict[str, RuntimeEntry] = {
    entry.name: entry
    for entry in (
        RuntimeEntry(
            "tflite",
            "edgekit.runtimes.tflite",
            "TFLiteRuntime",
            ("ai_edge_litert", "tflite_runtime", "tensorflow"),
            "device",
            (".tflite",),
        ),
        RuntimeEntry(
            "onnxruntime",
            "edgekit.runtimes.onnxruntime",
            "OnnxRuntime",
            ("onnxruntime",),
            "convert",
            (".onnx",),
            alone="onnxruntime",
        ),
        RuntimeEntry(
            "openvino",
            "edgekit.runtimes.openvino",
            "OpenVinoRuntime",
            ("openvino",),
            "convert",
            (".xml", ".onnx"),
            alone="openvino",
        ),
        RuntimeEntry("keras", "edgekit.runtimes.keras", "KerasRuntime", ("keras",), "convert", (".keras", ".h5")),
    )
}


def runtime_for_path(path: Path) -> str:
    """The default runtime for a model file: by suffix, a SavedModel folder runs on Keras."""
    if path.is_dir():
        return "keras"
    for entry in RUNTIMES.values():
        if path.suffix.lower() in entry.suffixes:
            return entry.name
    raise ModelError(
        f"{path.name}: no runtime runs '{path.suffix}' files",
        hint="give a .tflite, .onnx, OpenVINO .xml or Keras .keras/.h5 model",
    )


def load_runtime(
    path: Path,
    runtime: str | None = None,
    *,
    threads: int | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> Runtime:
    """``shapes``: the resolved input shapes (edgekit.inputs) to prepare the model at; without
    them a model with dynamic dimensions is prepared at the shapes of its first inputs."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"model {path} does not exist")
    name = runtime or runtime_for_path(path)
    if name not in RUNTIMES:
        raise UnknownNameError("runtime", name, RUNTIMES)
    return RUNTIMES[name].load_class()(path, threads=threads, shapes=shapes)
