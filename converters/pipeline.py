"""The converter pipeline: plan the steps, convert, check against the source, gate, write.

A plan is data, an ordered list of named steps run through one table of step functions
(``edgekit.converters.steps``). Inputs are resolved once (``edgekit.inputs``): the artifact is
checked at those shapes, and fixed at them where ``--shape`` was given.

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

from edgekit.converters.steps import ADOPT, STEPS, StepInput, plan
from edgekit.data import (
    DEFAULT_CALIBRATION_SAMPLES,
    Dataset,
    Split,
    check_data_path,
    load_dataset,
    match_inputs,
)
from edgekit.errors import ConfigError, ConversionError, DataError, ModelError, OutputError, OutputExistsError
from edgekit.formats import Format, Precision, SourceKind, check_precision, source_kind
from edgekit.inputs import ResolvedInput, ShapeRequest, random_inputs, random_values_note, resolve, shapes_of
from edgekit.manifest import (
    manifest_path,
    model_description,
    now_iso,
    read_manifest,
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
    # --shape: the input sizes to check the artifact at; the artifact is fixed at them.
    shapes: ShapeRequest = field(default_factory=lambda: ShapeRequest({}))
    labels: list[str] | None = None  # class names for a model with no example.json or manifest


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
    layout: dict[str, Any] = field(default_factory=dict)  # axes a converter moved (onnx2tf's NHWC)

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
    resolved: list[ResolvedInput] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def is_detector(self) -> bool:
        return self.description.get("task") == "detection"


# ---------------------------------------------------------------------------------------------
# outputs


def default_output(source: Path, target: Format, precision: Precision) -> Path:
    stem = source.name if source.is_dir() else source.stem
    suffix = "" if precision is Precision.FP32 else f"_{precision.value}"
    folder = source if source.is_dir() else source.parent
    return folder / f"{stem}{suffix}{target.suffix}"


def _outputs_of(artifact: Path, target: Format) -> list[Path]:
    companions = [artifact.with_suffix(s) for s in target.companion_suffixes]
    return [artifact, *companions, manifest_path(artifact)]


def check_outputs(artifact: Path, target: Format, *, force: bool, source: Path | None = None) -> None:
    """``source``: an adopted artifact written over itself; only its manifest may not exist yet."""
    if artifact.suffix != target.suffix:
        raise ConfigError(f"--out {artifact} should end in {target.suffix} for --to {target.name}")
    itself = set()
    if source is not None and source.exists() and artifact.absolute().resolve() == source.absolute().resolve():
        itself = {artifact, *[artifact.with_suffix(s) for s in target.companion_suffixes]}
    existing = [p for p in _outputs_of(artifact, target) if p.exists() and p not in itself]
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
    whole = frozenset(mapping[k] for k in data.whole if k in mapping)
    outputs = run_batched(runtime, {mapping[k]: v for k, v in data.inputs.items() if k in mapping}, batch, whole)
    return [outputs[spec.name] for spec in runtime.outputs]


def random_dataset(resolved: list[ResolvedInput], count: int = RANDOM_PARITY_SAMPLES) -> Dataset:
    """``count`` random samples at the resolved shapes, each one whole input (edgekit.inputs)."""
    inputs = random_inputs(resolved, count)
    return Dataset(inputs, origin=random_values_note(resolved), whole=frozenset(inputs))


# ---------------------------------------------------------------------------------------------
# steps


def _run_steps(ctx: Context, precision: Precision, staging: Path, name: str) -> Candidate:
    request = ctx.request
    steps = plan(ctx.kind, request.target, precision)
    start = time.perf_counter()
    artifact = staging / f"{name}{request.target.suffix}"
    step = StepInput(
        source=request.source,
        kind=ctx.kind,
        current=request.source,
        out=artifact,
        precision=precision,
        keras_model=ctx.keras_model,
        calibration=ctx.calibration,
        shapes=shapes_of(ctx.resolved),
        fix_shapes=bool(request.shapes),
        detector=ctx.is_detector,
        allow_flex=request.allow_flex,
    )
    for index, step_name in enumerate(steps):
        last = index == len(steps) - 1
        step.out = artifact if last else staging / f"step{index}.onnx"
        step.current = STEPS[step_name](step)
    notes = step.notes
    if ctx.is_detector and precision is Precision.INT8 and request.target.name != "onnx":
        notes.append("detector outputs kept in float")
    files = [artifact, *[artifact.with_suffix(s) for s in request.target.companion_suffixes]]
    if steps == [ADOPT]:
        from edgekit.graph import analyze

        found = analyze(artifact, shapes=_artifact_shapes(ctx, artifact)).precision
        precision = Precision(found) if found in Precision._value2member_map_ else precision
    return Candidate(precision, artifact, files, steps, time.perf_counter() - start, notes=notes, layout=step.layout)


def _artifact_shapes(ctx: Context, artifact: Path) -> dict[str, tuple[int, ...]]:
    """The resolved source shapes, keyed by the artifact's own input names."""
    from edgekit.graph import model_inputs

    specs = model_inputs(artifact)
    shapes = shapes_of(ctx.resolved)
    mapping = match_inputs(list(shapes), specs, artifact.name)
    return {mapping[name]: shape for name, shape in shapes.items() if name in mapping}


