"""Atomic writes: a file or a directory appears whole under its final name, or not at all.

Everything the package writes for a user (results JSON, checkpoints, caches, models) goes through
these helpers, so an interrupted run never leaves a half-written file that looks complete and never
destroys the previous good version.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import Brain2TextError


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_parent_writable(path: Path) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise Brain2TextError(f"cannot write: {parent} is a file, not a folder", path)
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Brain2TextError(f"cannot create the output folder ({exc.strerror})", path) from None
    if not os.access(parent, os.W_OK):
        raise Brain2TextError("the output folder is not writable", path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left exactly as it was.
    """
    path = Path(path)
    _check_parent_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise Brain2TextError(f"could not write ({exc.strerror or exc})", path) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise Brain2TextError(f"could not write ({exc.strerror or exc})", path) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``path`` as a whole.

    The old directory (if any) is moved aside first and deleted only after the new one is in
    place, so at every instant either the old or the new complete directory exists under a name a
    reader can recognise (``path`` or ``path.old-*``).
    """
    path = Path(path)
    _check_parent_writable(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise Brain2TextError(f"could not write ({exc.strerror or exc})", path) from None
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb+") as fh:
                    os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Brain2TextError(f"could not write ({exc.strerror or exc})", path) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
