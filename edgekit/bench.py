"""Measuring a model on this machine: load, first inference, steady-state latency, memory.

The timed loop is as tight as the runtimes' own benchmark tools make theirs: inputs are bound
once, and each timed call is only the runtime's invoke (``Runtime.bench_call``), so the figures
agree with `litert-benchmark` and `benchmark_app` on the same model and threads.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from edgekit.data import Dataset
from edgekit.errors import ConfigError, ModelError, first_line
from edgekit.inputs import ResolvedInput, random_inputs, resolve
from edgekit.runtimes.base import describe_shapes

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BenchSettings:
    """How long to time a model: ``runs`` inferences, or ``duration_s`` seconds, or (both given)
    whichever comes first."""

    runs: int | None = 100
    duration_s: float | None = None
    warmup: int = 10

    def validate(self) -> None:
        if self.runs is not None and self.runs < 1:
            raise ConfigError(f"--runs must be at least 1, got {self.runs}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(f"--duration must be positive, got {self.duration_s}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be zero or positive, got {self.warmup}")


def percentile(sorted_ms: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(sorted_ms), p))


def summarize(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)
    mean = statistics.fmean(ordered)
    std = statistics.pstdev(ordered) if len(ordered) > 1 else 0.0
    return {
        "mean_ms": round(mean, 4),
        "std_ms": round(std, 4),
        "cv": round(std / mean, 4) if mean else 0.0,
        "min_ms": round(ordered[0], 4),
        "p50_ms": round(percentile(ordered, 50), 4),
        "p90_ms": round(percentile(ordered, 90), 4),
        "p99_ms": round(percentile(ordered, 99), 4),
        "max_ms": round(ordered[-1], 4),
        "fps": round(1000.0 / mean, 2) if mean else 0.0,
        "runs": len(ordered),
    }


def random_feeds(runtime: Any, resolved: list[ResolvedInput] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """One feed at the resolved shapes (the model's own where none are given), random within each
    input's dtype: the generator bench, parity and calibration share."""
    if resolved is None:
        resolved = resolve(runtime.inputs, model=Path(runtime.path).name)
    return random_inputs(resolved, seed=seed)


def data_feeds(runtime: Any, data: Dataset, index: int = 0) -> dict[str, np.ndarray]:
    from edgekit.data import match_inputs

    mapping = match_inputs(list(data.inputs), runtime.inputs, Path(data.origin).name)
    return {mapping[k]: data.sample(index, k) for k in data.inputs if k in mapping}


def measure(
    open_runtime: Callable[[], Any],
    settings: BenchSettings,
    *,
    data: Dataset | None = None,
    resolved: list[ResolvedInput] | None = None,
    progress: Progress = lambda done, total: None,
) -> dict[str, Any]:
    """Load, first call, warm-up, then timed calls; returns the bench JSON's ``measured`` block."""
    settings.validate()
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    start = time.perf_counter()
    runtime = open_runtime()
    load_ms = (time.perf_counter() - start) * 1000
    try:
        feeds = data_feeds(runtime, data) if data is not None else random_feeds(runtime, resolved)
        call = runtime.bench_call(feeds)
        start = time.perf_counter()
        try:
            call()
        except Exception as exc:  # the runtime's own error on the first inference: the model, not edgekit
            shapes = {name: tuple(np.shape(value)) for name, value in feeds.items()}
            raise ModelError(
                f"{Path(runtime.path).name} failed on {runtime.name} at input shapes {describe_shapes(shapes)}: "
                f"{first_line(exc)}",
                hint="if its output shape depends on the values, give real inputs with --data",
            ) from exc
        first_ms = (time.perf_counter() - start) * 1000
        for _ in range(settings.warmup):
            call()
        rss_after_warmup = process.memory_info().rss
        peak_rss = rss_after_warmup
        times: list[float] = []
        total = settings.runs  # with a duration too, whichever comes first
        deadline = None if settings.duration_s is None else time.perf_counter() + settings.duration_s
        clock = time.perf_counter_ns
        while True:
            t0 = clock()
            call()
            times.append((clock() - t0) / 1e6)
            if len(times) % 32 == 0:
                peak_rss = max(peak_rss, process.memory_info().rss)
                progress(len(times), total or 0)
            if total is not None and len(times) >= total:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
        peak_rss = max(peak_rss, process.memory_info().rss)
        progress(len(times), len(times))
        figures = summarize(times)
        return {
            "load_ms": round(load_ms, 3),
            "first_ms": round(first_ms, 3),
            **figures,
            "peak_rss_mb": round(peak_rss / 2**20, 2),
            "rss_growth_mb": round((peak_rss - rss_after_warmup) / 2**20, 3),
            "load_rss_mb": round((rss_after_warmup - rss_before) / 2**20, 2),
            "fully_accelerated": runtime.fully_accelerated(),
            "unaccelerated_ops": runtime.unaccelerated_ops(),
        }
    finally:
        runtime.close()
