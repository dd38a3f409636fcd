"""Load a trained model directory for inference or evaluation (safetensors only, see models/brain2text.py)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from transformers.utils import logging as hf_logging

from ..errors import ModelError
from ..models.serialization import load_model as load_model_dir


def load_model(model_path: str | os.PathLike, device: str = "cpu"):
    """:func:`brain2text.models.serialization.load_model` in eval mode on ``device``."""
    path = Path(model_path)
    if not path.is_dir():
        raise ModelError("model directory not found", path)


    hf_logging.disable_progress_bar()  # a user sees our progress bars and one-line errors, not HF's loading bars
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # library deprecation notices are not the user's business
        model = load_model_dir(path)
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise ModelError(f"cannot move the model to device {device!r} ({' '.join(str(exc).split())[:120]})",
                         path) from None
    model.eval()
    return model
