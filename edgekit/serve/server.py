"""Running the app under uvicorn: in the foreground for ``edgekit serve``, or on a background
thread for ``edgekit compare`` and the tests, which talk to it over real HTTP.

The listening socket is bound here, before uvicorn starts, so a port in use is one clear error
instead of uvicorn's log line and exit. Shutdown is uvicorn's graceful one: stop accepting,
let requests in flight finish (at most ``GRACE_S``), close the models.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

from edgekit.errors import ConfigError, ServerError
from edgekit.foreign import UVICORN_SERVE, mapped

GRACE_S = 10
# Many clients connecting at once must queue in the kernel, not be refused.
BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is in use" if exc.errno == 98 else f"cannot be opened ({exc.strerror})"
        raise ConfigError(
            f"port {port} on {host} {reason}", hint="choose another --port (or stop what holds it)"
        ) from exc
    sock.listen(BACKLOG)
    return sock


def _uvicorn_server(app: Any, *, access_log: bool) -> Any:
    import logging

    import uvicorn

    if access_log:
        handler = logging.StreamHandler()  # the stderr of the moment, as edgekit's own lines
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        for name in ("uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
    config = uvicorn.Config(
        app,
        # uvicorn's own logging set-up binds handlers to the sys.stderr of the moment for good,
        # which a server on a background thread outlives (a closed stream at exit); edgekit's
        # errors are its own lines, and the access log above is opt-in.
        log_config=None,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_graceful_shutdown=GRACE_S,
        backlog=BACKLOG,
    )
    return uvicorn.Server(config)


def serve_forever(app: Any, sock: socket.socket, *, access_log: bool = False) -> None:
    """Serve until SIGINT or SIGTERM; returns after the graceful shutdown (which re-raises the
    signal, as uvicorn does, so the caller sees KeyboardInterrupt for Ctrl-C)."""
    with mapped(UVICORN_SERVE, "the model server stopped"):
        _uvicorn_server(app, access_log=access_log).run(sockets=[sock])


class BackgroundServer:
    """The app on a free loopback port, on its own thread, for as long as the ``with`` lasts."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = bind(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = _uvicorn_server(app, access_log=False)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServerError(f"the model server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(GRACE_S + 5)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
