"""Models as users bring them: real third-party models (tools/corpus.py, fetched with pip in the
set-up and cached) through analyze, bench, convert and run, and every bad --shape."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import ConfigError, ModelError, UnknownNameError
from tools.corpus import CorpusModel, corpus


@pytest.fixture(scope="session")
def models() -> dict[str, CorpusModel]:
    try:
        found = corpus(keras=False)
    except subprocess.CalledProcessError as exc:  # pip could not reach the registry
        pytest.fail(f"could not fetch the model corpus with pip: {exc.stderr!r}")
    return {m.name: m for m in found}


def one_line(result, code: int) -> str:
    """The error: one line, after at most edgekit's own progress lines (convert says what it loads)."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("edgekit: error: ")]
    assert errors == lines[-1:], result.stderr
    assert all(line.startswith("loading ") for line in lines[:-1]), result.stderr
    assert "Traceback" not in result.stderr and ".edgekit-" not in result.stderr
    return lines[-1]


def test_the_corpus_is_real_and_varied(models) -> None:
    assert len(models) >= 15
    made_by = {m.exported_from for m in models.values()}
    assert {"PyTorch", "PaddlePaddle (paddle2onnx)", "MediaPipe (TensorFlow)"} <= made_by
    assert {m.path.suffix for m in models.values()} >= {".tflite", ".onnx"}


def test_a_dynamic_model_is_priced_at_the_size_given_and_never_at_one_made_up(cli, models) -> None:
    det = models["ch_PP-OCRv4_det"].path
    line = one_line(cli("analyze", str(det)), ConfigError.exit_code)
    assert "input 'x'" in line and "dynamic dimensions 2, 3" in line and "--shape x=1,3," in line
    document = json.loads(cli("analyze", str(det), "--shape", "x=1,3,640,640", "--json").stdout)
    assert document["macs"] == pytest.approx(2.30e9, rel=0.01)  # 1.16 MMACs at the placeholder size
    assert document["inputs"] == [
        {"name": "x", "shape": [1, 3, 640, 640], "dtype": "float32", "origin": "--shape",
         "declared": [None, 3, None, None], "batch_defaulted": False}
    ]  # fmt: skip


def test_bench_records_the_shapes_it_ran(cli, models, tmp_path) -> None:
    cls = models["ch_ppocr_mobile_v2.0_cls"].path
    result = cli("bench", str(cls), "--shape", "x=1,3,48,192", "--runs", "5", "--json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)["results"]
    assert [(i["name"], i["shape"], i["origin"]) for i in row["inputs"]] == [("x", [1, 3, 48, 192], "--shape")]
    assert row["inputs"][0]["values"].startswith("random floats uniform in [0, 1)")
    table = cli("bench", str(cls), "--shape", "1,3,48,192", "--runs", "5", "--csv", str(tmp_path / "b.csv"))
    assert "inputs, ch_ppocr_mobile_v2.0_cls_infer.onnx: x (1, 3, 48, 192) float32 from --shape" in table.stdout
    assert "x=1x3x48x192" in (tmp_path / "b.csv").read_text()


def test_scalars_and_states_come_from_the_users_arrays(cli, models) -> None:
    vad = models["silero_vad_16k_op15"]
    result = cli("bench", str(vad.path), "--data", str(vad.data), "--runs", "5", "--json")
    assert result.exit_code == 0, result.stderr
    inputs = {
        i["name"]: (i["shape"], i["dtype"], i["origin"]) for i in json.loads(result.stdout)["results"][0]["inputs"]
    }
    assert inputs == {
        "input": ([1, 512], "float32", "data"),
        "state": ([2, 1, 128], "float32", "data"),
        "sr": ([], "int64", "data"),
    }


@pytest.mark.parametrize(
    ("shape", "code", "says"),
    [
        ("xs=1,3,48,192", UnknownNameError.exit_code, "unknown input 'xs'; did you mean 'x'?"),
        ("x=1,3,48", ConfigError.exit_code, "has 3 dimensions; input 'x' has 4"),
        ("x=1,3,0,192", ConfigError.exit_code, "every dimension must be at least 1, got 0"),
        ("x=1,3,h,192", ConfigError.exit_code, "'h' is not a whole number"),
        ("x=1,4,48,192", ConfigError.exit_code, "dimension 1 of input 'x' is fixed at 3 by the model, not 4"),
    ],
)
def test_a_wrong_shape_is_one_line(cli, models, shape: str, code: int, says: str) -> None:
    line = one_line(cli("bench", str(models["ch_ppocr_mobile_v2.0_cls"].path), "--shape", shape), code)
    assert says in line


def test_shape_and_data_that_disagree_are_one_line(cli, models) -> None:
    vad = models["silero_vad_16k_op15"]
    line = one_line(cli("bench", str(vad.path), "--data", str(vad.data), "--shape", "input=1,256"), 3)
    assert "--shape input=1,256 but the data holds samples of (1, 512)" in line


def test_an_output_sized_by_the_values_is_benched_and_said(cli, tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["where"])],
        "nonzero",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8])],
        [helper.make_tensor_value_info("where", TensorProto.INT64, [1, "found"])],
    )
    path = tmp_path / "nonzero.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    result = cli("bench", str(path), "--runs", "5", "--json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)["results"]
    assert row["value_dependent_outputs"] == ["where"]
    assert "outputs sized by the input values: where" in cli("bench", str(path), "--runs", "5").stdout


def test_a_string_input_is_one_line(cli, tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])],
        "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [1])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, [1])],
    )
    path = tmp_path / "strings.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    assert "string tensor" in one_line(cli("bench", str(path)), ModelError.exit_code)


