"""Building a :class:`~brain2text.models.brain2text.Brain2Text` from a config: the decoder (offline-safe),
its tokenizer with the MEG tokens, LoRA (fresh, or a saved adapter), and the MEG side around it."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from ..config import Config
from ..data.tokenizer import add_meg_special_tokens, load_tokenizer
from .brain2text import Brain2Text
from .decoder import build_decoder, check_decoder_path


def build_model(cfg: Config, tokenizer=None, adapter_dir=None) -> Brain2Text:
    """Load the decoder of ``cfg.decoder.model_name_or_path`` (offline-safe), add the MEG tokens,
    apply LoRA (fresh, or from ``adapter_dir``), and build the MEG side around it."""
    path = cfg.decoder.model_name_or_path
    check_decoder_path(path)
    if tokenizer is None:
        tokenizer = load_tokenizer(path) if Path(path).is_dir() else AutoTokenizer.from_pretrained(path)
    add_meg_special_tokens(tokenizer)
    decoder = build_decoder(cfg.decoder, len(tokenizer), adapter_dir=adapter_dir)
    model = Brain2Text(cfg, decoder, tokenizer)
    model.decoder_base = str(Path(path).resolve()) if Path(path).is_dir() else path
    return model
