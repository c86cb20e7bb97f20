"""The one error hierarchy of edgekit.

Every error a user can cause or meet carries an exit code; the CLI prints the message as one
line (no traceback unless ``--debug``) and exits with that code. Scripts can branch on it.

    EdgekitError                      1   something went wrong
    ├── ConfigError                   3   a flag, option or config value is invalid
    │   └── UnknownNameError          4   a name (example, format, device) is not known
    ├── InputNotFoundError            5   a file or folder given as input does not exist
    ├── OutputError                   6   an output cannot be written
    │   └── OutputExistsError         7   an output exists and --force was not given
    ├── DataError                     8   data is malformed (shape, dtype, NaN, empty)
    ├── ModelError                    9   a model file cannot be read (corrupt, truncated)
    ├── TrainingError                10   training failed or produced an unusable model
    ├── ConversionError              11   a converter failed
    ├── QualityGateFailed            12   an artifact was written but missed its quality budget
    ├── RuntimeUnavailable           13   the runtime package is not installed
    ├── DeviceError                  14   a device profile is invalid or unknown to the predictor
    ├── BrokerError                  15   the MQTT broker cannot be reached or refused us
    ├── SourceError                  16   the camera / video source cannot be opened
    ├── ServerError                  17   a model server is down or answered with an error
    ├── DeploymentError              18   a deployment was refused or failed on a device, or a rollout stopped
    └── Interrupted                 130   stopped by SIGINT / SIGTERM; nothing half-written kept

Third-party exceptions are mapped to these with ``raise ... from exc`` at the boundary where
edgekit knows what the user was trying to do.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


class EdgekitError(Exception):
    """Base class: a message for the user and an exit code for scripts."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """What is wrong and what to do, on a single line."""
        text = self.message.rstrip(". ")
        if self.hint:
            text = f"{text}; {self.hint}"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class ConfigError(EdgekitError):
    exit_code = 3


class UnknownNameError(ConfigError):
    """A name that is not in a known set; suggests the closest one."""

    exit_code = 4

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(known)}"
        super().__init__(f"unknown {kind} '{name}'", hint=hint)
        self.name = name
        self.suggestion = close[0] if close else None


class InputNotFoundError(EdgekitError):
    exit_code = 5


class OutputError(EdgekitError):
    exit_code = 6


class OutputExistsError(OutputError):
    exit_code = 7


class DataError(EdgekitError):
    exit_code = 8


class ModelError(EdgekitError):
    exit_code = 9


class TrainingError(EdgekitError):
    exit_code = 10


class ConversionError(EdgekitError):
    exit_code = 11


class QualityGateFailed(EdgekitError):
    exit_code = 12


class RuntimeUnavailable(EdgekitError):
    exit_code = 13


class DeviceError(EdgekitError):
    exit_code = 14


class BrokerError(EdgekitError):
    exit_code = 15


class SourceError(EdgekitError):
    exit_code = 16


class ServerError(EdgekitError):
    exit_code = 17


class DeploymentError(EdgekitError):
    exit_code = 18


class Interrupted(EdgekitError):
    exit_code = 130


def require_extra(module: str, extra: str, *, alone: str | None = None) -> None:
    """Raise RuntimeUnavailable naming the pip extra when an optional package is missing; ``alone``
    names the single package that is enough where the extra brings much more (a device that reads
    an .onnx needs ``onnx``, not the server's TensorFlow)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        extra_command = f"pip install 'edgekit[{extra}]'"
        raise RuntimeUnavailable(
            f"the Python package '{module}' is not installed",
            hint=f"install it with: pip install {alone} (or {extra_command} for the whole {extra} side)"
            if alone
            else f"install it with: {extra_command}",
        )


_ERRNO = re.compile(r"^\[Errno -?\d+\] ")
# Lines of a foreign exception that say where it was raised, not what went wrong.
_PREAMBLE = re.compile(
    r"^(Check '.*' failed at |FrontEnd API failed with|Exception from src/|While validating |in user code:|File \")"
)


def first_line(exc: BaseException) -> str:
    """The line of a foreign exception that says what went wrong, never a dump: OpenVINO's summary
    where it gives one, else the first line that is not an assertion site (its type if it is empty)."""
    if isinstance(exc, OSError) and exc.strerror:
        # "Connection refused", "Permission denied: 'm.onnx'": without the "[Errno 111] " prefix.
        return _ERRNO.sub("", " ".join(str(exc).split()))[:300]
    lines = [" ".join(line.split()) for line in str(exc).strip().splitlines() if line.strip()]
    if isinstance(exc, (KeyError, IndexError, AttributeError, TypeError, ValueError)) and len(lines) == 1:
        # A bare "'/Constant_output_0'" says nothing without the kind of error it is.
        return f"{type(exc).__name__}: {lines[0]}"[:300]
    for index, line in enumerate(lines[:-1]):
        if line == "Summary:":
            return lines[index + 1].lstrip("- ")[:300]
    for line in lines:
        if not _PREAMBLE.match(line):
            return line[:300]
    return lines[0][:300] if lines else type(exc).__name__
