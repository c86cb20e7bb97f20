from __future__ import annotations

import inspect

from edgekit import errors
from edgekit.errors import EdgekitError, UnknownNameError


def all_error_classes() -> list[type[EdgekitError]]:
    return [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, EdgekitError)]


def test_every_error_class_has_its_own_exit_code() -> None:
    codes = [cls.exit_code for cls in all_error_classes()]
    assert len(codes) == len(set(codes)), codes
    # 0 is success and 2 is the CLI framework's usage error: never ours.
    assert 0 not in codes and 2 not in codes


def test_the_docstring_tree_lists_every_class_with_its_code() -> None:
    for cls in all_error_classes():
        assert f"{cls.__name__}" in errors.__doc__
        line = next(line for line in errors.__doc__.splitlines() if f" {cls.__name__} " in f" {line} ")
        assert str(cls.exit_code) in line, line


def test_unknown_name_suggests_the_closest() -> None:
    error = UnknownNameError("example", "digit-cnn", ["digits-cnn", "iris-mlp"])
    assert error.suggestion == "digits-cnn"
    assert error.one_line() == "unknown example 'digit-cnn'; did you mean 'digits-cnn'?"


def test_unknown_name_far_from_all_lists_the_choices() -> None:
    error = UnknownNameError("example", "zzz", ["b", "a"])
    assert error.suggestion is None
    assert "choose one of: a, b" in error.one_line()


def test_one_line_has_no_newlines() -> None:
    assert "\n" not in EdgekitError("bad\nthing", hint="do\nthis").one_line()
