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
Loading refuses any pickle-capable file (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``, ``*.ckpt``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..config import config_from_dict
from ..constants import (
    ADAPTER_DIR,
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    PREPROCESSING_FILE,
    TOKENIZER_DIR,
)
from ..data.tokenizer import load_tokenizer
from ..errors import Brain2TextError, ModelError
from ..registry import DECODER_WEIGHTS_FILE, WEIGHTS_MODULES
from ..utils.atomic import atomic_directory
from .build import build_model
from .decoder import check_decoder_path
from .model_card import write_model_card

FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def save_model(model, path: str | os.PathLike, preprocessing: dict | None = None) -> None:
    """Write ``model`` to the directory ``path`` atomically; ``preprocessing`` defaults to the model's record."""
    preprocessing = model.preprocessing if preprocessing is None else preprocessing
    state = {f"{part}.{k}": v.detach().cpu().contiguous() for part in WEIGHTS_MODULES
             for k, v in getattr(model, part).state_dict().items()}
    meta = {"format": "brain2text", "version": FORMAT_VERSION, "config": model.cfg.to_dict(),
            "decoder_base": model.decoder_base, "n_tokens": len(model.tokenizer)}
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


def refuse_pickle(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError("refusing to load a pickle-capable file (only safetensors and JSON are loaded)", p)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ModelError("missing file: not a brain2text model directory", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable JSON ({exc})", path) from None
    if not isinstance(data, dict):
        raise ModelError("expected a JSON object", path)
    return data


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; a missing, truncated or corrupt file is a ModelError naming it."""
    if not path.is_file():
        raise ModelError("missing weights file", path)
    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError, ValueError...: all mean "unusable file"
        raise ModelError(f"corrupt or truncated safetensors file ({' '.join(str(exc).split())[:160]})", path) from None


def _check_adapter(adapter: Path) -> None:
    weights = adapter / "adapter_model.safetensors"
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError("missing LoRA adapter config", adapter / "adapter_config.json")
    read_safetensors(weights)  # validates before peft sees it


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild a :class:`~brain2text.models.brain2text.Brain2Text` saved with :func:`save_model`."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError("model directory not found", path)
    refuse_pickle(path)
    meta_path = path / MODEL_CONFIG_FILE
    meta = _read_json(meta_path)
    if meta.get("format") != "brain2text" or "config" not in meta or "decoder_base" not in meta:
        raise ModelError("not a brain2text model config (needs format, config and decoder_base)", meta_path)
    cfg = config_from_dict(meta["config"], source=str(meta_path))
    base = str(meta["decoder_base"])
    if not Path(base).is_absolute() and (path / base).is_dir():  # a base shipped beside/inside the model
        base = str((path / base).resolve())
    try:
        check_decoder_path(base)
    except ModelError:
        raise ModelError(f"the base decoder this model was trained on is not at {base!r}; put it back there or edit "
                         f"'decoder_base' in {MODEL_CONFIG_FILE}", meta_path) from None
    cfg.decoder.model_name_or_path = base
    state = read_safetensors(path / MODEL_WEIGHTS_FILE)
    _check_adapter(path / ADAPTER_DIR)
    decoder_state = read_safetensors(path / DECODER_WEIGHTS_FILE) if (path / DECODER_WEIGHTS_FILE).exists() else None
    tokenizer = load_tokenizer(path / TOKENIZER_DIR)
    try:
        model = build_model(cfg, tokenizer=tokenizer, adapter_dir=path / ADAPTER_DIR)
    except Brain2TextError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot rebuild the model ({' '.join(str(exc).split())[:200]})", path) from None
    _load_parts(model, state, path / MODEL_WEIGHTS_FILE)
    if decoder_state is not None:
        result = model.decoder.load_state_dict(decoder_state, strict=False)
        if result.unexpected_keys:
            raise ModelError(f"decoder weights do not fit ({result.unexpected_keys[:3]})", path / DECODER_WEIGHTS_FILE)
        model.decoder_trained = True
    model.preprocessing = _read_json(path / PREPROCESSING_FILE) if (path / PREPROCESSING_FILE).exists() else {}
    model.decoder_base = base
    return model.to(device).eval()


def _load_parts(model, state: dict, source: Path) -> None:
    for part in WEIGHTS_MODULES:
        prefix = f"{part}."
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        module = getattr(model, part)
        expected = module.state_dict()
        missing = sorted(set(expected) - set(sub))
        unexpected = sorted(set(sub) - set(expected))
        bad = [k for k in expected if k in sub and expected[k].shape != sub[k].shape]
        if missing or unexpected or bad:
            raise ModelError(f"{part} weights do not fit the config (missing {missing[:2]}, unexpected "
                             f"{unexpected[:2]}, wrong shape {bad[:2]})", source)
        module.load_state_dict(sub)
