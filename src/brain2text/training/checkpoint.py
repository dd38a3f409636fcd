"""Periodic training checkpoints that never lose work.

Layout: ``output_dir/checkpoints/step-0000042/`` holding

* ``model.safetensors``      trainable parts + every buffer (RVQ codebooks and EMA statistics)
* ``optimizer.safetensors``  AdamW moments (see :mod:`.optim`), absent when the phase has none
* ``state.json``             phase, step, data position, scheduler, RNG states of every process,
                             optimizer hyper-parameters, best metric, config hash
* ``COMPLETE.json``          written last: SHA-256 of every file above

The directory is written under a temporary name and renamed into place (``atomic_directory``), so a
run killed mid-write leaves only a ``.step-*.tmp`` folder, never a ``step-*`` that looks complete.
A checkpoint that fails its checksums or cannot be read is skipped with a warning and renamed
``step-*.corrupt`` (kept for inspection, never deleted), and the previous good one is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import Brain2TextError
from ..utils.atomic import atomic_directory
from ..utils.faults import fault_point

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
MANIFEST_FILE = "COMPLETE.json"
_NAME = re.compile(r"^step-(\d{7,})$")


class CheckpointCorrupt(Exception):
    """A checkpoint directory is incomplete or does not match its manifest."""


@dataclass
class Checkpoint:
    path: Path
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["global_step"])


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone(): safetensors refuses tensors sharing storage (tied weights).
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def save_checkpoint(root: Path, step: int, model: dict[str, torch.Tensor], optimizer: dict[str, torch.Tensor],
                    state: dict[str, Any]) -> Path:
    """Write checkpoint ``step`` atomically under ``root`` and return its path."""
    path = Path(root) / checkpoint_name(step)
    with atomic_directory(path) as tmp:
        save_file(_contiguous(model), str(tmp / MODEL_FILE))
        fault_point("in_checkpoint", step)
        files = [MODEL_FILE, STATE_FILE]
        if optimizer:
            save_file(_contiguous(optimizer), str(tmp / OPTIMIZER_FILE))
            files.append(OPTIMIZER_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(state, allow_nan=False) + "\n", encoding="utf-8")
        manifest = {"step": step, "files": {name: _sha256(tmp / name) for name in files}}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, path) of every ``step-*`` directory under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and verify one checkpoint; raise :class:`CheckpointCorrupt` with the reason."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
        for name, digest in manifest["files"].items():
            if _sha256(path / name) != digest:
                raise CheckpointCorrupt(f"{name} does not match its checksum")
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        model = load_file(str(path / MODEL_FILE))
        optimizer = load_file(str(path / OPTIMIZER_FILE)) if OPTIMIZER_FILE in manifest["files"] else {}
    except CheckpointCorrupt:
        raise
    except FileNotFoundError as exc:
        raise CheckpointCorrupt(f"missing {Path(exc.filename).name if exc.filename else 'file'}") from None
    except Exception as exc:  # truncated safetensors, bad JSON, unreadable file
        raise CheckpointCorrupt(f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
    if int(state.get("global_step", -1)) != int(manifest.get("step", -2)):
        raise CheckpointCorrupt("state.json and COMPLETE.json disagree on the step")
    return Checkpoint(path, model, optimizer, state)


def _set_aside(path: Path, reason: str) -> None:
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt{n}")
    try:
        os.replace(path, target)
        warnings.warn(f"checkpoint {path} is unusable ({reason}); kept as {target.name}, using the previous one",
                      stacklevel=2)
    except OSError:
        warnings.warn(f"checkpoint {path} is unusable ({reason}); skipping it", stacklevel=2)


def remove_stale_temporaries(root: Path) -> None:
    """Remove the ``.step-*.tmp`` folders a killed run leaves behind (never a ``step-*``)."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in root.iterdir():
        if p.name.startswith(".step-") and (p.name.endswith(".tmp") or ".old-" in p.name):
            warnings.warn(f"removing the half-written checkpoint {p.name} left by an interrupted run", stacklevel=2)
            shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(root: Path, set_aside: bool = True) -> Checkpoint | None:
    """The newest checkpoint that verifies; broken ones are skipped with a warning.

    Raises :class:`Brain2TextError` when checkpoints exist but none of them can be used.
    """
    found = list_checkpoints(root)
    for _, path in found:
        try:
            return load_checkpoint(path)
        except CheckpointCorrupt as exc:
            if set_aside:
                _set_aside(path, str(exc))
            else:
                warnings.warn(f"checkpoint {path} is unusable ({exc}); trying the previous one", stacklevel=2)
    if found:
        raise Brain2TextError("no usable checkpoint to resume from: every one failed its checks (see the warnings)",
                              root)
    return None


def prune_checkpoints(root: Path, keep_last: int) -> None:
    """Delete periodic checkpoints beyond the newest ``keep_last`` (corrupt ones are not touched)."""
    for _, path in list_checkpoints(root)[keep_last:]:
        shutil.rmtree(path, ignore_errors=True)
