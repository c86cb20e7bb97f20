"""``edgekit deploy`` and ``edgekit rollback``: a model to many devices over their own broker.

The bundle's chunks go to the broker once, retained under ``edgekit/artifacts/<sha256>/``; each
target gets a signed offer, retained on ``edgekit/<id>/deploy``, and reports on
``edgekit/<id>/deploy/state`` (``edgekit.daemon.updates`` is the device's side). Devices fetch the
chunks from the broker, not from this machine, so a device cut off mid-transfer resumes from the
broker, and this command may go away: what was offered goes on, what was not is not offered.

A rollout goes in waves: ``--canary N`` devices first; the rest only once every canary is
``active`` and, over ``--settle`` seconds, kept its results rate and p99 latency within
``--max-slowdown`` of before (a canary that slowed down is rolled back). The ``--max-failures``-th
failure (a count or a share of the targets) stops it: devices not yet offered the model never
see it.

A rollout keeps a retained record on ``edgekit/rollouts/<bundle sha256>``: ``running`` while it
goes, ``complete``, ``aborted`` or ``incomplete`` at its end, ``interrupted`` on Ctrl-C. Beside
it, ``…/deployer`` says ``here`` while the deploying client is connected; its will turns that
into ``gone``, so a record still ``running`` with its deployer gone is a rollout the deploying
machine left half-applied, and ``edgekit fleet status`` shows it as interrupted. Running the same deploy again
resumes it: devices that already run the bundle answer ``active`` at once.
"""

from __future__ import annotations

import time
from typing import Any

from edgekit.daemon.bundle import Bundle
from edgekit.daemon.signing import Signer
from edgekit.errors import ConfigError
from edgekit.fleet.deployer import Deployer, Progress, Target, new_deployment_id, offer_document, wait_for
from edgekit.fleet.status import FleetView


def parse_max_failures(text: str, targets: int) -> int:
    """``3`` or ``10%`` (of the targets, rounded down): how many failures a rollout absorbs."""
    value = text.strip()
    try:
        if value.endswith("%"):
            share = float(value[:-1])
            if not 0 <= share <= 100:
                raise ValueError
            return int(targets * share / 100)
        count = int(value)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise ConfigError(f"--max-failures must be a count or a percentage, got {text!r}") from None


def _stats(view: FleetView, device_id: str) -> dict[str, Any]:
    device = view.devices.get(device_id)
    return dict(device.stats) if device is not None else {}


def _slower(before: dict[str, Any], after: dict[str, Any], bound: float) -> str | None:
    """Why ``after`` is worse than ``before`` by more than ``bound``, or None."""
    fps_before, fps_after = before.get("inference_fps"), after.get("inference_fps")
    p99_before, p99_after = before.get("latency_p99_ms"), after.get("latency_p99_ms")
    if isinstance(fps_before, (int, float)) and isinstance(fps_after, (int, float)) and fps_before > 0:
        if fps_after < fps_before * (1 - bound):
            return f"slower: {fps_after:g} results/s after, {fps_before:g} before"
    if isinstance(p99_before, (int, float)) and isinstance(p99_after, (int, float)) and p99_before > 0:
        if p99_after > p99_before * (1 + bound):
            return f"slower: p99 {p99_after:g} ms after, {p99_before:g} ms before"
    return None


def rollout_record(deployment: str, bundle: Bundle, device_ids: list[str], canary: int, state: str) -> dict[str, Any]:
    """What the retained rollout record holds; the CLI also sets it, ``interrupted``, as its will."""
    return {
        "deployment": deployment,
        "artifact": bundle.artifact,
        "sha256": bundle.artifact_sha256,
        "bundle": bundle.sha256,
        "targets": device_ids,
        "canary": canary,
        "state": state,
        "started": round(time.time(), 3),
    }


