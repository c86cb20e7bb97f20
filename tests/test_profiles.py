from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.errors import DeviceError, InputNotFoundError, UnknownNameError
from edgekit.predict.profiles import load_profile

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


def _line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_validate_cli_accepts_every_shipped_profile(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("profiles", "validate")
    assert result.exit_code == 0, result.stderr
    for name in ("rpi4", "rpi5", "pixel4", "x86-cpu", "x86-gpu"):
        assert f"{name}: valid" in result.stderr


def test_validate_cli_names_key_path_and_line_of_an_extra_field(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    text = RPI4.replace("  ram_gb: 4\n", "  ram_gb: 4\n  ramm_gb: 4\n")
    path.write_text(text)
    result = cli("profiles", "validate", str(path))
    assert result.exit_code == DeviceError.exit_code
    assert f"bad.yaml:{_line_of(text, 'ramm_gb')}: memory.ramm_gb: Extra inputs are not permitted" in result.stderr


def test_validate_cli_names_line_of_a_mistyped_reference(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    text = RPI4.replace("latency_ms: 44,", "latency_ms: fast,")
    path.write_text(text)
    result = cli("profiles", "validate", str(path))
    assert result.exit_code == DeviceError.exit_code
    assert f"bad.yaml:{_line_of(text, 'latency_ms: fast')}: references.1.latency_ms" in result.stderr


def test_a_reference_to_an_architecture_edgekit_cannot_rebuild_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(RPI4.replace("model: mobilenet_v3_small,", "model: alexnet,"))
    with pytest.raises(DeviceError, match=r"references\.3\.model: .*'alexnet' is not in edgekit's reference table"):
        load_profile(str(path))


def test_missing_field_line_points_at_the_parent(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text(RPI4.replace("  gbs: 12.8\n", ""))
    result = cli("profiles", "validate", str(path))
    assert result.exit_code == DeviceError.exit_code
    assert "bandwidth.gbs: Field required" in result.stderr


def test_profiles_list_and_show(cli) -> None:  # type: ignore[no-untyped-def]
    listed = cli("profiles", "list", "--json")
    names = {p["name"] for p in json.loads(listed.stdout)["profiles"]}
    assert {"rpi4", "rpi5", "pixel4", "x86-cpu", "x86-gpu"} <= names
    shown = cli("profiles", "show", "rpi4")
    assert shown.exit_code == 0, shown.stderr
    assert "Cortex-A72" in shown.stdout and "github.com/google/XNNPACK" in shown.stdout
    assert "leave-one-out" in shown.stdout
    data = json.loads(cli("profiles", "show", "pixel4", "--json").stdout)
    assert data["runtimes"][1]["supported_ops"]
    assert cli("profiles", "show", "rpi-4").exit_code == 4


@pytest.mark.parametrize(
    ("machine", "arch"),
    [("aarch64", "arm64"), ("arm64", "arm64"), ("armv7l", "arm32"), ("armv6l", "arm32"), ("armv8l", "arm32"),
     ("x86_64", "x86_64"), ("AMD64", "x86_64"), ("i686", "x86")],
)  # fmt: skip
def test_the_host_architecture_is_what_its_code_runs_as(machine: str, arch: str) -> None:
    from edgekit.predict.profiles.host import arch_of

    assert arch_of(machine) == arch
