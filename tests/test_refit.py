"""A device correcting its own profile: `bench --record` keeps what it measured, `profiles refit`
folds it into a new profile and says how far off the old one was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.errors import ConfigError, DataError, InputNotFoundError, OutputExistsError
from edgekit.predict import predict
from edgekit.predict.cost.predictor import cpu_seconds, measured_correction
from edgekit.predict.graph import analyze
from edgekit.predict.graph.features import TERMS, Features
from edgekit.predict.profiles import Measurement, load_profile
from edgekit.predict.profiles.measurements import read_runs

PI4 = "Raspberry Pi 4 Model B Rev 1.4"  # what /proc/device-tree/model says on one


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small classifiers of different shape, as a device would bench."""
    import keras

    from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite
    from edgekit.formats import Precision

    folder = tmp_path_factory.mktemp("refit")
    out = []
    for name, width in (("narrow", 8), ("wide", 48)):
        inputs = keras.Input((32, 32, 3))
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(10, activation="softmax")(x)
        out.append(
            keras_to_tflite(keras.Model(inputs, outputs), folder / f"{name}.tflite", TFLiteOptions(Precision.FP32))
        )
    return out


@pytest.fixture
def on_a_pi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("EDGEKIT_MACHINE_NAME", PI4)
    monkeypatch.setenv("EDGEKIT_PROFILE_DIR", str(tmp_path / "profiles"))
    return tmp_path / "profiles"


