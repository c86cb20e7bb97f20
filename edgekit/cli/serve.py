"""``edgekit serve``: the server side of server-versus-edge, speaking TF Serving's REST API."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli.output import log
from edgekit.errors import ConfigError, InputNotFoundError, require_extra


def serve(
    model: Path = typer.Argument(..., help="A Keras .keras/.h5 model or SavedModel, or any edgekit artifact."),
    name: str = typer.Option(None, "--name", help="Model name in the URL (default: the model's folder or file name)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8501, "--port", help="Port to listen on (TF Serving's REST port is 8501)."),
    runtime: str = typer.Option(None, "--runtime", help="Runtime to run the model with (default: by file type)."),
    threads: int = typer.Option(None, "--threads", help="Threads the runtime may use per inference."),
    max_request_mb: float = typer.Option(16.0, "--max-request-mb", help="Refuse bodies larger than this (413)."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request on stderr."),
) -> None:
    """Serve a model at /v1/models/NAME:predict, as TensorFlow Serving does; Ctrl-C stops."""
    require_extra("fastapi", "serve")
    require_extra("uvicorn", "serve")
    from edgekit.serve.app import create_app
    from edgekit.serve.model import ServedModel
    from edgekit.serve.server import bind, serve_forever

    if not model.exists():
        raise InputNotFoundError(f"model {model} does not exist")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0–65535, got {port}")
    if max_request_mb <= 0:
        raise ConfigError(f"--max-request-mb must be positive, got {max_request_mb}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    # Bound first, so a busy port is one line before the model spends seconds loading; released
    # again if the model fails to load.
    sock = bind(host, port)
    try:
        served = ServedModel.load(model, name, runtime=runtime, threads=threads)
    except BaseException:
        sock.close()
        raise
    bound_port = sock.getsockname()[1]
    app = create_app({served.name: served}, max_request_bytes=int(max_request_mb * 2**20))
    base = f"http://{host}:{bound_port}/v1/models/{served.name}"
    log(
        f"edgekit serve: {served.name} ({model.name} on {served.runtime.name}) at {base} — "
        f"POST {base}:predict, GET {base}/metadata; Ctrl-C stops"
    )
    try:
        serve_forever(app, sock, access_log=access_log)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM is how a server is meant to stop: uvicorn has already drained it
    finally:
        served.close()
        sock.close()
    c = served.counters
    log(f"edgekit serve: stopped after {c.requests} requests ({c.instances} instances, {c.failed} refused)")
