"""The daemon: capture thread → inference loop → outbox → MQTT sender, until told to stop.

Signals only set a flag (as gunicorn's arbiter does); the main loop notices it, stops capture,
finishes the frame in hand, gives the broker ``drain_seconds`` to take what is buffered,
publishes a retained ``offline`` and leaves. Whatever the broker did not take stays in the
on-disk outbox and is delivered by the next start.
"""

from __future__ import annotations

import collections
import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from edgekit.daemon.broker_address import settings_from_config
from edgekit.daemon.capture import CaptureThread, LatestFrame, check_source
from edgekit.daemon.config import DaemonConfig
from edgekit.daemon.deployed import deployed_model
from edgekit.daemon.figures import daemon_stats, run_summary
from edgekit.daemon.fleet_bench import bench_step
from edgekit.daemon.identity import device_info
from edgekit.daemon.inference import HandOver, load_model
from edgekit.daemon.mqtt import DaemonLink
from edgekit.daemon.outbox import OfflineBuffer
from edgekit.daemon.processing import ModelContract
from edgekit.errors import BrokerError, InputNotFoundError

log = logging.getLogger("edgekit.daemon")


# Results between decisions on which thread preprocesses.
BALANCE_EVERY = 32
# With --require-broker: how long the first connection may take before the daemon gives up.
REQUIRED_BROKER_WAIT_S = 10.0
# Stopping with frames in flight: how long the model may take to answer them (or 3 of its runs).
STOP_WAIT_S = 10.0


