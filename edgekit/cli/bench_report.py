"""How `edgekit bench` shows what it measured and predicted: the tables, the CSV, the notes under them."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from rich.table import Table

from edgekit.cli.output import human_bytes
from edgekit.runtimes.base import format_shape
from edgekit.units import format_ms

CSV_COLUMNS = (
    "model runtime threads size_bytes load_ms first_ms mean_ms std_ms cv p50_ms p90_ms p99_ms fps "
    "peak_rss_mb rss_growth_mb fully_accelerated runs "
    "device predicted_ms predicted_low_ms predicted_high_ms fits_memory inputs"
).split()


def model_labels(models: list[Path]) -> dict[Path, str]:
    """Row labels: a model's file name, or as much of its folder as tells same-named files apart."""
    depth = dict.fromkeys(models, 1)

    def label(model: Path) -> str:
        return "/".join(model.parts[-depth[model] :])

    while True:
        seen: dict[str, list[Path]] = {}
        for model in models:
            seen.setdefault(label(model), []).append(model)
        clashes = [group for group in seen.values() if len(set(group)) > 1]
        grown = False
        for group in clashes:
            for model in set(group):
                if depth[model] < len(model.parts):
                    depth[model] += 1
                    grown = True
        if not grown:
            return {model: label(model) for model in models}


# Where each runtime's left-out operators run instead: what a PARTIAL costs the user.
_OUTSIDE = {
    "tflite": "run outside XNNPACK, on LiteRT's own kernels",
    "openvino": "are not supported by the device plugin",
}


def acceleration_notes(results: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    notes = []
    for r in results:
        m = r["measured"]
        if m is None or m["fully_accelerated"] is not False:
            continue
        where = f"{labels[r['model']]} · {r['runtime']} · {r['threads'] or 'auto'} threads"
        kinds = m.get("unaccelerated_ops") or []
        if kinds:
            notes.append(f"PARTIAL {where}: {', '.join(kinds)} {_OUTSIDE.get(r['runtime'], 'run outside it')}")
        else:
            notes.append(f"PARTIAL {where}: the runtime does not say which operators are left out")
    return list(dict.fromkeys(notes))


def bench_table(results: list[dict[str, Any]], labels: dict[str, str]) -> Table:
    table = Table(title="edgekit bench (latency in ms)")
    columns = ("model", "runtime", "thr", "size", "load", "first", "mean", "std", "p50", "p90", "p99", "fps", "RSS MB")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "runtime") else "right")
    table.add_column("accel.")
    for r in results:
        m = r["measured"]
        accelerated = {True: "full", False: "PARTIAL", None: "?"}[m["fully_accelerated"]]
        table.add_row(
            labels[r["model"]],
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


def bench_csv(results: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in results:
        predicted = r["predicted"] or {}
        writer.writerow(
            {
                **r,
                **(r["measured"] or {}),
                "device": r["device"] or "",
                "predicted_ms": predicted.get("latency_ms", ""),
                "predicted_low_ms": predicted.get("low_ms", ""),
                "predicted_high_ms": predicted.get("high_ms", ""),
                "fits_memory": predicted.get("fits_memory", ""),
                "inputs": " ".join(f"{i['name']}={'x'.join(map(str, i['shape'])) or '()'}" for i in r["inputs"]),
            }
        )
    return buffer.getvalue()


def prediction_table(results: list[dict[str, Any]], labels: dict[str, str]) -> Table:
    table = Table(title="edgekit bench: predicted per device (latency in ms)")
    columns = ("model", "device", "runtime", "thr", "predicted", "low–high", "measured", "error", "memory", "fallback")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "device", "runtime", "fallback") else "right")
    for r in results:
        p = r["predicted"]
        if p is None:
            continue
        m = r["measured"]
        error = f"{100 * (p['latency_ms'] / m['p50_ms'] - 1):+.0f} %" if m else ""
        memory = p["memory_mb"]
        fits = f"{'fits' if p['fits_memory'] else 'DOES NOT FIT'} ({memory['need']:.0f}/{memory['available']:.0f} MB)"
        fallback = ", ".join(p["unsupported_ops"]) or "—"
        table.add_row(
            labels[r["model"]], r["device"], p["runtime"], str(p["threads"] or "—"),
            format_ms(p["latency_ms"]), f"{format_ms(p['low_ms'])}–{format_ms(p['high_ms'])}",
            format_ms(m["p50_ms"]) if m else "—", error, fits, fallback,
        )  # fmt: skip
    return table


def input_lines(results: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """``inputs, det.onnx: x (1, 3, 640, 640) float32 from --shape; random floats …``, once per model."""
    lines: dict[str, str] = {}
    for r in results:
        described = "; ".join(
            f"{i['name']} {format_shape(tuple(i['shape']))} {i['dtype']} from {i['origin']}"
            + (" (dynamic batch set to 1)" if i["batch_defaulted"] else "")
            for i in r["inputs"]
        )
        values = r["inputs"][0]["values"] if r["inputs"] else ""
        line = f"inputs, {labels[r['model']]}: {described or 'none'}; values: {values}"
        if r.get("value_dependent_outputs"):
            line += f"; outputs sized by the input values: {', '.join(r['value_dependent_outputs'])}"
        lines.setdefault(r["model"], line)
    return list(lines.values())
