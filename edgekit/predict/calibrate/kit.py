"""A calibration kit: the calibration models built and converted once, on a machine with
TensorFlow, and packed with their graph features, so that a device with ``edgekit[device]``
alone can time them and fit its own profile (``edgekit profiles calibrate --kit DIR``).

A kit is a folder: the converted models and ``kit.json``, which lists each one with its engine,
precision, SHA-256 and cost terms. Building one converts every model in a child process of its
own (a few at a time), so what the converters keep in memory goes when the child does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgekit.errors import DataError, InputNotFoundError, OutputError, OutputExistsError
from edgekit.predict.calibrate.run import Progress, Timed, fit_profile, host_profile_skeleton, time_all
from edgekit.predict.graph.features import Features
from edgekit.predict.profiles import DeviceProfile
from edgekit.predict.profiles.host import measure_bandwidth_gbs
from edgekit.predict.profiles.schema import check_cost_terms

KIT_FILE = "kit.json"
KIT_VERSION: Literal[1] = 1
MODELS_PER_CHILD = 4  # converters hold on to memory; a fresh child every few models gives it back


class KitModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., description="calibration model (a network or a synthetic graph)")
    engine: Literal["tflite", "onnxruntime"]
    precision: Literal["fp32", "int8"]
    file: str = Field(..., description="the converted model, relative to the kit folder")
    sha256: str
    network: bool = Field(..., description="a whole architecture (sets the fit's level), not a one-term graph")
    features: dict[str, Any] = Field(..., description="the model's cost terms (edgekit.predict.graph.features)")

    @field_validator("features")
    @classmethod
    def _every_term(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_cost_terms(value)


class Kit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kit_version: Literal[1] = KIT_VERSION
    built_on: str = Field(..., description="ISO date the kit was built")
    edgekit: str = Field(..., description="edgekit version that built it")
    models: list[KitModel] = Field(..., min_length=1)

    @property
    def engines(self) -> list[str]:
        return sorted({m.engine for m in self.models})

    @property
    def precisions(self) -> list[str]:
        return sorted({m.precision for m in self.models})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _child_setup() -> None:
    """A child converts quietly, as the CLI does (--debug, through EDGEKIT_DEBUG, keeps it all),
    and leaves Ctrl-C to the parent: the parent stops the pool, and the child does not print a
    KeyboardInterrupt traceback of its own under edgekit's one line."""
    import signal

    from edgekit.quiet import quiet_frameworks

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_frameworks()


def _build_one(name: str, engines: list[str], precisions: list[str], folder: str) -> list[dict[str, Any]]:
    """In a child process: one calibration model, converted each way, with its cost terms."""
    from edgekit.predict.calibrate.run import NETWORKS, build_calibration_model, export
    from edgekit.predict.graph import analyze

    model = build_calibration_model(name)
    entries = []
    for engine in engines:
        for precision in precisions:
            artifact = export(model, name, engine, precision, Path(folder))
            features = Features.from_graph(analyze(artifact, engine)).to_dict()
            entries.append(
                {"name": name, "engine": engine, "precision": precision, "file": artifact.name,
                 "network": name in NETWORKS, "features": features}
            )  # fmt: skip
    return entries


def child_batches(names: tuple[str, ...], engines: list[str]) -> list[list[tuple[str, list[str]]]]:
    """Which conversions share a child process. A whole network's conversions for one engine get a
    child of their own: the memory a converter took stays with its process (with a network's TFLite
    and ONNX conversions in one child, the kit's largest process reached 3.3 GB; Xception's ONNX
    conversion alone stays under 2.5 GB). The small synthetic graphs go MODELS_PER_CHILD to a
    child, every engine in one go."""
    from edgekit.predict.calibrate.run import NETWORKS

    batches: list[list[tuple[str, list[str]]]] = [
        [(name, [engine])] for name in names if name in NETWORKS for engine in engines
    ]
    small = [name for name in names if name not in NETWORKS]
    batches += [
        [(name, list(engines)) for name in small[i : i + MODELS_PER_CHILD]]
        for i in range(0, len(small), MODELS_PER_CHILD)
    ]
    return batches


