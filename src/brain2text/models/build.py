"""Building a :class:`~brain2text.models.brain2text.Brain2Text` from a config: the decoder (offline-safe),
its tokenizer with the MEG tokens, LoRA (fresh, or a saved adapter), and the MEG side around it."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from ..config import Config
from ..data.tokenizer import add_meg_special_tokens, load_tokenizer
from ..errors import ConfigError
from .brain2text import Brain2Text
from .decoder import build_decoder, check_decoder_path
from .gguf import is_gguf, load_gguf_tokenizer
from .units import CTCUnits


def build_model(cfg: Config, tokenizer=None, adapter_dir=None, units: CTCUnits | None = None,
                unit_texts: list[str] | None = None) -> Brain2Text:
    """Load the decoder of ``cfg.decoder.model_name_or_path`` (offline-safe), add the MEG tokens,
    apply LoRA (fresh, or from ``adapter_dir``), and build the MEG side around it.

    The CTC head's classes: ``units`` (a saved model's), else ``decoder.ctc_units``: every tokenizer id,
    or (``training_text``) the ids of ``unit_texts``, the training split's sentences. With
    ``encoder.phoneme_head`` the words of ``unit_texts`` become the lexicon decoder's (``lexicon_words``)."""
    path = cfg.decoder.model_name_or_path
    check_decoder_path(path)
    if tokenizer is None:
        tokenizer = base_tokenizer(path)
    add_meg_special_tokens(tokenizer)
    units = units if units is not None else _units(cfg, tokenizer, unit_texts)
    decoder = build_decoder(cfg.decoder, len(tokenizer), adapter_dir=adapter_dir)
    model = Brain2Text(cfg, decoder, tokenizer, units=units)
    if cfg.encoder.phoneme_head and unit_texts:
        model.lexicon_words = lexicon_words(unit_texts)
    model.decoder_base = str(Path(path).resolve()) if Path(path).exists() else path
    return model


def lexicon_words(texts: list[str]) -> list[str]:
    """The distinct words of ``texts`` (the training sentences), sorted: the lexicon decoder's vocabulary."""
    return sorted({w for text in texts for w in text.split()})


def _units(cfg: Config, tokenizer, texts: list[str] | None) -> CTCUnits:
    if cfg.decoder.ctc_units == "all":
        return CTCUnits.every_token(len(tokenizer))
    if not texts:
        raise ConfigError("decoder.ctc_units=training_text needs the training split's sentences (training passes "
                          "them; a saved model carries its units)")
    return CTCUnits.from_texts(tokenizer, texts)


def base_tokenizer(path: str):
    """The base LM's tokenizer: a local directory, a `.gguf` file, or a hub id."""
    if Path(path).is_dir():
        return load_tokenizer(path)
    return load_gguf_tokenizer(path) if is_gguf(path) else AutoTokenizer.from_pretrained(path)
