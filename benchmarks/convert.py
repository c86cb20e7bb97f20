"""The converter pipeline's figures (issue 3), measured in one run.

    python benchmarks/convert.py [--no-write] [--repeats 3]

1. The five examples (trained at their defaults, seed 0) converted to TFLite, ONNX and OpenVINO
   at fp32: top-1 agreement (classifiers) or relative max error (regression, detector head).
2. digits-cnn int8 in all three formats: accuracy drop in points; TFLite int8 size over fp32.
3. shapes-detector int8 TFLite: mAP@0.5 drop in points (head kept float).
4. MobileNetV2 (weights=None): edgekit's convert wall time over a bare call of the same
   converter on the same saved model, run alternately; the median ratio of ``--repeats`` pairs.

The section between the markers in benchmarks/RESULTS.md is replaced with the new tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.results_file import publish  # noqa: E402
from edgekit.converters.pipeline import ConvertRequest, convert  # noqa: E402
from edgekit.examples import EXAMPLES, train_example  # noqa: E402
from edgekit.formats import FORMATS, Precision, get_format  # noqa: E402

CLASSIFIERS = ("digits-cnn", "iris-mlp", "text-lstm")


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(source: Path, to: str, precision: Precision | None, out: Path, **kwargs) -> dict:
    return convert(
        ConvertRequest(source=source, target=get_format(to), precision=precision, out=out, force=True, **kwargs)
    )


def fp32_matrix(models: dict[str, Path], work: Path) -> list[str]:
    rows = ["| example | format | check | value | floor | pass | notes |", "|---|---|---|---|---|---|---|"]
    for name, folder in models.items():
        for to, fmt in FORMATS.items():
            report = run(folder / "model.keras", to, Precision.FP32, work / f"{name}-fp32{fmt.suffix}")
            if name in CLASSIFIERS:
                check, value, ok = "top-1 agreement", report["parity"]["top1_agreement"], None
                ok = value >= 0.995
                shown, floor = f"{value:.4f}", "≥ 0.995"
            else:
                value = report["parity"]["relative_max_error"]
                ok = value <= 1e-4
                check, shown, floor = "relative max error", f"{value:.2e}", "≤ 1e-4"
            notes = "; ".join(report["notes"])
            if name == "text-lstm" and to == "tflite":
                flex = b"Flex" in Path(report["artifact"]).read_bytes()
                notes = f"{'FLEX OPS PRESENT' if flex else 'builtins only, no Flex op'}; {notes}"
            rows.append(f"| {name} | {to} | {check} | {shown} | {floor} | {'yes' if ok else 'NO'} | {notes} |")
            log(rows[-1])
    return rows


def quantized(models: dict[str, Path], work: Path) -> list[str]:
    rows = [
        "| model | format | precision | metric source → artifact | drop (pt) | budget | pass | size bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    digits = models["digits-cnn"] / "model.keras"
    sizes = {}
    for to, fmt in FORMATS.items():
        for precision in (Precision.FP32, Precision.INT8):
            report = run(digits, to, precision, work / f"digits-{precision.value}{fmt.suffix}")
            sizes[(to, precision)] = report["size_bytes"]
            if precision is Precision.INT8:
                m = report["metric"]
                rows.append(
                    f"| digits-cnn | {to} | int8 | {m['source']:.4f} → {m['artifact']:.4f} | {m['drop']:.2f} | ≤ 0.5 "
                    f"| {'yes' if m['drop'] <= 0.5 else 'NO'} | {report['size_bytes']} |"
                )
                log(rows[-1])
    ratio = sizes[("tflite", Precision.INT8)] / sizes[("tflite", Precision.FP32)]
    shapes = models["shapes-detector"] / "model.keras"
    report = run(shapes, "tflite", Precision.INT8, work / "shapes-int8.tflite")
    m = report["metric"]
    rows.append(
        f"| shapes-detector | tflite | int8 (float head) | {m['source']:.4f} → {m['artifact']:.4f} | {m['drop']:.2f} "
        f"| ≤ 2 | {'yes' if m['drop'] <= 2 else 'NO'} | {report['size_bytes']} |"
    )
    log(rows[-1])
    rows += [
        "",
        f"digits-cnn TFLite int8 size ÷ fp32 size: {sizes[('tflite', Precision.INT8)]} ÷ "
        f"{sizes[('tflite', Precision.FP32)]} = **{ratio:.3f}** (floor ≤ 0.30: {'yes' if ratio <= 0.30 else 'NO'})",
    ]
    return rows


def bare_conversion(to: str, source: Path, out: Path) -> None:
    """The same converter edgekit calls, called directly: load the saved model, convert, write."""
    import keras

    model = keras.models.load_model(source, compile=False)
    if to == "tflite":
        import tensorflow as tf

        out.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    elif to == "onnx":
        import tensorflow as tf
        import tf2onnx

        signature = [tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=t.name.split(":")[0]) for t in model.inputs]
        tf2onnx.convert.from_keras(model, input_signature=signature, opset=17, output_path=str(out))
    else:
        import openvino as ov

        ov.save_model(ov.convert_model(model), str(out), compress_to_fp16=False)


def timed_process(command: list[str]) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def mobilenet_overhead(work: Path, repeats: int) -> list[str]:
    """Pairs run alternately: the `edgekit convert` command against a script that only calls the
    converter (both whole processes, as a user runs them), and the same two in this process
    (the converter alone against edgekit's load + convert + checks + manifest)."""
    import keras

    source = work / "mobilenet_v2.keras"
    keras.applications.MobileNetV2(weights=None).save(source)
    rows = [
        "| format | `edgekit convert` s (median) | bare script s (median) | process ratio per pair "
        "| **median process ratio** | ≤ 1.25 | in-process ratio per pair | median in-process ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for to, fmt in FORMATS.items():
        ours, bare, ratios, inner = [], [], [], []
        for i in range(repeats):
            ours.append(
                timed_process(
                    [
                        sys.executable,
                        "-m",
                        "edgekit",
                        "convert",
                        str(source),
                        "--to",
                        to,
                        "--force",
                        "--json",
                        "--out",
                        str(work / f"mnv2-cli{fmt.suffix}"),
                    ]
                )
            )
            bare.append(
                timed_process(
                    [sys.executable, __file__, "--bare", to, str(source), str(work / f"mnv2-bare{fmt.suffix}")]
                )
            )
            ratios.append(ours[-1] / bare[-1])
            start = time.perf_counter()
            run(source, to, Precision.FP32, work / f"mnv2-edgekit{fmt.suffix}")
            mine = time.perf_counter() - start
            start = time.perf_counter()
            bare_conversion(to, source, work / f"mnv2-bare{i}{fmt.suffix}")
            inner.append(mine / (time.perf_counter() - start))
            log(f"MobileNetV2 → {to}: process {ours[-1]:.1f} s vs {bare[-1]:.1f} s; in-process ratio {inner[-1]:.2f}")
        median = statistics.median(ratios)
        rows.append(
            f"| {to} | {statistics.median(ours):.1f} | {statistics.median(bare):.1f} | "
            f"{', '.join(f'{r:.2f}' for r in ratios)} | **{median:.2f}** | {'yes' if median <= 1.25 else 'NO'} | "
            f"{', '.join(f'{r:.2f}' for r in inner)} | {statistics.median(inner):.2f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="edgekit/bare pairs per format for MobileNetV2")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    parser.add_argument("--only-mobilenet", action="store_true", help="measure only the MobileNetV2 overhead")
    parser.add_argument("--bare", nargs=3, metavar=("TO", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_conversion(args.bare[0], Path(args.bare[1]), Path(args.bare[2]))
        return

    with tempfile.TemporaryDirectory(prefix="edgekit-bench-convert-") as tmp:
        work = Path(tmp)
        if args.only_mobilenet:
            overhead = mobilenet_overhead(work, args.repeats)
            print("\n".join(overhead))
            return
        models = {}
        for name in EXAMPLES:
            log(f"training {name} (defaults, seed 0)")
            models[name] = Path(train_example(name, work / name, seed=0)["out"])
        matrix = fp32_matrix(models, work)
        quant = quantized(models, work)
        overhead = mobilenet_overhead(work, args.repeats)

    command = "python benchmarks/convert.py" + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
    body = [
        "All five examples at fp32 (checked with each format's own runtime against Keras):",
        "",
        *matrix,
        "",
        "Quantized (accuracy / mAP@0.5 on the example's held-out test split):",
        "",
        *quant,
        "",
        "MobileNetV2 (weights=None): `edgekit convert` (load, convert, parity on 8 random inputs, manifest) "
        "against a script that only loads the model and calls the same converter, both as whole processes "
        "(Python and TensorFlow start-up included, as a user runs them), run alternately. The in-process "
        "columns time the same work without start-up: they show what edgekit's checks cost on their own.",
        "",
        *overhead,
    ]
    publish("convert", "Converter pipeline (issue 3)", command, body, write=not args.no_write)


if __name__ == "__main__":
    main()
