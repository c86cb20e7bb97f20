"""``edgekit fleet bench``: every device times an artifact itself and says how far its profile's
prediction was.

The artifact travels as a deployment does (signed offer, chunks on the broker, checked on the
device) with ``kind: bench``; the device times it on its inference thread, between frames or
while paused (``edgekit.daemon.fleet_bench``), and reports on its ``deploy/state``: the measured
figures, what its recognised profile predicted, and a measurements-file line that ``--record``
gathers for ``edgekit profiles refit``. The device's running model is never replaced.
"""

from __future__ import annotations

from typing import Any

from edgekit.daemon.bundle import Bundle
from edgekit.daemon.signing import Signer
from edgekit.fleet.deployer import Deployer, Progress, Target, new_deployment_id, offer_document, wait_for


def fleet_bench(
    deployer: Deployer,
    bundle: Bundle,
    device_ids: list[str],
    signer: Signer,
    *,
    runs: int,
    warmup: int,
    threads: int,
    paused: bool,
    timeout_s: float,
    progress: Progress,
) -> dict[str, Any]:
    deployment = new_deployment_id()
    hashes = deployer.upload(bundle)
    progress(f"{bundle.artifact}: {bundle.size / 1e6:.2f} MB in {len(hashes)} chunks on the broker")
    document = offer_document("bench", deployment, bundle, hashes, deployer.chunk_bytes)
    document["bench"] = {"runs": runs, "warmup": warmup, "threads": threads, "paused": paused}
    targets = [Target(d) for d in device_ids]
    for target in targets:
        deployer.offer(target.device_id, document, signer)
        target.state = "offered"
    progress(f"asked {len(targets)} device{'s' if len(targets) > 1 else ''} to bench it ({runs} runs each)")
    wait_for(deployer, targets, deployment, timeout_s)
    deployer.clear_upload(bundle, len(hashes))
    return {
        "deployment": deployment,
        "artifact": bundle.artifact,
        "sha256": bundle.artifact_sha256,
        "complete": all(t.state == "benched" for t in targets),
        "aborted": None,
        "devices": [{"device_id": t.device_id, "state": t.state, "bench": _bench_of(t)} for t in targets],
    }


def _bench_of(target: Target) -> dict[str, Any] | None:
    return target.detail.get("bench") if target.state == "benched" else None
