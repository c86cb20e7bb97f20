"""The README is executable: its set-up commands are the ones CI runs, its "What works today"
block runs as written in a fresh folder, and the demo works on a machine with no broker."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tools.mqtt_brokers import Mosquitto, Recorder, wait_for_port

# What the test substitutes, and nothing else: the broker the README's device would reach, and
# camera 0 (this machine has none) by a recording of the same scene.
README_BROKER = "mqtt://10.0.0.5:1883"
CAMERA = "--source 0"
# Commands that serve until Ctrl-C: started in the background, stopped (SIGINT) at the end.
# A daemon that takes deployments (`run … --trust-key`) serves too: its camera, a recording here, loops.
SERVING = {"watch": None, "broker": 1884, "serve": 8501, "run": None}  # command → the port it must open, if any


def code_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def readme_commands() -> list[str]:
    return [line for line in code_blocks()[0].splitlines() if line and not line.startswith("#")]


def works_today_commands() -> list[str]:
    """The second bash block, one entry per command (backslash continuations joined)."""
    commands, current = [], ""
    for line in code_blocks()[1].splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        commands.append(" ".join(current.split()))
        current = ""
    return commands


def test_readme_opens_with_the_demo_and_the_test_command() -> None:
    demo, tests = readme_commands()
    assert demo.endswith("edgekit demo")
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    _, tests = readme_commands()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_ci_also_runs_what_the_quick_command_leaves_out() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert any(line.startswith(".venv/bin/python -m pytest -m ci") for line in ci)


def _venv_env(home: Path) -> dict[str, str]:
    """A user's shell with the venv activated, in a home of its own (calibrated profiles, outbox)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEKIT_", "PYTEST"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


def _serving_kind(command: str) -> str | None:
    words = command.split()
    if len(words) < 2 or words[0] != "edgekit" or words[1] not in SERVING:
        return None
    return None if words[1] == "run" and "--trust-key" not in words else words[1]


@pytest.mark.ci
def test_what_works_today_runs_as_written(tmp_path: Path) -> None:
    from edgekit.examples.shapes_video import write_shapes_video

    commands = works_today_commands()
    assert any(_serving_kind(c) == "serve" for c in commands)
    work, home = tmp_path / "fresh", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    broker = Mosquitto(tmp_path / "mosquitto").start()
    local = f"mqtt://127.0.0.1:{broker.port}"
    recording = write_shapes_video(tmp_path / "camera0.avi", frames=60)
    # examples/daemon.yaml as shipped, with the same two substitutions.
    (work / "examples").mkdir()
    config = (REPO / "examples" / "daemon.yaml").read_text()
    assert README_BROKER in config and 'source: "0"' in config
    config = config.replace(README_BROKER, local).replace('source: "0"', f'source: "{recording}"')
    (work / "examples" / "daemon.yaml").write_text(config)
    env = _venv_env(home)
    # A subscriber of our own: the daemon lines must deliver, not just exit 0.
    subscriber = Recorder(broker.port, "pi-kitchen")
    background: list[tuple[str, subprocess.Popen]] = []
    logs: list[tuple[Path, Path]] = []
    devices: list[Recorder] = []  # the daemons that serve, each watched
    try:
        for command in commands:
            kind = _serving_kind(command)
            camera = f"--source {recording}" + (" --loop" if kind == "run" else "")
            shell = command.replace(README_BROKER, local).replace(CAMERA, camera)
            if kind is not None:
                # `exec`: the shell becomes the command, so Ctrl-C (SIGINT) reaches it and not a shell.
                # Its output goes to files, as a terminal would take it: a pipe nobody reads fills up
                # (64 KB) and blocks the command's printing thread, and then its Ctrl-C clean-up.
                index = len(background)
                out_file, err_file = tmp_path / f"bg{index}.out", tmp_path / f"bg{index}.err"
                with out_file.open("w") as out, err_file.open("w") as err:
                    process = subprocess.Popen(
                        f"exec {shell}", shell=True, cwd=work, env=env, stdout=out, stderr=err,
                        text=True, start_new_session=True,
                    )  # fmt: skip
                background.append((command, process))
                logs.append((out_file, err_file))
                port = SERVING[kind]
                if port is not None:
                    wait_for_port(port, timeout=120)
                elif kind == "run":  # the commands after it need the device on the broker
                    words = command.split()
                    device = Recorder(broker.port, words[words.index("--device-id") + 1])
                    devices.append(device)
                    assert device.wait_for(lambda r: len(r.results()) > 0, 120), err_file.read_text()[-2000:]
                else:
                    time.sleep(2)  # it subscribes and prints what is retained
                assert process.poll() is None, f"`{command}` stopped: {err_file.read_text()[-2000:]}"
                continue
            done = subprocess.run(
                shell, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=900
            )  # fmt: skip
            assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{done.stderr[-3000:]}"
            assert "Traceback" not in done.stderr, f"`{command}` printed a traceback:\n{done.stderr[-3000:]}"
    finally:
        outputs = {}
        for (command, process), (out_file, err_file) in zip(background, logs, strict=True):
            os.killpg(process.pid, signal.SIGINT)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                code = None
            err = err_file.read_text() + ("" if code is not None else "\n(did not stop within 30 s of Ctrl-C)")
            outputs[command] = (code, out_file.read_text(), err)
        subscriber.close()
        for device in devices:
            device.close()
        broker.stop()
    for command, (code, _, err) in outputs.items():
        assert code == 0, f"`{command}` did not stop cleanly on Ctrl-C ({code}):\n{err[-2000:]}"
    watch = next(out for command, (_, out, _) in outputs.items() if _serving_kind(command) == "watch")
    assert "edgekit/pi-kitchen/status" in watch  # the retained status of the device it watches
    # Both daemon lines (flags, then the config file) ran the 60-frame recording and delivered it all.
    runs: dict[str, list[int]] = {}
    for result in subscriber.results():
        runs.setdefault(result["run_id"], []).append(result["seq"])
    assert len(runs) == 2 and all(seqs == list(range(60)) for seqs in runs.values()), {
        run: len(seqs) for run, seqs in runs.items()
    }
    assert (work / "compare.html").stat().st_size > 10_000
    # The deployed model ran on the device between the two others: deploy, then rollback.
    shas = [r["model_sha256"] for r in devices[0].results()]
    changes = [i for i in range(1, len(shas)) if shas[i] != shas[i - 1]]
    assert len(changes) == 2 and shas[0] == shas[-1], "deploy then rollback, each between two frames"
    assert (home / ".config" / "edgekit" / "profiles" / "host.yaml").exists()


