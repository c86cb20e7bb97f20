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
from pathlib import Path
from typing import Any

from edgekit.converters.artifact_manifest import build_manifest
from edgekit.converters.evaluation import artifact_shapes
from edgekit.converters.prepare import prepare
from edgekit.converters.request import Candidate, Context, ConvertRequest, Progress
from edgekit.converters.steps import ADOPT, STEPS, StepInput, plan
from edgekit.converters.verify import check_candidate
from edgekit.data import (
    check_data_path,
)
from edgekit.errors import ConfigError, ConversionError
from edgekit.formats import Precision, check_precision, source_kind
from edgekit.inputs import shapes_of
from edgekit.manifest import (
    Manifest,
    manifest_path,
    size_of,
)
from edgekit.outputs import check_outputs, default_output

__all__ = ["ConvertRequest", "convert"]


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
        from edgekit.predict.graph import analyze

        found = analyze(artifact, shapes=artifact_shapes(ctx, artifact)).precision
        precision = Precision(found) if found in Precision._value2member_map_ else precision
    return Candidate(precision, artifact, files, steps, time.perf_counter() - start, notes=notes, layout=step.layout)


def _choose(candidates: list[Candidate], auto: bool) -> Candidate:
    """The first rung within budget, in the ladder's order (int8 first: what integer kernels and
    NPUs run, even where dynamic-range is a few bytes smaller); none within: the last, fp32."""
    if not auto:
        return candidates[0]
    passing = [c for c in candidates if c.passed]
    return passing[0] if passing else candidates[-1]


def _install(candidate: Candidate, artifact: Path, manifest: Manifest) -> None:
    """Move the staged files into place: companions first, the artifact, then its manifest."""

    staged_manifest = candidate.staged.with_name(candidate.staged.name + ".manifest.json")
    staged_manifest.write_text(manifest.to_json())
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
    ctx = prepare(request, kind, progress)
    out_parent = (request.out or default_output(request.source, request.target, Precision.FP32)).absolute().parent
    out_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".edgekit-convert-", dir=out_parent))
    try:
        candidates: list[Candidate] = []
        for precision in ctx.ladder:
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
            check_candidate(ctx, candidate)
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
        _install(chosen, artifact, build_manifest(ctx, chosen, artifact, report))
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
