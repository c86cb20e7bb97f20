"""Device profiles by name: the YAML files shipped in the package and the ones calibrated here.

A profile with a missing, extra or mistyped field is rejected with its file, line and key path.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from edgekit.errors import DeviceError, InputNotFoundError, UnknownNameError
from edgekit.predict.profiles.schema import DeviceProfile

PROFILE_PACKAGE = "edgekit.device_profiles"


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at key path ``loc`` (the deepest one that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((value for key, value in node.value if key.value == part), None)
            if match is None:
                # A missing or extra key: point at the key itself, else at its parent.
                key_node = next((key for key, _ in node.value if key.value == part), None)
                return key_node.start_mark.line + 1 if key_node is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _format_validation_error(origin: str, exc: ValidationError, root: yaml.Node | None) -> str:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    line = _line_of(root, loc)
    where = f"{origin}:{line}" if line else origin
    return f"{where}: {key}: {first['msg']}"


def parse_profile(text: str, origin: str) -> DeviceProfile:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeviceError(f"{origin} is not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(data, dict):
        raise DeviceError(f"{origin} must be a YAML mapping of profile fields")
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        raise DeviceError(_format_validation_error(origin, exc, root), hint="fix the profile field named") from exc


def shipped_profile_names() -> list[str]:
    folder = resources.files(PROFILE_PACKAGE)
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def user_profile_dir() -> Path:
    """Where `edgekit profiles calibrate` writes profiles of this machine (EDGEKIT_PROFILE_DIR overrides)."""
    configured = os.environ.get("EDGEKIT_PROFILE_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "edgekit" / "profiles"


def user_profile_names() -> list[str]:
    folder = user_profile_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml"))


def profile_names() -> list[str]:
    """Every name `--device` accepts: shipped profiles and calibrated ones."""
    return sorted(set(shipped_profile_names()) | set(user_profile_names()))


def load_profile(name: str) -> DeviceProfile:
    """A calibrated or shipped profile by name, or a YAML file by path."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise InputNotFoundError(f"profile file {path} does not exist")
        return parse_profile(path.read_text(), str(path))
    if name in user_profile_names():
        path = user_profile_dir() / f"{name}.yaml"
        return parse_profile(path.read_text(), str(path))
    names = shipped_profile_names()
    if name not in names:
        hint_names = profile_names()
        error = UnknownNameError("device profile", name, hint_names)
        if name == "host":
            error.hint = "calibrate this machine first: edgekit profiles calibrate --name host"
        raise error
    text = resources.files(PROFILE_PACKAGE).joinpath(f"{name}.yaml").read_text()
    return parse_profile(text, f"{name}.yaml")
