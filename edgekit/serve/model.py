"""One model behind the server: loaded once, run by one request at a time, counted."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError
from edgekit.runtimes import load_runtime
from edgekit.runtimes.base import run_batched
from edgekit.serve import tfserving

# What TF Serving accepts in a URL path segment, and what a file system stem usually is.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GENERIC_STEMS = {"model", "saved_model", "saved-model"}


def default_name(model: Path) -> str:
    """``runs/digits/model.keras`` → ``digits``; ``mobilenet_int8.tflite`` → ``mobilenet_int8``."""
    stem = model.name if model.is_dir() else model.stem
    if stem in _GENERIC_STEMS or stem.isdigit():  # a SavedModel version folder is named "1"
        stem = model.absolute().parent.name
    return re.sub(r"[^A-Za-z0-9_.-]", "-", stem) or "model"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"model name '{name}' cannot be part of a URL path",
            hint="use letters, digits, '_', '.' and '-' (it appears in /v1/models/NAME:predict)",
        )
    return name


@dataclass
class Counters:
    requests: int = 0
    failed: int = 0
    instances: int = 0


@dataclass
class ServedModel:
    """A model the server answers for. Runtimes are not thread-safe (a TFLite interpreter has
    one set of buffers), so inference takes a lock; parsing and encoding run outside it."""

    name: str
    path: Path
    runtime: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    counters: Counters = field(default_factory=Counters)

    @classmethod
    def load(cls, path: Path, name: str | None = None, *, runtime: str | None = None, threads: int | None = None):
        return cls(check_name(name or default_name(path)), path, load_runtime(path, runtime, threads=threads))

    def predict(self, body: bytes) -> dict[str, Any]:
        """A ``:predict`` body → TF Serving's answer. DataError for a request the model cannot take."""
        request = tfserving.parse_predict(body, self.runtime.inputs)
        with self.lock:
            outputs = run_batched(self.runtime, request.feeds)
        self.counters.instances += len(next(iter(request.feeds.values())))
        return tfserving.predict_response(outputs, request.format)

    def metadata(self) -> dict[str, Any]:
        return tfserving.metadata_document(self.name, self.runtime.inputs, self.runtime.outputs)

    def close(self) -> None:
        self.runtime.close()
