"""``edgekit bench``: models × runtimes × thread counts, measured in one run."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgekit.cli.bench_report import (
    acceleration_notes,
    bench_csv,
    bench_table,
    input_lines,
    model_labels,
    prediction_table,
)
from edgekit.cli.lists import comma_list
from edgekit.cli.output import emit_json, log, print_wide, stderr, stdout
from edgekit.errors import ConfigError, DeviceError, InputNotFoundError, OutputExistsError, UnknownNameError
from edgekit.inputs import ResolvedInput, ShapeRequest, random_inputs, random_values_note, resolve, shapes_of
from edgekit.manifest import artifact_size
from edgekit.outputs import atomic_file


def parse_threads(text: str | None) -> list[int | None]:
    if text is None:
        return [None]
    values: list[int | None] = []
    for part in comma_list(text, "--threads") or [text]:
        try:
            value = int(part)
        except ValueError:
            raise ConfigError(f"--threads takes whole numbers like 1,2,4, got '{text}'") from None
        if value < 1:
            raise ConfigError(f"--threads must be at least 1, got {value}")
        values.append(value)
    return values


@dataclass(frozen=True)
class Target:
    """A device to predict for; ``here`` when it is this machine, so it is measured too."""

    profile: Any
    runtime: str | None
    here: bool


def _devices(text: str | None, thread_counts: list[int | None]) -> list[Target]:
    if not text:
        return []
    from edgekit.predict import check_threads, parse_device
    from edgekit.predict.profiles.host import is_this_machine

    targets = []
    for part in comma_list(text, "--device"):
        profile, runtime = parse_device(part)
        for count in thread_counts:
            check_threads(profile, count)
        targets.append(Target(profile, runtime, is_this_machine(profile.recognise)))
    return targets


def bench(
    models: list[Path] = typer.Argument(
        ..., metavar="MODEL", help="Models to measure: .tflite, .onnx, OpenVINO .xml, .keras."
    ),
    runtime: str = typer.Option(None, "--runtime", help="Runtime(s), comma-separated (default: by file type)."),
    threads: str = typer.Option(None, "--threads", help="Thread counts, comma-separated, e.g. 1,2,4."),
    runs: int = typer.Option(100, "--runs", help="Timed inferences per measurement."),
    duration: float = typer.Option(None, "--duration", help="Time each measurement for this many seconds instead."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed inferences before timing."),
    data: Path = typer.Option(None, "--data", help="Real input samples (.npz/.npy) instead of random inputs."),
    shape: list[str] = typer.Option(
        None,
        "--shape",
        metavar="NAME=D0,D1,…",
        help="Input size to run at, e.g. x=1,3,640,640 (repeat per input; a bare 1,224,224,3 for a one-input model).",
    ),
    csv_out: Path = typer.Option(None, "--csv", help="Also write the results as CSV to this file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --csv file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout; progress goes to stderr."),
    device: str = typer.Option(
        None,
        "--device",
        help="Predict for device profiles, comma-separated (rpi4,pixel4:tflite-gpu,host); "
        "on the device itself it is measured too.",
    ),
    record: Path = typer.Option(
        None,
        "--record",
        metavar="FILE",
        help="On a device --device names, append what it measured to FILE (JSON lines) for `edgekit profiles refit`.",
    ),
) -> None:
    """Measure load time, first inference, latency percentiles, throughput and memory;
    with --device, predict them for other devices."""
    from edgekit.bench import BenchSettings, measure
    from edgekit.data import check_data_path
    from edgekit.predict import choose_runtime, predict
    from edgekit.predict.graph import analyze
    from edgekit.runtimes import RUNTIMES, load_runtime, runtime_for_path

    settings = BenchSettings(runs=None if duration else runs, duration_s=duration, warmup=warmup)
    if runs < 1:
        raise ConfigError(f"--runs must be at least 1, got {runs}")
    settings.validate()
    thread_counts = parse_threads(threads)
    for model in models:
        if not model.exists():
            raise InputNotFoundError(f"model {model} does not exist")
    if data is not None:
        check_data_path(data, "--data")
    request = ShapeRequest.parse(shape)
    targets = _devices(device, thread_counts)
    if record is not None:
        from edgekit.predict.profiles.measurements import check_record_file

        if not any(t.here for t in targets):
            named = ", ".join(t.profile.name for t in targets) or "none given"
            raise ConfigError(
                f"--record keeps what a device measures of itself, and no --device is this machine ({named})",
                hint="on the device, name its profile: --device NAME (edgekit profiles list; "
                "edgekit profiles calibrate --name NAME makes one)",
            )
        check_record_file(record)
    recorded: list[Any] = []
    plan: list[tuple[Path, str, int | None, Target | None]] = []
    skipped: list[dict[str, Any]] = []  # (model, device) pairs a profile cannot run: said, not fatal
    first_refusal: DeviceError | None = None
    for model in models:
        names = comma_list(runtime, "--runtime") or [runtime_for_path(model)]
        for name in names:
            if name not in RUNTIMES:
                raise UnknownNameError("runtime", name, RUNTIMES)
            if targets and name == "keras":
                raise DeviceError(
                    f"cannot predict {model.name} on a device: predictions read a converted model",
                    hint="convert it first (edgekit convert) and bench the .tflite, .onnx or .xml",
                )
            if not targets:
                RUNTIMES[name].load_class()  # a missing package fails here, before any timing
                plan += [(model, name, t, None) for t in thread_counts]
                continue
            for target in targets:
                try:
                    choose_runtime(target.profile, name, target.runtime)  # checked before any timing
                except DeviceError as exc:
                    first_refusal = first_refusal or exc
                    skipped.append(
                        {"model": str(model), "runtime": name, "device": target.profile.name, "reason": exc.one_line()}
                    )
                    continue
                if target.here:
                    RUNTIMES[name].load_class()
                for t in thread_counts:
                    plan.append((model, name, t, target))
    if not plan and first_refusal is not None:
        raise first_refusal  # nothing at all can be predicted: that is the error
    # Every model's inputs at the size it runs at, decided before any timing: a size nothing
    # fixes is one line now, not a measurement at a made-up one.
    chosen = {(model, name) for model, name, _, _ in plan}
    inputs = _resolve_all(sorted(chosen, key=lambda k: (str(k[0]), k[1])), request, data, thread_counts[0])
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
        # Not a terminal: no bar at all (a transient one still leaves a blank line before an error).
        disable=not stderr.is_terminal,
    ) as bar:
        graphs: dict[tuple[Path, str], Any] = {}
        for model, name, count, device_target in plan:
            predicted = None
            device_name = device_target.profile.name if device_target else None
            resolved, dataset = inputs[model, name]
            if device_target is not None:
                if (model, name) not in graphs:
                    feeds = data_feeds_for(dataset, resolved)
                    graphs[model, name] = analyze(model, name, shapes_of(resolved), feeds)
                prediction = predict(
                    graphs[model, name],
                    device_target.profile,
                    engine=name,
                    threads=count,
                    runtime=device_target.runtime,
                )
                predicted = prediction.to_dict()
                count = prediction.threads if count is None else count
                if not device_target.here:
                    results.append(_row(model, name, count, None, device_name, predicted, resolved, dataset))
                    continue
            task = bar.add_task(f"{model.name} · {name} · {count or 'auto'} threads", total=settings.runs or None)

            def update(done: int, total: int, task: Any = task) -> None:
                bar.update(task, completed=done, total=total or None)

            at = shapes_of(resolved)

            def open_runtime(model: Path = model, name: str = name, count: int | None = count, at: Any = at) -> Any:
                return load_runtime(model, name, threads=count, shapes=at)

            measured = measure(open_runtime, settings, data=dataset, resolved=resolved, progress=update)
            results.append(_row(model, name, count, measured, device_name, predicted, resolved, dataset))
            if record is not None and device_target is not None and predicted and predicted["processor"] == "cpu":
                recorded.append(_recorded_run(model, name, measured, predicted, graphs[model, name]))
            bar.remove_task(task)
    if recorded:
        from edgekit.predict.profiles.measurements import append_runs

        append_runs(record, recorded)
        log(f"recorded {len(recorded)} run{'s' if len(recorded) > 1 else ''} in {record}")
    elif record is not None:
        log(f"nothing recorded in {record}: --record keeps CPU runs, and none was measured here")
    if csv_out is not None:
        with atomic_file(csv_out, force=True) as staging:
            staging.write_text(bench_csv(results))
    if as_json:
        emit_json({"results": results, "skipped": skipped})
        return
    labels = {str(model): text for model, text in model_labels(list(models)).items()}
    measured_rows = [r for r in results if r["measured"] is not None]
    if measured_rows:
        print_wide(bench_table(measured_rows, labels))
        for note in acceleration_notes(measured_rows, labels):
            stdout.print(note, markup=False)
    for line in input_lines(results, labels):
        stdout.print(line, markup=False)
    if targets:
        if any(r["predicted"] for r in results):
            print_wide(prediction_table(results, labels))
        # One basis per device, in the table's order: what each device's figures rest on.
        bases = dict.fromkeys((r["device"], r["predicted"]["basis"]) for r in results if r["predicted"])
        for device_name, basis in bases:
            stdout.print(f"basis, {device_name}: {basis}", markup=False)
        for skip in skipped:
            stdout.print(f"not predicted: {labels[skip['model']]} on {skip['device']}: {skip['reason']}", markup=False)


def _recorded_run(model: Path, engine: str, measured: dict[str, Any], predicted: dict[str, Any], graph: Any) -> Any:
    from edgekit.predict import machine_name
    from edgekit.predict.profiles.measurements import recorded_run

    source = f"edgekit bench --record on {machine_name()}"
    return recorded_run(model.name, engine, measured["p50_ms"], predicted, graph, source)


def _row(
    model: Path,
    runtime: str,
    threads: int | None,
    measured: dict[str, Any] | None,
    device: str | None,
    predicted: dict[str, Any] | None,
    resolved: list[ResolvedInput],
    dataset: Any,
) -> dict[str, Any]:
    """One result: what was measured here and/or predicted for a device, and at which inputs."""
    values = f"sample 0 of {Path(dataset.origin).name}" if dataset is not None else random_values_note(resolved)
    return {
        "model": str(model),
        "runtime": runtime,
        "threads": threads,
        "size_bytes": artifact_size(model),
        "inputs": [{**r.to_dict(), "values": values} for r in resolved],
        # Timed at these inputs' values: a different input may give a bigger output and a longer run.
        "value_dependent_outputs": _value_dependent(str(model), tuple(sorted(shapes_of(resolved).items()))),
        "measured": measured,
        "device": device,
        "predicted": predicted,
    }


@functools.lru_cache(maxsize=64)
def _value_dependent(model: str, shapes: tuple[tuple[str, tuple[int, ...]], ...]) -> list[str]:
    """Once per model and size: shape inference is not free on a big graph."""
    from edgekit.predict.graph import value_dependent_outputs

    return value_dependent_outputs(Path(model), dict(shapes))


def _resolve_all(
    pairs: list[tuple[Path, str]], request: ShapeRequest, data: Path | None, threads: int | None = None
) -> dict[tuple[Path, str], tuple[list[ResolvedInput], Any]]:
    """Each (model, runtime)'s inputs resolved (--shape, --data, manifest, model), with its data.
    ``threads``: the first thread count, which a Keras probe starts TensorFlow's pool with (it
    takes the setting only once per process)."""
    from edgekit.data import Split, load_dataset
    from edgekit.manifest import load_manifest
    from edgekit.predict.graph import model_inputs
    from edgekit.runtimes import load_runtime

    declared: dict[tuple[Path, str], list[Any]] = {}
    for model, name in pairs:
        if name == "keras":
            with load_runtime(model, name, threads=threads) as probe:
                declared[model, name] = list(probe.inputs)
        else:  # read from the file: a row only predicted for a device needs no runtime here
            declared[model, name] = model_inputs(model)
    known = {spec.name.split(":")[0] for specs in declared.values() for spec in specs}
    known |= {spec.name for specs in declared.values() for spec in specs}
    for name in request.named:
        if name not in known:
            raise UnknownNameError("input", name, sorted(known))
    resolved = {}
    for (model, name), specs in declared.items():
        names = {spec.name for spec in specs} | {spec.name.split(":")[0] for spec in specs}
        mine = ShapeRequest({k: v for k, v in request.named.items() if k in names}, request.bare)
        manifest = load_manifest(model)
        layout = manifest.input_layout if manifest is not None else None
        dataset = load_dataset(data, Split.EVALUATION, specs, layout=layout) if data is not None else None
        resolved[model, name] = (
            resolve(
                specs,
                request=mine,
                data_shapes=dataset.sample_shapes() if dataset is not None else None,
                manifest_inputs=manifest.inputs if manifest is not None else None,
                model=model.name,
            ),
            dataset,
        )
    return resolved


def data_feeds_for(dataset: Any, resolved: list[ResolvedInput]) -> Any:
    """The inputs a model's shapes are read from for a prediction: the data's first sample, else random."""
    if dataset is None:
        return random_inputs(resolved)
    return {key: dataset.sample(0, key) for key in dataset.inputs}
