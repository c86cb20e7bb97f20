from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import DeviceError, InputNotFoundError, UnknownNameError
from edgekit.profiles import load_profile

RPI4 = (Path(__file__).resolve().parents[1] / "device_profiles" / "rpi4.yaml").read_text()


def test_unknown_profile_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'rpi4'"):
        load_profile("rpi-4")


def test_extra_field_is_named_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(RPI4.replace("  ram_gb: 4\n", "  ram_gb: 4\n  ramm_gb: 4\n"))
    with pytest.raises(DeviceError, match=r"memory\.ramm_gb"):
        load_profile(str(path))


def test_mistyped_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(RPI4.replace("ram_gb: 4", "ram_gb: four"))
    with pytest.raises(DeviceError, match=r"memory\.ram_gb"):
        load_profile(str(path))


def test_missing_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(RPI4.replace("arch: arm64\n", ""))
    with pytest.raises(DeviceError, match=r"arch"):
        load_profile(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        load_profile(str(tmp_path / "none.yaml"))