def test_bench_record_appends_one_line_per_measured_run(cli, models: list[Path], on_a_pi: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "runs.jsonl"
    first = cli(
        "bench", str(models[0]), "--device", "rpi4", "--threads", "1,2", "--runs", "20", "--record", str(record)
    )
    assert first.exit_code == 0, first.stderr
    second = cli("bench", str(models[1]), "--device", "rpi4", "--threads", "1", "--runs", "20", "--record", str(record))
    assert second.exit_code == 0, second.stderr
    runs = read_runs(record)
    assert [(r.model, r.threads) for r in runs] == [("narrow.tflite", 1), ("narrow.tflite", 2), ("wide.tflite", 1)]
    assert all(r.device == "rpi4" and r.engine == "tflite" and r.precision == "fp32" for r in runs)
    assert all(r.latency_ms > 0 and r.predicted_ms and r.features["conv_macs"] > 0 for r in runs)
    assert not list(tmp_path.glob(".runs.jsonl.partial-*"))


def test_record_needs_a_device_that_is_this_machine(cli, models: list[Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "runs.jsonl"
    result = cli("bench", str(models[0]), "--device", "pixel4", "--record", str(record))
    assert result.exit_code == ConfigError.exit_code
    assert "no --device is this machine (pixel4)" in result.stderr
    assert not record.exists()


def _terms(**given: float) -> dict[str, float]:
    return {**dict.fromkeys(TERMS, 0.0), **given}


def _run_line(model: str, latency_ms: float, features: dict[str, float], device: str = "rpi4") -> str:
    return json.dumps(
        {
            "model": model, "engine": "tflite", "precision": "fp32", "threads": 1, "latency_ms": latency_ms,
            "features": features, "measured_on": "2026-12-02", "source": "a test", "device": device,
        }
    )  # fmt: skip


def _features(path: Path) -> dict[str, float]:
    features = Features.from_graph(analyze(path)).to_dict()
    features.pop("precision")
    return features


def test_a_measurement_scales_the_prediction_by_how_far_off_it_was(models: list[Path]) -> None:
    rpi4 = load_profile("rpi4")
    features = _features(models[1])
    x = Features.from_dict({**features, "precision": "fp32"})
    before = cpu_seconds(rpi4, "tflite", "fp32", 1, x)
    measured = Measurement(
        model="wide.tflite", engine="tflite", precision="fp32", threads=1, latency_ms=before * 2000.0,
        features=features, measured_on="2026-12-02", source="a test",
    )  # fmt: skip
    corrected = rpi4.model_copy(update={"measurements": [measured]})
    assert measured_correction(corrected, "cpu", "tflite", "fp32", 1) == (pytest.approx(2.0), 1)
    assert cpu_seconds(corrected, "tflite", "fp32", 1, x) == pytest.approx(2 * before)
    # Another engine, or a processor the measurements are not of, is left as it was.
    assert measured_correction(corrected, "cpu", "onnxruntime", "fp32", 1) is None
    graph = analyze(models[1])
    prediction = predict(graph, corrected, engine="tflite", threads=1)
    assert "corrected ×2.00 by 1 measured on this device" in prediction.basis


def test_refit_writes_a_new_profile_and_reports_held_out_errors(
    cli, models: list[Path], on_a_pi: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "runs.jsonl"
    rpi4 = load_profile("rpi4")
    lines = []
    for path in models:
        features = _features(path)
        x = Features.from_dict({**features, "precision": "fp32"})
        # The device runs both models 1.5× slower than the shipped profile says.
        lines.append(_run_line(path.name, 1.5 * 1000 * cpu_seconds(rpi4, "tflite", "fp32", 1, x), features))
    record.write_text("\n".join(lines) + "\n")
    result = cli("profiles", "refit", "rpi4", "--measurements", str(record), "--name", "rpi4-mine", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == 2
    # Before: 1.5× slower than predicted, so -33 %; each predicted without itself, from the other: right on.
    assert report["median_error_before"] == pytest.approx(1 - 1 / 1.5, abs=1e-3)
    assert [round(r["error_before"], 3) for r in report["rows"]] == [-0.333, -0.333]
    assert [round(r["error_after"], 3) for r in report["rows"]] == [0.0, 0.0]
    mine = load_profile("rpi4-mine")
    assert len(mine.measurements) == 2 and (on_a_pi / "rpi4-mine.yaml").is_file()
    assert load_profile("rpi4").measurements == []  # the shipped profile is untouched
    again = cli("profiles", "refit", "rpi4-mine", "--measurements", str(record), "--name", "rpi4-mine", "--force")
    assert again.exit_code != 0  # runs recorded with rpi4 are not rpi4-mine's
    show = cli("profiles", "show", "rpi4-mine")
    assert "2 measurements on the device" in show.stdout


@pytest.mark.parametrize(
    ("content", "name", "code", "message"),
    [
        (None, "rpi4-mine", InputNotFoundError.exit_code, "does not exist"),
        ("RUN rpi4 lacking", "rpi4-mine", DataError.exit_code, "features: Value error, lacks the cost terms ops"),
        (
            '{"model": "x"}\n',
            "rpi4-mine",
            DataError.exit_code,
            "runs.jsonl:1: not a recorded run: engine: Field required",
        ),
        ("not json\n", "rpi4-mine", DataError.exit_code, "runs.jsonl:1: not a recorded run"),
        ("\n", "rpi4-mine", DataError.exit_code, "holds no runs"),
        ("RUN pixel4", "rpi4-mine", DataError.exit_code, "holds no runs recorded with rpi4 (it has runs of: pixel4)"),
        ("RUN rpi4", "rpi5", ConfigError.exit_code, "rpi5 is a shipped profile"),
        ("RUN rpi4 negative", "rpi4-mine", DataError.exit_code, "cost term ops must be a finite number ≥ 0, got -3.0"),
        (b"\xff\xfe\x00", "rpi4-mine", DataError.exit_code, "is not a measurements file (not UTF-8 text)"),
        ("RUN rpi4", "Mine", ConfigError.exit_code, "lower-case letters"),
    ],
)
def test_refit_bad_input_is_one_line(  # type: ignore[no-untyped-def]
    cli, on_a_pi: Path, tmp_path: Path, content: str | bytes | None, name: str, code: int, message: str
) -> None:
    record = tmp_path / "runs.jsonl"
    if isinstance(content, bytes):
        record.write_bytes(content)
    elif content is not None:
        if content.startswith("RUN "):
            device, _, flaw = content[4:].partition(" ")
            features = _terms(conv_macs=1e6, ops=3)
            if flaw == "lacking":
                del features["ops"]
            elif flaw == "negative":
                features["ops"] = -3.0
            content = _run_line("a.tflite", 1.0, features, device=device) + "\n"
        record.write_text(content)
    result = cli("profiles", "refit", "rpi4", "--measurements", str(record), "--name", name)
    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not on_a_pi.exists() or not list(on_a_pi.iterdir())


def test_refit_refuses_to_overwrite(cli, on_a_pi: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "runs.jsonl"
    record.write_text(_run_line("a.tflite", 1.0, _terms(conv_macs=1e6, ops=3)) + "\n")
    assert cli("profiles", "refit", "rpi4", "--measurements", str(record), "--name", "rpi4-mine").exit_code == 0
    result = cli("profiles", "refit", "rpi4", "--measurements", str(record), "--name", "rpi4-mine")
    assert result.exit_code == OutputExistsError.exit_code and "--force" in result.stderr


def test_a_run_whose_model_is_alone_in_its_group_has_no_held_out_figure(cli, on_a_pi: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "runs.jsonl"
    # One model at two thread counts: leaving its model out leaves nothing to judge it by.
    lines = [json.loads(_run_line("a.tflite", 1.0, _terms(conv_macs=1e6, ops=3))) for _ in range(2)]
    lines[1]["threads"] = 2
    record.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = cli("profiles", "refit", "rpi4", "--measurements", str(record), "--name", "rpi4-mine", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["error_after"] for r in report["rows"]] == [None, None]
    assert report["median_error_after"] is None


def test_record_into_a_folder_is_refused_before_timing(cli, models: list[Path], on_a_pi: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("bench", str(models[0]), "--device", "rpi4", "--record", str(tmp_path))
    assert result.exit_code == 6 and "is a folder" in result.stderr


def test_a_run_recorded_before_a_term_existed_counts_it_as_zero(tmp_path: Path) -> None:
    """A measurements file written by an edgekit without a later cost term (the 8-bit pooling
    outputs) is read, that term zero; one without a term edgekit always had is refused."""
    from edgekit.predict.graph.features import LATER_TERMS

    older = {t: v for t, v in _terms(conv_macs=1e6, ops=10).items() if t != "scalar_pool_outputs"}
    assert "scalar_pool_outputs" in LATER_TERMS
    record = tmp_path / "runs.jsonl"
    record.write_text(_run_line("old.tflite", 1.0, older) + "\n")
    (run,) = read_runs(record)
    assert run.graph_features().scalar_pool_outputs == 0
    assert run.graph_features().conv_macs == 1e6