class Daemon:
    def __init__(self, config: DaemonConfig, *, on_result: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self.run_id = uuid.uuid4().hex[:12]
        self.stop_requested = threading.Event()
        self.paused = False
        self.threshold = config.threshold
        self.seq = 0
        self.results = 0
        self._latencies: collections.deque[float] = collections.deque(maxlen=500)
        self._result_times: collections.deque[float] = collections.deque(maxlen=1000)
        self._on_result = on_result
        # Seconds spent per stage over the run, so the next bottleneck is visible.
        self._stage_seconds = dict.fromkeys(("preprocess", "inference", "postprocess", "publish"), 0.0)
        self.started = time.monotonic()
        self._metrics: Any = None
        self._runtime: Any = None
        self._agent: Any = None
        self.model = config.model  # the model running now (a deployment changes it)
        self.model_sha256 = ""
        self.profile: str | None = None  # the device profile that recognises this machine (in info)
        self._stale_batches = 0  # frames the capture thread may have prepared for the model before a swap

    # -- commands (from the broker's network thread) ------------------------------------------

    def handle_command(self, payload: bytes) -> None:
        text = payload.decode("utf-8", errors="replace").strip()
        try:
            command = json.loads(text) if text.startswith("{") else {"cmd": text}
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc.msg}") from None
        if not isinstance(command, dict) or not isinstance(command.get("cmd"), str):
            raise ValueError('expected {"cmd": "pause" | "resume" | "threshold", ...}')
        name = command["cmd"]
        if name == "pause":
            self.paused = True
        elif name == "resume":
            self.paused = False
        elif name == "threshold":
            value = command.get("value")
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError("threshold needs a value between 0 and 1")
            self.threshold = float(value)
        else:
            raise ValueError(f"unknown command '{name}'")
        log.info("command: %s", command)

    # -- the run --------------------------------------------------------------------------

    def request_stop(self, signum: int = 0, frame: object = None) -> None:
        self.stop_requested.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> dict[str, Any]:
        config = self.config
        if not config.model.exists():
            raise InputNotFoundError(f"model {config.model} does not exist")
        self.model = deployed_model(config.deployments_path(), config.model)
        contract = ModelContract.for_model(self.model)
        runtime = load_model(self.model, config.runtime, config.threads, own_process=config.inference == "process")
        self._runtime = runtime
        try:  # whatever happens from here, the model (and its process) goes with the run
            contract.fit(runtime, self.model)
            check_source(config.source)
            return self._serve(runtime, contract)
        finally:
            self._runtime.close()

    def _serve(self, runtime: Any, contract: ModelContract) -> dict[str, Any]:
        """The run proper, once the model is loaded and its input and the source checked."""
        config = self.config
        input_name = runtime.inputs[0].name
        log.info(
            "running %s on %s → %s as edgekit/%s/", self.model.name, config.source, config.broker, config.device_id
        )

        outbox = OfflineBuffer(config.outbox_path(), config.buffer_max, config.buffer_max_bytes)
        if len(outbox):
            log.info("%d results from an earlier run are waiting in %s", len(outbox), outbox.path)
        link = DaemonLink(
            settings_from_config(config),
            config.device_id,
            outbox,
            self.handle_command,
            warn_first_failure=not config.require_broker,
        )
        mailbox = LatestFrame()
        capture = CaptureThread(
            config.source,
            mailbox,
            loop=config.loop,
            stall_timeout=config.stall_timeout,
            max_fps=config.max_fps,
            prepare=contract.prepare,
        )
        topic = f"edgekit/{config.device_id}"
        if config.metrics_port:
            from edgekit.daemon.metrics import MetricsExporter

            self._metrics = MetricsExporter(
                config.metrics_host,
                config.metrics_port,
                config.device_id,
                lambda: self.stats(capture, mailbox, outbox, link),
            )
            log.info("metrics on http://%s:%d/metrics", config.metrics_host, config.metrics_port)
        self._publish_info(link)
        if config.trust_key:
            from edgekit.daemon.signing import TrustedKeys
            from edgekit.daemon.updates import DeploymentAgent

            self._agent = DeploymentAgent(
                link=link, folder=config.deployments_path(), base_model=config.model, running=self.model,
                running_sha256=self.model_sha256, trusted=TrustedKeys(config.trust_key),
                max_bytes=config.deploy_max_bytes, runtime=config.runtime, threads=config.threads,
                own_process=config.inference == "process", profile=self.profile,
            )  # fmt: skip
            self._agent.start()
        link.start()
        if config.require_broker:
            reason = link.wait_first_connection(REQUIRED_BROKER_WAIT_S)
            if reason is not None:
                link.stop(drain_seconds=0)
                self._close_metrics()
                outbox.close()
                raise BrokerError(
                    f"cannot connect to the broker at {link.settings.url_shown}: {reason}",
                    hint="check --broker, or leave out --require-broker to buffer results until it answers",
                )
        capture.start()
        next_stats = time.monotonic() + config.stats_interval
        # Frames given to the model and not yet answered, oldest first: with the model in a process
        # of its own, the next frame runs while this thread post-processes and publishes the last.
        in_flight: collections.deque[tuple[Any, float, float]] = collections.deque()
        hand_over = HandOver()

        def finish_oldest() -> None:
            output = runtime.result()
            received = time.perf_counter()
            hand_over.ran(runtime.last_run_s)
            taken = in_flight.popleft()
            if in_flight:  # the next frame started as this one ended
                hand_over.started(received)
            self._finish(taken, output, runtime.last_run_s, contract, outbox, link, capture, topic)
            hand_over.finished(time.perf_counter() - received)

        try:
            while not self.stop_requested.is_set():
                if link.fatal is not None:
                    raise link.fatal
                # A model to swap in or a bench waits for a gap with nothing in flight: no new frame
                # joins the ones in flight until then (a model in its own process keeps two).
                waiting = self._agent is not None and self._agent.waiting
                if self._agent is not None and not in_flight:
                    candidate = self._agent.take_ready()
                    if candidate is not None:  # between two frames: the next one goes to the new model
                        runtime, contract = self._swap(candidate, runtime, capture, link)
                        input_name = runtime.inputs[0].name
                    bench_step(self._agent)
                frame = None
                if not in_flight:
                    frame = mailbox.take(timeout=0.2)
                elif len(in_flight) < runtime.depth and hand_over.due(time.perf_counter()) and not waiting:
                    frame = mailbox.take(timeout=0.0)  # the model is about to finish: its next frame, if one is here
                now = time.monotonic()
                if now >= next_stats:
                    self._publish_stats(link, capture, mailbox, outbox, topic)
                    next_stats = now + config.stats_interval
                enough = config.max_frames and self.results + len(in_flight) >= config.max_frames
                if frame is not None and not self.paused and not enough:
                    start = time.perf_counter()
                    batch = frame.batch if frame.batch is not None and not self._stale_batches else None
                    self._stale_batches = max(0, self._stale_batches - 1)
                    if batch is None:
                        batch = contract.prepare(frame.image)
                    prepared = time.perf_counter()
                    runtime.submit({input_name: batch})
                    in_flight.append((frame, start, prepared))
                    if len(in_flight) == 1:
                        hand_over.started(time.perf_counter())
                    if len(in_flight) < runtime.depth:
                        continue  # a second frame may join it before the first is answered
                if not in_flight:
                    if frame is None and capture.ended.is_set():
                        log.info("the source ended")
                        break
                    continue
                if len(in_flight) < runtime.depth:
                    # Wait for the answer until the next frame is due (then look for one every ms).
                    wait = max(0.001, min(0.2, hand_over.seconds_until_due(time.perf_counter())))
                    if not runtime.ready(wait):
                        continue
                finish_oldest()
                if config.max_frames and self.results >= config.max_frames:
                    break
            while in_flight:  # stopping: the frames in hand are finished, if the model answers in time
                if not runtime.ready(max(STOP_WAIT_S, 3 * (hand_over.run_s or 0.0))):
                    log.warning("stopping without %d frames the model did not answer in time", len(in_flight))
                    break
                finish_oldest()
        finally:
            if self._agent is not None:
                self._agent.stop()
            capture.stop_event.set()
            self._publish_stats(link, capture, mailbox, outbox, topic)
            link.stop(drain_seconds=config.drain_seconds)
            capture.join(timeout=2.0)
            summary = self.summary(capture, mailbox, outbox, link)
            self._close_metrics()
            outbox.close()
        return summary

    def _finish(
        self,
        taken: tuple[Any, float, float],
        output: dict[str, np.ndarray],
        run_s: float,
        contract: ModelContract,
        outbox: OfflineBuffer,
        link: DaemonLink,
        capture: CaptureThread,
        topic: str,
    ) -> None:
        """One answered frame: its predictions published (through the outbox), its stages counted."""
        config = self.config
        frame, start, prepared = taken
        inferred = time.perf_counter()
        predictions = contract.interpret(output, frame.image.shape, threshold=self.threshold, top_k=config.top_k)
        done = time.perf_counter()
        latency_ms = (frame.prepare_seconds + done - start) * 1000
        result = {
            "device_id": config.device_id,
            "run_id": self.run_id,
            "seq": self.seq,
            "frame_id": frame.id,
            "ts": round(frame.captured, 6),
            "model": self.model.name,
            "model_sha256": self.model_sha256,
            "latency_ms": round(latency_ms, 3),
            "predictions": predictions,
        }
        self.seq += 1
        outbox.put(f"{topic}/results", json.dumps(result).encode(), qos=config.qos)
        link.notify()
        published = time.perf_counter()
        for stage, seconds in (
            ("preprocess", frame.prepare_seconds + prepared - start),
            ("inference", run_s),  # the model's own time: a frame that waited behind another is not slower
            ("postprocess", done - inferred),
            ("publish", published - done),
        ):
            self._stage_seconds[stage] += seconds
        self._latencies.append(latency_ms)
        self._result_times.append(time.monotonic())
        self.results += 1
        if self.results % BALANCE_EVERY == 0:
            self._balance(capture)
        if self._on_result:
            self._on_result(result)

    def _publish_info(self, link: DaemonLink) -> None:
        config = self.config
        info = device_info(
            config.device_id, self.run_id, self.model, inference=config.inference, threads=config.threads,
            data_dir=config.outbox_path().parent,
        )  # fmt: skip
        info["deploy"] = {
            "accepts": bool(config.trust_key),
            "max_bytes": config.deploy_max_bytes,
            "swaps": self._agent.swaps if self._agent is not None else 0,
        }
        self.model_sha256, self.profile = info["model"]["sha256"], info["profile"]
        link.publish_retained("info", json.dumps(info).encode())
        if config.homeassistant:
            from edgekit.daemon.homeassistant import publish_discovery

            publish_discovery(link, config.device_id, self.model.name, config.homeassistant_prefix)

    def _swap(self, candidate: Any, old: Any, capture: CaptureThread, link: DaemonLink) -> tuple[Any, Any]:
        """Run ``candidate`` from the next frame on; the old model is closed, the run goes on
        (same run_id, seq unbroken)."""
        capture.prepare = candidate.contract.prepare
        self._stale_batches = 2  # a frame prepared for the old model may be waiting, or being prepared
        self._runtime, self.model = candidate.model, candidate.path
        try:
            old.close()
        except Exception as exc:  # noqa: BLE001 - the new model runs; the old one's end is only logged
            log.warning("the previous model did not close cleanly: %s", exc)
        log.info("now running %s (deployment %s)", candidate.path.name, candidate.deployment)
        try:
            self._agent.swapped(candidate)
        except OSError as exc:
            log.warning("the deployment record could not be written (%s); a restart runs --model", exc)
        self._publish_info(link)
        return candidate.model, candidate.contract

    def _close_metrics(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None

    def _balance(self, capture: CaptureThread) -> None:
        """Preprocess on the capture thread when decoding plus preprocessing there costs less than
        what the inference thread does per result: with a heavy model that takes preprocessing off
        the critical path; with a light one it would make capture the bottleneck instead."""
        if not capture.frames_read or not self.results:
            return
        decode = capture.read_seconds / capture.frames_read
        prepare = self._stage_seconds["preprocess"] / self.results
        rest = sum(self._stage_seconds[s] for s in ("inference", "postprocess", "publish")) / self.results
        capture.prepare_here = decode + prepare < rest

    def stats(
        self, capture: CaptureThread, mailbox: LatestFrame, outbox: OfflineBuffer, link: DaemonLink
    ) -> dict[str, Any]:
        return daemon_stats(self, capture, mailbox, outbox, link)

    def _publish_stats(
        self, link: DaemonLink, capture: CaptureThread, mailbox: LatestFrame, outbox: OfflineBuffer, topic: str
    ) -> None:
        stats = self.stats(capture, mailbox, outbox, link)
        log.info(
            "stats: %.1f results/s, camera %.1f fps, skipped %d, p50 %.1f ms, buffered %d, connected %s",
            stats["inference_fps"],
            stats["camera_fps"],
            stats["skipped_frames"],
            stats["latency_p50_ms"],
            stats["buffered"],
            stats["connected"],
        )
        if link.connected.is_set():
            # Stats describe now: sent when connected, not buffered for later; retained, so that the
            # last ones (and when they were sent) are what a fleet's table shows of this device.
            link.client.publish(f"{topic}/stats", json.dumps(stats).encode(), qos=0, retain=True)

    def summary(
        self, capture: CaptureThread, mailbox: LatestFrame, outbox: OfflineBuffer, link: DaemonLink
    ) -> dict[str, Any]:
        return run_summary(self, capture, mailbox, outbox, link)
