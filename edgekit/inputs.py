"""A model's inputs as it declares them, resolved to the shapes a command runs at, one way.

Every format says it differently (.keras ``None``, .tflite ``shape_signature`` -1, ONNX
``dim_param`` names or ``?``, OpenVINO partial shapes); the runtimes read each into a
``TensorSpec`` whose dynamic dimensions are ``None`` (named where the model names them). Every
command that runs or prices a model resolves those specs here, in one order:

1. ``--shape NAME=D0,D1,…`` (a bare ``--shape D0,D1,…`` for a one-input model);
2. else the arrays of ``--data`` (a sample's shape);
3. else the shapes the artifact's manifest recorded;
4. else the model's own static shape.

Only a leading batch dimension becomes 1 unasked, and the result says so. Any other dynamic
dimension nothing fixes is one clear error with a ``--shape`` example: edgekit never measures,
predicts, counts or checks at a size it made up. Random inputs, where no data is given, come
from one generator (``random_inputs``) shared by bench, parity, analysis and calibration.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, ModelError, UnknownNameError
from edgekit.manifest import ManifestTensor
from edgekit.runtimes.base import TensorSpec, format_shape

# Random integer inputs are drawn from this range: valid ids for any embedding, valid indices,
# small enough for a model that reads an integer as a count. Said wherever they are used.
INTEGER_RANGE = (0, 8)
FLOAT_RANGE = (0.0, 1.0)


class ShapeOrigin(str, enum.Enum):
    FLAG = "--shape"
    DATA = "data"  # the arrays of --data (bench, analyze) or of the evaluation data (convert)
    MANIFEST = "manifest"
    MODEL = "model"


@dataclass(frozen=True)
class ShapeRequest:
    """What ``--shape`` said: sizes by input name, or one bare size for a one-input model."""

    named: Mapping[str, tuple[int, ...]]
    bare: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, values: Sequence[str] | None) -> ShapeRequest:
        named: dict[str, tuple[int, ...]] = {}
        bare = None
        for value in values or ():
            name, sep, dims = value.rpartition("=")
            if sep and not name:
                raise ConfigError(f"--shape {value}: the input name before '=' is empty")
            parsed = _dims(value, dims if sep else value)
            if not sep:
                if bare is not None:
                    raise ConfigError("--shape without a name is for a one-input model; give it once")
                bare = parsed
            elif name in named:
                raise ConfigError(f"--shape names input '{name}' twice")
            else:
                named[name] = parsed
        if bare is not None and named:
            raise ConfigError("--shape: name every input (NAME=D0,D1,…) when more than one is given")
        return cls(named, bare)

    def __bool__(self) -> bool:
        return bool(self.named) or self.bare is not None


def _dims(flag_value: str, text: str) -> tuple[int, ...]:
    text = text.strip()
    if text in ("", "()"):
        return ()  # a scalar
    dims = []
    for part in text.replace("x", ",").split(","):
        part = part.strip()
        try:
            dim = int(part)
        except ValueError:
            raise ConfigError(
                f"--shape {flag_value}: '{part}' is not a whole number", hint="write sizes like --shape x=1,3,640,640"
            ) from None
        if dim < 1:
            raise ConfigError(f"--shape {flag_value}: every dimension must be at least 1, got {dim}")
        dims.append(dim)
    return tuple(dims)


@dataclass(frozen=True)
class ResolvedInput:
    """One input at the concrete shape a command runs it at, and where that shape came from."""

    name: str
    dtype: str  # what a caller feeds: float32 for a quantized tensor (the runtime quantizes)
    shape: tuple[int, ...]
    origin: ShapeOrigin
    declared: tuple[int | None, ...]  # as the model declares it (None: dynamic)
    batch_defaulted: bool = False  # a dynamic leading batch set to 1, unasked

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "origin": self.origin.value,
            "declared": [None if d is None else int(d) for d in self.declared],
            "batch_defaulted": self.batch_defaulted,
        }

    def describe(self) -> str:
        """``x (1, 3, 640, 640) float32 from --shape``: what a table prints under itself."""
        text = f"{self.name} {format_shape(self.shape)} {self.dtype} from {self.origin.value}"
        if self.batch_defaulted:
            text += " (dynamic batch set to 1)"
        return text


def shapes_of(resolved: Sequence[ResolvedInput]) -> dict[str, tuple[int, ...]]:
    return {r.name: r.shape for r in resolved}


def check_supported(specs: Sequence[TensorSpec], model: str) -> None:
    for spec in specs:
        if spec.dtype in ("str", "object", "string", "bytes_") or spec.dtype.startswith(("str", "<U", "|S")):
            raise ModelError(
                f"{model}: input '{spec.name}' is a string tensor, which edgekit does not run",
                hint="give the model numeric inputs (token ids instead of text, say)",
            )


def _example(spec: TensorSpec) -> str:
    """A --shape to copy: the static sizes as they are, a batch of 1, 224 for an image's sides."""
    dims = []
    for i, d in enumerate(spec.shape):
        if d is not None:
            dims.append(str(d))
        elif i == 0:
            dims.append("1")
        else:
            dims.append("224" if len(spec.shape) == 4 else "16")
    return f"--shape {spec.name}={','.join(dims) or '()'}"


def _check_against(spec: TensorSpec, shape: tuple[int, ...], said: str) -> None:
    if len(shape) != len(spec.shape):
        raise ConfigError(
            f"{said} has {len(shape)} dimension{'s' if len(shape) != 1 else ''}; input '{spec.name}' has "
            f"{len(spec.shape)} {format_shape(spec.shape)}",
            hint=f"e.g. {_example(spec)}",
        )
    for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
        if want is not None and want != got:
            raise ConfigError(
                f"{said}: dimension {axis} of input '{spec.name}' is fixed at {want} by the model, not {got}",
                hint=f"e.g. {_example(spec)}",
            )


