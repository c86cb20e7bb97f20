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


def _handled_record(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / HANDLED_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {"handled": [], "last": None}
    if isinstance(record, list):  # the first format: the ids alone
        return {"handled": [str(d) for d in record], "last": None}
    return record if isinstance(record, dict) else {"handled": [], "last": None}


def read_handled(folder: Path) -> list[str]:
    """The deployments this device has finished (or failed), oldest first."""
    return [str(d) for d in _handled_record(folder).get("handled") or []]


def remember(folder: Path, deployment: str) -> None:
    record = _handled_record(folder)
    handled = [d for d in record.get("handled") or [] if d != deployment] + [deployment]
    write_json(folder / HANDLED_FILE, {**record, "handled": handled[-HANDLED_KEPT:]})


def replayed(folder: Path, deployment: str, issued: Any) -> str | None:
    """Why an offer must be refused as older than the last one accepted, or None.

    Every signed offer carries the time it was issued; a device acts only on offers issued after
    the last one it accepted, so an offer captured from the broker and published again later (a
    replay that would, say, roll a device back) is refused even though its signature is good."""
    if not isinstance(issued, (int, float)):
        return "the offer carries no issue time"
    last = _handled_record(folder).get("last") or {}
    if last.get("deployment") == deployment or not isinstance(last.get("issued"), (int, float)):
        return None
    if issued <= last["issued"]:
        return (
            "it was issued before the last offer this device accepted (a replay, or the deploying "
            "machine's clock is behind)"
        )
    return None


def accept(folder: Path, deployment: str, issued: float) -> None:
    """Record the offer acted on now: offers issued before it are refused from now on."""
    record = _handled_record(folder)
    write_json(folder / HANDLED_FILE, {**record, "last": {"deployment": deployment, "issued": issued}})


def prune(folder: Path, running: Path, in_use: set[str] | None = None) -> None:
    """Remove every model folder but the running one's, the two before it and those ``in_use``,
    and the chunks of downloads no longer wanted."""
    keep = {running.parent.name, *(in_use or set())}
    record = read_active(folder) or {}
    for entry in (record.get("previous"), record.get("previous_of_previous")):
        if entry and Path(entry.get("model", "")).parent.parent == folder:
            keep.add(Path(entry["model"]).parent.name)
    for path in folder.iterdir():
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def write_bytes(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_json(path: Path, document: Any) -> None:
    write_bytes(path, json.dumps(document, indent=1).encode())
