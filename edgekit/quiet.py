"""Keeping native libraries' start-up chatter off the terminal.

TensorFlow's C++ side prints "oneDNN custom operations are on …" (and absl's notice that logging
is not initialised) while it is imported, on CPUs with AVX-512 VNNI or AMX, whatever
TF_CPP_MIN_LOG_LEVEL says: it logs before it reads it. A command that fails with one clear line
would print three. The CLI silences file descriptor 2 while TensorFlow is first imported, where
it is imported; ``--debug`` keeps everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any


@contextlib.contextmanager
def redirected(fd: int, target: int) -> Iterator[bool]:
    """Point file descriptor ``fd`` at ``target`` for the block, so native code's writes go there
    too (not only Python's ``sys.stdout``/``sys.stderr``); restored afterwards whatever happens.
    Yields False, redirecting nothing, where the process has no real descriptor (an embedding host)."""
    stream = sys.stdout if fd == 1 else sys.stderr
    stream.flush()
    try:
        saved = os.dup(fd)
    except OSError:
        yield False
        return
    try:
        os.dup2(target, fd)
        yield True
    finally:
        stream.flush()
        os.dup2(saved, fd)
        os.close(saved)


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Send file descriptor 2 (native code's stderr, not just ``sys.stderr``) to /dev/null."""
    with open(os.devnull, "w") as devnull, redirected(2, devnull.fileno()):
        yield


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Keep what converters print off stdout: with --json, stdout belongs to the report alone.

    TensorFlow's exporter prints its signatures from Python, NNCF's progress bars hold their own
    handle on stdout, and native code writes to file descriptor 1; redirecting the descriptor
    catches all. The text is dropped (edgekit reports its own progress) unless EDGEKIT_DEBUG is
    set (`--debug`), when it goes to stderr.
    """
    debug = debugging()
    with open(os.devnull, "w") as devnull:
        with (
            redirected(1, 2 if debug else devnull.fileno()),
            contextlib.redirect_stdout(sys.stderr if debug else devnull),
        ):
            yield


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.ERROR) -> Iterator[None]:
    """Raise Python loggers of a library to ``level`` for the block: tf2onnx logs a full traceback
    at WARNING when one of its optional graph optimizers gives up (the conversion goes on without
    it). Errors still show; ``--debug`` keeps everything."""
    if debugging():
        yield
        return
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, saved, strict=True):
            logger.setLevel(old)


# Printed by LiteRT's C++ whenever it applies its default CPU delegate: news to nobody.
XNNPACK_NOTICE = "INFO: Created TensorFlow Lite XNNPACK delegate"


def debugging() -> bool:
    """``--debug`` (which sets EDGEKIT_DEBUG) or EDGEKIT_DEBUG=1: keep every framework's output."""
    return os.environ.get("EDGEKIT_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def filtered_stderr(*harmless: str) -> Iterator[None]:
    """Capture native stderr for the block and pass every line on afterwards except those that
    start with one of ``harmless`` (LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate",
    the converter's "fully_quantize: …"): an error a library prints still reaches the user.
    Everything passes under ``--debug``."""
    if debugging():
        yield
        return
    with tempfile.TemporaryFile() as sink:
        try:
            with redirected(2, sink.fileno()):
                yield
        finally:
            sink.seek(0)
            lines = sink.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not line.startswith(harmless))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _SilentLoader(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader, finder: _QuietFirstImport) -> None:
        self.real = real
        self.finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)  # once: the import itself, not a find_spec probe
        with silenced_stderr():
            self.real.exec_module(module)
            if self.finder.then is not None:
                self.finder.then(module)


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, then: Callable[[ModuleType], None] | None = None) -> None:
        self.name = name
        self.then = then  # more start-up to do while stderr is still silenced
        self.searching = False

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> Any:
        if fullname != self.name or self.searching:
            return None
        self.searching = True  # let the real finders answer the question asked on our behalf
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _SilentLoader(spec.loader, self)
        return spec


def quiet_first_import(name: str, then: Callable[[ModuleType], None] | None = None) -> None:
    """Silence native stderr while the top-level module ``name`` is first imported, by
    whatever imports it, and while ``then`` runs on the imported module."""
    if name not in sys.modules and not any(isinstance(f, _QuietFirstImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFirstImport(name, then))


def _find_devices(tensorflow: ModuleType) -> None:
    """Let TensorFlow look for GPUs now, silenced: on a machine with the CUDA runtime but no GPU
    driver its first look prints "failed call to cuInit: … UNKNOWN ERROR (303)" at ERROR level,
    which TF_CPP_MIN_LOG_LEVEL=2 lets through, in the middle of a command's output."""
    try:
        tensorflow.config.list_physical_devices()
    except Exception:  # noqa: BLE001 - a start-up nicety must never break the import
        pass


def quiet_tensorflow_import() -> None:
    quiet_first_import("tensorflow", then=_find_devices)


def quiet_frameworks() -> None:
    """TensorFlow's C++ INFO/WARNING lines and two known-harmless Python warnings bury what
    edgekit says; --debug (or EDGEKIT_DEBUG) keeps them. The CLI calls this first, and so does
    every child process edgekit starts to convert in."""
    if debugging():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet_tensorflow_import()  # the lines TensorFlow prints before it reads that setting
    # Keras warns when a one-input model is called with a bare tensor (how converters call it).
    warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
    # TFLiteConverter warns that int8 inputs have no statistics; they come from calibration.
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
