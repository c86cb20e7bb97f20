"""Every mapping of a foreign exception gives one clear line and its own exit code."""

from __future__ import annotations

import builtins
import importlib

import pytest

from edgekit.errors import EdgekitError, ModelError, first_line
from edgekit.foreign import BOUNDARIES, ENGINE_RUN, Boundary, mapped

MESSAGES = {
    "empty": "",
    "multi-line": "Check 'rank.is_static()' failed at src/core/shape.cpp:41:\n\n  while validating node 'Conv'\n"
    + "\n".join(f"    frame {i}" for i in range(30)),
}


def _foreign_class(dotted: str) -> type[BaseException] | None:
    module, _, name = dotted.rpartition(".")
    try:
        found = getattr(builtins, name) if module == "builtins" else getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


ROWS = [
    pytest.param(boundary, dotted, ours, id=f"{boundary.library}-{boundary.doing}-{dotted}")
    for boundary in BOUNDARIES
    for dotted, ours in boundary.rows
]


@pytest.mark.parametrize("kind", sorted(MESSAGES))
@pytest.mark.parametrize(("boundary", "dotted", "ours"), ROWS)
def test_each_row_maps_to_one_line_and_its_exit_code(
    boundary: Boundary, dotted: str, ours: type[EdgekitError], kind: str
) -> None:
    foreign = _foreign_class(dotted)
    assert foreign is not None, f"{dotted} names no exception class edgekit can import"
    with pytest.raises(EdgekitError) as caught:
        with mapped(boundary, f"{boundary.doing} failed"):
            raise foreign(MESSAGES[kind])
    error = caught.value
    assert type(error) is ours
    assert error.exit_code not in (1, 70)
    line = error.one_line()
    assert "\n" not in line and line.startswith(f"{boundary.doing} failed: ")
    assert line.removeprefix(f"{boundary.doing} failed: ").strip(), "the reason is never empty"
    assert "frame" not in line and "shape.cpp" not in line, line


def test_a_reason_can_sit_inside_the_message() -> None:
    with pytest.raises(ModelError) as caught:
        with mapped(ENGINE_RUN, "m.onnx could not be read ({reason})", hint="is the file complete?"):
            raise ValueError("bad magic\nand more")
    assert caught.value.one_line() == "m.onnx could not be read (bad magic); is the file complete?"


def test_edgekits_own_errors_and_unmapped_ones_pass_through() -> None:
    own = ModelError("already ours")
    with pytest.raises(ModelError) as caught, mapped(ENGINE_RUN, "run"):
        raise own
    assert caught.value is own
    narrow = Boundary("lib", "do", (("builtins.ValueError", ModelError),))
    with pytest.raises(KeyError), mapped(narrow, "do"):
        raise KeyError("x")


def test_first_line_of_an_os_error_is_its_reason() -> None:
    assert first_line(ConnectionRefusedError(111, "Connection refused")) == "Connection refused"
    assert first_line(RuntimeError("")) == "RuntimeError"


def test_the_tflite_converters_error_line_is_the_reason() -> None:
    from edgekit.errors import ConversionError
    from edgekit.foreign import TFLITE_CONVERT

    diagnostics = (
        "Could not translate MLIR to FlatBuffer.\n"
        "<unknown>:0: note: loc(fused['Conv2D', 'model/conv']): called from\n"
        "<unknown>:0: error: 'tfl.conv_2d' op quantization parameters violate the same scale constraint\n"
        + "\n".join(f"    frame {i}" for i in range(30))
    )
    with pytest.raises(ConversionError) as caught:
        with mapped(TFLITE_CONVERT, "TFLite conversion failed"):
            raise RuntimeError(diagnostics)
    assert caught.value.one_line() == (
        "TFLite conversion failed: <unknown>:0: error: 'tfl.conv_2d' op quantization parameters violate "
        "the same scale constraint"
    )
