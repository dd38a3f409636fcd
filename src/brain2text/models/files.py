"""Reading the files of a model directory: JSON objects and safetensors, every failure a one-line ModelError."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..errors import ModelError

MAX_JSON_BYTES = 64 * 2**20  # a preprocessing record of 27 subjects x 208 channels is ~250 kB


def read_json(path: Path, missing: str = "missing file: not a brain2text model directory") -> dict:
    """A JSON object from ``path``; missing, oversized, unreadable or non-object files are a ModelError."""
    if not path.is_file():
        raise ModelError(missing, path)
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ModelError(f"larger than {MAX_JSON_BYTES // 2**20} MiB: not a file brain2text writes", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable JSON ({exc})", path) from None
    except RecursionError:
        raise ModelError("unreadable JSON (nested too deeply)", path) from None
    if not isinstance(data, dict):
        raise ModelError(f"expected a JSON object, got {type(data).__name__}", path)
    return data


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; a missing, truncated or corrupt file is a ModelError naming it."""
    if not path.is_file():
        raise ModelError("missing weights file", path)
    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError, ValueError...: all mean "unusable file"
        raise ModelError(f"corrupt or truncated safetensors file ({' '.join(str(exc).split())[:160]})", path) from None


def safetensors_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, safetensors dtype) from a file's header only (the data is not read)."""
    if not path.is_file():
        raise ModelError("missing weights file", path)
    try:
        with safe_open(str(path), "pt") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception as exc:  # as read_safetensors
        raise ModelError(f"corrupt or truncated safetensors file ({' '.join(str(exc).split())[:160]})", path) from None
