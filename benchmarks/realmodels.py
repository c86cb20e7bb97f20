"""Models as users bring them (issue 14): a corpus of real third-party models through every command.

    python benchmarks/realmodels.py [--only NAME,NAME] [--no-convert] [--pairs 5] [--no-write]

1. The corpus table (tools/corpus.py: MediaPipe TFLite models, PaddleOCR and Silero ONNX
   models, PyTorch's exporter tests, scikit-learn's iris, keras.applications with default
   arguments): per model, ``edgekit analyze``, ``bench``, ``bench --device rpi4`` and
   ``convert --to tflite | onnx | openvino`` (fp32), each run as a user runs it, in a process of
   its own. ✅ passed (a conversion: parity within 1e-4 relative max error, or top-1 agreement
   ≥ 0.995 for a classifier), ❎ converted but parity off, ❌ a clean error (one line, its own
   exit code), 💥 an internal error or a traceback.
2. Dynamic-shape models: edgekit's timed loop at the given shape against a bare
   ``session.run`` / ``invoke()`` loop at the same shape, interleaved in pairs in one process:
   the median ratio of their p50s (goal 0.97–1.03).
3. keras.applications MobileNetV3Large/Small with default arguments: converted at 224×224 and
   predicted for rpi4 at 4 threads, against the published XNNPACK figures in the rpi4 profile.
4. ONNX → TFLite (onnx2tf) on the PyTorch exports: parity against ONNX Runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from benchmarks.results_file import publish  # noqa: E402
from tools.corpus import CorpusModel, corpus  # noqa: E402

TARGETS = ("tflite", "onnx", "openvino")
RELATIVE_ERROR = 1e-4
AGREEMENT = 0.995
PUBLISHED_RPI4_MS = {"MobileNetV3Large": 41.0, "MobileNetV3Small": 14.0}  # device_profiles/rpi4.yaml


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def edgekit(work: Path, *args: str, timeout: float = 900) -> tuple[int, dict | None, str]:
    """``python -m edgekit ARGS --json`` in ``work``: exit code, the JSON document, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgekit", *args, "--json"],
            capture_output=True, text=True, timeout=timeout, cwd=work, env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return 124, None, f"timed out after {timeout:.0f} s"
    try:
        document = json.loads(done.stdout) if done.returncode == 0 else None
    except json.JSONDecodeError:
        document = None
    return done.returncode, document, done.stderr