def _channels_last(data: Dataset, orders: dict[str, tuple[int, ...]]) -> Dataset:
    """``data`` with the named inputs' axes moved as the artifact lays them out (NCHW → NHWC)."""
    inputs = {}
    for key, array in data.inputs.items():
        order = orders.get(key)
        if order is None:
            inputs[key] = array
        elif key in data.whole:  # (N, 1, C, H, W): the order applies past the stacking axis
            inputs[key] = array.transpose(0, *(i + 1 for i in order))
        else:  # (N, C, H, W): the batch axis is the stacking axis
            inputs[key] = array.transpose(order)
    return Dataset(inputs, data.labels, data.boxes, data.origin, list(data.notes), data.whole)


def _check(ctx: Context, candidate: Candidate) -> None:
    """Parity, metric and gate of a staged artifact, run with its format's real runtime."""
    from edgekit.runtimes.base import describe_shapes

    candidate.size_bytes = sum(size_of(f) for f in candidate.files)
    evaluation = ctx.evaluation
    with load_runtime(candidate.staged, ctx.request.target.runtime) as runtime:
        if candidate.layout.get("channels_last"):
            evaluation, candidate.layout = _nhwc_evaluation(ctx, runtime)
        try:
            outputs = predict_all(runtime, evaluation)
        except ModelError as exc:
            shapes = describe_shapes(shapes_of(ctx.resolved))
            raise ConversionError(
                f"the {ctx.request.target.name} {candidate.precision.value} artifact does not run at input shapes "
                f"{shapes}: {exc.message.split(': ', 1)[-1]}"
            ) from exc
        if candidate.layout.get("channels_last"):
            from edgekit.converters.onnx_to_tflite import align_outputs

            outputs, candidate.layout["outputs"] = align_outputs(  # noqa: F841 - recorded in the manifest
                ctx.reference_outputs, outputs, stacked=bool(ctx.evaluation.whole)
            )
        candidate.parity = parity(ctx.description.get("task"), ctx.reference_outputs, outputs)
        by_data_key = evaluation.sample_shapes()
        feeding = match_inputs(list(evaluation.inputs), runtime.inputs, "the evaluation data")
        checked = {feeding[key]: shape for key, shape in by_data_key.items() if key in feeding}
        candidate.inputs = []
        for spec in runtime.inputs:
            entry = spec.to_dict()
            entry["declared"] = entry["shape"]
            entry["shape"] = list(checked.get(spec.name, ()))
            entry["dynamic"] = spec.dynamic
            candidate.inputs.append(entry)
        candidate.outputs = [s.to_dict() for s in runtime.outputs]
        left_out = getattr(runtime, "left_out_outputs", None)
        if left_out:
            candidate.notes.append(f"non-tensor outputs not checked: {', '.join(left_out)}")
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


def evaluation_key(data: Dataset, input_name: str) -> str:
    try:
        return data.key_for(input_name)
    except DataError:
        return input_name


def _nhwc_evaluation(ctx: Context, runtime: Runtime) -> tuple[Dataset, dict[str, Any]]:
    """The evaluation data laid out as an onnx2tf artifact takes it, and which axes moved."""
    from edgekit.converters.onnx_to_tflite import axis_order

    sources = {r.name: r.shape for r in ctx.resolved}
    mapping = match_inputs(list(sources), runtime.inputs, "the converted model")
    declared = {spec.name: spec.shape for spec in runtime.inputs}
    orders: dict[str, tuple[int, ...]] = {}
    for source_name, artifact_name in mapping.items():
        order = axis_order(sources[source_name], tuple(d or 0 for d in declared[artifact_name]))
        if order is not None:
            orders[evaluation_key(ctx.evaluation, source_name)] = order
    layout = {"channels_last": True, "inputs": {mapping[k]: list(v) for k, v in _by_source(ctx, orders).items()}}
    return _channels_last(ctx.evaluation, orders), layout


