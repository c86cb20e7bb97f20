"""`edgekit serve`: TF Serving's REST API over real HTTP, its error answers, many clients at once,
and the command as a user runs it (start, answer, stop cleanly)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from edgekit.converters.pipeline import ConvertRequest, convert
from edgekit.formats import Precision, get_format
from edgekit.runtimes import load_runtime
from edgekit.serve.app import create_app
from edgekit.serve.model import ServedModel, default_name
from edgekit.serve.server import BackgroundServer
from tests.conftest import run_edgekit


@pytest.fixture(scope="module")
def digits(trained) -> Path:
    return trained["digits-cnn"] / "model.keras"


@pytest.fixture(scope="module")
def samples(trained) -> tuple[np.ndarray, np.ndarray]:
    with np.load(trained["digits-cnn"] / "data.npz") as data:
        return data["test/image"][:8], data["test_labels"][:8]


@pytest.fixture(scope="module")
def server(digits):
    served = ServedModel.load(digits)
    with BackgroundServer(create_app({served.name: served}, max_request_bytes=256 * 1024)) as running:
        yield running, served
    served.close()


def _url(server, path: str = "") -> str:
    running, served = server
    return f"{running.url}/v1/models/{served.name}{path}"


def test_default_name_is_the_example_folder_for_a_generic_file_name(digits) -> None:
    assert default_name(digits) == "digits-cnn"
    assert default_name(Path("/x/mobilenet_int8.tflite")) == "mobilenet_int8"


def test_status_and_metadata_read_like_tf_serving(server) -> None:
    status = httpx.get(_url(server)).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    signature = httpx.get(_url(server, "/metadata")).json()["metadata"]["signature_def"]["signature_def"]
    inputs = signature["serving_default"]["inputs"]
    (image,) = inputs.values()
    assert image["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]
    assert list(signature["serving_default"]["outputs"]) == ["probabilities"]  # the layer's name, not keras_tensor_N


def test_row_and_columnar_predictions_match_the_model(server, digits, samples) -> None:
    images, _ = samples
    with load_runtime(digits) as direct:
        expected = direct.run({direct.inputs[0].name: images})[direct.outputs[0].name]
    rows = httpx.post(_url(server, ":predict"), json={"instances": images.tolist()})
    assert rows.status_code == 200
    np.testing.assert_allclose(np.asarray(rows.json()["predictions"]), expected, atol=1e-5)
    columns = httpx.post(_url(server, "/versions/1:predict"), json={"inputs": {"image": images.tolist()}})
    np.testing.assert_allclose(np.asarray(columns.json()["outputs"]), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"instances": [[1, 2', 400, "malformed JSON"),
        (b'{"instances": [[1, 2]]}', 400, "has shape (1, 2), expected (?, 28, 28, 1)"),
        (b'{"instances": [[[1]], [[1, 2]]]}', 400, "not a regular float32 tensor"),
        (b'{"signature_name": "other", "instances": [1]}', 400, "unknown signature_name"),
        (b'{"queries": []}', 400, "exactly one of 'instances'"),
        (b"[1, 2]", 400, "JSON object"),
    ],
)
def test_a_request_the_model_cannot_take_is_a_400_saying_why(server, body, status, says) -> None:
    answer = httpx.post(_url(server, ":predict"), content=body)
    assert answer.status_code == status
    assert says in answer.json()["error"]


def test_unknown_model_or_version_is_a_404(server) -> None:
    running, _ = server
    unknown = httpx.post(f"{running.url}/v1/models/nope:predict", json={"instances": [1]})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    assert httpx.get(_url(server, "/versions/7")).status_code == 404
    assert httpx.get(f"{running.url}/v2/anything").status_code == 404


def test_an_oversized_body_is_a_413_whether_declared_or_streamed(server) -> None:
    big = json.dumps({"instances": np.full((60, 28, 28, 1), 0.5).tolist()}).encode()
    assert len(big) > 256 * 1024
    declared = httpx.post(_url(server, ":predict"), content=big)
    assert declared.status_code == 413 and "limit" in declared.json()["error"]

    def chunks():  # no Content-Length: the server must count as the body arrives
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = httpx.post(_url(server, ":predict"), content=chunks())
    assert streamed.status_code == 413


def test_fixed_batch_tflite_artifact_answers_a_batch_of_instances(digits, samples, tmp_path) -> None:
    artifact = Path(
        convert(
            ConvertRequest(
                source=digits, target=get_format("tflite"), precision=Precision.INT8, out=tmp_path / "d.tflite"
            )
        )["artifact"]
    )
    images, labels = samples
    served = ServedModel.load(artifact)
    with BackgroundServer(create_app({served.name: served})) as running:
        answer = httpx.post(f"{running.url}/v1/models/d:predict", json={"instances": images.tolist()})
    served.close()
    assert answer.status_code == 200
    assert np.mean(np.argmax(answer.json()["predictions"], axis=1) == labels) >= 0.75


def test_multi_input_model_takes_named_instances(trained) -> None:
    with np.load(trained["recommender"] / "data.npz") as data:
        users, items = data["test/user"][:5], data["test/item"][:5]
    served = ServedModel.load(trained["recommender"] / "model.keras")
    with BackgroundServer(create_app({served.name: served})) as running:
        url = f"{running.url}/v1/models/{served.name}:predict"
        rows = [{"user": u.tolist(), "item": i.tolist()} for u, i in zip(users, items, strict=True)]
        answer = httpx.post(url, json={"instances": rows})
        missing = httpx.post(url, json={"instances": [{"user": users[0].tolist()}]})
    served.close()
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 5
    assert missing.status_code == 400 and "missing" in missing.json()["error"]


def test_many_concurrent_clients_all_get_correct_answers(server, samples) -> None:
    """Requests are batched into one model call while others wait; a wrong request among them
    is refused alone and every other client still gets its own answer."""
    _, served = server
    images, _ = samples
    batch = httpx.post(_url(server, ":predict"), json={"instances": images.tolist()})
    expected = np.argmax(batch.json()["predictions"], 1)
    failures: list[str] = []
    answered, refused = [0], [0]
    calls_before, requests_before = served.counters.model_calls, served.counters.requests
    deadline = time.monotonic() + 3

    def client(index: int) -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < deadline:
                if index == 0:  # the one client that keeps sending a wrong shape
                    reply = http.post(_url(server, ":predict"), json={"instances": [[1.0, 2.0]]})
                    refused[0] += reply.status_code == 400
                    continue
                sample = index % len(images)
                reply = http.post(_url(server, ":predict"), json={"instances": images[sample : sample + 1].tolist()})
                if reply.status_code != 200 or np.argmax(reply.json()["predictions"][0]) != expected[sample]:
                    failures.append(f"{reply.status_code} {reply.text[:80]}")
                answered[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert answered[0] >= 20 and refused[0] >= 1
    calls = served.counters.model_calls - calls_before
    assert calls < served.counters.requests - requests_before  # batched, not one call per request


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_command_answers_then_stops_cleanly_on_sigterm(digits, samples) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "serve", str(digits), "--port", str(port), "--name", "digits"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/models/digits"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "edgekit serve did not start"
            time.sleep(0.2)
        images, _ = samples
        assert httpx.post(f"{url}:predict", json={"instances": images[:2].tolist()}).status_code == 200
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "stopped after 1 requests" in err
    assert "Traceback" not in err


def test_serve_on_a_port_in_use_is_one_line(digits) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = run_edgekit("serve", str(digits), "--port", str(port))
    assert result.returncode == 3
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_busy_port_is_refused_before_the_model_loads(cli, digits, monkeypatch) -> None:
    from edgekit.serve.model import ServedModel

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the port was checked")

    monkeypatch.setattr(ServedModel, "load", never)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        result = cli("serve", str(digits), "--port", str(holder.getsockname()[1]))
    assert result.exit_code == 3 and "is in use" in result.stderr


def test_serve_missing_model_or_bad_name(cli, digits, tmp_path) -> None:
    missing = cli("serve", str(tmp_path / "nope.keras"))
    assert missing.exit_code == 5 and "does not exist" in missing.stderr
    bad = cli("serve", str(digits), "--name", "a/b")
    assert bad.exit_code == 3 and "cannot be part of a URL path" in bad.stderr
