"""``edgekit bench``: models × runtimes × thread counts, measured in one run."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgekit.cli.output import emit_json, human_bytes, print_wide, stderr
from edgekit.errors import ConfigError, InputNotFoundError, OutputExistsError, UnknownNameError
from edgekit.outputs import atomic_file

CSV_COLUMNS = (
    "model runtime threads size_bytes load_ms first_ms mean_ms std_ms cv p50_ms p90_ms p99_ms fps "
    "peak_rss_mb rss_growth_mb fully_accelerated runs"
).split()


def parse_threads(text: str | None) -> list[int | None]:
    if text is None:
        return [None]
    values: list[int | None] = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise ConfigError(f"--threads takes whole numbers like 1,2,4, got '{text}'") from None
        if value < 1:
            raise ConfigError(f"--threads must be at least 1, got {value}")
        values.append(value)
    return values


def _table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="edgekit bench (latency in ms)")
    columns = ("model", "runtime", "thr", "size", "load", "first", "mean", "std", "p50", "p90", "p99", "fps", "RSS MB")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "runtime") else "right")
    table.add_column("accel.")
    for r in results:
        m = r["measured"]
        accelerated = {True: "full", False: "PARTIAL", None: "?"}[m["fully_accelerated"]]
        table.add_row(
            Path(r["model"]).name,
            r["runtime"],
            str(r["threads"] or "auto"),
            human_bytes(r["size_bytes"]),
            f"{m['load_ms']:.1f}",
            f"{m['first_ms']:.2f}",
            f"{m['mean_ms']:.3f}",
            f"{m['std_ms']:.3f}",
            f"{m['p50_ms']:.3f}",
            f"{m['p90_ms']:.3f}",
            f"{m['p99_ms']:.3f}",
            f"{m['fps']:.1f}",
            f"{m['peak_rss_mb']:.0f}",
            accelerated,
        )
    return table


def _csv(results: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in results:
        writer.writerow({**r, **r["measured"]})
    return buffer.getvalue()


def bench(
    models: list[Path] = typer.Argument(..., help="Models to measure: .tflite, .onnx, OpenVINO .xml, .keras."),
    runtime: str = typer.Option(None, "--runtime", help="Runtime(s), comma-separated (default: by file type)."),
    threads: str = typer.Option(None, "--threads", help="Thread counts, comma-separated, e.g. 1,2,4."),
    runs: int = typer.Option(100, "--runs", help="Timed inferences per measurement."),
    duration: float = typer.Option(None, "--duration", help="Time each measurement for this many seconds instead."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed inferences before timing."),
    data: Path = typer.Option(None, "--data", help="Real input samples (.npz/.npy) instead of random inputs."),
    csv_out: Path = typer.Option(None, "--csv", help="Also write the results as CSV to this file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --csv file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout; progress goes to stderr."),
) -> None:
    """Measure load time, first inference, latency percentiles, throughput and memory."""
    from edgekit.bench import BenchSettings, measure
    from edgekit.data import Split, load_dataset
    from edgekit.runtimes import RUNTIMES, load_runtime, runtime_for_path

    settings = BenchSettings(runs=None if duration else runs, duration_s=duration, warmup=warmup)
    if runs < 1:
        raise ConfigError(f"--runs must be at least 1, got {runs}")
    settings.validate()
    thread_counts = parse_threads(threads)
    for model in models:
        if not model.exists():
            raise InputNotFoundError(f"model {model} does not exist")
    plan: list[tuple[Path, str, int | None]] = []
    for model in models:
        names = runtime.split(",") if runtime else [runtime_for_path(model)]
        for name in names:
            if name not in RUNTIMES:
                raise UnknownNameError("runtime", name, RUNTIMES)
            RUNTIMES[name].load_class()  # a missing package fails here, before any timing
            plan += [(model, name, t) for t in thread_counts]
    if csv_out is not None and csv_out.exists() and not force:
        raise OutputExistsError(f"--csv {csv_out} already exists", hint="pass --force to overwrite it")

    results = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        for model, name, count in plan:
            task = bar.add_task(f"{model.name} · {name} · {count or 'auto'} threads", total=settings.runs or None)
            dataset = None
            if data is not None:
                with load_runtime(model, name, threads=count) as probe:
                    dataset = load_dataset(data, Split.EVALUATION, probe.inputs)

            def update(done: int, total: int, task: Any = task) -> None:
                bar.update(task, completed=done, total=total or None)

            def open_runtime(model: Path = model, name: str = name, count: int | None = count) -> Any:
                return load_runtime(model, name, threads=count)

            measured = measure(open_runtime, settings, data=dataset, progress=update)
            results.append(
                {
                    "model": str(model),
                    "runtime": name,
                    "threads": count,
                    "size_bytes": _size(model),
                    "measured": measured,
                    "device": None,
                    "predicted": None,
                }
            )
            bar.remove_task(task)
    if csv_out is not None:
        with atomic_file(csv_out, force=True) as staging:
            staging.write_text(_csv(results))
    if as_json:
        emit_json({"results": results})
    else:
        print_wide(_table(results))


def _size(model: Path) -> int:
    files = [model, model.with_suffix(".bin")] if model.suffix == ".xml" else [model]
    return sum(f.stat().st_size for f in files if f.exists())