def _by_source(ctx: Context, orders: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    keys = {evaluation_key(ctx.evaluation, r.name): r.name for r in ctx.resolved}
    return {keys[k]: v for k, v in orders.items() if k in keys}


def image_layout(shape: list[Any]) -> str:
    """NCHW where a 4-D input has its channels (1 or 3) second and not last, else NHWC."""
    if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3):
        return "NCHW"
    return "NHWC"


def _preprocessing_for(preprocessing: dict[str, Any] | None, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The image preprocessing with the artifact's own layout: a camera frame is HWC, a model
    exported from PyTorch takes CHW."""
    if not preprocessing or preprocessing.get("kind") != "image" or not inputs:
        return preprocessing
    shape = inputs[0].get("shape") or inputs[0].get("declared") or []
    return {**preprocessing, "layout": image_layout(list(shape))}


def _ladder(request: ConvertRequest, kind: SourceKind) -> list[Precision]:
    """The precisions to try: the one asked for, or (auto) every rung this route can make."""
    if request.precision is not None:
        return [request.precision]
    rungs = []
    for precision in request.target.ladder():
        try:
            plan(kind, request.target, precision)
        except ConfigError:
            continue  # a .tflite adopted as it is has no int8 rung of its own
        rungs.append(precision)
    return rungs


def _short(name: str) -> str:
    return name.split(":")[0]


def _data_shapes(data: Dataset | None, specs: list[Any]) -> dict[str, tuple[int, ...]] | None:
    """Sample shapes of ``data`` keyed by model input name."""
    if data is None:
        return None
    shapes = data.sample_shapes()
    return {
        spec.name: shapes[evaluation_key(data, spec.name)]
        for spec in specs
        if evaluation_key(data, spec.name) in shapes
    }


def _check_data_agrees(data: Dataset, resolved: list[ResolvedInput]) -> None:
    shapes = data.sample_shapes()
    for r in resolved:
        got = shapes.get(evaluation_key(data, r.name))
        if got is not None and tuple(got) != r.shape:
            raise ConfigError(
                f"--shape {r.name}={','.join(map(str, r.shape))} but the evaluation data holds samples of {got}",
                hint="leave out one of the two, or make them agree",
            )


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
    if kind is SourceKind.OPENVINO:
        return None, load_runtime(source, "openvino")
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
    if request.labels:
        description["labels"] = list(request.labels)
    ladder = _ladder(request, kind)
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
        ).subset(request.calib_samples)
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
    # The size the artifact is checked (and, with --shape, fixed) at: never one made up.
    data = evaluation if evaluation is not None else calibration
    resolved = resolve(
        reference.inputs,
        request=request.shapes,
        data_shapes=_data_shapes(data, reference.inputs),
        manifest_inputs=(read_manifest(request.source) or {}).get("inputs") if kind is not SourceKind.KERAS else None,
        model=request.source.name,
    )
    if keras_model is not None and request.shapes:
        from edgekit.converters.keras_to_tflite import fixed_shape_copy

        keras_model = fixed_shape_copy(keras_model, [r.shape for r in resolved])
    if evaluation is None:
        evaluation = calibration if calibration is not None else random_dataset(resolved)
    elif request.shapes:
        _check_data_agrees(evaluation, resolved)
    progress("inputs: " + "; ".join(r.describe() for r in resolved))
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
        resolved=resolved,
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
        check_outputs(request.out, request.target, force=request.force, source=request.source)
    elif not auto:
        assert request.precision is not None
        check_outputs(
            default_output(request.source, request.target, request.precision),
            request.target,
            force=request.force,
            source=request.source,
        )

    for flag, path in (("--calib", request.calib), ("--eval", request.eval)):
        if path is not None:
            check_data_path(path, flag)  # before a model that may take seconds to load
    start = time.perf_counter()
    ctx = _prepare(request, progress)
    ladder = _ladder(request, kind)
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
        adopted = chosen.steps == [ADOPT]
        artifact = request.out or (
            request.source if adopted else default_output(request.source, request.target, chosen.precision)
        )
        if auto:
            check_outputs(artifact, request.target, force=request.force, source=request.source)
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
        "inputs": [r.to_dict() for r in ctx.resolved],
        "adopted": chosen.steps == [ADOPT],
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
        # Axes a converter moved relative to the source (onnx2tf's NCHW → NHWC), per input and output.
        "layout": {k: v for k, v in chosen.layout.items() if k != "channels_last"} or None,
        "dynamic_inputs": any(entry.get("dynamic") for entry in chosen.inputs),
        "task": ctx.description.get("task"),
        "labels": ctx.description.get("labels"),
        "preprocessing": _preprocessing_for(ctx.description.get("preprocessing"), chosen.inputs),
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
