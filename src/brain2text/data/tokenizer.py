"""Tokenizers: wrap any Hugging Face tokenizer with the MEG special tokens, and train the small BPE
tokenizer used by the embedded default.

The seed's custom tokenizer is :func:`add_meg_special_tokens` applied to whatever tokenizer the decoder
comes with (LLaMA-2's SentencePiece for the full-size system). The default's tokenizer is a byte-level
BPE trained on *training-split* sentences only (so test sentences leave no trace in its merges); byte
fallback means any held-out word can still be encoded.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from ..constants import SPECIAL_TOKENS
from ..errors import ModelError

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"


def train_bpe_tokenizer(texts: list[str], vocab_size: int = 2000, model_max_length: int = 512):
    """Train a byte-level BPE tokenizer on ``texts`` and return a ``PreTrainedTokenizerFast``.

    It has ``<s>``, ``</s>``, ``<pad>``, ``<unk>`` plus the MEG special tokens. On a small corpus the
    learned vocabulary comes out smaller than ``vocab_size`` (STACK_NOTES).
    """
    if not texts:
        raise ValueError("train_bpe_tokenizer needs at least one text")
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    add_meg_special_tokens(fast)
    return fast


def train_word_tokenizer(texts: list[str], vocab_size: int = 4000, model_max_length: int = 512):
    """Train a word-level tokenizer (one id per whitespace-separated word, as written) on ``texts``.

    The ``vocab_size`` most frequent words get ids (ties by first occurrence); any other word is
    ``<unk>``, which decodes to nothing, so a held-out word the training text lacks can never be
    predicted. Used where a word is the unit the MEG encodes (the synthetic default: one evoked
    pattern per word), so the encoder's CTC head predicts whole words.
    """
    if not texts:
        raise ValueError("train_word_tokenizer needs at least one text")
    counts = Counter(w for t in texts for w in t.split())
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: -kv[1])][:vocab_size]
    specials = [PAD, BOS, EOS, UNK]
    vocab = {t: i for i, t in enumerate(specials + [w for w in words if w not in specials])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
                                   model_max_length=model_max_length, clean_up_tokenization_spaces=False)
    add_meg_special_tokens(fast)
    return fast


def add_meg_special_tokens(tokenizer) -> int:
    """Add ``<meg_start>``, ``<meg_end>`` and ``<meg>`` (and a pad token if missing) to ``tokenizer``.

    Returns the number of tokens added; the caller resizes the decoder's embeddings with
    ``model.resize_token_embeddings(len(tokenizer))``. Idempotent.
    """
    added = 0
    if tokenizer.pad_token is None:
        # LLaMA-2 ships without a pad token; the unk/eos token would make padding indistinguishable
        # from text for the loss, so a dedicated one is added.
        added += tokenizer.add_special_tokens({"pad_token": "<pad>"})
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        added += tokenizer.add_special_tokens({"additional_special_tokens": missing},
                                              replace_extra_special_tokens=False)
    return added


def meg_token_ids(tokenizer) -> dict[str, int]:
    """Ids of the MEG special tokens (after :func:`add_meg_special_tokens`)."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise ModelError(f"tokenizer lacks the MEG special tokens {missing}; call add_meg_special_tokens first")
    return {t: vocab[t] for t in SPECIAL_TOKENS}


def load_tokenizer(path: str | os.PathLike):
    """Load a tokenizer directory (``save_pretrained`` output) offline and ensure the MEG tokens."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError("tokenizer directory not found", path)
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load tokenizer ({' '.join(str(exc).split())[:200]})", path) from None
    add_meg_special_tokens(tok)
    return tok
