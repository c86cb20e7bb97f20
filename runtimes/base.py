"""The one interface every inference runtime sits behind.

A runtime takes and returns float arrays by default: where the model's tensors are quantized,
it quantizes inputs and dequantizes outputs with the model's own scale and zero-point, so no
caller handles int8 by hand (``raw=True`` turns that off). Inputs and outputs are keyed by
name; a mismatch says which input and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgekit.errors import DataError, ModelError
from edgekit.foreign import ENGINE_RUN, mapped


def format_shape(shape: Sequence[int | str | None]) -> str:
    """(?, 28, 28, 1): a dynamic dimension shown as '?' (a name, such as N, as it is)."""
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int

    def quantize(self, values: np.ndarray, dtype: np.dtype) -> np.ndarray:
        info = np.iinfo(dtype)
        q = np.round(np.asarray(values, dtype=np.float32) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        return (values.astype(np.float32) - self.zero_point) * np.float32(self.scale)


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output. ``shape`` uses None for a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str  # numpy dtype name of the tensor as stored in the model
    quantization: Quantization | None = None
    # The model's own names for its dynamic dimensions ("batch", "p2o.DynamicDimension.1"), where
    # it names them; None elsewhere. Empty when the format names none.
    dim_names: tuple[str | None, ...] = ()

    @property
    def batch_is_dynamic(self) -> bool:
        return bool(self.shape) and self.shape[0] is None

    @property
    def float_dtype(self) -> str:
        """The dtype callers use: float32 for quantized tensors, else the tensor's own."""
        return "float32" if self.quantization else self.dtype

    @property
    def dynamic(self) -> bool:
        return any(d is None for d in self.shape)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if any(self.dim_names):
            data["dim_names"] = list(self.dim_names)
        if self.quantization:
            data["quantization"] = {"scale": self.quantization.scale, "zero_point": self.quantization.zero_point}
        return data


def run_batched(
    runtime: Runtime, feeds: dict[str, np.ndarray], batch: int = 256, whole: frozenset[str] = frozenset()
) -> dict[str, np.ndarray]:
    """Outputs of ``runtime`` on every sample of ``feeds`` (model input name → N samples).

    Samples are batched along the model's leading dimension in groups of ``batch`` where every
    input's batch is dynamic and the runtime takes batches, else run one by one (a converted
    TFLite or OpenVINO model is usually fixed at batch 1). Inputs named in ``whole`` stack N
    whole inputs (a state, a scalar): those run one sample at a time and each output is stacked
    on a new leading axis, so sample ``i``'s outputs are ``outputs[name][i]``."""
    count = len(next(iter(feeds.values())))
    if whole:
        stacked: dict[str, list[np.ndarray]] = {spec.name: [] for spec in runtime.outputs}
        for i in range(count):
            one = {name: value[i] if name in whole else value[i : i + 1] for name, value in feeds.items()}
            for name, value in runtime.run(one).items():
                stacked[name].append(value)
        return {name: _joined(name, values, np.stack) for name, values in stacked.items()}
    batches = getattr(runtime, "batch_samples", True)
    step = batch if batches and all(spec.batch_is_dynamic for spec in runtime.inputs) else 1
    chunks: dict[str, list[np.ndarray]] = {spec.name: [] for spec in runtime.outputs}
    for start in range(0, count, step):
        result = runtime.run({name: value[start : start + step] for name, value in feeds.items()})
        for name, value in result.items():
            chunks[name].append(value)
    return {name: _joined(name, values, np.concatenate) for name, values in chunks.items()}


def _joined(name: str, values: list[np.ndarray], join: Callable[[list[np.ndarray]], np.ndarray]) -> np.ndarray:
    try:
        return join(values)
    except ValueError:
        sizes = sorted({tuple(v.shape) for v in values})[:3]
        raise ModelError(
            f"output '{name}' changes size from one sample to the next ({', '.join(map(str, sizes))}, …): "
            "its size follows the input values, and edgekit compares outputs of equal size",
            hint="give data whose samples give outputs of one size, or bench the model instead",
        ) from None


