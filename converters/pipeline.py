"""The converter pipeline: plan the steps, convert, check against the source, gate, write.

A plan is data, an ordered list of named steps (as tf2onnx's optimizer passes are):

    keras  → tflite    keras_to_tflite
    keras  → onnx      keras_to_onnx [→ quantize_onnx]
    tflite → onnx      tflite_to_onnx [→ quantize_onnx]
    onnx   → onnx      quantize_onnx
    any    → openvino  to_openvino (fp16 compression or NNCF int8 inside)

Every artifact is checked with the real runtime of its format against the source run on its
own runtime: parity per output, the task metric before and after, and the ``--max-drop`` gate.
Outputs are staged under a temporary name and moved into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import (
    DEFAULT_CALIBRATION_SAMPLES,
    Dataset,
    Split,
    check_data_path,
    load_dataset,
    match_inputs,
)
from edgekit.errors import ConfigError, ConversionError, DataError, OutputError, OutputExistsError
from edgekit.formats import Format, Precision, SourceKind, check_precision, source_kind
from edgekit.manifest import (
    manifest_path,
    model_description,
    now_iso,
    sha256_of,
    size_of,
    tool_versions,
)
from edgekit.metrics import metric_drop, parity, task_metric
from edgekit.runtimes import Runtime, load_runtime
from edgekit.runtimes.base import run_batched

Progress = Callable[[str], None]
EXAMPLE_DATA = "data.npz"
# Parity without labeled data runs on this many random inputs: a smoke test of the graph, kept
# small because the Keras reference runs eagerly (32 MobileNetV2 inputs cost ~2 s of a ~5 s conversion).
RANDOM_PARITY_SAMPLES = 8


@dataclass
class ConvertRequest:
    source: Path
    target: Format
    precision: Precision | None  # None: climb the ladder (--quant auto)
    calib: Path | None = None
    eval: Path | None = None
    max_drop: float | None = None
    out: Path | None = None
    force: bool = False
    allow_flex: bool = False
    calib_samples: int = DEFAULT_CALIBRATION_SAMPLES
    # Image preprocessing given on the command line; overrides the example's and is recorded.
    preprocessing: dict[str, Any] | None = None
    # The task for a model with no example.json or manifest (classification, regression, …).
    task: str | None = None


@dataclass
class Candidate:
    """One converted artifact, staged, with its figures."""

    precision: Precision
    staged: Path
    files: list[Path]
    steps: list[str]
    seconds: float
    size_bytes: int = 0
    parity: dict[str, Any] = field(default_factory=dict)
    metric: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)  # tensor specs as the runtime sees them
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.gate is None or bool(self.gate["passed"])


@dataclass
class Context:
    """What every step and check of one `convert` shares."""

    request: ConvertRequest
    kind: SourceKind
    description: dict[str, Any]
    keras_model: Any
    reference: Runtime
    calibration: Dataset | None
    evaluation: Dataset
    reference_outputs: list[np.ndarray]
    reference_metric: Any
    notes: list[str] = field(default_factory=list)

    @property
    def is_detector(self) -> bool:
        return self.description.get("task") == "detection"


# ---------------------------------------------------------------------------------------------
# planning


def plan(kind: SourceKind, target: Format, precision: Precision) -> list[str]:
    if kind not in target.sources:
        sources = ", ".join(s.value for s in target.sources)
        raise ConfigError(f"edgekit converts to {target.name} from {sources}, not from {kind.value}")
    if target.name == "tflite":
        return ["keras_to_tflite"]
    if target.name == "onnx":
        first = {SourceKind.KERAS: ["keras_to_onnx"], SourceKind.TFLITE: ["tflite_to_onnx"], SourceKind.ONNX: []}[kind]
        if precision is Precision.FP32 and not first:
            raise ConfigError("the source is already an fp32 ONNX model", hint="choose --quant dynamic or int8")
        return first + ([] if precision is Precision.FP32 else ["quantize_onnx"])
    return ["to_openvino"]


def default_output(source: Path, target: Format, precision: Precision) -> Path:
    stem = source.name if source.is_dir() else source.stem
    suffix = "" if precision is Precision.FP32 else f"_{precision.value}"
    folder = source if source.is_dir() else source.parent
    return folder / f"{stem}{suffix}{target.suffix}"


def _outputs_of(artifact: Path, target: Format) -> list[Path]:
    companions = [artifact.with_suffix(s) for s in target.companion_suffixes]
    return [artifact, *companions, manifest_path(artifact)]


def check_outputs(artifact: Path, target: Format, *, force: bool) -> None:
    if artifact.suffix != target.suffix:
        raise ConfigError(f"--out {artifact} should end in {target.suffix} for --to {target.name}")
    existing = [p for p in _outputs_of(artifact, target) if p.exists()]
    if existing and not force:
        raise OutputExistsError(f"{existing[0]} already exists", hint="pass --force to overwrite it")
    if any(p.is_dir() for p in existing):
        raise OutputError(f"{existing[0]} is a folder")
    parent = artifact.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=parent, prefix=".edgekit-probe-")
        probe.close()
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else type(exc).__name__
        raise OutputError(f"cannot write to {parent}: {reason}", hint="choose a writable --out") from exc


# ---------------------------------------------------------------------------------------------
# running models over data


def predict_all(runtime: Runtime, data: Dataset, batch: int = 256) -> list[np.ndarray]:
    """Outputs of ``runtime`` on every sample, in batches where the model allows it."""
    mapping = match_inputs(list(data.inputs), runtime.inputs, Path(data.origin).name or "data")
    outputs = run_batched(runtime, {mapping[k]: v for k, v in data.inputs.items() if k in mapping}, batch)
    return [outputs[spec.name] for spec in runtime.outputs]


def random_dataset(runtime: Runtime, count: int = RANDOM_PARITY_SAMPLES) -> Dataset:
    rng = np.random.default_rng(0)
    inputs = {}
    for spec in runtime.inputs:
        shape = (count, *[d or 1 for d in spec.shape[1:]])
        if spec.float_dtype.startswith("float"):
            inputs[spec.name] = rng.uniform(0, 1, size=shape).astype(spec.float_dtype)
        else:
            inputs[spec.name] = rng.integers(0, 2, size=shape).astype(spec.dtype)
    return Dataset(inputs, origin="random inputs")


# ---------------------------------------------------------------------------------------------
# steps


def _run_steps(ctx: Context, precision: Precision, staging: Path, name: str) -> Candidate:
    request = ctx.request
    steps = plan(ctx.kind, request.target, precision)
    start = time.perf_counter()
    notes: list[str] = []
    current: Path = request.source
    artifact = staging / f"{name}{request.target.suffix}"
    for step in steps:
        if step == "keras_to_tflite":
            from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite

            options = TFLiteOptions(
                precision=precision,
                calibration=ctx.calibration,
                float_output=ctx.is_detector,
                allow_flex=request.allow_flex,
            )
            current = keras_to_tflite(ctx.keras_model, artifact, options)
            notes += options.notes
        elif step == "keras_to_onnx":
            from edgekit.converters.to_onnx import keras_to_onnx

            current = keras_to_onnx(ctx.keras_model, staging / "fp32.onnx" if len(steps) > 1 else artifact)
        elif step == "tflite_to_onnx":
            from edgekit.converters.to_onnx import tflite_to_onnx

            current = tflite_to_onnx(current, staging / "fp32.onnx" if len(steps) > 1 else artifact)
        elif step == "quantize_onnx":
            from edgekit.converters.to_onnx import quantize_onnx

            current = quantize_onnx(current, artifact, precision, ctx.calibration, keep_head_float=ctx.is_detector)
            if ctx.is_detector and precision is Precision.INT8:
                notes.append("detector head kept in float")
        elif step == "to_openvino":
            from edgekit.converters.to_openvino import to_openvino

            source = ctx.keras_model if ctx.kind is SourceKind.KERAS else current
            current = to_openvino(source, artifact, precision, ctx.calibration, keep_head_float=ctx.is_detector)
        else:  # pragma: no cover - plan() only names the steps above
            raise ConversionError(f"unknown pipeline step {step}")
    if ctx.is_detector and precision is Precision.INT8 and request.target.name != "onnx":
        notes.append("detector outputs kept in float")
    files = [artifact, *[artifact.with_suffix(s) for s in request.target.companion_suffixes]]
    return Candidate(precision, artifact, files, steps, time.perf_counter() - start, notes=notes)


def _check(ctx: Context, candidate: Candidate) -> None:
    """Parity, metric and gate of a staged artifact, run with its format's real runtime."""
    candidate.size_bytes = sum(size_of(f) for f in candidate.files)
    with load_runtime(candidate.staged, ctx.request.target.runtime) as runtime:
        outputs = predict_all(runtime, ctx.evaluation)
        candidate.parity = parity(ctx.description.get("task"), ctx.reference_outputs, outputs)
        candidate.inputs = [s.to_dict() for s in runtime.inputs]
        candidate.outputs = [s.to_dict() for s in runtime.outputs]
    if ctx.reference_metric is not None:
        measured = task_metric(
            ctx.description["task"], outputs[0], ctx.evaluation, ctx.description.get("postprocessing")
        )
        assert measured is not None
        drop = metric_drop(measured.name, ctx.reference_metric.value, measured.value)
        candidate.metric = {
            "name": measured.name,
            "source": round(ctx.reference_metric.value, 6),
            "artifact": round(measured.value, 6),
            "drop": round(drop, 4),
        }
        if ctx.request.max_drop is not None:
            candidate.gate = {"max_drop": ctx.request.max_drop, "passed": drop <= ctx.request.max_drop}