def check_kit_output(out: Path, force: bool) -> None:
    """``--force`` replaces a kit, never a folder that is something else."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is an existing file, not a folder", hint="choose a folder path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise OutputExistsError(f"{out} already exists", hint="pass --force to replace it, or choose another --out")
        if not (out / KIT_FILE).is_file():
            raise OutputExistsError(
                f"{out} is not a calibration kit (no {KIT_FILE}): --force replaces only a kit",
                hint="choose another --out",
            )


def build_kit(
    out: Path,
    *,
    names: tuple[str, ...],
    engines: list[str],
    precisions: list[str],
    force: bool = False,
    progress: Progress = lambda _line: None,
) -> Kit:
    """Build the kit into a temporary folder beside ``out``; it becomes ``out`` when complete."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from edgekit import __version__
    from edgekit.errors import ConversionError
    from edgekit.outputs import atomic_directory

    check_kit_output(out, force)
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no state of ours to copy
    with atomic_directory(out, force=True) as staging:
        entries: list[dict[str, Any]] = []
        for batch in child_batches(names, engines):
            # A fresh child every few conversions: what the converters keep goes with it.
            pool = ProcessPoolExecutor(1, mp_context=context, initializer=_child_setup)
            try:
                for name, batch_engines in batch:
                    progress(f"building and converting {name} ({', '.join(batch_engines)})")
                    try:
                        entries += pool.submit(_build_one, name, batch_engines, precisions, str(staging)).result()
                    except BrokenProcessPool as exc:
                        raise ConversionError(
                            f"the process converting calibration model {name} died (out of memory?)",
                            hint="free some memory and run edgekit profiles kit again",
                        ) from exc
            except BaseException:
                # Interrupted or failed: stop the child now, not after the model it is converting.
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        wanted = {e["file"] for e in entries}
        for leftover in staging.iterdir():  # ONNX fp32 intermediates of an int8-only kit
            if leftover.name not in wanted:
                leftover.unlink()
        models = [KitModel(**e, sha256=_sha256(staging / e["file"])) for e in entries]
        kit = Kit(built_on=dt.date.today().isoformat(), edgekit=__version__, models=models)
        (staging / KIT_FILE).write_text(kit.model_dump_json(indent=1))
    return kit


def read_kit(folder: Path) -> Kit:
    """The kit in ``folder``, every file present and intact."""
    manifest = folder / KIT_FILE
    if not folder.is_dir():
        raise InputNotFoundError(
            f"calibration kit {folder} does not exist",
            hint="build one where TensorFlow is: edgekit profiles kit --out DIR",
        )
    if not manifest.is_file():
        raise DataError(f"{folder} is not a calibration kit (no {KIT_FILE})", hint="build one: edgekit profiles kit")
    try:
        kit = Kit.model_validate(json.loads(manifest.read_text()))
    except (ValueError, ValidationError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            what = f"{'.'.join(str(p) for p in first['loc']) or '(top level)'}: {first['msg']}"
        else:
            what = "not JSON"
        raise DataError(f"{manifest}: {what}", hint="rebuild the kit with edgekit profiles kit") from exc
    for model in kit.models:
        path = folder / model.file
        if not path.is_file():
            raise DataError(f"calibration kit {folder} lacks {model.file}", hint="copy the whole kit folder again")
        if _sha256(path) != model.sha256:
            raise DataError(
                f"{path} is not the file the kit was built with (its SHA-256 differs)",
                hint="copy the whole kit folder again",
            )
    return kit


def calibrate_from_kit(
    name: str,
    kit_folder: Path,
    *,
    engines: list[str],
    precisions: list[str],
    threads: list[int],
    seconds: float,
    command: str,
    progress: Progress = lambda _line: None,
) -> DeviceProfile:
    """Time a kit's models here and fit: no TensorFlow, no converter.

    TFLite models are priced from the kit's cost terms (the flatbuffer is the graph LiteRT runs
    anywhere). ONNX models are read again here, their operators timed: ONNX Runtime prices the
    graph it optimizes for the machine it runs on (blocked layouts on x86, not on ARM), which is
    the graph the device's own predictions will read."""
    kit = read_kit(kit_folder)
    chosen = []
    for m in kit.models:
        if m.engine not in engines or m.precision not in precisions:
            continue
        # An ONNX model's terms are read here, as its operators are timed (time_all).
        features = Features.from_dict(m.features) if m.engine == "tflite" else None
        chosen.append(Timed(m.name, m.engine, m.precision, kit_folder / m.file, features, m.network))
    progress("measuring memory bandwidth")
    profile = host_profile_skeleton(name, measure_bandwidth_gbs())
    points = time_all(chosen, threads, seconds, progress)
    return fit_profile(profile, points, engines, precisions, threads, command)
