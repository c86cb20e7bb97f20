"""The package as installed: the wheel's contents and a plain (non-editable) install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from edgekit.predict.profiles import load_profile, shipped_profile_names
from tests.conftest import REPO

PROFILES = {"rpi4", "rpi5", "pixel4", "x86-cpu", "x86-gpu"}


def _checkout_copy(dest: Path) -> Path:
    """The files a clean checkout holds (tracked, or new and not ignored), copied to ``dest``.

    Building from the working tree itself would reuse a stale ``build/`` left by an earlier build,
    whose files (a data file since moved, say) then hide a package-data mistake CI would see.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = _checkout_copy(tmp_path_factory.mktemp("checkout"))
    # No build isolation: setuptools comes from the dev extra, so this needs no network.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("edgekit-*.whl")
    return built


def test_wheel_maps_converters_runtimes_and_profiles_into_edgekit(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "edgekit/converters/__init__.py" in names
    assert "edgekit/runtimes/__init__.py" in names
    assert {f"edgekit/device_profiles/{p}.yaml" for p in PROFILES} <= names
    assert "edgekit/predict/profiles/reference_models.json" in names  # the predictor's features of published models
    # Nothing generic at the top of site-packages.
    tops = {name.split("/")[0] for name in names}
    assert tops == {"edgekit", *(t for t in tops if t.endswith(".dist-info"))}


def test_plain_install_gives_the_same_package(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import edgekit, edgekit.converters, edgekit.runtimes\n"
        "from edgekit.predict.profiles import shipped_profile_names, load_profile\n"
        "print(edgekit.__file__)\n"
        "print(','.join(shipped_profile_names()))\n"
        "load_profile('rpi4')\n"
        "from edgekit.predict.profiles.references import reference_names\n"
        "assert reference_names(), 'the installed reference table is empty'\n"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    location, profiles = out.stdout.split()
    assert str(env_dir) in location, "imported the source tree instead of the installed wheel"
    assert set(profiles.split(",")) == PROFILES


def test_editable_install_sees_the_same_subpackages() -> None:
    import edgekit.converters
    import edgekit.device_profiles
    import edgekit.runtimes

    assert Path(edgekit.converters.__file__).parent == REPO / "converters"
    assert Path(edgekit.runtimes.__file__).parent == REPO / "runtimes"
    assert Path(edgekit.device_profiles.__file__).parent == REPO / "device_profiles"
    assert set(shipped_profile_names()) == PROFILES


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_shipped_profile_validates_and_cites_sources(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.cpu.source.startswith("https://") and profile.memory.source.startswith("https://")
    if profile.gpu:
        assert profile.gpu.source.startswith("https://")
