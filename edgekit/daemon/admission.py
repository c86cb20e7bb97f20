"""Whether a device acts on a deployment offer: refusals decided before anything is fetched.

First whether the offer is genuine and meant for this device (a trusted key's signature over
it, its device id, issued after the last one accepted, a well-formed bundle hash); then whether
this device can take it (its size cap, its free disk, a runtime for the artifact's format).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from edgekit.daemon.bundle import canonical
from edgekit.daemon.deployed import replayed
from edgekit.daemon.signing import TrustedKeys
from edgekit.errors import EdgekitError

# The free disk a download must leave behind it (the outbox needs room too).
DISK_MARGIN_BYTES = 64 * 1024 * 1024


def offer_refusal(offer: dict[str, Any], trusted: TrustedKeys, device_id: str, folder: Path) -> str | None:
    """Why ``offer`` is not genuine or not for this device, or None."""
    deployment = str(offer["deployment"])
    refusal = trusted.refusal(canonical(offer), offer.get("key_id"), offer.get("signature"))
    if refusal is not None:
        return refusal
    if offer.get("device") != device_id:
        return f"the offer is for device {offer.get('device')!r}"
    replay = replayed(folder, deployment, offer.get("issued"))
    if replay is not None:
        return replay
    bundle_sha = str((offer.get("bundle") or {}).get("sha256", ""))
    if offer.get("kind") != "rollback" and not re.fullmatch(r"[0-9a-f]{64}", bundle_sha):
        return "the offer names no bundle sha256"
    return None


def cannot_take(offer: dict[str, Any], max_bytes: int, folder: Path, configured: str | None) -> str | None:
    """Why this device cannot take the offer's bundle (size, disk, runtime), or None."""
    size = int((offer.get("bundle") or {}).get("size", 0))
    if size > max_bytes:
        return f"the bundle is {size / 1e6:.1f} MB, this device takes at most {max_bytes / 1e6:.1f} MB"
    cannot = cannot_run(configured, str((offer.get("artifact") or {}).get("name", "")))
    if cannot is not None:
        return cannot
    free = shutil.disk_usage(folder).free
    if free < 3 * size + DISK_MARGIN_BYTES:  # chunks, the bundle, and what it unpacks to
        return f"{free / 1e6:.0f} MB free on disk, the bundle needs {3 * size / 1e6:.0f} MB"
    return None


def runtime_for(configured: str | None, artifact: Path) -> str | None:
    """The runtime the daemon was told to use, where it runs this format; else the format's own."""
    from edgekit.runtimes import RUNTIMES

    chosen = RUNTIMES.get(configured or "")
    return configured if chosen is not None and artifact.suffix.lower() in chosen.suffixes else None


def cannot_run(configured: str | None, name: str) -> str | None:
    """Why this device cannot run an artifact called ``name``."""
    from edgekit.runtimes import RUNTIMES, runtime_for_path

    artifact = Path(name)
    if not name or artifact.name != name:
        return f"the offer names no artifact file ({name!r})"
    try:
        RUNTIMES[runtime_for(configured, artifact) or runtime_for_path(artifact)].load_class()
    except EdgekitError as exc:
        return f"this device cannot run {name}: {exc.message}"
    return None
