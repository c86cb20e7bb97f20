"""Where the daemon's model runs: in the daemon's process (the default), or in one of its own.

Why a process: CPython's GIL. An interpreter releases it while it runs but must take it back
to return, and any Python thread running meanwhile (the MQTT client, capture, the metrics
endpoint) delays that return by up to the 5 ms switch interval: bare invokes fell from ~230/s
to 106/s here beside one spinning Python thread, and the daemon delivered 0.91 of the model-only
rate. In a process of its own the model loop holds its GIL alone (as Frigate runs its detectors),
and a runtime that crashes takes only that process down: the daemon ends with one line naming it.
Measured on a 2-core machine it delivered less, not more (0.79 of the model-only rate against 0.90
in-process, benchmarks/RESULTS.md): the hand-over's copies and wake-ups cost more there than the GIL
did, so it is the option (``--inference process``), not the default.

Frames go in through shared memory (a prepared 224×224×3 float frame is 600 kB; pickling it
through a pipe would cost more than the copy), answers come back over a pipe (a few kB). Two
frames may be in flight, so the model starts the next frame while the daemon post-processes
and publishes the last. The child ignores SIGINT and SIGTERM (a terminal's Ctrl-C and systemd's
stop reach the whole process group): it ends when the daemon closes the pipe, or dies.
"""

from __future__ import annotations

import collections
import multiprocessing
import signal
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import errors
from edgekit.errors import DeviceError, EdgekitError
from edgekit.quiet import debugging
from edgekit.runtimes import load_runtime
from edgekit.runtimes.base import TensorSpec

LOAD_TIMEOUT_S = 120.0  # a large ONNX model on a Raspberry Pi takes tens of seconds to load
SLOTS = 2  # frames in flight: one running, one waiting


class InProcessModel:
    """The model run by the daemon's own thread, one frame at a time (the default)."""

    depth = 1

    def __init__(self, model: Path, runtime: str | None, threads: int | None) -> None:
        self._runtime = load_runtime(model, runtime, threads=threads)
        self.inputs: list[TensorSpec] = self._runtime.inputs
        self.outputs: list[TensorSpec] = self._runtime.outputs
        self._queued: collections.deque[dict[str, np.ndarray]] = collections.deque()
        self.last_run_s = 0.0

    def prepare(self, shapes: dict[str, tuple[int, ...]]) -> None:
        if hasattr(self._runtime, "prepare"):
            self._runtime.prepare(shapes)

    def submit(self, feeds: dict[str, np.ndarray]) -> None:
        self._queued.append(feeds)

    def ready(self, timeout: float) -> bool:
        return bool(self._queued)

    def result(self) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        outputs = self._runtime.run(self._queued.popleft())
        self.last_run_s = time.perf_counter() - start
        return outputs

    def close(self) -> None:
        self._runtime.close()


class ModelProcess:
    """The model loaded and run in a child process; the same calls as InProcessModel."""

    depth = SLOTS

    def __init__(self, model: Path, runtime: str | None, threads: int | None) -> None:
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no threads or locks of ours
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, str(model), runtime, threads), name="edgekit-inference", daemon=True
        )
        # Ignored from the start (dispositions survive exec): a Ctrl-C or a service manager's stop
        # during the child's imports, before it could ignore them itself, would kill it.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._process.start()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        child.close()
        self._slots: list[SharedMemory | None] = [None] * SLOTS
        self._next = 0
        self._in_flight = 0
        self.last_run_s = 0.0  # what the model's own run of the last answered frame took
        try:
            reply = self._receive(LOAD_TIMEOUT_S, f"loading {Path(model).name}")
        except BaseException:
            self.close()
            raise
        self.inputs, self.outputs = reply

    def prepare(self, shapes: dict[str, tuple[int, ...]]) -> None:
        self._send(("prepare", shapes), "preparing the model")
        self._receive(LOAD_TIMEOUT_S, "preparing the model")

    def submit(self, feeds: dict[str, np.ndarray]) -> None:
        if self._in_flight >= SLOTS:
            raise RuntimeError("more frames submitted than the inference process has slots for")
        index = self._next
        self._next = (index + 1) % SLOTS
        arrays = {name: np.ascontiguousarray(value) for name, value in feeds.items()}
        size = sum(a.nbytes for a in arrays.values())
        slot = self._slots[index]
        if slot is None or slot.size < size:
            if slot is not None:
                _release(slot)
            slot = self._slots[index] = SharedMemory(create=True, size=max(size, 1))
        layout, offset = [], 0
        for name, array in arrays.items():
            np.ndarray(array.shape, array.dtype, buffer=slot.buf, offset=offset)[...] = array
            layout.append((name, array.shape, array.dtype.str, offset))
            offset += array.nbytes
        self._send(("run", slot.name, layout), "running the model")
        self._in_flight += 1

    def ready(self, timeout: float) -> bool:
        return self._in_flight > 0 and self._conn.poll(timeout)

    def result(self) -> dict[str, np.ndarray]:
        outputs, self.last_run_s = self._receive(None, "running the model")
        self._in_flight -= 1
        return outputs

    def _send(self, message: tuple[Any, ...], doing: str) -> None:
        try:
            self._conn.send(message)
        except OSError:
            raise self._ended(doing) from None

    def _receive(self, timeout: float | None, doing: str) -> Any:
        try:
            if timeout is not None and not self._conn.poll(timeout):
                raise DeviceError(
                    f"the inference process did not answer within {timeout:.0f} s {doing}",
                    hint="run with --inference in-process to see where it stops",
                )
            kind, *payload = self._conn.recv()
        except (EOFError, OSError):
            raise self._ended(doing) from None
        if kind == "error":
            raise _rebuilt(*payload)
        if kind == "crash":  # not a problem of the user's: edgekit's own failure, as it would be in-process
            raise RuntimeError(f"the inference process failed {doing}: {payload[0]}")
        return payload[0]

    def _ended(self, doing: str) -> DeviceError:
        self._process.join(timeout=1.0)
        code = self._process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return DeviceError(
            f"the inference process ended while {doing} ({how})",
            hint="the model crashed its runtime or the machine ran out of memory; "
            "run with --inference in-process to see the runtime's own message",
        )

    def close(self) -> None:
        try:
            self._conn.close()  # the child's recv ends: it leaves
        except OSError:
            pass
        self._process.join(timeout=5.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5.0)
        for slot in self._slots:
            if slot is not None:
                _release(slot)
        self._slots = [None] * SLOTS


