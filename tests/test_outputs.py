from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import OutputError, OutputExistsError
from edgekit.outputs import atomic_directory, atomic_file


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_directory_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("a")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "a"
    assert leftovers(tmp_path) == []


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(target) as staging:
            (staging / "model.keras").write_text("half")
            raise KeyboardInterrupt
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_failure_keeps_the_previous_output(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target, force=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]


def test_non_empty_folder_needs_force(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="--force"):
        with atomic_directory(target):
            pass
    with atomic_directory(target, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert leftovers(tmp_path) == []


def test_empty_existing_folder_is_fine(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    with atomic_directory(target) as staging:
        (staging / "x").write_text("x")
    assert (target / "x").exists()


def test_unwritable_parent_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError):
        with atomic_directory(blocker / "out"):
            pass


def test_atomic_file(tmp_path: Path) -> None:
    target = tmp_path / "model.tflite"
    with atomic_file(target) as staging:
        staging.write_bytes(b"abc")
        assert not target.exists()
    assert target.read_bytes() == b"abc"
    with pytest.raises(OutputExistsError):
        with atomic_file(target):
            pass
    with pytest.raises(ValueError):
        with atomic_file(target, force=True) as staging:
            staging.write_bytes(b"half")
            raise ValueError
    assert target.read_bytes() == b"abc"
    assert leftovers(tmp_path) == []
