"""A saved brain2text model directory: safetensors and JSON only, written atomically.

::

    brain2text_config.json   {"format": "brain2text", "version": 1, "config": {...}, "decoder_base": PATH}
    brain2text.safetensors   encoder, rvq (codebooks and EMA state), projector, ctc_head, word_head
    adapter/                 the LoRA adapter in peft's format (adapter_model.safetensors + adapter_config.json)
    tokenizer/               the decoder tokenizer with the MEG special tokens
    preprocessing.json       what the data layer needs to preprocess raw recordings the same way
    decoder.safetensors      only when a phase trained the whole decoder: its non-LoRA weights
    README.md                the model card (models/model_card.py): what the model is, how to load it

The base decoder is *not* copied: ``decoder_base`` records the directory (or hub id) it was loaded
from, and :func:`load_model` reloads it from there (a missing base is a clear :class:`ModelError`). A
relative ``decoder_base`` is tried against the model directory first, so a model and its base can travel
together.
Loading validates every file first (:mod:`brain2text.models.validation`: symlinks out of the directory and
pickle-capable files refused, the config strictly, tensors against the config, adapter against the base,
the preprocessing record against its schema).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..constants import ADAPTER_DIR, MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, PREPROCESSING_FILE, TOKENIZER_DIR
from ..errors import Brain2TextError, ModelError
from ..registry import DECODER_WEIGHTS_FILE, WEIGHTS_MODULES
from ..utils.atomic import atomic_directory
from .build import build_model
from .files import read_safetensors
from .model_card import write_model_card
from .validation import FORMAT_VERSION, validate_model_dir


def save_model(model, path: str | os.PathLike, preprocessing: dict | None = None) -> None:
    """Write ``model`` to the directory ``path`` atomically; ``preprocessing`` defaults to the model's record."""
    preprocessing = model.preprocessing if preprocessing is None else preprocessing
    state = {f"{part}.{k}": v.detach().cpu().contiguous() for part in WEIGHTS_MODULES
             if getattr(model, part, None) is not None for k, v in getattr(model, part).state_dict().items()}
    meta = {"format": "brain2text", "version": FORMAT_VERSION, "config": model.cfg.to_dict(),
            "decoder_base": model.decoder_base, "n_tokens": len(model.tokenizer), "ctc_units": model.units.to_json(),
            "lexicon_words": model.lexicon_words}
    try:
        json.dumps(preprocessing, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"preprocessing must be plain JSON ({exc})", path) from None
    with atomic_directory(path) as tmp:
        save_file(state, str(tmp / MODEL_WEIGHTS_FILE))
        model.decoder.save_pretrained(str(tmp / ADAPTER_DIR), save_embedding_layers=False)
        model.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        if model.decoder_trained:
            base = {k: v.detach().cpu().contiguous() for k, v in model.decoder.named_parameters() if "lora_" not in k}
            save_file(base, str(tmp / DECODER_WEIGHTS_FILE))
        (tmp / MODEL_CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / PREPROCESSING_FILE).write_text(json.dumps(preprocessing, indent=2, allow_nan=False) + "\n")
        write_model_card(tmp, model, model_path=path)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild a :class:`~brain2text.models.brain2text.Brain2Text` saved with :func:`save_model`.

    Every file is validated first (:func:`~brain2text.models.validation.validate_model_dir`): a bad one is a
    one-line :class:`ModelError` naming it and the field, before anything is built."""
    report = validate_model_dir(path)
    try:
        model = build_model(report.config, tokenizer=report.tokenizer, adapter_dir=Path(path) / ADAPTER_DIR,
                            units=report.units)
    except Brain2TextError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot rebuild the model ({' '.join(str(exc).split())[:200]})", path) from None
    for part in WEIGHTS_MODULES:  # keys, shapes and dtypes were checked against the config
        if getattr(model, part, None) is None:  # an optional head this config leaves out
            continue
        getattr(model, part).load_state_dict({k.removeprefix(f"{part}."): v for k, v in report.state.items()
                                              if k.startswith(f"{part}.")})
    if report.decoder_weights is not None:
        model.decoder.load_state_dict(read_safetensors(report.decoder_weights), strict=False)
        model.decoder_trained = True
    model.preprocessing = report.preprocessing
    model.lexicon_words = report.lexicon_words
    model.decoder_base = report.decoder_base
    return model.to(device).eval()
