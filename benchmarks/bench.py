"""`edgekit bench` against the runtimes' own benchmark tools (issue 4), side by side in one run.

    python benchmarks/bench.py [--pairs 5] [--runs 200] [--no-write]

1. MobileNetV2 (weights=None) fp32 TFLite, 1 thread: `edgekit bench` median ÷ `litert-benchmark`
   median; the same model as OpenVINO IR against `benchmark_app -api sync -hint none -nstreams 1
   -nthreads 1`; as ONNX against a bare `session.run` loop. Each pair runs alternately, as
   separate processes; the figure is the median of the per-pair ratios (goal 0.97–1.03).
2. digits-cnn int8 TFLite: edgekit's per-call harness overhead over a bare `invoke()` loop, in
   microseconds (goal ≤ 20 µs).
3. The same `edgekit bench` twice in a row (1000 runs each), ``--pairs`` times: how far apart the
   two medians are, per pair and the median gap (goal ≤ 5 %).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
BIN = Path(sys.executable).parent

from benchmarks.results_file import publish  # noqa: E402


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def sh(command: list[str]) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-1500:]}")
    return done.stdout


def edgekit_median(model: Path, runs: int, warmup: int) -> float:
    out = sh(
        [
            sys.executable,
            "-m",
            "edgekit",
            "bench",
            str(model),
            "--threads",
            "1",
            "--runs",
            str(runs),
            "--warmup",
            str(warmup),
            "--json",
        ]
    )
    return json.loads(out)["results"][0]["measured"]["p50_ms"]


def litert_median(model: Path, runs: int, warmup: int, folder: Path) -> float:
    result = folder / "litert.json"
    sh(
        [
            str(BIN / "litert-benchmark"),
            "--model",
            str(model),
            "--num_threads",
            "1",
            "--num_runs",
            str(runs),
            "--warmup_runs",
            str(warmup),
            "--result_json",
            str(result),
        ]
    )
    data = json.loads(result.read_text())
    found = _find_key(data, "median_ms")
    if found is None:
        raise SystemExit(f"litert-benchmark wrote no median_ms: {data}")
    return float(found)


def _find_key(data: object, key: str) -> object | None:
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for value in data.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def benchmark_app_median(model: Path, runs: int) -> float:
    # -shape: the IR has a dynamic batch; edgekit's OpenVINO runtime fixes it to 1 the same way.
    # -infer_precision f32: on AMX/AVX512-BF16 CPUs the plugin would otherwise run fp32 in bf16.
    command = (
        f"-m {model} -d CPU -api sync -hint none -nstreams 1 -nthreads 1 -niter {runs} "
        "-shape [1,224,224,3] -infer_precision f32"
    )
    out = sh([str(BIN / "benchmark_app"), *command.split()])
    match = re.search(r"Median:\s+([\d.]+)\s*ms", out)
    if not match:
        raise SystemExit(f"benchmark_app printed no median:\n{out[-2000:]}")
    return float(match.group(1))


BARE_ORT = """
import sys, time, statistics, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = {i.name: np.random.default_rng(0).uniform(0, 1, (1, *i.shape[1:])).astype(np.float32)}
names = [o.name for o in s.get_outputs()]
for _ in range(int(sys.argv[3])): s.run(names, x)
t = []
for _ in range(int(sys.argv[2])):
    a = time.perf_counter_ns(); s.run(names, x); t.append((time.perf_counter_ns() - a) / 1e6)
