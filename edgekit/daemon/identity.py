"""What a device says about itself on the broker: the retained ``edgekit/<id>/info``.

Published on every connection beside the retained ``status``, so that a fleet's table
(``edgekit fleet status``) is built from retained topics alone, in the time the broker takes to
hand them over, without asking any device anything: which edgekit it runs, what machine it is and
which device profile recognises it, what it can run, which model it runs (name, sha256, manifest
version), and how much disk and memory it has left.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from edgekit import __version__

# Engines a device may have, by the module that provides each (edgekit[device] brings LiteRT and
# ONNX Runtime; TensorFlow's own interpreter and OpenVINO where installed).
ENGINE_MODULES = {
    "tflite": ("ai_edge_litert", "tflite_runtime", "tensorflow"),
    "onnxruntime": ("onnxruntime",),
    "openvino": ("openvino",),
}
INFO_VERSION = 1


def available_engines() -> list[str]:
    """Engines importable here, found without importing them (TensorFlow alone takes seconds)."""
    return [
        engine
        for engine, modules in ENGINE_MODULES.items()
        if any(importlib.util.find_spec(module) is not None for module in modules)
    ]


def recognised_profile() -> str | None:
    """The device profile whose ``recognise`` names this machine: a calibrated one first (it is
    this very machine), then a shipped one."""
    from edgekit.predict.profiles import load_profile, shipped_profile_names, user_profile_names
    from edgekit.predict.profiles.host import is_this_machine

    for name in [*user_profile_names(), *shipped_profile_names()]:
        try:
            if is_this_machine(load_profile(name).recognise):
                return name
        except Exception:  # noqa: BLE001, S112 - a broken user profile is the profiles command's to report
            continue
    return None


def model_identity(model: Path) -> dict[str, Any]:
    """The running model: its name, sha256 (the manifest's where it has one), manifest version, task."""
    from edgekit.manifest import load_manifest, sha256_of

    manifest = load_manifest(model)
    return {
        "name": model.name,
        "sha256": manifest.sha256 if manifest is not None else sha256_of(model),
        "manifest_version": manifest.edgekit_manifest if manifest is not None else None,
        "task": manifest.task if manifest is not None else None,
        "format": manifest.format if manifest is not None else model.suffix.lstrip("."),
        "precision": manifest.precision if manifest is not None else None,
    }


def device_info(
    device_id: str, run_id: str, model: Path, *, inference: str, threads: int | None, data_dir: Path
) -> dict[str, Any]:
    """The retained ``info`` of a daemon about to run ``model``; ``data_dir`` holds its outbox."""
    import psutil

    from edgekit.predict.profiles.host import arch_of, machine_name

    folder = data_dir if data_dir.exists() else Path.home()
    return {
        "info_version": INFO_VERSION,
        "device_id": device_id,
        "run_id": run_id,
        "started": round(time.time(), 3),
        "edgekit": __version__,
        "host": socket.gethostname(),
        "machine": machine_name(),
        "arch": arch_of(platform.machine()),
        "profile": recognised_profile(),
        "engines": available_engines(),
        "model": model_identity(model),
        "inference": inference,
        "threads": threads,
        "free_disk_mb": round(shutil.disk_usage(folder).free / 1e6, 1),
        "memory_available_mb": round(psutil.virtual_memory().available / 1e6, 1),
    }