def test_onnx_to_tflite_keeps_parity_and_records_the_layout(cli, models, tmp_path) -> None:
    out = tmp_path / "cls.tflite"
    cls = models["ch_ppocr_mobile_v2.0_cls"].path
    result = cli("convert", str(cls), "--to", "tflite", "--shape", "x=1,3,48,192", "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["parity"]["relative_max_error"] <= 1e-4 and report["steps"] == ["onnx_to_tflite"]
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert manifest["layout"]["inputs"] == {"x": [0, 2, 3, 1]}  # NCHW → NHWC, as onnx2tf lays it out
    assert manifest["inputs"][0]["shape"] == [1, 48, 192, 3] and not manifest["dynamic_inputs"]
    assert cli("bench", str(out), "--runs", "5").exit_code == 0  # static now: no --shape needed


def test_an_adopted_tflite_runs_in_the_daemon(cli, models, tmp_path) -> None:
    """A pretrained face detector nobody here wrote: adopted (checked, given a manifest) and run on
    a recording by the daemon, its outputs published raw over MQTT."""
    import shutil
    import sys

    from edgekit.examples.shapes_video import write_shapes_video
    from tools.mqtt_brokers import Mosquitto, Recorder

    face = Path(shutil.copy(models["face_detection_short_range"].path, tmp_path / "face.tflite"))
    refused = cli("run", "--model", str(face), "--source", "0")
    assert "edgekit convert face.tflite --to tflite --image-size" in one_line(refused, ConfigError.exit_code)
    adopted = cli("convert", str(face), "--to", "tflite", "--image-size", "128x128", "--color", "rgb",
                  "--scale", "0.00392", "--task", "raw", "--json")  # fmt: skip
    assert adopted.exit_code == 0, adopted.stderr
    assert json.loads(adopted.stdout)["adopted"] and face.exists()
    video = write_shapes_video(tmp_path / "v.avi", frames=20, width=320, height=240)
    broker = Mosquitto(tmp_path / "broker").start()
    recorder = Recorder(broker.port, "face")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgekit", "run", "--model", str(face), "--source", str(video),
             "--broker", f"mqtt://127.0.0.1:{broker.port}", "--device-id", "face",
             "--buffer", str(tmp_path / "o.sqlite")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert recorder.wait_for(lambda r: len(r.results()) == 20, timeout=20)
    finally:
        recorder.close()
        broker.stop()
    predictions = recorder.results()[0]["predictions"]
    assert [p["output"] for p in predictions] == ["regressors", "classificators"]
    assert predictions[0]["shape"] == [1, 896, 16] and len(predictions[0]["values"]) == 64
    assert predictions[0]["truncated"] is True


def test_keras_with_dynamic_height_and_width(cli, tmp_path) -> None:
    import keras

    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))
    source = tmp_path / "dyn.keras"
    model.save(source)
    line = one_line(cli("convert", str(source), "--to", "tflite"), ConfigError.exit_code)
    assert "dynamic dimensions 1, 2" in line and "--shape image=1,224,224,3" in line
    np.savez(tmp_path / "eval.npz", image=np.random.default_rng(0).uniform(0, 1, (4, 32, 40, 3)).astype("float32"))
    kept = cli("convert", str(source), "--to", "tflite", "--eval", str(tmp_path / "eval.npz"), "--json")
    assert kept.exit_code == 0, kept.stderr
    artifact = Path(json.loads(kept.stdout)["artifact"])
    manifest = json.loads(Path(str(artifact) + ".manifest.json").read_text())
    assert manifest["dynamic_inputs"] and manifest["inputs"][0]["shape"] == [1, 32, 40, 3]
    # The dynamic artifact runs at the size its manifest recorded, and says so.
    (row,) = json.loads(cli("bench", str(artifact), "--runs", "5", "--json").stdout)["results"]
    assert row["inputs"][0]["shape"] == [1, 32, 40, 3] and row["inputs"][0]["origin"] == "manifest"
    fixed = cli("convert", str(source), "--to", "tflite", "--shape", "1,64,64,3", "--out", str(tmp_path / "f.tflite"),
                "--json")  # fmt: skip
    assert fixed.exit_code == 0, fixed.stderr
    manifest = json.loads((tmp_path / "f.tflite.manifest.json").read_text())
    assert not manifest["dynamic_inputs"] and manifest["inputs"][0]["declared"] == [1, 64, 64, 3]


def test_no_prediction_is_below_the_devices_floor(models) -> None:
    """MACs ÷ (threads × clock × MACs per cycle), and the weights at the memory bandwidth: a bound
    no fit may cross, on every shipped profile and runtime."""
    from edgekit.predict import physical_floor, predict
    from edgekit.predict.graph import analyze
    from edgekit.predict.profiles import load_profile, shipped_profile_names

    graphs = {
        "tflite": analyze(models["face_landmark"].path),
        "onnxruntime": analyze(models["ch_PP-OCRv4_det"].path, "onnxruntime", {"x": (1, 3, 320, 320)}),
    }
    checked = 0
    for name in shipped_profile_names():
        profile = load_profile(name)
        for spec in profile.runtimes:
            graph = graphs.get(spec.engine)
            if graph is None:
                continue
            prediction = predict(graph, profile, engine=spec.engine, runtime=spec.name)
            threads = prediction.threads or 1
            floor, _ = physical_floor(graph, profile, prediction.processor, prediction.precision, threads)
            assert prediction.latency_ms >= floor * 1000 * 0.999, (name, spec.name)
            assert prediction.low_ms >= floor * 1000 * 0.999, (name, spec.name)
            checked += 1
    assert checked >= 5
