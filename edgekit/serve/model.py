"""One model behind the server: loaded once, fed by one worker thread that batches the requests
waiting for it, as TF Serving's batching does.

Why one thread: a runtime is not thread-safe (a TFLite interpreter has one set of buffers), and
forty request threads parsing JSON and calling the model at once mostly fight over the GIL
(measured here: 50 clients got half the throughput of one). Why batching: while one call runs,
requests queue; the next call takes all of them at once where the model's batch dimension is
dynamic (a Keras model), so under load the per-request model cost falls instead of the queue
growing. Nothing waits for a batch to fill: a lone request runs at once.
"""

from __future__ import annotations

import queue
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, DataError
from edgekit.runtimes import load_runtime
from edgekit.runtimes.base import run_batched
from edgekit.serve import tfserving

# What TF Serving accepts in a URL path segment, and what a file system stem usually is.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GENERIC_STEMS = {"model", "saved_model", "saved-model"}
MAX_BATCH = 256  # instances per model call; a larger single request is split by run_batched


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
    model_calls: int = 0


@dataclass
class _Job:
    body: bytes
    answer: Future  # bytes of the JSON answer, or the DataError
    request: tfserving.PredictRequest | None = None


@dataclass
class ServedModel:
    name: str
    path: Path
    runtime: Any
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._work, name=f"edgekit-serve-{self.name}", daemon=True)
        self._worker.start()

    @classmethod
    def load(
        cls, path: Path, name: str | None = None, *, runtime: str | None = None, threads: int | None = None
    ) -> ServedModel:
        return cls(check_name(name or default_name(path)), path, load_runtime(path, runtime, threads=threads))

    @property
    def batches_requests(self) -> bool:
        return all(spec.batch_is_dynamic for spec in self.runtime.inputs)

    def submit(self, body: bytes) -> Future:
        """Queue a ``:predict`` body; the future gives the answer's JSON bytes or a DataError."""
        job = _Job(body, Future())
        self._jobs.put(job)
        return job.answer

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            jobs = [job]
            while len(jobs) < MAX_BATCH:  # everything already waiting, without waiting for more
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # stop after this batch
                    break
                jobs.append(more)
            self._answer(jobs)

    def _answer(self, jobs: list[_Job]) -> None:
        ready = []
        for job in jobs:
            self.counters.requests += 1
            try:
                job.request = tfserving.parse_predict(job.body, self.runtime.inputs)
                ready.append(job)
            except DataError as exc:
                self.counters.failed += 1
                job.answer.set_exception(exc)
        groups = [ready] if self.batches_requests else [[job] for job in ready]
        for group in groups:
            if group:
                self._run(group)

    def _run(self, jobs: list[_Job]) -> None:
        requests = [job.request for job in jobs if job.request is not None]
        counts = [len(next(iter(r.feeds.values()))) for r in requests]
        feeds = {spec.name: np.concatenate([r.feeds[spec.name] for r in requests]) for spec in self.runtime.inputs}
        try:
            outputs = run_batched(self.runtime, feeds, MAX_BATCH)
        except Exception as exc:  # noqa: BLE001 - every waiting client gets the error; the server keeps serving
            for job in jobs:
                self.counters.failed += 1
                job.answer.set_exception(exc)
            return
        self.counters.model_calls += 1
        start = 0
        for job, request, count in zip(jobs, requests, counts, strict=True):
            mine = {name: value[start : start + count] for name, value in outputs.items()}
            start += count
            self.counters.instances += count
            job.answer.set_result(tfserving.dumps(tfserving.predict_response(mine, request.format)))

    def metadata(self) -> dict[str, Any]:
        return tfserving.metadata_document(self.name, self.runtime.inputs, self.runtime.outputs)

    def close(self) -> None:
        self._jobs.put(None)
        self._worker.join(timeout=30)
        self.runtime.close()
