"""What a device keeps of its deployments on disk, under ``deployments-<id>/`` beside its outbox.

``active.json`` names the model the daemon runs, the one before it (for a rollback) and the one
before that; ``handled.json`` the deployments already finished, so a retained offer seen again
after a restart is not acted on twice. The models are in one folder per bundle; the two last
are kept. Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger("edgekit.daemon.updates")

ACTIVE_FILE = "active.json"
HANDLED_FILE = "handled.json"
HANDLED_KEPT = 200


def deployed_model(folder: Path, given: Path) -> Path:
    """The model a restart runs: the deployed one when the daemon is started with the same
    ``--model`` as when it was deployed, else ``given`` (a user who names another model wins)."""
    record = read_active(folder)
    if record is None:
        return given
    current = Path(record.get("model", ""))
    if record.get("base_model") == str(given.resolve()) and current.exists():
        if current != given:
            log.info(
                "running %s, deployed by %s (the started --model was %s)",
                current.name,
                record.get("deployment"),
                given.name,
            )
        return current
    return given


def read_active(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / ACTIVE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def read_handled(folder: Path) -> set[str]:
    try:
        return set(json.loads((folder / HANDLED_FILE).read_text()))
    except (OSError, json.JSONDecodeError, TypeError):
        return set()


def remember(folder: Path, deployment: str) -> None:
    handled = sorted(read_handled(folder) | {deployment})[-HANDLED_KEPT:]
    write_json(folder / HANDLED_FILE, handled)


def prune(folder: Path, running: Path) -> None:
    """Remove every model folder but the running one's and the two before it."""
    keep = {running.parent.name}
    record = read_active(folder) or {}
    for entry in (record.get("previous"), record.get("previous_of_previous")):
        if entry and Path(entry.get("model", "")).parent.parent == folder:
            keep.add(Path(entry["model"]).parent.name)
    for path in folder.iterdir():
        if path.is_dir() and not path.name.endswith(".parts") and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def write_bytes(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_json(path: Path, document: Any) -> None:
    write_bytes(path, json.dumps(document, indent=1).encode())