def resolve(
    specs: Sequence[TensorSpec],
    *,
    request: ShapeRequest | None = None,
    data_shapes: Mapping[str, tuple[int, ...]] | None = None,
    manifest_inputs: Sequence[ManifestTensor] | None = None,
    model: str = "the model",
) -> list[ResolvedInput]:
    """Each input's concrete shape, in the order the module docstring gives."""
    check_supported(specs, model)
    request = request or ShapeRequest({})
    names = [s.name for s in specs]
    given = dict(request.named)
    if request.bare is not None:
        if len(specs) != 1:
            raise ConfigError(
                f"--shape without a name is for a one-input model; {model} has {len(specs)} inputs "
                f"({', '.join(names)})",
                hint="name each: " + " ".join(_example(s) for s in specs),
            )
        given = {specs[0].name: request.bare}
    for name in list(given):
        if name not in names:
            short = {n.split(":")[0]: n for n in names}
            if name in short:
                given[short[name]] = given.pop(name)
                continue
            raise UnknownNameError(f"input of {model}", name, names)
    recorded = {m.name: tuple(m.shape) for m in manifest_inputs or ()}
    resolved = []
    missing = []
    for spec in specs:
        if spec.name in given:
            shape = given[spec.name]
            _check_against(spec, shape, f"--shape {spec.name}={','.join(map(str, shape))}")
            if data_shapes and spec.name in data_shapes and tuple(data_shapes[spec.name]) != shape:
                raise ConfigError(
                    f"--shape {spec.name}={','.join(map(str, shape))} but the data holds samples of "
                    f"{format_shape(data_shapes[spec.name])} for it",
                    hint="leave out one of the two, or make them agree",
                )
            resolved.append(ResolvedInput(spec.name, spec.float_dtype, shape, ShapeOrigin.FLAG, spec.shape))
            continue
        if data_shapes and spec.name in data_shapes:
            shape = tuple(int(d) for d in data_shapes[spec.name])
            _check_against(spec, shape, f"--data for input '{spec.name}', a sample of {format_shape(shape)},")
            resolved.append(ResolvedInput(spec.name, spec.float_dtype, shape, ShapeOrigin.DATA, spec.shape))
            continue
        candidate = recorded.get(spec.name)
        if candidate is not None and len(candidate) == len(spec.shape) and None not in candidate:
            shape = tuple(int(d or 0) for d in candidate)
            if all(w is None or w == g for w, g in zip(spec.shape, shape, strict=True)):
                resolved.append(ResolvedInput(spec.name, spec.float_dtype, shape, ShapeOrigin.MANIFEST, spec.shape))
                continue
        open_axes = [i for i, d in enumerate(spec.shape) if d is None]
        batch_defaulted = bool(open_axes) and open_axes[0] == 0
        if [a for a in open_axes if a != 0]:
            missing.append(spec)
            continue
        shape = tuple(1 if d is None else int(d) for d in spec.shape)
        resolved.append(
            ResolvedInput(spec.name, spec.float_dtype, shape, ShapeOrigin.MODEL, spec.shape, batch_defaulted)
        )
    if missing:
        spec = missing[0]
        axes = [i for i, d in enumerate(spec.shape) if d is None and i != 0]
        named = [str(spec.dim_names[i]) for i in axes if i < len(spec.dim_names) and spec.dim_names[i]]
        which = ", ".join(map(str, axes))
        also = f" (and {len(missing) - 1} more input{'s' if len(missing) > 2 else ''})" if len(missing) > 1 else ""
        raise ConfigError(
            f"input '{spec.name}' of {model} {format_shape(spec.shape)} has dynamic dimension"
            f"{'s' if len(axes) > 1 else ''} {which}"
            + (f" ({', '.join(named)})" if named else "")
            + f"{also} that nothing here fixes; edgekit runs and prices a model only at a size you give",
            hint="give it, e.g. " + " ".join(_example(s) for s in missing),
        )
    return resolved


def random_inputs(
    resolved: Sequence[ResolvedInput], count: int | None = None, *, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random values for every input at its resolved shape: floats uniform in [0, 1), integers
    in INTEGER_RANGE, booleans either way. ``count=None`` gives one feed at exactly the shapes;
    a count gives that many samples stacked on a new leading axis (each one whole input)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for r in resolved:
        shape = r.shape if count is None else (count, *r.shape)
        dtype = np.dtype(r.dtype)
        if dtype.kind == "f":
            feeds[r.name] = rng.uniform(*FLOAT_RANGE, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[r.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            low, high = INTEGER_RANGE
            info = np.iinfo(dtype)
            feeds[r.name] = rng.integers(max(low, info.min), min(high, info.max + 1), size=shape).astype(dtype)
    return feeds


def random_values_note(resolved: Sequence[ResolvedInput]) -> str:
    """How random inputs were drawn, in words, for the inputs the model has."""
    kinds = {np.dtype(r.dtype).kind for r in resolved}
    parts = []
    if "f" in kinds:
        parts.append(f"floats uniform in [{FLOAT_RANGE[0]:g}, {FLOAT_RANGE[1]:g})")
    if kinds & {"i", "u"}:
        parts.append(f"integers in [{INTEGER_RANGE[0]}, {INTEGER_RANGE[1]})")
    if "b" in kinds:
        parts.append("booleans")
    return "random " + ", ".join(parts)
