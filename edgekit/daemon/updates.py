"""The device side of a deployment: an offer comes over MQTT, the model follows it in chunks, and
the daemon swaps to it between two frames once it has passed its checks here.

Topics (DESIGN.md, MQTT contract):
- ``edgekit/<id>/deploy`` (retained, from the deploying machine): a signed offer or rollback.
- ``edgekit/artifacts/<bundle sha256>/<n>`` (retained): the bundle's chunks. Retained, so a
  device that was cut off, or restarted, gets what it lacks by subscribing again; every chunk is
  checked against the sha256 the signed offer lists, and a bad one is asked for again on
  ``edgekit/<id>/deploy/need``.
- ``edgekit/<id>/deploy/state`` (retained, from the device): ``downloading``, ``verifying``,
  ``active``, ``failed: …``, ``rolled back``, naming the deployment.

Steps, each of which leaves the running model alone when it fails: signature and size
(before anything is fetched), chunks, the whole bundle's sha256, unpacking, loading the model
beside the running one, its input against the camera contract, the bundle's on-device check
(``edgekit.daemon.bundle``), then the swap, done by the inference loop between two frames. The
last two models are kept under ``deployments-<id>/``; ``active.json`` says which runs, so a
restart runs the deployed model, not the one ``--model`` named first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.daemon.admission import cannot_take, offer_refusal, runtime_for
from edgekit.daemon.bundle import check_differs, run_check_frames, sha256_bytes, unpack
from edgekit.daemon.deployed import (
    ACTIVE_FILE,
    accept,
    prune,
    read_active,
    read_handled,
    remember,
    write_bytes,
    write_json,
)
from edgekit.daemon.fleet_bench import Benches
from edgekit.daemon.signing import TrustedKeys
from edgekit.errors import DeploymentError, EdgekitError

log = logging.getLogger("edgekit.daemon.updates")

ARTIFACT_TOPIC = "edgekit/artifacts"


@dataclass
class Candidate:
    """A model loaded and checked beside the running one, waiting for the loop to swap it in."""

    model: Any
    contract: Any
    path: Path
    sha256: str
    deployment: str
    final_state: str  # what the device says once it runs: active, or rolled back


@dataclass
class Download:
    offer: dict[str, Any]
    folder: Path
    received: set[int]

    @property
    def sha256(self) -> str:
        return str(self.offer["bundle"]["sha256"])

    @property
    def total(self) -> int:
        return len(self.offer["bundle"]["chunk_sha256"])


class DeploymentAgent:
    """Receives offers and chunks (on paho's thread, queued), works on its own thread, and hands a
    checked model to the inference loop (``take_ready``)."""

    def __init__(
        self,
        *,
        link: Any,
        folder: Path,
        base_model: Path,
        running: Path,
        running_sha256: str,
        trusted: TrustedKeys,
        max_bytes: int,
        runtime: str | None,
        threads: int | None,
        own_process: bool,
        profile: str | None = None,
    ) -> None:
        self.link = link
        self.profile = profile  # the device profile that recognises this machine (for fleet bench)
        self.folder = folder
        self.base_model = base_model.resolve()
        self.running = running
        self.running_sha256 = running_sha256
        self.trusted = trusted
        self.max_bytes = max_bytes
        self.runtime = runtime  # the runtime --runtime named, if any
        self._threads = threads
        self._own_process = own_process
        self._work: queue.Queue[tuple[str, Any, Any]] = queue.Queue()
        self._ready: Candidate | None = None
        self.benches = Benches(self)  # edgekit fleet bench: models the inference loop times
        self._lock = threading.Lock()
        self._download: Download | None = None
        self._state: dict[str, Any] = {}
        self._current: str | None = None  # the deployment the worker's current item is about
        self.swaps = 0
        self._thread = threading.Thread(target=self._loop, name="edgekit-deploy", daemon=True)
        self._stop = threading.Event()

    # -- wiring -----------------------------------------------------------------------------

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.link.add_subscription(
            f"{self.link.prefix}/deploy", lambda _t, payload: self._work.put(("offer", payload, None))
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._work.put(("stop", None, None))
        self._thread.join(timeout=5.0)
        with self._lock:
            candidate, self._ready = self._ready, None
        for held in (candidate.model if candidate else None, self.benches.job):
            if held is not None:
                held.close()

    @property
    def waiting(self) -> bool:
        """A model to swap in, or a bench, waits for the inference loop."""
        return self._ready is not None or self.benches.job is not None

    def take_ready(self) -> Candidate | None:
        """The checked model to swap in now, if one waits (the inference loop's call, between frames)."""
        if self._ready is None:
            return None
        with self._lock:
            candidate, self._ready = self._ready, None
        return candidate

    def swapped(self, candidate: Candidate) -> None:
        """The loop runs ``candidate`` from now on: record it, say so, keep the one before."""
        previous = {"model": str(self.running), "sha256": self.running_sha256}
        record = read_active(self.folder) or {}
        if candidate.final_state == "rolled back":
            earlier = record.get("previous_of_previous")
            new_record = {"previous": earlier}
        else:
            new_record = {"previous": previous, "previous_of_previous": record.get("previous")}
        new_record.update(
            {
                "model": str(candidate.path),
                "sha256": candidate.sha256,
                "deployment": candidate.deployment,
                "base_model": str(self.base_model),
                "swapped": round(time.time(), 3),
            }
        )
        write_json(self.folder / ACTIVE_FILE, new_record)
        remember(self.folder, candidate.deployment)  # only now: a stop before the swap leaves it to do again
        self.running, self.running_sha256 = candidate.path, candidate.sha256
        self.swaps += 1
        self._publish_state(
            candidate.deployment, candidate.final_state, model=candidate.path.name, sha256=candidate.sha256
        )
        self._work.put(("prune", None, None))  # on the worker: it may be unpacking or loading meanwhile

    def _prune(self) -> None:
        """Remove old model folders, never one in use: waiting to be swapped in, or being benched."""
        in_use = set()
        with self._lock:
            if self._ready is not None:
                in_use.add(self._ready.path.parent.name)
        if self.benches.job is not None:
            in_use.add(self.benches.job.artifact.parent.name)
        prune(self.folder, self.running, in_use)

    # -- the worker -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            kind, payload, extra = self._work.get()
            if kind == "stop":
                return
            self._current = None  # the deployment this item is about, once known
            try:
                if kind == "offer":
                    self._on_offer(payload)
                elif kind == "chunk":
                    self._on_chunk(payload, extra)
                elif kind == "benched":
                    self._current = payload.deployment
                    self.benches.report(payload, extra)
                elif kind == "prune":
                    self._prune()
            except Exception as exc:  # noqa: BLE001 - a deployment that fails must never stop the daemon
                download = self._download
                deployment = self._current or (str(download.offer.get("deployment")) if download else "?")
                reason = exc.one_line() if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
                log.warning("deployment %s failed: %s", deployment, reason)
                if download is not None and download.offer.get("deployment") == deployment:
                    self._abandon()
                if deployment != "?":
                    remember(self.folder, deployment)  # not tried again at every reconnect
                self._publish_state(deployment, f"failed: {reason}")

    def _on_offer(self, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained offer
        try:
            offer = json.loads(payload)
        except json.JSONDecodeError:
            self._publish_state("?", "failed: the offer is not JSON")
            return
        if not isinstance(offer, dict) or not isinstance(offer.get("deployment"), str):
            self._publish_state("?", "failed: the offer names no deployment")
            return
        deployment = offer["deployment"]
        with self._lock:
            staged = self._ready.deployment if self._ready is not None else None
        if deployment in read_handled(self.folder) or deployment == staged:
            return  # the retained offer of a deployment this device has finished, or is about to
        refusal = offer_refusal(offer, self.trusted, self.link.prefix.split("/", 1)[1], self.folder)
        if refusal is None and offer.get("kind") == "bench" and (self._download or self.benches.job):
            busy = "a deployment is downloading" if self._download is not None else "a bench is running"
            refusal = f"{busy} on this device; bench it afterwards"
        if refusal is not None:
            log.warning("refused deployment %s: %s", deployment, refusal)
            self._publish_state(deployment, f"failed: refused: {refusal}")
            return
        self._current = deployment
        accept(self.folder, deployment, float(offer["issued"]))
        superseded = None
        if self._download is not None and self._download.offer["deployment"] != deployment:
            superseded = str(self._download.offer["deployment"])
            log.info("deployment %s supersedes %s", deployment, superseded)
            self._abandon()
        if offer.get("kind") == "rollback":
            self._roll_back(deployment, superseded)
            return
        bundle = offer.get("bundle") or {}
        if bundle.get("sha256") == self._running_bundle():  # the running model itself: nothing to fetch
            remember(self.folder, deployment)
            if offer.get("kind") == "bench":
                self.benches.prepare(self.running, offer)
            else:
                self._publish_state(deployment, "active", model=self.running.name, sha256=self.running_sha256)
            return
        cannot = cannot_take(offer, self.max_bytes, self.folder, self.runtime)
        if cannot is not None:
            log.warning("refused deployment %s: %s", deployment, cannot)
            self._publish_state(deployment, f"failed: refused: {cannot}")
            remember(self.folder, deployment)
            return
        parts = self.folder / f"{bundle['sha256']}.parts"
        parts.mkdir(parents=True, exist_ok=True)
        have = {int(p.stem) for p in parts.glob("*.chunk") if p.stem.isdigit()}
        self._download = Download(offer, parts, have)
        self._publish_state(
            deployment, "downloading", received=len(have), chunks=len(bundle["chunk_sha256"]), superseded=superseded
        )
        if len(have) >= self._download.total:
            self._assemble()
            return
        sha = bundle["sha256"]
        self.link.add_subscription(
            f"{ARTIFACT_TOPIC}/{sha}/+", lambda topic, data: self._work.put(("chunk", topic, data))
        )

    def _on_chunk(self, topic: str, data: bytes) -> None:
        download = self._download
        parts = topic.split("/")
        if download is None or len(parts) != 4 or parts[2] != download.sha256 or not parts[3].isdigit():
            return
        index = int(parts[3])
        if index >= download.total or index in download.received or not data:
            return
        expected = download.offer["bundle"]["chunk_sha256"][index]
        if sha256_bytes(data) != expected:
            log.warning("deployment %s: chunk %d is corrupt; asking for it again", download.offer["deployment"], index)
            self.link.publish(
                f"{self.link.prefix}/deploy/need",
                json.dumps(
                    {"deployment": download.offer["deployment"], "bundle": download.sha256, "chunks": [index]}
                ).encode(),
            )
            return
        write_bytes(download.folder / f"{index}.chunk", data)
        download.received.add(index)
        if len(download.received) % 8 == 0 or len(download.received) == download.total:
            self._publish_state(
                download.offer["deployment"], "downloading", received=len(download.received), chunks=download.total
            )
        if len(download.received) == download.total:
            self._assemble()

    def _assemble(self) -> None:
        download = self._download
        assert download is not None
        offer = download.offer
        deployment = offer["deployment"]
        self.link.remove_subscription(f"{ARTIFACT_TOPIC}/{download.sha256}/+")
        self._publish_state(deployment, "verifying")
        bundle_path = self.folder / f"{download.sha256}.zip"
        whole = hashlib.sha256()  # hashed as it is written: the bundle is read from disk once
        with open(bundle_path.with_suffix(".partial"), "wb") as handle:
            for index in range(download.total):
                chunk = (download.folder / f"{index}.chunk").read_bytes()
                whole.update(chunk)
                handle.write(chunk)
        os.replace(bundle_path.with_suffix(".partial"), bundle_path)
        if whole.hexdigest() != download.sha256:
            bundle_path.unlink()
            shutil.rmtree(download.folder, ignore_errors=True)
            raise DeploymentError("the assembled bundle's sha256 is not the offer's")
        shutil.rmtree(download.folder, ignore_errors=True)
        target = self.folder / download.sha256
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        try:
            artifact, check = unpack(bundle_path, target, str(offer["artifact"]["name"]))
        finally:
            bundle_path.unlink(missing_ok=True)
        if offer.get("kind") == "bench":
            self._download = None
            remember(self.folder, deployment)
            self.benches.prepare(artifact, offer)
            return
        self._stage(artifact, check, deployment, "active", str(offer["artifact"]["sha256"]))

    def _stage(self, artifact: Path, check: dict[str, Any] | None, deployment: str, final_state: str, sha: str) -> None:
        """Load ``artifact`` beside the running model, check it, and leave it for the loop to swap in."""
        from edgekit.daemon.inference import load_model
        from edgekit.daemon.processing import ModelContract

        contract = ModelContract.for_model(artifact)
        model = load_model(artifact, runtime_for(self.runtime, artifact), self._threads, own_process=self._own_process)
        try:
            contract.fit(model, artifact)
            if check is not None:
                differs = check_differs(check, run_check_frames(model, contract, check["frames"]))
                if differs is not None:
                    raise DeploymentError(f"on-device check: {differs}")
        except BaseException:
            model.close()
            raise
        self._download = None
        with self._lock:
            if self._ready is not None:
                self._ready.model.close()
            self._ready = Candidate(model, contract, artifact, sha, deployment, final_state)
        log.info("deployment %s: %s loaded and checked; swapping it in", deployment, artifact.name)

    def _roll_back(self, deployment: str, superseded: str | None) -> None:
        record = read_active(self.folder) or {}
        previous = record.get("previous")
        if not previous or not Path(previous.get("model", "")).exists():
            remember(self.folder, deployment)
            self._publish_state(deployment, "failed: nothing to roll back to on this device", superseded=superseded)
            return
        self._publish_state(deployment, "verifying", superseded=superseded)
        self._stage(Path(previous["model"]), None, deployment, "rolled back", str(previous.get("sha256")))

    # -- bookkeeping ------------------------------------------------------------------------

    def _abandon(self) -> None:
        if self._download is not None:
            self.link.remove_subscription(f"{ARTIFACT_TOPIC}/{self._download.sha256}/+")
            shutil.rmtree(self._download.folder, ignore_errors=True)  # its chunks are not wanted now
            self._download = None

    def _running_bundle(self) -> str | None:
        """The bundle the running model came in (its folder's name), if it was deployed."""
        return self.running.parent.name if self.running.parent.parent == self.folder else None

    def _publish_state(self, deployment: str, state: str, **details: Any) -> None:
        document = {"deployment": deployment, "state": state, "ts": round(time.time(), 3)}
        document.update({k: v for k, v in details.items() if v is not None})
        self._state = document
        self.link.publish_retained("deploy/state", json.dumps(document).encode())

    @property
    def state(self) -> dict[str, Any]:
        return dict(self._state)