class HandOver:
    """When to give the model its next frame while it runs one: just before it finishes.

    Earlier, a live camera's newest frame would wait a whole inference behind the current one
    (each result a frame older than it need be: with a 150 ms detector, 300 ms instead of 150);
    later, the model would sit idle while the daemon post-processes and publishes."""

    MARGIN_S = 0.0005  # the hand-over itself: a copy into shared memory and a message
    SMOOTHING = 0.2

    def __init__(self) -> None:
        self.run_s: float | None = None
        self.tail_s = 0.0
        self._due = 0.0

    def started(self, now: float) -> None:
        """The model began a frame at ``now``: the next is due shortly before it ends."""
        self._due = now + max(0.0, (self.run_s or 0.0) - self.tail_s - self.MARGIN_S)

    def due(self, now: float) -> bool:
        return now >= self._due

    def seconds_until_due(self, now: float) -> float:
        return self._due - now

    def ran(self, seconds: float) -> None:
        self.run_s = seconds if self.run_s is None else self.run_s + self.SMOOTHING * (seconds - self.run_s)

    def finished(self, seconds: float) -> None:
        """What post-processing and publishing one answer took."""
        self.tail_s += self.SMOOTHING * (seconds - self.tail_s)


def load_model(model: Path, runtime: str | None, threads: int | None, *, own_process: bool) -> Any:
    """The daemon's model, in a process of its own or in this one."""
    if own_process:
        return ModelProcess(model, runtime, threads)
    return InProcessModel(model, runtime, threads)


def _release(slot: SharedMemory) -> None:
    slot.close()
    try:
        slot.unlink()
    except FileNotFoundError:
        pass


def _rebuilt(name: str, message: str, hint: str | None) -> EdgekitError:
    """The child's EdgekitError, as the same class here (exit codes follow the class)."""
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, EdgekitError)):
        return DeviceError(message, hint=hint)
    try:
        return cls(message, hint=hint)
    except TypeError:  # a class with a constructor of its own (UnknownNameError): same class, same text
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        error.message, error.hint = message, hint
        return error


def _serve(conn: Connection, model: str, runtime_name: str | None, threads: int | None) -> None:
    """The child: load the model, then run each frame the daemon sends until the pipe closes.
    Every answer is a message, never a traceback: the daemon says what went wrong."""
    from edgekit.quiet import quiet_frameworks

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    quiet_frameworks()
    attached: dict[str, SharedMemory] = {}
    runtime = None
    try:
        runtime = load_runtime(Path(model), runtime_name, threads=threads)
        conn.send(("ok", (runtime.inputs, runtime.outputs)))
        while True:
            message = conn.recv()
            try:
                conn.send(("ok", _handle(runtime, message, attached)))
            except EdgekitError as exc:
                conn.send(("error", type(exc).__name__, exc.message, exc.hint))
    except (EOFError, OSError):
        return  # the daemon closed the pipe, or died
    except EdgekitError as exc:  # loading failed
        _send_quietly(conn, ("error", type(exc).__name__, exc.message, exc.hint))
    except Exception as exc:  # noqa: BLE001 - edgekit's own failure, reported by the daemon as such
        if debugging():
            traceback.print_exc()
        _send_quietly(conn, ("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        if runtime is not None:
            runtime.close()
        for segment in attached.values():
            segment.close()


def _handle(runtime: Any, message: tuple[Any, ...], attached: dict[str, SharedMemory]) -> Any:
    if message[0] == "prepare":
        if hasattr(runtime, "prepare"):
            runtime.prepare(message[1])
        return None
    _, name, layout = message
    if name not in attached:
        if len(attached) >= SLOTS * 2:  # the daemon replaced slots (bigger frames): drop the oldest
            attached.pop(next(iter(attached))).close()
        # Registered again with the resource tracker this process shares with the daemon (spawn
        # hands it down): a no-op, and the daemon's unlink unregisters it.
        attached[name] = SharedMemory(name=name)
    buffer = attached[name].buf
    feeds = {
        key: np.ndarray(tuple(shape), np.dtype(dtype), buffer=buffer, offset=offset)
        for key, shape, dtype, offset in layout
    }
    start = time.perf_counter()
    outputs = runtime.run(feeds)
    return outputs, time.perf_counter() - start


def _send_quietly(conn: Connection, message: tuple[Any, ...]) -> None:
    try:
        conn.send(message)
    except OSError:
        pass
