"""``edgekit profiles``: the devices edgekit predicts for, and calibrating this machine as one."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgekit.cli import profiles_fit
from edgekit.cli.help import EdgekitCommand
from edgekit.cli.output import emit_json, log, print_wide, stdout

app = typer.Typer(
    help="Device profiles: list, show, validate, calibrate this machine, refit from measured runs.",
    no_args_is_help=True,
)


def _peak_gflops(profile: Any, precision: str) -> float:
    from edgekit.predict import peak_flops

    return peak_flops(profile, "cpu", precision, profile.cpu.cores) / 1e9


@app.command("list", cls=EdgekitCommand)
def list_profiles(as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout.")) -> None:
    """Every profile --device accepts: shipped ones and calibrated ones."""
    from edgekit.predict.profiles import load_profile, profile_names, user_profile_names

    calibrated = set(user_profile_names())
    rows: list[dict[str, Any]] = []
    for name in profile_names():
        p = load_profile(name)
        rows.append(
            {
                "name": p.name,
                "title": p.title,
                "arch": p.arch,
                "cores": p.cpu.cores,
                "ram_gb": p.memory.ram_gb,
                "gpu": p.gpu.model if p.gpu else None,
                "runtimes": [r.name for r in p.runtimes],
                "references": len(p.references),
                "calibrated": p.calibration is not None,
                "borrows": p.borrow_efficiency_from,
                "origin": "calibrated here" if name in calibrated else "shipped",
            }
        )
    if as_json:
        emit_json({"profiles": rows})
        return
    table = Table(title="device profiles")
    for column in ("name", "device", "arch", "cores", "RAM", "GPU", "runtimes", "basis"):
        table.add_column(column)
    for r in rows:
        basis = "calibrated here" if r["calibrated"] else (f"{r['references']} references" if r["references"] else "")
        if basis and r["borrows"]:
            basis += f" (+ {r['borrows']}'s for other engines)"
        basis = basis or (f"borrows {r['borrows']}" if r["borrows"] else "peaks only")
        table.add_row(
            r["name"], r["title"], r["arch"], str(r["cores"]), f"{r['ram_gb']:g} GB", r["gpu"] or "—",
            ", ".join(r["runtimes"]), basis,
        )  # fmt: skip
    print_wide(table, min_width=120)


@app.command("show", cls=EdgekitCommand)
def show(
    name: str = typer.Argument(..., help="Profile name (see `edgekit profiles list`) or a YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the profile as JSON."),
) -> None:
    """Everything a profile says, with the peaks it implies and where each figure comes from."""
    from edgekit.predict import leave_one_reference_out
    from edgekit.predict.profiles import load_profile

    p = load_profile(name)
    if as_json:
        emit_json(p.model_dump(mode="json"))
        return
    say = stdout.print
    say(f"{p.name}: {p.title} ({p.arch})", markup=False)
    clusters = ", ".join(f"{c.count}× {c.core} @ {c.clock_ghz} GHz" for c in p.cpu.clusters)
    isa = ", ".join(k for k, v in p.cpu.isa.model_dump().items() if v) or "none listed"
    say(f"  cpu: {p.cpu.model}: {clusters}; ISA: {isa}  [{p.cpu.source}]", markup=False)
    c = p.compute
    say(
        f"  peak (all cores): fp32 {_peak_gflops(p, 'fp32'):.0f} GFLOP/s, int8 {_peak_gflops(p, 'int8'):.0f} GOP/s"
        + (f", fp16 {_peak_gflops(p, 'fp16'):.0f} GFLOP/s" if c.fp16_macs_per_cycle else "")
        + f"  [{c.source}]",
        markup=False,
    )
    say(
        f"  memory: {p.memory.ram_gb:g} GB {p.memory.kind}; bandwidth {p.bandwidth.gbs:g} GB/s "
        f"({p.bandwidth.kind})  [{p.bandwidth.source}]",
        markup=False,
    )
    if p.gpu:
        g = p.gpu
        say(f"  gpu: {g.model}: fp32 {g.fp32_tflops:g} TFLOP/s"
            + (f", fp16 {g.fp16_tflops:g}" if g.fp16_tflops else "")
            + (f", int8 {g.int8_tops:g} TOPS" if g.int8_tops else "") + f"  [{g.source}]", markup=False)  # fmt: skip
    for r in p.runtimes:
        limits = f"{len(r.supported_ops)} operator kinds" if r.supported_ops else "all operators"
        say(f"  runtime {r.name} ({r.engine} on {r.processor}): {limits}  [{r.source}]", markup=False)
    if p.references:
        table = Table(title=f"{len(p.references)} published reference measurements")
        for column in ("model", "runtime", "precision", "threads", "ms", "source"):
            table.add_column(column)
        for ref in p.references:
            precision = ref.precision + (f" (ran in {ref.arithmetic})" if ref.arithmetic else "")
            table.add_row(ref.model, ref.runtime, precision, str(ref.threads), f"{ref.latency_ms:g}", ref.source)
        print_wide(table)
        rows = leave_one_reference_out(p, "cpu")
        if rows:
            errors = sorted(abs(r["error"]) for r in rows)
            say(
                f"  leave-one-out on the CPU references: median error {100 * statistics.median(errors):.1f} %, "
                f"worst {100 * errors[-1]:.1f} %",
                markup=False,
            )
    if p.calibration:
        from edgekit.predict.calibrate.run import summary

        table = Table(title=f"calibrated {p.calibration.measured_on}: {p.calibration.command}")
        for column in ("engine", "precision", "threads", "models", "median ms", "measured/predicted p10–p90"):
            table.add_column(column)
        for row in summary(p):
            table.add_row(row["engine"], row["precision"], str(row["threads"]), str(row["models"]),
                          f"{row['median_ms']:g}", row["band"])  # fmt: skip
        print_wide(table)
    if p.measurements:
        groups = sorted({f"{m.engine} {m.precision}" for m in p.measurements})
        models = sorted({m.model for m in p.measurements})
        say(
            f"  {len(p.measurements)} measurements on the device ({', '.join(groups)}; {len(models)} models) "
            "correct its predictions (edgekit profiles refit)",
            markup=False,
        )
    if p.borrow_efficiency_from:
        measured = {r.engine for r in p.references}
        lent = sorted({r.engine for r in load_profile(p.borrow_efficiency_from).references} - measured)
        what = f"{', '.join(lent)} (not in its own references)" if measured else "every engine (no references)"
        say(f"  {what}: efficiencies borrowed from {p.borrow_efficiency_from} (same cores)", markup=False)
    if p.notes:
        say(f"  notes: {p.notes}", markup=False)


@app.command("validate", cls=EdgekitCommand)
def validate(
    files: list[Path] = typer.Argument(None, help="Profile YAML files (default: every shipped profile)."),
) -> None:
    """Check profiles against the schema; a bad one is reported with its key path and line."""
    from edgekit.errors import DeviceError
    from edgekit.predict.profiles import load_profile, shipped_profile_names

    targets = [str(f) for f in files] if files else shipped_profile_names()
    failures: list[DeviceError] = []
    for target in targets:
        try:
            load_profile(target)
        except DeviceError as exc:
            failures.append(exc)
            continue
        log(f"{target}: valid")
    if failures:
        if len(failures) > 1:
            for failure in failures[:-1]:
                log(f"edgekit: error: {failure.one_line()}")
        raise failures[-1]


# Fitting profiles (calibrate, kit, refit) live in their own module; registered here.
app.command("calibrate", cls=EdgekitCommand)(profiles_fit.calibrate)
app.command("kit", cls=EdgekitCommand)(profiles_fit.kit)
app.command("refit", cls=EdgekitCommand)(profiles_fit.refit)