def describe_shapes(shapes: dict[str, tuple[int, ...]]) -> str:
    """``x=(1, 3, 640, 640), sr=()``: the sizes a failure happened at."""
    return ", ".join(f"{name}={format_shape(shape)}" for name, shape in shapes.items())


class Runtime:
    """What every runtime is: a model loaded on one engine, its tensors, and one way to run it.

    Subclasses (one module per engine: runtimes/tflite.py is a small example) load the model in
    ``__init__`` with typed keyword options, every one of them taking ``threads`` (honoured, or
    refused with a ConfigError) and ``shapes`` (the resolved input sizes to prepare at), and
    implement ``_invoke``; the checks of feeds, the mapping of the engine's own errors and the
    (de)quantization of float tensors are shared here."""

    name = "base"
    # Whether several samples may share one call when the batch is dynamic. A TFLite interpreter
    # or an OpenVINO CPU plugin re-plans for every new shape: they run one sample per call, as a
    # device does.
    batch_samples = True

    def __init__(self, path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        self.path = path
        self.inputs = inputs
        self.outputs = outputs

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def check_feeds(self, feeds: dict[str, np.ndarray], *, raw: bool) -> dict[str, np.ndarray]:
        """Validate names, shapes and dtypes; quantize float inputs unless ``raw``."""
        expected = {spec.name for spec in self.inputs}
        missing, unknown = expected - set(feeds), set(feeds) - expected
        if missing or unknown:
            raise DataError(
                f"{self.path.name}: inputs given {sorted(feeds)}, the model expects {sorted(expected)}",
                hint="feed every model input by its name",
            )
        prepared = {}
        for spec in self.inputs:
            value = np.asarray(feeds[spec.name])
            if len(value.shape) != len(spec.shape) or any(
                want is not None and want != got for want, got in zip(spec.shape, value.shape, strict=True)
            ):
                raise DataError(
                    f"{self.path.name}: input '{spec.name}' has shape {format_shape(value.shape)}, "
                    f"expected {format_shape(spec.shape)}"
                )
            if spec.quantization is not None and not raw:
                if value.dtype.kind != "f":
                    raise DataError(f"{self.path.name}: input '{spec.name}' expects float values, got {value.dtype}")
                value = spec.quantization.quantize(value, np.dtype(spec.dtype))
            elif value.dtype != np.dtype(spec.dtype):
                if not np.can_cast(value.dtype, spec.dtype, casting="same_kind"):
                    raise DataError(
                        f"{self.path.name}: input '{spec.name}' has dtype {value.dtype}, expected {spec.dtype}"
                    )
                value = value.astype(spec.dtype)
            prepared[spec.name] = value
        return prepared

    def run(self, feeds: dict[str, np.ndarray], *, raw: bool = False) -> dict[str, np.ndarray]:
        prepared = self.check_feeds(feeds, raw=raw)
        shapes = {name: tuple(value.shape) for name, value in prepared.items()}
        with mapped(ENGINE_RUN, f"{self.path.name} failed on {self.name} at input shapes {describe_shapes(shapes)}"):
            results = self._invoke(prepared)  # the runtime's own error: the model cannot run these inputs
        out = {}
        for spec, value in zip(self.outputs, results, strict=True):
            if spec.quantization is not None and not raw:
                value = spec.quantization.dequantize(value)
            out[spec.name] = value
        return out

    def bench_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        """A no-argument callable that runs one inference on ``feeds``, bound once, for timing.

        Runtimes override this with their cheapest call (the one their own benchmark tools
        time); the default goes through ``run`` and so includes its checks.
        """
        prepared = self.check_feeds(feeds, raw=False)
        return lambda: self._invoke(prepared)

    def fully_accelerated(self) -> bool | None:
        """Whether the whole graph runs in the accelerated path (None: unknown)."""
        return None

    def unaccelerated_ops(self) -> list[str]:
        """Operator kinds left outside the accelerated path (empty: none, or not known)."""
        return []

    def close(self) -> None:
        pass

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