def rollout(
    deployer: Deployer,
    bundle: Bundle,
    device_ids: list[str],
    signer: Signer,
    *,
    canary: int,
    max_failures: int,
    settle_s: float,
    max_slowdown: float,
    timeout_s: float,
    progress: Progress,
    deployment: str | None = None,
) -> dict[str, Any]:
    """Offer ``bundle`` to ``device_ids`` in waves; what each ended as, and the rollout's figures."""
    deployment = deployment or new_deployment_id()
    earlier = deployer.unfinished(bundle.sha256)
    if earlier is not None:
        progress(
            f"resuming rollout {earlier.get('deployment')} of {bundle.artifact} ({earlier.get('state')}): "
            "devices that already run it count as done"
        )
    record = rollout_record(deployment, bundle, device_ids, canary, "running")
    deployer.present(bundle.sha256, deployment, here=True)
    deployer.record(record)
    try:
        result = _waves(
            deployer, bundle, device_ids, signer, deployment, canary=canary, max_failures=max_failures,
            settle_s=settle_s, max_slowdown=max_slowdown, timeout_s=timeout_s, progress=progress,
        )  # fmt: skip
        final = "complete" if result["complete"] else "aborted" if result["aborted"] else "incomplete"
        deployer.record(dict(record, state=final, devices=result["devices"]))
    except BaseException:
        deployer.record(dict(record, state="interrupted"))
        raise
    finally:  # after the record: a record still running with its deployer gone reads as interrupted
        deployer.present(bundle.sha256, deployment, here=False)
    return result


def _waves(
    deployer: Deployer,
    bundle: Bundle,
    device_ids: list[str],
    signer: Signer,
    deployment: str,
    *,
    canary: int,
    max_failures: int,
    settle_s: float,
    max_slowdown: float,
    timeout_s: float,
    progress: Progress,
) -> dict[str, Any]:
    started = time.monotonic()
    hashes = deployer.upload(bundle)
    progress(f"{bundle.artifact}: {bundle.size / 1e6:.2f} MB in {len(hashes)} chunks on the broker")
    document = offer_document("deploy", deployment, bundle, hashes, deployer.chunk_bytes)
    targets = [Target(d) for d in device_ids]
    waves = [targets[:canary], targets[canary:]] if 0 < canary < len(targets) else [targets]
    aborted: str | None = None
    for number, wave in enumerate(waves):
        for target in wave:
            target.before = _stats(deployer.view, target.device_id)
            deployer.offer(target.device_id, document, signer)
            target.state = "offered"
        progress(
            f"offered to {', '.join(t.device_id for t in wave)}"
            if len(wave) <= 5
            else f"offered to {len(wave)} devices"
        )
        wait_for(deployer, wave, deployment, timeout_s)
        if number == 0 and len(waves) > 1 and settle_s > 0 and all(t.state == "active" for t in wave):
            progress(f"canaries active; watching them for {settle_s:g} s")
            time.sleep(settle_s)
            for target in wave:
                why = _slower(target.before, _stats(deployer.view, target.device_id), max_slowdown)
                if why is not None:
                    target.state = why
                    rollback_document = {"kind": "rollback", "deployment": new_deployment_id()}
                    deployer.offer(target.device_id, rollback_document, signer)
        failures = sum(t.failed for t in targets)
        if number == 0 and len(waves) > 1 and any(t.state != "active" for t in wave):
            stuck = next(t for t in wave if t.state != "active")
            aborted = f"canary {stuck.device_id}: {stuck.state}; the rest were not offered it"
            break
        if failures and failures >= max_failures:
            aborted = f"{failures} failed (--max-failures {max_failures}); the rest were not offered it"
            break
    complete = all(t.done for t in targets) and aborted is None
    if all(t.done for t in targets if t.state != "waiting"):
        deployer.clear_upload(bundle, len(hashes))
    return {
        "deployment": deployment,
        "artifact": bundle.artifact,
        "sha256": bundle.artifact_sha256,
        "bundle_bytes": bundle.size,
        "published_bytes": deployer.published_bytes,
        "seconds": round(time.monotonic() - started, 2),
        "complete": complete,
        "aborted": aborted,
        "devices": [{"device_id": t.device_id, "state": t.state} for t in targets],
    }


def roll_back(deployer: Deployer, device_ids: list[str], signer: Signer, *, timeout_s: float) -> dict[str, Any]:
    deployment = new_deployment_id()
    targets = [Target(d) for d in device_ids]
    for target in targets:
        deployer.offer(target.device_id, {"kind": "rollback", "deployment": deployment}, signer)
    wait_for(deployer, targets, deployment, timeout_s)
    return {
        "deployment": deployment,
        "complete": all(t.state == "rolled back" for t in targets),
        "devices": [{"device_id": t.device_id, "state": t.state} for t in targets],
    }
