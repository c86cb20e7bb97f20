"""Server versus edge on the digits classifier, and `edgekit serve` under 50 concurrent clients.

    python benchmarks/compare.py [--seeds 0,1,2] [--clients 50] [--seconds 30] [--no-write]

Per seed: `edgekit examples train digits-cnn` (full epochs), `edgekit convert --quant int8`, the
Keras model served by `edgekit serve` in its own process, then `edgekit compare --server URL`
against the int8 TFLite artifact (real HTTP, --device rpi4, 40 ms RTT, 5 Mbit/s uplink):
top-1 agreement, accuracy drop, and the measured HTTP latency beside the edge's.

For the first seed, the HTML report is opened in headless Chromium (Debian's, driven by
playwright): console errors, failed requests and broken images are counted, and a screenshot
goes to benchmarks/compare_report.png. Then the same server takes --clients concurrent clients
(threads, one keep-alive connection each, single-sample requests) for --seconds: failed requests,
throughput and latency percentiles, beside one client alone and the model called in-process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCREENSHOT = HERE / "compare_report.png"
AGREEMENT_GOAL = 0.99
DROP_GOAL_PTS = 0.5

sys.path.insert(0, str(HERE.parent))
from benchmarks.results_file import publish  # noqa: E402

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def edgekit(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "edgekit", *args, "--json"], capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        raise SystemExit(f"edgekit {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`edgekit serve` in its own process, as a user starts it."""

    def __init__(self, model: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/models/digits"
        command = [sys.executable, "-m", "edgekit", "serve", str(model), "--name", "digits", "--port", str(self.port)]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=ENV)

    def __enter__(self) -> Server:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise SystemExit("edgekit serve did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        _, err = self.process.communicate(timeout=60)
        self.stopped = err.strip().splitlines()[-1] if err.strip() else ""
        self.returncode = self.process.returncode


def check_in_chromium(report: Path) -> dict:
    from playwright.sync_api import sync_playwright

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("Chromium is missing: apt-get install chromium")
    problems: list[str] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        page = chromium.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto(report.as_uri())
        images = page.evaluate("document.images.length")
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        version = chromium.version
        chromium.close()
    return {"problems": problems, "images": images, "broken": broken, "chromium": version}


def _load(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """``clients`` threads, each with its own keep-alive connection (http.client: the lightest
    client Python has; httpx's async pool was itself the bottleneck here, at 80 requests/s)."""
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        sent = index
        while time.perf_counter() < deadline:
            body = bodies[sent % len(bodies)]
            sent += clients
            start = time.perf_counter()
            try:
                connection.request("POST", "/v1/models/digits:predict", body=body, headers=headers)
                reply = connection.getresponse()
                payload = reply.read()
                if reply.status != 200 or len(json.loads(payload)["predictions"]) != 1:
                    failures.append(f"{reply.status}: {payload[:100]!r}")
                    continue
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            latencies.append((time.perf_counter() - start) * 1000)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "failures": failures, "elapsed_s": time.perf_counter() - started}


def load_test(port: int, data: Path, clients: int, seconds: float) -> dict:
    with np.load(data) as archive:
        images = archive["test/image"][:64]
    bodies = [json.dumps({"instances": images[i : i + 1].tolist()}).encode() for i in range(len(images))]
    alone = _load(port, bodies, 1, 5)
    crowd = _load(port, bodies, clients, seconds)
    return {"alone": alone, "crowd": crowd}


def in_process_ms(model: Path, data: Path) -> float:
    """The Keras model called directly (the same traced graph the server runs), batch 1."""
    from edgekit.bench import BenchSettings, measure
    from edgekit.data import Split, load_dataset
    from edgekit.runtimes import load_runtime

    with load_runtime(model) as probe:
        dataset = load_dataset(data, Split.EVALUATION, probe.inputs)
    return measure(lambda: load_runtime(model), BenchSettings(runs=300, warmup=20), data=dataset)["p50_ms"]


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="training seeds for the agreement figure (default 0,1,2)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave RESULTS.md alone")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    rows, load, browser, stopped = [], None, None, None
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-compare-") as tmp:
        for seed in seeds:
            folder = Path(tmp) / f"digits-{seed}"
            edgekit("examples", "train", "digits-cnn", "--out", str(folder), "--seed", str(seed))
            edge = edgekit("convert", str(folder / "model.keras"), "--to", "tflite", "--quant", "int8")["artifact"]
            report = Path(tmp) / f"compare-{seed}.html"
            with Server(folder / "model.keras") as server:
                result = edgekit(
                    "compare", "--server", server.url, "--edge", edge, "--data", str(folder / "data.npz"),
                    "--device", "rpi4", "--rtt", "40", "--uplink", "5", "--requests", "300", "--runs", "300",
                    "--report", str(report),
                )  # fmt: skip
                if load is None:
                    browser = check_in_chromium(report)
                    load = load_test(server.port, folder / "data.npz", args.clients, args.seconds)
                    load["in_process_ms"] = in_process_ms(folder / "model.keras", folder / "data.npz")
            if stopped is None:
                stopped = (server.returncode, server.stopped)
            rows.append((seed, result))

    body = [
        "Digits CNN (full training per seed): Keras served by `edgekit serve` in its own process, called over "
        "real HTTP by `edgekit compare`, against the int8 TFLite artifact run here and predicted on rpi4.",
        "",
        "| seed | samples | Keras accuracy | int8 accuracy | drop (pt) | top-1 agreement | HTTP p50 / p90 ms "
        "| + 40 ms RTT, 5 Mbit/s p50 ms | int8 here p50 ms | int8 on rpi4 (predicted) ms | request bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    agreements, drops = [], []
    for seed, result in rows:
        (edge,) = result["edge"]
        quality, latency = edge["quality"], result["server"]["latency"]
        metric = quality["metric"]
        agreements.append(quality["top1_agreement"])
        drops.append(metric["drop"])
        device, http = edge["latency"]["device"], latency["measured"]
        body.append(
            f"| {seed} | {quality['samples']} | {metric['server']:.4f} | {metric['edge']:.4f} | {metric['drop']:.2f} "
            f"| {quality['top1_agreement']:.2%} | {http['p50_ms']:.2f} / {http['p90_ms']:.2f} "
            f"| {latency['with_link']['p50_ms']:.1f} | {edge['latency']['here']['p50_ms']:.3f} "
            f"| {device['latency_ms']:.2f} ({device['low_ms']:.2f}–{device['high_ms']:.2f}) "
            f"| {latency['request_bytes']} |"
        )
    worst_agreement, worst_drop = min(agreements), max(drops)
    met = worst_agreement >= AGREEMENT_GOAL and worst_drop <= DROP_GOAL_PTS
    body += [
        "",
        f"Goal: agreement ≥ {AGREEMENT_GOAL:.0%} and drop ≤ {DROP_GOAL_PTS} pt — worst agreement "
        f"{worst_agreement:.2%}, worst drop {worst_drop:.2f} pt: **{'met' if met else 'MISSED'}**. "
        "The HTTP figures are single-sample requests one after another on a keep-alive loopback connection "
        "(the server's own answer time plus HTTP); the link columns add what `--rtt`/`--uplink` emulate.",
        "",
    ]
    assert browser is not None and load is not None and stopped is not None
    clean = not browser["problems"] and browser["broken"] == 0
    body += [
        f"Report in headless Chromium {browser['chromium']} (playwright): {browser['images']} images, "
        f"{browser['broken']} broken, {len(browser['problems'])} console errors/warnings or failed requests "
        f"({'; '.join(browser['problems']) or 'none'}): **{'clean' if clean else 'NOT CLEAN'}**. "
        "Screenshot: [compare_report.png](compare_report.png).",
        "",
    ]
    crowd, alone = load["crowd"], load["alone"]
    served = len(crowd["latencies"])
    body += [
        f"`edgekit serve` under {args.clients} concurrent clients for {args.seconds:.0f} s (client threads, "
        "one keep-alive HTTP/1.1 connection each, single-sample requests, client and server on this machine's cores):",
        "",
        "| | requests | failed | requests/s | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|",
        f"| {args.clients} clients | {served} | {len(crowd['failures'])} | {served / crowd['elapsed_s']:.0f} "
        f"| {pct(crowd['latencies'], 50):.1f} | {pct(crowd['latencies'], 90):.1f} | {pct(crowd['latencies'], 99):.1f} "
        f"| {max(crowd['latencies']):.1f} |",
        f"| 1 client (5 s) | {len(alone['latencies'])} | {len(alone['failures'])} "
        f"| {len(alone['latencies']) / alone['elapsed_s']:.0f} | {pct(alone['latencies'], 50):.2f} "
        f"| {pct(alone['latencies'], 90):.2f} | {pct(alone['latencies'], 99):.2f} | {max(alone['latencies']):.1f} |",
        "",
        f"Model called in-process (same traced Keras graph, batch 1): p50 {load['in_process_ms']:.2f} ms. "
        f"Under load p50 is {pct(crowd['latencies'], 50) / pct(alone['latencies'], 50):.1f} × one client's "
        f"(requests queue for the one model); one client's p50 is "
        f"{pct(alone['latencies'], 50) / load['in_process_ms']:.1f} × the in-process call (HTTP + JSON). "
        f"Goal: no failed request — **{'met' if not crowd['failures'] else 'MISSED'}**"
        f"{'' if not crowd['failures'] else ' (' + '; '.join(sorted(set(crowd['failures']))[:3]) + ')'}. "
        f"Server stop after the runs: exit {stopped[0]}, “{stopped[1]}”.",
    ]
    publish(
        "compare",
        "Server versus edge, `edgekit serve` under load (issue 7)",
        "python benchmarks/compare.py " + " ".join(sys.argv[1:]),
        body,
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