print(statistics.median(t))
"""


def bare_ort_median(model: Path, runs: int, warmup: int) -> float:
    return float(sh([sys.executable, "-c", BARE_ORT, str(model), str(runs), str(warmup)]).strip().splitlines()[-1])


def comparisons(work: Path, pairs: int, runs: int, warmup: int) -> list[str]:
    import keras

    from edgekit.converters.pipeline import ConvertRequest, convert
    from edgekit.formats import Precision, get_format

    source = work / "mobilenet_v2.keras"
    keras.applications.MobileNetV2(weights=None).save(source)
    models = {}
    for to in ("tflite", "openvino", "onnx"):
        fmt = get_format(to)
        report = convert(
            ConvertRequest(source=source, target=fmt, precision=Precision.FP32, out=work / f"mnv2{fmt.suffix}")
        )
        models[to] = Path(report["artifact"])
    references = {
        "tflite": ("litert-benchmark", lambda: litert_median(models["tflite"], runs, warmup, work)),
        "openvino": (
            "benchmark_app -api sync -hint none -nstreams 1 -nthreads 1",
            lambda: benchmark_app_median(models["openvino"], runs),
        ),
        "onnx": ("bare session.run loop", lambda: bare_ort_median(models["onnx"], runs, warmup)),
    }
    rows = [
        "| model (1 thread) | reference | edgekit median ms | reference median ms | ratio per pair "
        "| **median ratio** | 0.97–1.03 |",
        "|---|---|---|---|---|---|---|",
    ]
    for to, (name, reference) in references.items():
        ours, theirs = [], []
        for _ in range(pairs):
            ours.append(edgekit_median(models[to], runs, warmup))
            theirs.append(reference())
            log(f"{to}: edgekit {ours[-1]:.3f} ms, {name} {theirs[-1]:.3f} ms")
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        median = statistics.median(ratios)
        rows.append(
            f"| MobileNetV2 {to} fp32 | {name} | {statistics.median(ours):.3f} | {statistics.median(theirs):.3f} | "
            f"{', '.join(f'{r:.3f}' for r in ratios)} | **{median:.3f}** "
            f"| {'yes' if 0.97 <= median <= 1.03 else 'NO'} |"
        )
    return rows


def harness_overhead(work: Path, pairs: int) -> list[str]:
    """edgekit's timed call against a bare invoke() loop on the same interpreter settings, in one process."""
    from edgekit.bench import BenchSettings, measure
    from edgekit.converters.pipeline import ConvertRequest, convert
    from edgekit.examples import train_example
    from edgekit.formats import Precision, get_format
    from edgekit.runtimes import load_runtime
    from edgekit.runtimes.tflite import interpreter_class

    folder = Path(train_example("digits-cnn", work / "digits", seed=0)["out"])
    model = Path(
        convert(ConvertRequest(source=folder / "model.keras", target=get_format("tflite"), precision=Precision.INT8))[
            "artifact"
        ]
    )
    runs = 5000
    deltas, ours_us, bare_us = [], [], []
    for _ in range(pairs):
        measured = measure(lambda: load_runtime(model, "tflite", threads=1), BenchSettings(runs=runs, warmup=200))
        interpreter = interpreter_class()(model_path=str(model), num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], (__import__("numpy").zeros(detail["shape"], detail["dtype"])))
        invoke = interpreter.invoke
        for _ in range(200):
            invoke()
        start = time.perf_counter_ns()
        for _ in range(runs):
            invoke()
        bare = (time.perf_counter_ns() - start) / runs / 1000
        ours = measured["mean_ms"] * 1000
        ours_us.append(ours)
        bare_us.append(bare)
        deltas.append(ours - bare)
        log(f"digits int8: edgekit mean {ours:.2f} µs, bare invoke loop {bare:.2f} µs")
    overhead = statistics.median(deltas)
    return [
        "| model | edgekit mean µs/call (median) | bare invoke() loop µs/call (median) | overhead per pair µs "
        "| **median overhead µs** | ≤ 20 µs |",
        "|---|---|---|---|---|---|",
        f"| digits-cnn int8 TFLite, 1 thread | {statistics.median(ours_us):.2f} | {statistics.median(bare_us):.2f} | "
        f"{', '.join(f'{d:.2f}' for d in deltas)} | **{overhead:.2f}** | {'yes' if overhead <= 20 else 'NO'} |",
    ]


def repeatability(work: Path, pairs: int, runs: int, warmup: int) -> list[str]:
    """The same `edgekit bench` twice in a row, ``pairs`` times: the gap between the two medians."""
    model = work / "mnv2.tflite"
    runs = max(runs, 1000)  # about 10 s a measurement: long enough to ride out this machine's neighbours
    gaps, firsts, seconds = [], [], []
    for _ in range(pairs):
        first = edgekit_median(model, runs, warmup)
        second = edgekit_median(model, runs, warmup)
        firsts.append(first)
        seconds.append(second)
        gaps.append(abs(first - second) / min(first, second) * 100)
        log(f"repeat: {first:.3f} ms then {second:.3f} ms ({gaps[-1]:.2f} %)")
    gap = statistics.median(gaps)
    return [
        "| model | first median ms (median) | second median ms (median) | gap per pair | **median gap** | ≤ 5 % |",
        "|---|---|---|---|---|---|",
        f"| MobileNetV2 fp32 TFLite, 1 thread, {runs} runs | {statistics.median(firsts):.3f} | "
        f"{statistics.median(seconds):.3f} | {', '.join(f'{g:.2f} %' for g in gaps)} | **{gap:.2f} %** "
        f"| {'yes' if gap <= 5 else 'NO'} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5, help="alternating edgekit/reference pairs per comparison")
    parser.add_argument("--runs", type=int, default=200, help="timed inferences per measurement")
    parser.add_argument("--warmup", type=int, default=20, help="untimed inferences first")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    parser.add_argument("--only-repeat", action="store_true", help="measure only the repeatability")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-bench-") as tmp:
        work = Path(tmp)
        if args.only_repeat:
            comparisons(work, 1, 10, 1)  # builds mnv2.tflite
            print("\n".join(repeatability(work, args.pairs, args.runs, args.warmup)))
            return
        compare = comparisons(work, args.pairs, args.runs, args.warmup)
        overhead = harness_overhead(work, args.pairs)
        repeat = repeatability(work, args.pairs, args.runs, args.warmup)
    command = f"python benchmarks/bench.py --pairs {args.pairs} --runs {args.runs} --warmup {args.warmup}"
    body = [*compare, "", *overhead, "", *repeat]
    publish("bench", "Runtimes and `edgekit bench` (issue 4)", command, body, write=not args.no_write)


if __name__ == "__main__":
    main()