def verdict(code: int, stderr: str, ok: bool = True, figure: str = "") -> tuple[str, str]:
    """The cell's mark and, for a failure, its one line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if code == 0:
        return ("✅" if ok else "❎"), figure
    last = lines[-1] if lines else ""
    if code == 70 or "Traceback" in stderr:
        return "💥", last
    return "❌", last


def parity_ok(report: dict, task: str) -> tuple[bool, str]:
    parity = report["parity"]
    agreement = parity.get("top1_agreement")
    if task == "classification" and agreement is not None:
        return agreement >= AGREEMENT, f"top-1 {agreement:.3f}"
    error = parity.get("relative_max_error", parity.get("max_abs_error"))
    return error <= RELATIVE_ERROR, f"rel. max error {error:.1e}"


def run_row(model: CorpusModel, work: Path, convert: bool) -> dict:
    args = model.bench_args()
    row: dict = {"model": model, "cells": {}, "notes": []}

    def cell(key: str, code: int, stderr: str, ok: bool = True, figure: str = "") -> None:
        mark, text = verdict(code, stderr, ok, figure)
        row["cells"][key] = mark
        if mark in ("❌", "💥", "❎") and text:
            row["notes"].append(f"{key}: {text}")

    if model.format != "keras":
        code, doc, err = edgekit(work, "analyze", str(model.path), *args)
        cell("analyze", code, err, figure=f"{doc['macs'] / 1e6:.1f} MMACs" if doc else "")
        row["macs"] = doc["macs"] if doc else None
        code, doc, err = edgekit(work, "bench", str(model.path), *args, "--runs", "20", "--warmup", "3")
        cell("bench", code, err)
        row["p50_ms"] = doc["results"][0]["measured"]["p50_ms"] if doc else None
        code, doc, err = edgekit(work, "bench", str(model.path), *args, "--device", "rpi4", "--threads", "4")
        cell("bench --device", code, err)
        row["rpi4_ms"] = doc["results"][0]["predicted"]["latency_ms"] if doc else None
    if not convert:
        return row
    for target in TARGETS:
        suffix = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ".xml"}[target]
        out = work / f"{model.name}{suffix}"
        flags = [arg for value in model.shape for arg in ("--shape", value)]
        if model.data is not None:
            flags += ["--eval", str(model.data)]
        flags += ["--task", model.task]
        code, doc, err = edgekit(work, "convert", str(model.path), "--to", target, "--out", str(out), "--force", *flags)
        ok, figure = parity_ok(doc, model.task) if doc else (True, "")
        cell(f"→ {target}", code, err, ok, figure)
        if doc:
            row.setdefault("converted", {})[target] = (doc, figure)
    if model.format == "keras" and "tflite" in row.get("converted", {}):
        artifact = row["converted"]["tflite"][0]["artifact"]
        code, doc, err = edgekit(work, "analyze", artifact)
        cell("analyze", code, err)
        code, doc, err = edgekit(work, "bench", artifact, "--runs", "20", "--warmup", "3")
        cell("bench", code, err)
        row["p50_ms"] = doc["results"][0]["measured"]["p50_ms"] if doc else None
        code, doc, err = edgekit(work, "bench", artifact, "--device", "rpi4", "--threads", "4")
        cell("bench --device", code, err)
        row["rpi4_ms"] = doc["results"][0]["predicted"]["latency_ms"] if doc else None
    return row


# -- edgekit's loop against a bare one -----------------------------------------------------


def _bare_onnx(path: Path, feeds: dict, runs: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(20):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        session.run(None, feeds)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def _bare_tflite(path: Path, feeds: dict, runs: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    for detail in interpreter.get_input_details():
        interpreter.resize_tensor_input(detail["index"], list(feeds[detail["name"]].shape))
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], feeds[detail["name"]])
    for _ in range(20):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def bench_against_bare(path: Path, shapes: dict[str, tuple[int, ...]], pairs: int, runs: int) -> list[float]:
    from edgekit.bench import BenchSettings, measure
    from edgekit.inputs import resolve, shapes_of
    from edgekit.runtimes import load_runtime

    with load_runtime(path) as probe:
        resolved = resolve(probe.inputs, request=_request(shapes), model=path.name)
    from edgekit.inputs import random_inputs

    feeds = random_inputs(resolved)
    bare = _bare_tflite if path.suffix == ".tflite" else _bare_onnx
    # Enough runs for about a second a half-pair, so a fast model's p50 is not a handful of runs.
    first = bare(path, feeds, 10)
    runs = max(runs, min(1000, int(1000 / max(first, 1e-3))))
    ratios = []
    for index in range(pairs):

        def ours() -> float:
            settings = BenchSettings(runs=runs, warmup=20)
            opened = lambda: load_runtime(path, threads=1, shapes=shapes_of(resolved))  # noqa: E731
            return float(measure(opened, settings, resolved=resolved)["p50_ms"])

        # Alternate which half goes first: the second of two runs meets a warmer cache.
        if index % 2:
            theirs, mine = bare(path, feeds, runs), ours()
        else:
            mine, theirs = ours(), bare(path, feeds, runs)
        ratios.append(mine / theirs)
    return ratios


def _request(shapes: dict[str, tuple[int, ...]]):  # noqa: ANN202
    from edgekit.inputs import ShapeRequest

    return ShapeRequest(shapes)


def _shapes(model: CorpusModel) -> dict[str, tuple[int, ...]]:
    out = {}
    for value in model.shape:
        name, _, dims = value.rpartition("=")
        out[name] = tuple(int(d) for d in dims.split(","))
    return out


def dynamic_tflite(model: CorpusModel, work: Path) -> Path:
    """The Keras model through the plain TFLiteConverter: its signature keeps (-1, -1, -1, 3)."""
    import keras
    import tensorflow as tf

    from edgekit.quiet import quiet_stdout

    out = work / f"{model.name}_dynamic.tflite"
    with quiet_stdout():  # the exporter prints every captured variable: stdout is this report's
        converter = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(model.path))
        out.write_bytes(converter.convert())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated corpus names")
    parser.add_argument("--no-convert", action="store_true", help="leave the conversions out")
    parser.add_argument("--pairs", type=int, default=7, help="edgekit/bare pairs per dynamic model")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per half of a pair")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    models = corpus()
    if args.only:
        wanted = set(args.only.split(","))
        models = [m for m in models if m.name in wanted]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-realmodels-") as folder:
        work = Path(folder)
        for model in models:
            log(f"{model.name}: {model.path.name}")
            rows.append(run_row(model, work, not args.no_convert))
            log("  " + " ".join(f"{k} {v}" for k, v in rows[-1]["cells"].items()))
        log("edgekit's loop against bare loops")
        loops = []
        for model in models:
            if not model.shape:
                continue
            path = model.path if model.format != "keras" else dynamic_tflite(model, work)
            shapes = _shapes(model)
            if model.format == "keras":
                from edgekit.predict.graph import model_inputs

                shapes = {model_inputs(path)[0].name: shapes[""]}
            ratios = bench_against_bare(path, shapes, args.pairs, args.runs)
            loops.append((model.name, path.suffix, shapes, ratios))
            log(f"  {model.name}: {statistics.median(ratios):.3f}")

    columns = ["analyze", "bench", "bench --device", *(f"→ {t}" for t in TARGETS)]
    body = [
        "| model | made by | traits | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    marks = []
    for row in rows:
        m = row["model"]
        cells = [row["cells"].get(c, "—") for c in columns]
        marks += [c for c in cells if c != "—"]
        body.append(f"| {m.name} ({m.path.suffix}) | {m.exported_from} | {', '.join(m.traits) or '—'} | "
                    + " | ".join(cells) + " |")  # fmt: skip
    passed = sum(1 for c in marks if c == "✅")
    body += [
        "",
        f"Cells: {len(marks)}; ✅ {passed} ({100 * passed / max(len(marks), 1):.0f} %), "
        f"❎ {marks.count('❎')}, ❌ {marks.count('❌')}, 💥 {marks.count('💥')} (internal errors or tracebacks).",
        "",
    ]
    for row in rows:
        for note in row["notes"]:
            body.append(f"- {row['model'].name}, {note[:300]}")
    if loops:
        body += [
            "",
            "edgekit's timed loop against a bare `session.run` / `invoke()` loop at the same shape, 1 thread, "
            f"{args.pairs} pairs in alternating order, at least {args.runs} runs a half (about a second's worth; "
            "ratio of p50s; goal 0.97–1.03):",
            "",
            "| model | runtime | shape | median ratio | pairs |",
            "|---|---|---|---|---|",
        ]
        for name, suffix, shapes, ratios in loops:
            shown = ", ".join(f"{k}={'×'.join(map(str, v))}" for k, v in shapes.items())
            pairs = ", ".join(f"{r:.3f}" for r in ratios)
            runtime = "LiteRT" if suffix == ".tflite" else "ONNX Runtime"
            body.append(f"| {name} | {runtime} | {shown} | {statistics.median(ratios):.3f} | {pairs} |")
    published = [r for r in rows if r["model"].name in PUBLISHED_RPI4_MS and r.get("rpi4_ms")]
    if published:
        body += [
            "",
            "keras.applications with default arguments (input (None, None, 3)), converted with `--shape 1,224,224,3`, "
            "predicted for rpi4 at 4 threads:",
            "",
            "| model | predicted rpi4 ms | published ms | error |",
            "|---|---|---|---|",
        ]
        for r in published:
            want = PUBLISHED_RPI4_MS[r["model"].name]
            body.append(
                f"| {r['model'].name} | {r['rpi4_ms']:.1f} | {want:g} | {100 * (r['rpi4_ms'] / want - 1):+.1f} % |"
            )
    torch = [r for r in rows if r["model"].exported_from == "PyTorch" and "tflite" in r.get("converted", {})]
    if torch:
        body += ["", "ONNX → TFLite (onnx2tf) on the PyTorch exports, parity against ONNX Runtime:", ""]
        body += [f"- {r['model'].name}: {r['converted']['tflite'][1]}" for r in torch]
    command = "python benchmarks/realmodels.py" + (f" --only {args.only}" if args.only else "")
    command += " --no-convert" if args.no_convert else ""
    publish("realmodels", "Models as users bring them (issue 14)", command, body, write=not args.no_write)


if __name__ == "__main__":
    main()
