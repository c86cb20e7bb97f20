"""`edgekit compare`: server over real HTTP against edge artifacts, the report, and each bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from edgekit.compare.link import BreakEven, Link
from edgekit.converters.pipeline import ConvertRequest, convert
from edgekit.errors import ConfigError
from edgekit.formats import Precision, get_format
from edgekit.serve import tfserving
from edgekit.serve.app import create_app
from edgekit.serve.model import ServedModel
from edgekit.serve.server import BackgroundServer

QUICK = ("--requests", "20", "--runs", "20", "--limit", "150")


@pytest.fixture(scope="module")
def digits(trained, tmp_path_factory) -> dict[str, Path]:
    """The quickly trained digits example with its int8 TFLite and fp32 ONNX artifacts beside it."""
    folder = tmp_path_factory.mktemp("compare") / "digits"
    shutil.copytree(trained["digits-cnn"], folder)
    made = {"keras": folder / "model.keras", "data": folder / "data.npz"}
    for to, precision in (("tflite", Precision.INT8), ("onnx", Precision.FP32)):
        made[to] = Path(
            convert(ConvertRequest(source=made["keras"], target=get_format(to), precision=precision))["artifact"]
        )
    return made


@pytest.fixture(scope="module")
def digits_server(digits):
    served = ServedModel.load(digits["keras"], "digits")
    with BackgroundServer(create_app({"digits": served})) as running:
        yield f"{running.url}/v1/models/digits"
    served.close()


def test_local_keras_against_two_edge_artifacts_with_report(cli, digits, tmp_path) -> None:
    report = tmp_path / "out" / "compare.html"
    result = cli(
        "compare", "--server", str(digits["keras"]), "--edge", str(digits["tflite"]), str(digits["onnx"]),
        "--data", str(digits["data"]), "--device", "rpi4", "--rtt", "40", "--uplink", "5",
        "--report", str(report), "--json", *QUICK,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert {"server", "edge", "agreement", "report"} <= set(document)
    assert document["report"] == str(report) and report.is_file()
    assert oct(report.stat().st_mode & 0o777) == "0o644"
    server = document["server"]
    assert server["local"] and server["size_bytes"] > 0
    latency = server["latency"]
    # The emulated link adds the RTT and the request's bytes at 5 Mbit/s to every measured request.
    transfer = latency["request_bytes"] * 8 / 5e6 * 1e3
    assert latency["link"]["transfer_ms"] == pytest.approx(transfer, rel=1e-3)
    assert latency["with_link"]["p50_ms"] == pytest.approx(latency["measured"]["p50_ms"] + 40 + transfer, rel=0.05)
    tflite, onnx = document["edge"]
    assert tflite["quality"]["top1_agreement"] >= 0.9
    assert onnx["quality"]["top1_agreement"] == 1.0 and onnx["quality"]["max_abs_error"] < 1e-3
    metric = tflite["quality"]["metric"]
    assert metric["name"] == "accuracy"
    assert metric["drop"] == pytest.approx((metric["server"] - metric["edge"]) * 100, abs=1e-3)
    assert tflite["latency"]["device"]["latency_ms"] > 0 and tflite["latency"]["compared_basis"] == "predicted on rpi4"
    assert len(tflite["quality"]["drift"]["classes"]) == 10
    assert np.asarray(tflite["quality"]["drift"]["difference"]).sum() == 0  # moves between classes, same totals
    assert document["agreement"] == {"model_int8.tflite": tflite["quality"]["top1_agreement"], "model.onnx": 1.0}
    html = report.read_text()
    for heading in ("Where the edge wins", "Per-class drift", "Break-even", "Size and memory"):
        assert heading in html
    assert html.count("data:image/png;base64,") >= 2 and "<script" not in html and "http://cdn" not in html
    # TensorFlow was loaded in this process before the server model: its memory line says so, not "0 MB".
    assert server["framework_preloaded"] and "MB to load (TensorFlow was in memory already)" in html
    assert "<td>0 MB to load</td>" not in html


def test_server_url_and_human_output(cli, digits, digits_server) -> None:
    result = cli(
        "compare", "--server", digits_server, "--edge", str(digits["tflite"]), "--data", str(digits["data"]),
        "--rtt", "25", *QUICK,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "model_int8.tflite: the edge answers sooner" in result.stdout
    assert "ms (link included)" in result.stdout and "+ link" not in result.stdout


def test_break_even_chart_speaks_of_a_crossing_only_where_there_is_one() -> None:
    from edgekit.compare.charts import break_even_title

    assert break_even_title([]).startswith("No break-even: the edge answers sooner at every round-trip time")
    assert "above the crossing" in break_even_title([12.5])


def test_break_even_crossover_and_verdicts() -> None:
    even = BreakEven(server_ms=3.0, transfer_ms=2.0, edge_ms=25.0)
    assert even.crossover_rtt_ms == pytest.approx(20.0)
    assert even.server_at(20.0) == pytest.approx(25.0)
    assert "at 40 ms the edge wins" in even.verdict(40)
    assert "at 10 ms the server wins" in even.verdict(10)
    assert BreakEven(3.0, 2.0, 1.0).crossover_rtt_ms is None
    assert Link(rtt_ms=10, uplink_mbps=8, downlink_mbps=80).added_ms(10_000, 1_000) == pytest.approx(10 + 10 + 0.1)
    with pytest.raises(ConfigError, match="--uplink must be positive"):
        Link(uplink_mbps=0).validate()


def test_server_down_is_one_line(cli, digits) -> None:
    result = cli(
        "compare", "--server", "http://127.0.0.1:9/v1/models/digits", "--edge", str(digits["tflite"]),
        "--data", str(digits["data"]),
    )  # fmt: skip
    assert result.exit_code == 17
    assert "cannot be reached" in result.stderr and "edgekit serve" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _fake_server(predict_answer: tuple[int, object]) -> FastAPI:
    """A server that describes the digits signature but answers predict as told."""
    from edgekit.runtimes.base import TensorSpec

    app = FastAPI()
    image = TensorSpec("image", (None, 28, 28, 1), "float32")
    probabilities = TensorSpec("probabilities", (None, 10), "float32")

    @app.get("/v1/models/digits")
    def status() -> dict:
        return tfserving.status_document()

    @app.get("/v1/models/digits/metadata")
    def metadata() -> dict:
        return tfserving.metadata_document("digits", [image], [probabilities])

    @app.post("/v1/models/{target}")
    def predict(target: str) -> JSONResponse:
        code, body = predict_answer
        return JSONResponse(body, status_code=code)

    return app


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ((500, {"error": "out of memory"}), "answered 500: out of memory"),
        ((200, {"predictions": [[0.1] * 10]}), "answered 1 predictions for 32 instances"),
        ((200, {"outputs": []}), "answered no predictions"),
    ],
)
def test_server_answering_errors_or_wrong_shapes(cli, digits, answer, says) -> None:
    with BackgroundServer(_fake_server(answer)) as fake:
        result = cli(
            "compare", "--server", f"{fake.url}/v1/models/digits", "--edge", str(digits["tflite"]),
            "--data", str(digits["data"]),
        )  # fmt: skip
    assert result.exit_code == 17, result.stderr
    assert says in result.stderr


def test_unknown_model_on_a_real_server(cli, digits, digits_server) -> None:
    url = digits_server.replace("/digits", "/nope")
    result = cli("compare", "--server", url, "--edge", str(digits["tflite"]), "--data", str(digits["data"]))
    assert result.exit_code == 17 and "answered 404" in result.stderr


def test_edge_artifact_whose_inputs_do_not_match_the_data(cli, digits, trained, tmp_path) -> None:
    iris = convert(
        ConvertRequest(source=trained["iris-mlp"] / "model.keras", target=get_format("tflite"),
                       precision=Precision.FP32, out=tmp_path / "iris.tflite")
    )["artifact"]  # fmt: skip
    result = cli("compare", "--server", str(digits["keras"]), "--edge", iris, "--data", str(digits["data"]))
    assert result.exit_code == 8
    assert "edge artifact iris.tflite" in result.stderr and "expects" in result.stderr


def test_data_without_labels_leaves_metric_rows_out_and_says_why(cli, digits, tmp_path) -> None:
    with np.load(digits["data"]) as data:
        unlabelled = tmp_path / "unlabelled.npz"
        np.savez(unlabelled, image=data["test/image"][:40])
    report = tmp_path / "r.html"
    result = cli(
        "compare", "--server", str(digits["keras"]), "--edge", str(digits["tflite"]), "--data", str(unlabelled),
        "--report", str(report), "--json", *QUICK,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (edge,) = json.loads(result.stdout)["edge"]
    assert edge["quality"]["metric"] is None and edge["quality"]["drift"] is None
    assert edge["quality"]["top1_agreement"] is not None
    assert any("no labels" in note for note in edge["quality"]["notes"])
    assert "no labels" in report.read_text()


def test_bad_flags_fail_before_any_work(cli, digits, tmp_path) -> None:
    existing = tmp_path / "exists.html"
    existing.write_text("keep me")
    base = ("compare", "--server", str(digits["keras"]), "--edge", str(digits["tflite"]), "--data", str(digits["data"]))
    assert cli(*base, "--report", str(existing)).exit_code == 7
    assert existing.read_text() == "keep me"
    assert cli(*base, "--rtt", "-1").exit_code == 3
    assert cli(*base, "--device", "rpi44").exit_code == 4
    not_url = cli("compare", "--server", "http://host/predict", "--edge", str(digits["tflite"]), "--data", "x.npz")
    assert not_url.exit_code == 3 and "/v1/models/NAME" in not_url.stderr
    assert cli(*base[:5], "--edge", str(tmp_path / "missing.tflite"), "--data", str(digits["data"])).exit_code == 5


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.ci
def test_report_renders_in_headless_chromium_without_console_errors(cli, digits, tmp_path) -> None:
    browser = _chromium()
    # Like the Mosquitto the daemon tests need, a missing browser is a failure, never a skip.
    assert browser is not None, "Chromium is missing: apt-get install chromium (.ci/run installs it)"
    from playwright.sync_api import sync_playwright

    report = tmp_path / "compare.html"
    result = cli(
        "compare", "--server", str(digits["keras"]), "--edge", str(digits["tflite"]), "--data", str(digits["data"]),
        "--device", "pixel4", "--rtt", "60", "--report", str(report), *QUICK,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        page = chromium.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto(report.as_uri())
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
        images = page.evaluate("document.images.length")
        chromium.close()
    assert problems == []
    assert images >= 2 and broken == 0


def test_labelled_image_folder_one_sub_folder_per_class(cli, digits, tmp_path) -> None:
    import cv2

    with np.load(digits["data"]) as data:
        images, labels = data["test/image"][:60], data["test_labels"][:60]
    folder = tmp_path / "images"
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / str(label) / f"{i}.png"), np.round(image[..., 0] * 255).astype(np.uint8))
    result = cli(
        "compare", "--server", str(digits["keras"]), "--edge", str(digits["tflite"]), "--data", str(folder),
        "--json", *QUICK,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["data"] == {"source": str(folder), "samples": 60, "labelled": True}
    metric = document["edge"][0]["quality"]["metric"]
    assert metric["server"] >= 0.8 and document["edge"][0]["quality"]["top1_agreement"] >= 0.9
