"""The HTTP side of ``edgekit serve``: TF Serving's REST paths on FastAPI.

    GET  /v1/models/NAME[/versions/1]            status: the version and whether it is available
    GET  /v1/models/NAME[/versions/1]/metadata   the serving signature: inputs, outputs, dtypes, shapes
    POST /v1/models/NAME[/versions/1]:predict    {"instances": [...]} or {"inputs": ...}

Answers are TF Serving's, errors included: ``{"error": "..."}`` with 400 for a request the model
cannot take (malformed JSON, wrong shape), 404 for an unknown model or version, 413 for a body
over the size limit. Bodies are parsed, run and answered on the model's own worker thread
(edgekit.serve.model), so a large request never stalls the event loop the other clients share.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from edgekit import __version__
from edgekit.errors import DataError
from edgekit.serve import tfserving
from edgekit.serve.model import ServedModel

DEFAULT_MAX_REQUEST_BYTES = 16 * 2**20


class _Failure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    too_large = f"request body exceeds the {limit} byte limit of this server (edgekit serve --max-request-mb)"
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Failure(413, too_large)
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked upload has no Content-Length: count as it comes
        size += len(chunk)
        if size > limit:
            raise _Failure(413, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(models: dict[str, ServedModel], *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> FastAPI:
    app = FastAPI(title="edgekit serve", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    def find(name: str, version: str | None) -> ServedModel:
        if name not in models:
            raise _Failure(404, f"Servable not found for request: Latest({name}); this server has {sorted(models)}")
        if version is not None and version != tfserving.VERSION:
            raise _Failure(404, f"Servable not found for request: Specific({name}, {version})")
        return models[name]

    @app.exception_handler(_Failure)
    async def _failure(request: Request, exc: _Failure) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    async def predict(model: ServedModel, request: Request) -> Response:
        body = await _read_body(request, max_request_bytes)
        try:
            answer = await asyncio.wrap_future(model.submit(body))
        except DataError as exc:
            raise _Failure(400, exc.one_line()) from None
        except Exception as exc:  # noqa: BLE001 - a model that fails is a 500 with its reason, not a dropped socket
            raise _Failure(500, f"the model failed: {type(exc).__name__}: {exc}") from None
        return Response(answer, media_type="application/json")

    def split_verb(target: str) -> tuple[str, str]:
        name, _, verb = target.partition(":")
        if verb != "predict":
            raise _Failure(404 if not verb else 400, f"edgekit serve answers :predict, not '{verb or target}'")
        return name, verb

    @app.get("/v1/models/{name}")
    async def status(name: str) -> dict[str, Any]:
        find(name, None)
        return tfserving.status_document()

    @app.get("/v1/models/{name}/versions/{version}")
    async def version_status(name: str, version: str) -> dict[str, Any]:
        find(name, version)
        return tfserving.status_document(version)

    @app.get("/v1/models/{name}/metadata")
    async def metadata(name: str) -> dict[str, Any]:
        return find(name, None).metadata()

    @app.get("/v1/models/{name}/versions/{version}/metadata")
    async def version_metadata(name: str, version: str) -> dict[str, Any]:
        return find(name, version).metadata()

    # TF Serving puts the verb after a colon in the last path segment ("digits:predict"), which a
    # path template cannot split, so the segment is taken whole and split here.
    @app.post("/v1/models/{target}")
    async def predict_latest(target: str, request: Request) -> Response:
        name, _ = split_verb(target)
        return await predict(find(name, None), request)

    @app.post("/v1/models/{name}/versions/{target}")
    async def predict_version(name: str, target: str, request: Request) -> Response:
        version, _ = split_verb(target)
        return await predict(find(name, version), request)

    return app
