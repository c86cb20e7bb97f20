"""A client for the TensorFlow Serving REST API: edgekit's own server or a real TF Serving.

Every failure is a ServerError saying which URL and what happened (refused, timed out, an
error answer, an answer of the wrong shape), never an HTTP library's traceback.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

import numpy as np

from edgekit.errors import ConfigError, DataError, ServerError
from edgekit.runtimes.base import TensorSpec
from edgekit.serve import tfserving

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Exchange:
    """One predict call: the outputs and what went over the wire."""

    outputs: dict[str, np.ndarray]
    request_bytes: int
    response_bytes: int
    elapsed_ms: float


def check_url(url: str) -> str:
    """``http://host:8501/v1/models/NAME`` (a trailing ``:predict`` or ``/`` is dropped)."""
    parsed = urlparse(url)
    path = parsed.path.rstrip("/").removesuffix(":predict")
    parts = path.split("/")
    if parsed.scheme not in ("http", "https") or not parsed.netloc or len(parts) < 4 or parts[1:3] != ["v1", "models"]:
        raise ConfigError(
            f"--server {url} is not a model URL",
            hint="give http://HOST:PORT/v1/models/NAME (TF Serving's REST API) or a local .keras model",
        )
    return f"{parsed.scheme}://{parsed.netloc}{path}"


class ModelServerClient:
    def __init__(self, url: str, *, timeout: float = TIMEOUT_S) -> None:
        import httpx

        self.url = check_url(url)
        # One keep-alive connection, as a device that calls a server repeatedly would hold.
        self._http = httpx.Client(timeout=timeout)
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []

    def _call(self, method: str, url: str, body: bytes | None = None) -> tuple[Any, int, float]:
        import httpx

        headers = {"content-type": "application/json"} if body is not None else None
        start = time.perf_counter()
        try:
            response = self._http.request(method, url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ServerError(f"the model server at {url} did not answer within {self._http.timeout.read} s") from exc
        except httpx.HTTPError as exc:
            raise ServerError(
                f"the model server at {url} cannot be reached ({exc})",
                hint="start one with `edgekit serve MODEL` or check --server",
            ) from exc
        elapsed_ms = (time.perf_counter() - start) * 1000
        try:
            document = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            document = None
        if response.status_code != 200:
            message = document.get("error") if isinstance(document, dict) else response.text[:200]
            raise ServerError(f"the model server at {url} answered {response.status_code}: {message}")
        if document is None:
            raise ServerError(f"the model server at {url} answered something that is not JSON")
        return document, len(response.content), elapsed_ms

    def connect(self) -> ModelServerClient:
        """Check the model is available and read its signature."""
        status, _, _ = self._call("GET", self.url)
        states = [v.get("state") for v in status.get("model_version_status", [])] if isinstance(status, dict) else []
        if "AVAILABLE" not in states:
            raise ServerError(f"the model at {self.url} is not available (versions: {states or 'none'})")
        metadata, _, _ = self._call("GET", f"{self.url}/metadata")
        try:
            self.inputs, self.outputs = tfserving.specs_from_metadata(metadata)
        except DataError as exc:
            raise ServerError(f"{self.url}: {exc.message}") from exc
        return self

    def request_body(self, feeds: dict[str, np.ndarray]) -> bytes:
        """The row-format body a client sends: ``{"instances": [...]}``."""
        if len(feeds) == 1:
            instances: Any = next(iter(feeds.values())).tolist()
        else:
            names = {name: tfserving.short_name(name) for name in feeds}
            count = len(next(iter(feeds.values())))
            instances = [{names[n]: v[i].tolist() for n, v in feeds.items()} for i in range(count)]
        return json.dumps({"instances": instances}, separators=(",", ":")).encode()

    def predict(self, feeds: dict[str, np.ndarray]) -> Exchange:
        """Outputs for a batch, keyed by the server's output names (in its metadata's order)."""
        body = self.request_body(feeds)
        count = len(next(iter(feeds.values())))
        document, response_bytes, elapsed_ms = self._call("POST", f"{self.url}:predict", body)
        predictions = document.get("predictions") if isinstance(document, dict) else None
        if not isinstance(predictions, list) or len(predictions) != count:
            got = len(predictions) if isinstance(predictions, list) else "no"
            raise ServerError(f"the model server at {self.url} answered {got} predictions for {count} instances")
        names = [s.name for s in self.outputs] or ["output"]
        try:
            if all(isinstance(p, dict) for p in predictions) and len(names) > 1:
                outputs = {n: np.asarray([p[n] for p in predictions], dtype=np.float32) for n in names}
            else:
                outputs = {names[0]: np.asarray(predictions, dtype=np.float32)}
        except (KeyError, ValueError, TypeError) as exc:
            raise ServerError(f"the model server at {self.url} answered predictions of irregular shape") from exc
        return Exchange(outputs, len(body), response_bytes, elapsed_ms)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ModelServerClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