# ---------------------------------------------------------------------------------------------
# the whole conversion


def _find_example_data(source: Path) -> Path | None:
    folder = source if source.is_dir() else source.parent
    candidate = folder / EXAMPLE_DATA
    return candidate if candidate.exists() else None


def _load_reference(source: Path, kind: SourceKind) -> tuple[Any, Runtime]:
    if kind is SourceKind.KERAS:
        from edgekit.converters.sources import load_keras_model
        from edgekit.runtimes.keras import KerasRuntime

        model = load_keras_model(source)
        return model, KerasRuntime(source, model=model)
    if kind is SourceKind.TFLITE:
        from edgekit.converters.sources import check_tflite_file

        check_tflite_file(source)
        return None, load_runtime(source, "tflite")
    from edgekit.converters.sources import load_onnx_model

    load_onnx_model(source)
    return None, load_runtime(source, "onnxruntime")


def _prepare(request: ConvertRequest, progress: Progress) -> Context:
    kind = source_kind(request.source)
    description = model_description(request.source)
    if request.task:
        description["task"] = request.task
    if request.preprocessing:
        description["preprocessing"] = {**(description.get("preprocessing") or {}), **request.preprocessing}
    ladder = [request.precision] if request.precision else list(request.target.ladder())
    for precision in ladder:
        plan(kind, request.target, precision)  # reject impossible routes before loading anything

    example_data = _find_example_data(request.source)
    calib_path = request.calib or example_data
    needs_calibration = any(p.needs_calibration for p in ladder)
    if request.precision is Precision.INT8 and calib_path is None:
        raise ConfigError(
            "--quant int8 needs calibration data", hint="pass --calib DATA (.npz, .npy or an image folder)"
        )

    progress(f"loading {request.source} ({kind.value})")
    keras_model, reference = _load_reference(request.source, kind)
    calibration = None
    if needs_calibration and calib_path is not None:
        calibration = load_dataset(
            calib_path, Split.CALIBRATION, reference.inputs, preprocessing=description.get("preprocessing")
        ).sample(request.calib_samples)
        progress(f"calibration: {len(calibration)} samples from {calib_path}")

    eval_path = request.eval or example_data
    evaluation = None
    if eval_path is not None:
        try:
            evaluation = load_dataset(
                eval_path, Split.EVALUATION, reference.inputs, preprocessing=description.get("preprocessing")
            )
        except DataError:
            if request.eval is not None:
                raise
    if request.max_drop is not None and (
        evaluation is None or (evaluation.labels is None and evaluation.boxes is None)
    ):
        raise ConfigError(
            "--max-drop needs labeled evaluation data", hint="pass --eval DATA with labels (y / test_labels)"
        )
    if evaluation is None:
        evaluation = calibration if calibration is not None else random_dataset(reference)
    progress(f"checking against {len(evaluation)} samples from {evaluation.origin}")
    reference_outputs = predict_all(reference, evaluation)
    reference_metric = None
    if description.get("task"):
        reference_metric = task_metric(
            description["task"], reference_outputs[0], evaluation, description.get("postprocessing")
        )
    return Context(
        request=request,
        kind=kind,
        description=description,
        keras_model=keras_model,
        reference=reference,
        calibration=calibration,
        evaluation=evaluation,
        reference_outputs=reference_outputs,
        reference_metric=reference_metric,
    )


