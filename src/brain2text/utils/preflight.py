"""Checks a command runs before any real work, so a bad output path or an input too short for the
model stops it in the first second with one line, instead of after minutes of computation.

Nothing here creates or modifies anything on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import Brain2TextError


def _first_existing(path: Path) -> Path:
    node = path
    while not node.exists() and node != node.parent:
        node = node.parent
    return node


def check_output_path(path: str | os.PathLike, directory: bool = False, what: str = "output") -> None:
    """Raise :class:`Brain2TextError` if ``path`` can certainly not be written.

    ``path`` is a file to be written (``directory=False``) or a directory to be created or filled
    (``directory=True``). It fails when an existing ancestor is a regular file, when the nearest
    existing ancestor is not writable (read-only or immutable folder, read-only file system), when
    ``path`` is an existing directory but a file is expected, or an existing file but a folder is.
    Root passes ``os.access`` on ordinary read-only folders, as the kernel lets it write there too.
    """
    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            raise Brain2TextError(f"the {what} path is a file, not a directory", path)
        if not directory and path.is_dir():
            raise Brain2TextError(f"the {what} path is a directory, not a file", path)
        target = path if directory else path.parent
    else:
        target = _first_existing(path.parent)
        if not target.is_dir():
            raise Brain2TextError(f"cannot create the {what}: {target} is a file, not a folder", path)
    if not os.access(target, os.W_OK | os.X_OK):
        raise Brain2TextError(f"cannot write the {what}: the folder {target} is not writable", path)


def encoder_receptive_field(encoder_cfg) -> int:
    """Input samples that one output token of the MEG encoder sees (its receptive field).

    The stem is two convolutions of ``stem_kernel`` (the second with stride ``stem_stride``); every
    later stage merges ``stage_downsample[i]`` neighbouring tokens. A window shorter than this gives
    tokens computed mostly from zero padding: no usable MEG.
    """
    k = int(encoder_cfg.stem_kernel)
    field, jump = 2 * k - 1, int(encoder_cfg.stem_stride)
    for factor in encoder_cfg.stage_downsample:
        field += (int(factor) - 1) * jump
        jump *= int(factor)
    return field


def check_window(seconds: float, sfreq: float, encoder_cfg, what: str = "--window", path=None) -> None:
    """Raise if a window of ``seconds`` at ``sfreq`` Hz is shorter than the encoder's receptive field."""
    need = encoder_receptive_field(encoder_cfg)
    have = int(round(seconds * sfreq))
    if have < need:
        raise Brain2TextError(f"{what} of {seconds:g} s is {have} samples at {sfreq:g} Hz, shorter than the "
                              f"encoder's receptive field ({need} samples = {need / sfreq:g} s)", path)
