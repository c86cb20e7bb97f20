"""Atomic outputs: nothing half-written is ever left under the name the user asked for.

Everything is written under a temporary name beside the target (same filesystem, so the final
``rename`` is atomic) and moved into place only when complete. An error or an interrupt
removes the temporary and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgekit.errors import ConfigError, OutputError, OutputExistsError
from edgekit.formats import Format, Precision
from edgekit.manifest import manifest_path


def _describe_os_error(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else type(exc).__name__


def check_output_dir(target: Path, *, force: bool) -> None:
    """Fail early (before any expensive work) if ``target`` cannot become an output folder."""
    if target.exists() and not target.is_dir():
        raise OutputError(f"--out {target} is an existing file, not a folder", hint="choose a folder path")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise OutputExistsError(
            f"--out {target} already exists and is not empty",
            hint="pass --force to replace it, or choose another folder",
        )


def check_output_file(target: Path, *, force: bool) -> None:
    """Fail early if ``target`` cannot become an output file."""
    if target.is_dir():
        raise OutputError(f"output {target} is a folder", hint="give a file path")
    if target.exists() and not force:
        raise OutputExistsError(f"output {target} already exists", hint="pass --force to overwrite it")


def _make_parent(target: Path) -> Path:
    parent = target.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create {parent}: {_describe_os_error(exc)}", hint="choose a writable location"
        ) from exc
    return parent


@contextlib.contextmanager
def atomic_directory(target: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``target`` when the block completes.

    An existing empty ``target`` is replaced; a non-empty one only with ``force``.
    """
    target = Path(target)
    check_output_dir(target, force=force)
    parent = _make_parent(target)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
    except OSError as exc:
        raise OutputError(
            f"cannot write to {parent}: {_describe_os_error(exc)}", hint="choose a writable --out"
        ) from exc
    try:
        yield staging
        # Re-check: something else may have created the target while we worked.
        check_output_dir(target, force=force)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.replace(target, retired / "old")
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_file(target: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path that is renamed to ``target`` when the block completes."""
    target = Path(target)
    check_output_file(target, force=force)
    parent = _make_parent(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.partial-", suffix=target.suffix, dir=parent)
    except OSError as exc:
        raise OutputError(
            f"cannot write to {parent}: {_describe_os_error(exc)}", hint="choose a writable output path"
        ) from exc
    os.close(fd)
    staging = Path(name)
    try:
        yield staging
        if staging.exists():
            # mkstemp makes the file private (0600); the finished output gets the permissions any
            # new file of the user's would (0644 under the usual umask).
            os.chmod(staging, 0o666 & ~_umask())
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# a converted artifact: the model file, its companions (OpenVINO's .bin) and its manifest


def default_output(source: Path, target: Format, precision: Precision) -> Path:
    stem = source.name if source.is_dir() else source.stem
    suffix = "" if precision is Precision.FP32 else f"_{precision.value}"
    folder = source if source.is_dir() else source.parent
    return folder / f"{stem}{suffix}{target.suffix}"


def artifact_files(artifact: Path, target: Format) -> list[Path]:
    companions = [artifact.with_suffix(s) for s in target.companion_suffixes]
    return [artifact, *companions, manifest_path(artifact)]


def check_outputs(artifact: Path, target: Format, *, force: bool, source: Path | None = None) -> None:
    """``source``: an adopted artifact written over itself; only its manifest may not exist yet."""
    if artifact.suffix != target.suffix:
        raise ConfigError(f"--out {artifact} should end in {target.suffix} for --to {target.name}")
    itself = set()
    if source is not None and source.exists() and artifact.absolute().resolve() == source.absolute().resolve():
        itself = {artifact, *[artifact.with_suffix(s) for s in target.companion_suffixes]}
    existing = [p for p in artifact_files(artifact, target) if p.exists() and p not in itself]
    if existing and not force:
        raise OutputExistsError(f"{existing[0]} already exists", hint="pass --force to overwrite it")
    if any(p.is_dir() for p in existing):
        raise OutputError(f"{existing[0]} is a folder")
    parent = artifact.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=parent, prefix=".edgekit-probe-").close()
    except OSError as exc:
        raise OutputError(
            f"cannot write to {parent}: {_describe_os_error(exc)}", hint="choose a writable --out"
        ) from exc