def _no_network_prefix() -> list[str]:
    """A network namespace of its own: nothing listens on 127.0.0.1:1883 there, whatever this
    machine runs. Needs root (or user namespaces); in CI, where the tests run as root, it must work."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        pytest.fail("unshare and ip (util-linux, iproute2) are needed to hide the machine's brokers")
    probe = subprocess.run([unshare, "-n", ip, "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot make a network namespace here: {probe.stderr.strip()}")
        pytest.skip(f"cannot make a network namespace here (not root?): {probe.stderr.strip()}")
    return [unshare, "-n", "sh", "-c", f'{ip} link set lo up && exec "$@"', "no-network"]


@pytest.mark.ci
def test_demo_delivers_every_result_through_the_embedded_broker_with_no_mosquitto(tmp_path: Path) -> None:
    """README command 1 on a machine with no broker: the demo starts its embedded one, every result
    the daemon produces reaches a subscriber through it, and no third-party line reaches the terminal."""
    env = _venv_env(tmp_path / "home")
    # No Mosquitto binary on the path either: the demo must not need one.
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not (Path(p) / "mosquitto").exists()
    )  # fmt: skip
    command = [*_no_network_prefix(), sys.executable, "-m", "edgekit", "demo", "--out", str(tmp_path / "demo")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(embedded broker)" in done.stdout
    produced, delivered = re.search(r"(\d+) results at .*?(\d+) delivered to a subscriber", done.stdout).groups()
    assert int(produced) == int(delivered) > 0
    # Nothing but edgekit's own lines: its step headers and indented progress.
    foreign = [
        line for line in done.stderr.splitlines()
        if line.strip() and not line.startswith(("edgekit demo", "step ", "          "))
    ]  # fmt: skip
    assert not foreign, foreign
    # The story, step by step.
    assert "Trained on the server" in done.stdout and "tflite int8" in done.stdout
    assert "predicted on devices, 4 threads" in done.stdout and "rpi4" in done.stdout
    files = {p.name for p in (tmp_path / "demo" / "digits").iterdir()}
    assert {"model.keras", "data.npz", "model_int8.tflite", "model_int8.tflite.manifest.json"} <= files
    assert {"model_fp16.xml", "model_fp16.bin"} <= files
    assert "4. Daemon: shapes detector int8" in done.stdout
    assert "5. Server or edge: Keras over HTTP" in done.stdout
    report = tmp_path / "demo" / "compare.html"
    assert f"report: {report}" in done.stdout and "Break-even" in report.read_text()
