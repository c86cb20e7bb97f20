"""The calibration kit: built where TensorFlow is (`profiles kit`), timed and fitted on a device
with edgekit[device] alone (`profiles calibrate --kit`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from edgekit.errors import ConfigError, DataError, InputNotFoundError, OutputExistsError

from .conftest import REPO, run_edgekit


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kit") / "kit"
    done = run_edgekit(
        "profiles", "kit", "--out", str(out), "--quick", "--runtime", "tflite,onnxruntime", "--precision", "fp32",
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.strip().startswith(f"wrote {out}: 12 models")
    return out


def test_kit_lists_every_model_with_its_hash_and_cost_terms(kit: Path) -> None:
    manifest = json.loads((kit / "kit.json").read_text())
    models = manifest["models"]
    assert {(m["engine"], m["precision"]) for m in models} == {("tflite", "fp32"), ("onnxruntime", "fp32")}
    assert all((kit / m["file"]).is_file() and len(m["sha256"]) == 64 for m in models)
    assert all(m["features"]["ops"] > 0 for m in models)
    assert sorted(p.name for p in kit.iterdir()) == sorted([*(m["file"] for m in models), "kit.json"])
    assert not [p for p in kit.parent.iterdir() if ".partial-" in p.name]  # built aside, renamed when complete


def test_calibrate_from_the_kit_writes_a_fitted_profile(kit: Path, tmp_path: Path) -> None:
    env = {"EDGEKIT_PROFILE_DIR": str(tmp_path / "profiles")}
    done = run_edgekit(
        "profiles", "calibrate", "--kit", str(kit), "--name", "kitchen-pi", "--threads", "1", "--seconds", "0.2",
        env_extra=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    profile = yaml.safe_load((tmp_path / "profiles" / "kitchen-pi.yaml").read_text())
    fits = profile["calibration"]["fits"]
    assert {(f["engine"], f["precision"], f["threads"]) for f in fits} == {
        ("tflite", "fp32", 1),
        ("onnxruntime", "fp32", 1),
    }
    assert all(len(f["points"]) == 6 for f in fits)
    assert f"--kit {kit}" in profile["calibration"]["command"]


def _kit_copy(kit: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "kit"
    shutil.copytree(kit, copy)
    return copy


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("missing", InputNotFoundError.exit_code, "does not exist"),
        ("no manifest", DataError.exit_code, "is not a calibration kit (no kit.json)"),
        ("tampered", DataError.exit_code, "is not the file the kit was built with"),
        ("file gone", DataError.exit_code, "lacks "),
        ("bad manifest", DataError.exit_code, "kit.json: not JSON"),
        ("quick", ConfigError.exit_code, "--quick and --kit do not go together"),
        ("int8", ConfigError.exit_code, "has fp32 models only"),
    ],
)
def test_a_bad_kit_is_one_line(  # type: ignore[no-untyped-def]
    cli, kit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, code: int, message: str
) -> None:
    folder = _kit_copy(kit, tmp_path)
    extra: list[str] = []
    first = json.loads((folder / "kit.json").read_text())["models"][0]["file"]
    if case == "missing":
        folder = tmp_path / "nowhere"
    elif case == "no manifest":
        (folder / "kit.json").unlink()
    elif case == "tampered":
        (folder / first).write_bytes((folder / first).read_bytes()[:-1] + b"\0")
    elif case == "file gone":
        (folder / first).unlink()
    elif case == "bad manifest":
        (folder / "kit.json").write_text("{")
    elif case == "quick":
        extra = ["--quick"]
    elif case == "int8":
        extra = ["--precision", "int8"]
    monkeypatch.setenv("EDGEKIT_PROFILE_DIR", str(tmp_path / "profiles"))
    result = cli("profiles", "calibrate", "--kit", str(folder), "--name", "kitchen-pi", *extra)
    assert result.exit_code == code, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "profiles").exists()


def test_kit_refuses_to_overwrite(cli, kit: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("profiles", "kit", "--out", str(kit), "--quick")
    assert result.exit_code == OutputExistsError.exit_code and "--force" in result.stderr


@pytest.mark.ci
def test_kit_calibrates_where_only_the_device_extra_is_installed(kit: Path, tmp_path: Path) -> None:
    """A Raspberry Pi's install: edgekit[device], no TensorFlow, and the kit copied over."""
    env_dir = tmp_path / "device-venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-e", f"{REPO}[device]"], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    probe = subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    env = {**os.environ, "EDGEKIT_PROFILE_DIR": str(tmp_path / "profiles")}
    done = subprocess.run(
        [str(env_dir / "bin" / "edgekit"), "profiles", "calibrate", "--kit", str(kit), "--name", "kitchen-pi",
         "--threads", "1", "--seconds", "0.2"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "profiles" / "kitchen-pi.yaml").is_file()
    assert "Traceback" not in done.stderr


def test_the_kit_command_names_the_extra_where_tensorflow_is_missing() -> None:
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'tensorflow' else real(name, *a)\n"
        "from edgekit.cli import main\n"
        "sys.argv = ['edgekit', 'profiles', 'kit', '--out', 'k', '--quick']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 13, done.stderr
    assert "pip install 'edgekit[convert]'" in done.stderr


def test_kit_force_replaces_a_kit_never_another_folder(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "model.keras").write_text("a user's work")
    result = cli("profiles", "kit", "--out", str(folder), "--quick", "--force")
    assert result.exit_code == OutputExistsError.exit_code
    assert "is not a calibration kit (no kit.json)" in result.stderr
    assert (folder / "model.keras").read_text() == "a user's work"
    a_file = tmp_path / "kit.txt"
    a_file.write_text("x")
    result = cli("profiles", "kit", "--out", str(a_file), "--force")
    assert result.exit_code == 6 and "is an existing file" in result.stderr


def test_a_kit_with_a_bad_cost_term_is_one_line(
    cli, kit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    folder = _kit_copy(kit, tmp_path)
    manifest = json.loads((folder / "kit.json").read_text())
    manifest["models"][0]["features"]["conv_macs"] = "many"
    (folder / "kit.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("EDGEKIT_PROFILE_DIR", str(tmp_path / "profiles"))
    result = cli("profiles", "calibrate", "--kit", str(folder), "--name", "kitchen-pi")
    assert result.exit_code == DataError.exit_code
    assert "models.0.features: Value error, cost term conv_macs must be a finite number" in result.stderr


def test_calibrate_from_a_kit_does_not_import_tensorflow(kit: Path, tmp_path: Path) -> None:
    """In-process guard beside the ci test's device-only venv: TensorFlow made unimportable."""
    code = (
        "import sys\n"
        "class NoTensorFlow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, NoTensorFlow())\n"
        "from edgekit.cli import main\n"
        f"sys.argv = ['edgekit', 'profiles', 'calibrate', '--kit', {str(kit)!r}, '--name', 'kitchen-pi',\n"
        "            '--threads', '1', '--seconds', '0.1', '--runtime', 'tflite']\n"
        "main()\n"
    )
    env = {**os.environ, "EDGEKIT_PROFILE_DIR": str(tmp_path / "profiles")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "profiles" / "kitchen-pi.yaml").is_file()


def test_each_network_converts_in_a_child_of_its_own_per_engine() -> None:
    """What a converter took stays with its process: a network's TFLite and ONNX conversions do
    not share one, and every model is converted for every engine exactly once."""
    from edgekit.predict.calibrate.kit import MODELS_PER_CHILD, child_batches
    from edgekit.predict.calibrate.run import NETWORKS
    from edgekit.predict.calibrate.synthetic import SYNTHETIC

    engines = ["tflite", "onnxruntime"]
    batches = child_batches((*NETWORKS, *SYNTHETIC), engines)
    networks = [batch for batch in batches if batch[0][0] in NETWORKS]
    assert len(networks) == 2 * len(NETWORKS)
    assert all(len(batch) == 1 and len(batch[0][1]) == 1 for batch in networks)
    assert all(len(batch) <= MODELS_PER_CHILD for batch in batches)
    converted = sorted((name, engine) for batch in batches for name, chosen in batch for engine in chosen)
    assert converted == sorted((name, engine) for name in (*NETWORKS, *SYNTHETIC) for engine in engines)
