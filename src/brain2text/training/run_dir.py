"""The training output directory: ours or not, same run or not.

A training run writes ``run.json`` first (what it is, the mode, the config and its hash). A later
command on the same directory with the same config continues from the newest checkpoint; a directory
holding someone else's files, or a run with another config, stops with one clear line before any work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import Brain2TextError
from ..utils.atomic import atomic_write_json

RUN_FILE = "run.json"
RUN_KIND = "brain2text-train"
CHECKPOINTS_DIR = "checkpoints"
# Settings that may change between a run and its resumption without changing the trained weights.
_NOT_HASHED = {"train": ("eval_every", "save_every", "keep_last", "n_val_generations", "val_batches", "log_every",
                         "num_workers", "best_metric"),
               "data": ("cache_dir",), "eval": None, "decoding": None}
_MODES = ("multi_phase", "full", "distill")


def config_hash(cfg: Config, mode: str, teacher: str | None) -> str:
    """Hash of everything that shapes the trained weights (not logging/eval frequencies)."""
    tree = cfg.to_dict()
    for section, keys in _NOT_HASHED.items():
        if keys is None:
            tree.pop(section, None)
        else:
            for k in keys:
                tree[section].pop(k, None)
    for other in _MODES:  # only this mode's phases shape this run
        if other != mode:
            tree["train"].pop(other, None)
    tree["_mode"] = mode
    tree["_teacher"] = str(Path(teacher).resolve()) if teacher else None
    blob = json.dumps(tree, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def _read_run(path: Path) -> dict[str, Any]:
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Brain2TextError(f"unreadable run file ({type(exc).__name__}); not resuming over it", path) from None
    if not isinstance(run, dict) or run.get("kind") != RUN_KIND:
        raise Brain2TextError("not a brain2text training run file; choose another --output_dir", path)
    return run


def check_output_dir(output_dir: Path, digest: str, resume: bool) -> bool:
    """Validate ``output_dir`` for this run; return True when it already holds this run.

    Raises :class:`Brain2TextError` for a file, a foreign directory, another run's directory, or
    ``--resume`` with nothing to resume.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise Brain2TextError("--output_dir is a file, not a directory", output_dir)
    run_file = output_dir / RUN_FILE
    if output_dir.is_dir() and not run_file.exists():
        if any(output_dir.iterdir()):
            raise Brain2TextError("--output_dir holds files that are not a brain2text training run "
                                  "(no run.json); choose an empty or new directory", output_dir)
        if resume:
            raise Brain2TextError("--resume: nothing to resume in this empty directory", output_dir)
        return False
    if not run_file.exists():
        if resume:
            raise Brain2TextError("--resume: the output directory does not exist", output_dir)
        return False
    run = _read_run(run_file)
    if run.get("config_hash") != digest:
        raise Brain2TextError(f"--output_dir holds a run with another config or mode (hash {run.get('config_hash')}, "
                              f"this one {digest}); use a new --output_dir or the run's own config", output_dir)
    has_ckpt = (output_dir / CHECKPOINTS_DIR).is_dir() and any((output_dir / CHECKPOINTS_DIR).glob("step-*"))
    if resume and not has_ckpt:
        raise Brain2TextError("--resume: this run has no checkpoint yet", output_dir)
    return True


def write_run_file(output_dir: Path, cfg: Config, mode: str, teacher: str | None, digest: str) -> None:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if (output_dir / RUN_FILE).exists():
        return
    atomic_write_json(output_dir / RUN_FILE, {
        "kind": RUN_KIND, "mode": mode, "config_hash": digest,
        "teacher_checkpoint": str(Path(teacher).resolve()) if teacher else None,
        "config": cfg.to_dict(),
    })


def repair_model_dirs(output_dir: Path, names: tuple[str, ...] = ("best_model", "final_model")) -> None:
    """Bring back a model directory a kill caught between the two renames of ``atomic_directory``."""
    output_dir = Path(output_dir)
    for name in names:
        olds = sorted(output_dir.glob(f".{name}.old-*"))
        if olds and not (output_dir / name).exists():
            warnings.warn(f"restoring {name} from {olds[-1].name} (a previous run was killed while replacing it)",
                          stacklevel=2)
            os.replace(olds[-1], output_dir / name)
            olds = olds[:-1]
        # what a kill leaves besides: the half-written new copy, or the old one not yet deleted
        for leftover in [*olds, *output_dir.glob(f".{name}.*.tmp")]:
            warnings.warn(f"removing {leftover.name}, left by a run killed while writing {name}", stacklevel=2)
            shutil.rmtree(leftover, ignore_errors=True)
