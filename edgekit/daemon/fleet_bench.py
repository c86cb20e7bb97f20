"""A model benched on a device for ``edgekit fleet bench``: timed on the daemon's own inference
thread, so it never competes with the running model for a core.

Between frames (the default), the loop times one call of the benched model after each frame it
finishes: results keep coming, a little later each. While paused, the loop stops taking frames
and times every call at once: faster, and the camera's frames meanwhile are skipped (counted as
such). Either way the figures are the device's own, beside what its recognised profile predicts,
and a line in the measurements format (``edgekit profiles refit`` reads it).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from edgekit.bench import random_feeds, summarize
from edgekit.daemon.admission import runtime_for
from edgekit.daemon.deployed import prune
from edgekit.errors import EdgekitError

log = logging.getLogger("edgekit.daemon.updates")


class BenchJob:
    """Loaded and ready: ``step()`` (one call) or ``run_all()`` until ``done``, then ``report()``."""

    def __init__(
        self,
        artifact: Path,
        *,
        deployment: str,
        runtime: str | None,
        threads: int,
        runs: int,
        warmup: int,
        paused: bool,
        profile: str | None,
    ) -> None:
        from edgekit.inputs import resolve, shapes_of
        from edgekit.manifest import load_manifest
        from edgekit.predict.graph import model_inputs
        from edgekit.runtimes import load_runtime, runtime_for_path

        manifest = load_manifest(artifact)
        self.artifact = artifact
        self.deployment = deployment
        self.engine = runtime or runtime_for_path(artifact)
        self.threads = threads
        self.runs, self.warmup, self.paused = runs, warmup, paused
        self.profile = profile
        self.resolved = resolve(
            model_inputs(artifact),
            manifest_inputs=manifest.inputs if manifest is not None else None,
            model=artifact.name,
        )
        self.shapes = shapes_of(self.resolved)
        self._runtime = load_runtime(artifact, self.engine, threads=threads, shapes=self.shapes)
        try:
            self.feeds = random_feeds(self._runtime, self.resolved)
            self._call = self._runtime.bench_call(self.feeds)
        except BaseException:
            self._runtime.close()
            raise
        self.times_ms: list[float] = []
        self._warm = 0

    @property
    def done(self) -> bool:
        return len(self.times_ms) >= self.runs

    def step(self) -> None:
        if self._warm < self.warmup:
            self._call()
            self._warm += 1
            return
        started = time.perf_counter_ns()
        self._call()
        self.times_ms.append((time.perf_counter_ns() - started) / 1e6)

    def run_all(self) -> None:
        while not self.done:
            self.step()

    def close(self) -> None:
        self._runtime.close()

    def report(self) -> dict[str, Any]:
        """Measured figures, the recognised profile's prediction and its error, and the record line."""
        measured = summarize(self.times_ms)
        report: dict[str, Any] = {
            "model": self.artifact.name,
            "engine": self.engine,
            "threads": self.threads,
            "mode": "paused" if self.paused else "between frames",
            "profile": self.profile,
            "measured": measured,
            "predicted": None,
            "error_pct": None,
            "record": None,
        }
        if self.profile is None:
            report["note"] = "no device profile recognises this machine: measured only"
            return report
        try:
            report.update(self._predicted(measured["p50_ms"]))
        except EdgekitError as exc:  # a profile that cannot price this model: said, the measurement stands
            report["note"] = f"not predicted: {exc.one_line()}"
        return report

    def _predicted(self, p50_ms: float) -> dict[str, Any]:
        from edgekit.predict import analyze, machine_name, predict
        from edgekit.predict.profiles import load_profile
        from edgekit.predict.profiles.measurements import recorded_run

        assert self.profile is not None
        graph = analyze(self.artifact, self.engine, self.shapes, self.feeds)
        prediction = predict(graph, load_profile(self.profile), engine=self.engine, threads=self.threads).to_dict()
        error = (prediction["latency_ms"] - p50_ms) / p50_ms * 100 if p50_ms > 0 else None
        record = None
        if prediction["processor"] == "cpu":
            source = f"edgekit fleet bench on {machine_name()}"
            run = recorded_run(self.artifact.name, self.engine, p50_ms, prediction, graph, source)
            record = run.model_dump(mode="json")
        return {
            "predicted": prediction,
            "error_pct": round(error, 1) if error is not None else None,
            "record": record,
        }


def bench_step(agent: Any) -> None:
    """A fleet bench's share of this gap between frames (the inference loop's call): one timed
    call, or all of them while paused. A benched model that fails never stops the daemon."""
    job = agent.benches.job
    if job is None:
        return
    try:
        job.run_all() if job.paused else job.step()
    except Exception as exc:  # noqa: BLE001 - reported as the bench's failure
        agent.benches.finished(job, exc)
        return
    if job.done:
        agent.benches.finished(job)


class Benches:
    """A deployment agent's benches, one at a time: loaded on the agent's thread, timed by the
    inference loop (``job``, ``finished``), reported on the agent's thread again."""

    def __init__(self, agent: Any) -> None:
        self._agent = agent
        self.job: BenchJob | None = None

    def prepare(self, artifact: Path, offer: dict[str, Any]) -> None:
        bench = offer.get("bench") or {}
        job = BenchJob(
            artifact,
            deployment=str(offer["deployment"]),
            runtime=runtime_for(self._agent.runtime, artifact),
            threads=int(bench.get("threads") or 1),
            runs=max(1, int(bench.get("runs") or 100)),
            warmup=max(0, int(bench.get("warmup") or 10)),
            paused=bool(bench.get("paused")),
            profile=self._agent.profile,
        )
        self._agent._publish_state(job.deployment, "benching", mode="paused" if job.paused else "between frames")
        self.job = job

    def finished(self, job: BenchJob, error: BaseException | None = None) -> None:
        """The loop is done with ``job`` (or it failed): the rest happens off the inference thread."""
        self.job = None
        self._agent._work.put(("benched", job, error))

    def report(self, job: BenchJob, error: BaseException | None) -> None:
        agent = self._agent
        try:
            if error is not None:
                reason = error.one_line() if isinstance(error, EdgekitError) else f"{type(error).__name__}: {error}"
                agent._publish_state(job.deployment, f"failed: bench: {reason}")
                return
            report = job.report()
            agent._publish_state(job.deployment, "benched", bench=report)
            log.info(
                "bench %s: %s p50 %.3f ms%s",
                job.deployment,
                job.artifact.name,
                report["measured"]["p50_ms"],
                f", predicted {report['error_pct']:+.1f} % off" if report["error_pct"] is not None else "",
            )
        finally:
            job.close()
            if job.artifact.parent.parent == agent.folder and job.artifact.parent != agent.running.parent:
                prune(agent.folder, agent.running)  # the benched model's folder goes (a deployed one is kept)
