"""``edgekit profiles calibrate``, ``kit`` and ``refit``: fitting a device's profile to what it measures."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from edgekit.cli.lists import comma_list
from edgekit.cli.output import emit_json, log, print_wide, stdout
from edgekit.errors import ConfigError, OutputExistsError


def calibrate(
    name: str = typer.Option("host", "--name", help="Name of the profile to write (used with --device)."),
    runtime: str = typer.Option(
        None, "--runtime", help="Engines to calibrate, comma-separated (default: tflite,onnxruntime, or the kit's)."
    ),
    precision: str = typer.Option(
        None, "--precision", help="Precisions to calibrate, comma-separated (default: fp32,int8, or the kit's)."
    ),
    threads: str = typer.Option(None, "--threads", help="Thread counts (default: 1 and all cores)."),
    quick: bool = typer.Option(False, "--quick", help="A small synthetic set (about a minute): a rough profile."),
    kit: Path = typer.Option(
        None, "--kit", metavar="DIR", help="Time the models of a kit (edgekit profiles kit): no TensorFlow needed."
    ),
    seconds: float = typer.Option(
        None, "--seconds", help="Timing per model and setting (default 1.5; with --kit 1.0, to fit a device's minutes)."
    ),
    output: Path = typer.Option(None, "--out", "--output", help="Write here instead of the profile folder."),
    force: bool = typer.Option(False, "--force", help="Replace an existing profile of that name."),
) -> None:
    """Time a fixed set of models here and fit a profile of this machine, for `--device NAME`."""

    from edgekit.cli.bench import parse_threads
    from edgekit.errors import require_extra
    from edgekit.predict.calibrate.kit import calibrate_from_kit, read_kit
    from edgekit.predict.calibrate.run import calibrate as run_calibration
    from edgekit.predict.calibrate.run import leave_one_out_summary
    from edgekit.predict.profiles import user_profile_dir
    from edgekit.predict.profiles.host import usable_cores
    from edgekit.runtimes import RUNTIMES

    _check_new_name(name, "host")
    if seconds is None:
        seconds = 1.0 if kit is not None else 1.5
    elif seconds <= 0:
        raise ConfigError(f"--seconds must be more than 0, got {seconds:g}")
    if kit is not None and quick:
        raise ConfigError("--quick and --kit do not go together: a kit brings its own set of models")
    built = read_kit(kit) if kit is not None else None
    engines = _chosen(runtime, "--runtime", built.engines if built else ["tflite", "onnxruntime"])
    precisions = _chosen(precision, "--precision", built.precisions if built else ["fp32", "int8"])
    _check_calibration_set(engines, precisions)
    for engine in engines:
        if built and engine not in built.engines:
            raise ConfigError(f"--runtime {engine}: the kit {kit} has {', '.join(built.engines)} models only")
        RUNTIMES[engine].load_class()  # a runtime that is not installed fails now, not after minutes
    for value in precisions:
        if built and value not in built.precisions:
            raise ConfigError(f"--precision {value}: the kit {kit} has {', '.join(built.precisions)} models only")
    cores = usable_cores()
    counts = [t for t in parse_threads(threads) if t is not None] if threads else sorted({1, cores})
    for count in counts:
        if count > cores:
            raise ConfigError(f"--threads {count} is more than this machine has cores ({cores})")
    target = output or user_profile_dir() / f"{name}.yaml"
    if target.exists() and not force:
        raise OutputExistsError(f"profile {target} already exists", hint="pass --force to recalibrate")
    # The settings as parsed, so the record holds however the command was invoked.
    command = (
        f"edgekit profiles calibrate --name {name} --runtime {','.join(engines)} --precision {','.join(precisions)} "
        f"--threads {','.join(map(str, counts))} --seconds {seconds:g}"
        + (" --quick" if quick else "")
        + (f" --kit {kit}" if kit is not None else "")
    )
    if kit is not None:
        profile = calibrate_from_kit(
            name, kit, engines=engines, precisions=precisions, threads=counts, seconds=seconds, command=command,
            progress=log,
        )  # fmt: skip
    else:
        require_extra("tensorflow", "convert")  # the calibration models are built with Keras
        with tempfile.TemporaryDirectory(prefix="edgekit-calibrate-") as workdir:
            profile = run_calibration(
                name,
                engines=engines,
                precisions=precisions,
                threads=counts,
                quick=quick,
                seconds=seconds,
                workdir=Path(workdir),
                command=command,
                progress=log,
            )
    _write_profile(target, profile, "# Written by `edgekit profiles calibrate`: this machine, measured.")
    stdout.print(f"wrote {target}; predict with --device {name}", markup=False)
    held = leave_one_out_summary(profile)
    if held is not None:
        parts = []
        if held.networks_median is not None and held.networks_worst is not None:
            parts.append(
                f"each network predicted by a fit made without it: median error {100 * held.networks_median:.1f} %, "
                f"worst {100 * held.networks_worst:.1f} % ({held.networks} predictions)"
            )
        if held.synthetic_median is not None:
            parts.append(
                f"each synthetic graph likewise: median {100 * held.synthetic_median:.1f} % "
                f"({held.synthetic} predictions; each is the main witness of its own term)"
            )
        stdout.print("fit: " + "; ".join(parts), markup=False)


def _check_calibration_set(engines: list[str], precisions: list[str]) -> None:
    for engine in engines:
        if engine not in ("tflite", "onnxruntime"):
            raise ConfigError(f"--runtime {engine}: calibration covers tflite and onnxruntime")
    for value in precisions:
        if value not in ("fp32", "int8"):
            raise ConfigError(f"--precision {value}: calibration covers fp32 and int8")


def _chosen(text: str | None, flag: str, default: list[str]) -> list[str]:
    return comma_list(text, flag) if text else default


def kit(
    out: Path = typer.Option(..., "--out", "--output", metavar="DIR", help="The kit folder to write."),
    runtime: str = typer.Option("tflite,onnxruntime", "--runtime", help="Engines to convert for, comma-separated."),
    precision: str = typer.Option("fp32,int8", "--precision", help="Precisions, comma-separated."),
    quick: bool = typer.Option(False, "--quick", help="The small synthetic set only (a rough profile)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing kit folder."),
) -> None:
    """Build the calibration models and convert them once, here, for `profiles calibrate --kit` on a device."""
    from edgekit.errors import require_extra
    from edgekit.predict.calibrate.kit import build_kit, check_kit_output
    from edgekit.predict.calibrate.run import NETWORKS, QUICK_SET, SYNTHETIC

    engines = comma_list(runtime, "--runtime")
    precisions = comma_list(precision, "--precision")
    _check_calibration_set(engines, precisions)
    check_kit_output(out, force)
    require_extra("tensorflow", "convert")  # the calibration models are built with Keras
    names = QUICK_SET if quick else (*NETWORKS, *SYNTHETIC)
    built = build_kit(out, names=names, engines=engines, precisions=precisions, force=force, progress=log)
    size = sum((out / m.file).stat().st_size for m in built.models) / 1e6
    stdout.print(
        f"wrote {out}: {len(built.models)} models ({len(names)} × {', '.join(engines)} × {', '.join(precisions)}, "
        f"{size:.0f} MB); on the device: edgekit profiles calibrate --kit {out.name} --name NAME",
        markup=False,
    )


def _check_new_name(name: str, example: str) -> None:
    import re

    from edgekit.predict.profiles import shipped_profile_names

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ConfigError(f"--name '{name}' must be lower-case letters, digits and dashes")
    if name in shipped_profile_names():
        raise ConfigError(
            f"--name {name} is a shipped profile (shipped profiles are never changed)",
            hint=f"choose another name, e.g. {example}",
        )


def _write_profile(target: Path, profile: Any, header: str) -> None:
    from edgekit.outputs import atomic_file

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target, force=True) as staging:
        body = yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True), sort_keys=False, width=110)
        staging.write_text(header + "\n" + body)


def refit(
    name: str = typer.Argument(..., help="The profile the runs were recorded with (see `edgekit profiles list`)."),
    measurements: Path = typer.Option(
        ..., "--measurements", metavar="FILE", help="Runs recorded on the device by `edgekit bench --record FILE`."
    ),
    new_name: str = typer.Option(..., "--name", help="Name of the new profile (shipped profiles are never changed)."),
    output: Path = typer.Option(None, "--out", "--output", help="Write here instead of the profile folder."),
    force: bool = typer.Option(False, "--force", help="Replace an existing profile of that name."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Fold a device's measured runs into a new profile, and say how far off the old one was on them."""
    from edgekit.errors import DataError
    from edgekit.predict.cost.refit import held_out_rows
    from edgekit.predict.cost.refit import refit as refit_profile
    from edgekit.predict.profiles import load_profile, user_profile_dir
    from edgekit.predict.profiles.measurements import read_runs

    _check_new_name(new_name, f"{name}-mine")
    profile = load_profile(name)
    target = output or user_profile_dir() / f"{new_name}.yaml"
    if target.exists() and not force:
        raise OutputExistsError(f"profile {target} already exists", hint="pass --force to replace it")
    runs = read_runs(measurements)
    mine = [run for run in runs if run.device == profile.name]
    if not mine:
        others = ", ".join(sorted({run.device for run in runs}))
        raise DataError(
            f"{measurements} holds no runs recorded with {profile.name} (it has runs of: {others})",
            hint="refit the profile they were recorded with: edgekit profiles refit NAME",
        )
    refitted = refit_profile(profile, [run.measurement() for run in mine], new_name)
    rows = held_out_rows(profile, refitted)
    _write_profile(
        target,
        refitted,
        f"# Written by `edgekit profiles refit {name}`: {profile.name} corrected by runs measured on the device.",
    )
    # Judged only where another model's runs can say something: a run whose model is all the
    # refit knows of its engine and precision has no held-out figure.
    judged = [r for r in rows if r.error_after is not None]
    before = [abs(r.error_before) for r in judged]
    after = [abs(r.error_after) for r in judged if r.error_after is not None]
    if as_json:
        emit_json(
            {
                "profile": str(target),
                "added": len(rows),
                "measurements": len(refitted.measurements),
                "rows": [{**r.__dict__, "error_before": r.error_before, "error_after": r.error_after} for r in rows],
                "median_error_before": statistics.median(before) if judged else None,
                "median_error_after": statistics.median(after) if judged else None,
            }
        )
        return
    if rows:
        table = Table(title=f"{len(rows)} new runs: {profile.name} before, {new_name} without each run's model")
        for column in ("model", "engine", "precision", "threads", "measured ms", "before", "after (held out)"):
            table.add_column(column)
        for r in rows:
            held = (
                "— (no other model's runs)"
                if r.after_ms is None or r.error_after is None
                else (f"{r.after_ms:.3g} ({100 * r.error_after:+.1f} %)")
            )
            table.add_row(
                r.model, r.engine, r.precision, str(r.threads), f"{r.measured_ms:.3g}",
                f"{r.before_ms:.3g} ({100 * r.error_before:+.1f} %)", held,
            )  # fmt: skip
        print_wide(table)
        if judged:
            stdout.print(
                f"median error on {len(judged)} of these runs: {100 * statistics.median(before):.1f} % before, "
                f"{100 * statistics.median(after):.1f} % after (each predicted without any run of its model)",
                markup=False,
            )
        else:
            stdout.print("no held-out figure: record runs of at least two models to judge the refit", markup=False)
    else:
        stdout.print(f"every run in {measurements} was already in {profile.name}: nothing new", markup=False)
    stdout.print(f"wrote {target}; predict with --device {new_name}", markup=False)
