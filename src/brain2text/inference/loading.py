"""Load a trained model directory for inference or evaluation (safetensors only, see models/brain2text.py)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import ModelError


def load_model(model_path: str | os.PathLike, device: str = "cpu"):
    """``Brain2Text.from_pretrained(model_path)`` in eval mode on ``device``."""
    path = Path(model_path)
    if not path.is_dir():
        raise ModelError("model directory not found", path)
    from ..models.brain2text import Brain2Text

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a user sees our progress bars and one-line errors, not HF's loading bars
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # library deprecation notices are not the user's business
        model = Brain2Text.from_pretrained(str(path))
    try:
        model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise ModelError(f"cannot move the model to device {device!r} ({' '.join(str(exc).split())[:120]})", path) from None
    model.eval()
    return model