def _choose(candidates: list[Candidate], auto: bool) -> Candidate:
    """The first rung within budget, in the ladder's order (int8 first: what integer kernels and
    NPUs run, even where dynamic-range is a few bytes smaller); none within: the last, fp32."""
    if not auto:
        return candidates[0]
    passing = [c for c in candidates if c.passed]
    return passing[0] if passing else candidates[-1]


def _install(candidate: Candidate, artifact: Path, manifest: dict[str, Any]) -> None:
    """Move the staged files into place: companions first, the artifact, then its manifest."""
    import json

    staged_manifest = candidate.staged.with_name(candidate.staged.name + ".manifest.json")
    staged_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    targets = [artifact.with_suffix(f.suffix) for f in candidate.files[1:]]
    for staged, target in zip(candidate.files[1:], targets, strict=True):
        os.replace(staged, target)
    os.replace(candidate.staged, artifact)
    os.replace(staged_manifest, manifest_path(artifact))


def convert(request: ConvertRequest, progress: Progress = lambda _line: None) -> dict[str, Any]:
    """Run a conversion end to end; returns the JSON report (see DESIGN.md's `convert` shape)."""
    if request.max_drop is not None and request.max_drop < 0:
        raise ConfigError(f"--max-drop must be zero or positive, got {request.max_drop}")
    if request.calib_samples < 1:
        raise ConfigError(f"--calib-samples must be at least 1, got {request.calib_samples}")
    kind = source_kind(request.source)
    if request.precision is not None:
        check_precision(request.target, request.precision)
        plan(kind, request.target, request.precision)
    auto = request.precision is None
    if request.out is not None:
        check_outputs(request.out, request.target, force=request.force)
    elif not auto:
        assert request.precision is not None
        check_outputs(
            default_output(request.source, request.target, request.precision), request.target, force=request.force
        )

    for flag, path in (("--calib", request.calib), ("--eval", request.eval)):
        if path is not None:
            check_data_path(path, flag)  # before a model that may take seconds to load
    start = time.perf_counter()
    ctx = _prepare(request, progress)
    ladder = [request.precision] if request.precision else list(request.target.ladder())
    out_parent = (request.out or default_output(request.source, request.target, Precision.FP32)).absolute().parent
    out_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".edgekit-convert-", dir=out_parent))
    try:
        candidates: list[Candidate] = []
        for precision in ladder:
            if precision.needs_calibration and ctx.calibration is None:
                ctx.notes.append(f"{precision.value} skipped: no calibration data (pass --calib)")
                continue
            progress(f"converting to {request.target.name} {precision.value}")
            try:
                (staging / precision.value).mkdir()
                candidate = _run_steps(ctx, precision, staging / precision.value, "model")
            except ConversionError as exc:
                if not auto:
                    raise
                ctx.notes.append(f"{precision.value} failed: {exc.one_line()}")
                continue
            _check(ctx, candidate)
            candidates.append(candidate)
            verdict = "" if candidate.gate is None else (" — within budget" if candidate.passed else " — over budget")
            metric = candidate.metric
            figures = f", {metric['name']} {metric['artifact']:.4f} (drop {metric['drop']:.2f})" if metric else ""
            progress(f"  {precision.value}: {candidate.size_bytes} bytes{figures}{verdict}")
            if auto and candidate.passed:
                break  # the ladder climbs only while a rung is over budget
        if not candidates:
            raise ConversionError(
                f"no precision could be converted to {request.target.name}", hint="; ".join(ctx.notes)
            )
        chosen = _choose(candidates, auto)
        artifact = request.out or default_output(request.source, request.target, chosen.precision)
        if auto:
            check_outputs(artifact, request.target, force=request.force)
        seconds = time.perf_counter() - start
        report = _report(ctx, chosen, artifact, seconds, candidates if auto else None)
        _install(chosen, artifact, _manifest(ctx, chosen, artifact, report))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        ctx.reference.close()
    return report


