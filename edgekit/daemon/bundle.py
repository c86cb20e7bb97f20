"""What a deployment carries to a device: one zip of the model, its manifest and its on-device check.

The bundle holds the artifact's files (an OpenVINO IR's .xml and .bin), its manifest beside it,
and ``check.npz``: a few frames and the outputs the artifact gave on them on the deploying
machine, with the tolerance the device must meet. A device that runs the same frames through its
own runtime and preprocessing and lands within that tolerance runs the model the deployer ran;
one that does not (a different model under the same name, a runtime that computes it wrongly)
stays on its old model.

The tolerance is the artifact's own parity with its source, recorded at conversion (an int8
model was already that far from its float source), and never below 1 % of an output's range:
runtimes on different CPUs round integer kernels differently.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, DataError, InputNotFoundError

CHECK_FILE = "check.npz"
CHECK_FRAMES = 3
MIN_TOLERANCE = 0.01  # relative to an output's largest magnitude


@dataclass(frozen=True)
class Bundle:
    path: Path
    sha256: str
    size: int
    artifact: str  # the artifact's file name inside the bundle
    artifact_sha256: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _artifact_files(artifact: Path) -> list[Path]:
    files = [artifact]
    weights = artifact.with_suffix(".bin")
    if artifact.suffix == ".xml" and weights.exists():
        files.append(weights)
    return files


def check_frames(size: tuple[int, int], count: int = CHECK_FRAMES) -> np.ndarray:
    """Frames of the model's own size (BGR, uint8): the same on every machine, from a fixed seed."""
    height, width = size
    return np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def run_check_frames(model: Any, contract: Any, frames: np.ndarray) -> list[list[np.ndarray]]:
    """Each frame through ``contract``'s preprocessing and ``model``: its outputs, in the model's order."""
    name = model.inputs[0].name
    answers = []
    for frame in frames:
        model.submit({name: contract.prepare(frame)})
        outputs = model.result()
        answers.append([np.asarray(value) for value in outputs.values()])
    return answers


def make_check(artifact: Path) -> bytes:
    """``check.npz`` for ``artifact``: frames, the outputs it gives on them here, and the tolerance."""
    from edgekit.daemon.inference import load_model
    from edgekit.daemon.processing import ModelContract
    from edgekit.manifest import load_manifest

    contract = ModelContract.for_model(artifact)
    model = load_model(artifact, None, 1, own_process=False)
    try:
        contract.fit(model, artifact)
        frames = check_frames(contract.size)
        answers = run_check_frames(model, contract, frames)
    finally:
        model.close()
    manifest = load_manifest(artifact)
    recorded = manifest.parity.relative_max_error if manifest is not None else None
    tolerance = max(MIN_TOLERANCE, float(recorded or 0.0))
    arrays: dict[str, np.ndarray] = {"frames": frames, "tolerance": np.asarray(tolerance)}
    for index, outputs in enumerate(answers):
        for position, value in enumerate(outputs):
            arrays[f"out_{index}_{position}"] = value
    return npz_bytes(arrays)


# Every entry of a bundle carries this date: the same artifact packs to the same bytes, so its
# sha256 names it across runs (a device already running it answers at once; a rollout resumes).
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz ``np.load`` reads, byte-for-byte the same for the same arrays (``np.savez`` stamps the time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, value in arrays.items():
            array = io.BytesIO()
            np.lib.format.write_array(array, np.asarray(value), allow_pickle=False)
            archive.writestr(_entry(f"{name}.npy"), array.getvalue())
    return buffer.getvalue()


def check_differs(check: dict[str, np.ndarray], answers: list[list[np.ndarray]]) -> str | None:
    """Why the device's ``answers`` to the check's frames are not the deployer's, or None."""
    tolerance = float(check["tolerance"])
    for index, outputs in enumerate(answers):
        for position, value in enumerate(outputs):
            key = f"out_{index}_{position}"
            if key not in check:
                return f"the model gives {len(outputs)} outputs, the check expects fewer"
            expected = check[key].astype(np.float64)
            if expected.shape != value.shape:
                return f"output {position} has shape {list(value.shape)}, the check expects {list(expected.shape)}"
            scale = max(float(np.abs(expected).max(initial=0.0)), 1e-6)
            error = float(np.abs(value.astype(np.float64) - expected).max(initial=0.0)) / scale
            if not error <= tolerance:  # NaN fails too
                return (
                    f"output {position} differs by {error:.3g} of its range on frame {index} "
                    f"(tolerance {tolerance:.3g})"
                )
    return None


def build_bundle(artifact: Path, folder: Path) -> Bundle:
    """Pack ``artifact`` (its files, manifest and a fresh check) as ``folder/<name>.bundle.zip``."""
    from edgekit.manifest import load_manifest, manifest_path, sha256_of

    if not artifact.exists():
        raise InputNotFoundError(f"model {artifact} does not exist")
    if artifact.is_dir() or artifact.suffix not in (".tflite", ".onnx", ".xml"):
        raise ConfigError(
            f"{artifact.name} is not a model a device runs", hint="deploy a .tflite, .onnx or OpenVINO .xml artifact"
        )
    manifest = load_manifest(artifact)
    check = make_check(artifact)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{artifact.name}.bundle.zip"
    temporary = folder / f".{out.name}.partial"
    with zipfile.ZipFile(temporary, "w") as archive:
        for file in _artifact_files(artifact):
            archive.writestr(_entry(file.name), file.read_bytes())
        if manifest is not None:
            archive.writestr(_entry(manifest_path(artifact).name), manifest_path(artifact).read_bytes())
        archive.writestr(_entry(CHECK_FILE), check)
    os.replace(temporary, out)
    data = out.read_bytes()
    return Bundle(
        path=out,
        sha256=sha256_bytes(data),
        size=len(data),
        artifact=artifact.name,
        artifact_sha256=manifest.sha256 if manifest is not None else sha256_of(artifact),
    )


def chunk_hashes(path: Path, chunk_bytes: int) -> list[str]:
    hashes = []
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            hashes.append(sha256_bytes(block))
    return hashes


def read_chunk(path: Path, index: int, chunk_bytes: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(index * chunk_bytes)
        return handle.read(chunk_bytes)


def unpack(bundle: Path, folder: Path, artifact: str) -> tuple[Path, dict[str, np.ndarray]]:
    """The bundle's files into ``folder``; the artifact's path there and the check's arrays."""
    try:
        with zipfile.ZipFile(bundle) as archive:
            names = archive.namelist()
            if artifact not in names or CHECK_FILE not in names:
                raise DataError(f"the bundle lacks {artifact if artifact not in names else CHECK_FILE}")
            for name in names:
                if name != Path(name).name:  # only flat names: nothing may land outside the folder
                    raise DataError(f"the bundle holds a path, {name!r}")
            archive.extractall(folder)
    except zipfile.BadZipFile as exc:
        raise DataError(f"the bundle is not a zip ({exc})") from None
    with np.load(folder / CHECK_FILE) as loaded:
        check = {key: loaded[key] for key in loaded.files}
    return folder / artifact, check


def canonical(document: dict[str, Any]) -> bytes:
    """The bytes a signature covers: sorted keys, no spaces, the signature itself left out."""
    return json.dumps(
        {k: v for k, v in document.items() if k != "signature"}, sort_keys=True, separators=(",", ":")
    ).encode()