def _report(
    ctx: Context, chosen: Candidate, artifact: Path, seconds: float, ladder: list[Candidate] | None
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "artifact": str(artifact),
        "format": ctx.request.target.name,
        "precision": chosen.precision.value,
        "size_bytes": chosen.size_bytes,
        "source_size_bytes": size_of(ctx.request.source),
        "seconds": round(seconds, 3),
        "manifest": str(manifest_path(artifact)),
        "parity": chosen.parity,
        "metric": chosen.metric,
        "gate": chosen.gate,
        "source": str(ctx.request.source),
        "steps": chosen.steps,
        "notes": ctx.notes + chosen.notes,
        "evaluation": {"origin": ctx.evaluation.origin, "samples": len(ctx.evaluation)},
    }
    if ladder is not None:
        report["ladder"] = [
            {
                "precision": c.precision.value,
                "size_bytes": c.size_bytes,
                "metric": c.metric,
                "passed": c.passed,
                "chosen": c is chosen,
                "notes": c.notes,
            }
            for c in ladder
        ]
    return report


def _manifest(ctx: Context, chosen: Candidate, artifact: Path, report: dict[str, Any]) -> dict[str, Any]:
    request = ctx.request
    return {
        "edgekit_manifest": 1,
        "artifact": artifact.name,
        "files": [artifact.with_suffix(f.suffix).name for f in chosen.files],
        "format": request.target.name,
        "precision": chosen.precision.value,
        "size_bytes": chosen.size_bytes,
        "sha256": sha256_of(chosen.staged),
        "inputs": chosen.inputs,
        "outputs": chosen.outputs,
        "task": ctx.description.get("task"),
        "labels": ctx.description.get("labels"),
        "preprocessing": ctx.description.get("preprocessing"),
        "postprocessing": ctx.description.get("postprocessing"),
        "source": {
            "path": str(request.source),
            "format": ctx.kind.value,
            "sha256": sha256_of(request.source),
            "size_bytes": size_of(request.source),
        },
        "conversion": {
            "steps": chosen.steps,
            "notes": report["notes"],
            "seconds": report["seconds"],
            "calibration": None
            if ctx.calibration is None or not chosen.precision.needs_calibration
            else {"origin": ctx.calibration.origin, "samples": len(ctx.calibration)},
            "evaluation": report["evaluation"],
        },
        "parity": chosen.parity,
        "metric": chosen.metric,
        "gate": chosen.gate,
        "versions": tool_versions(),
        "created": now_iso(),
    }
