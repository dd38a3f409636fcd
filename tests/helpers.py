"""Test helpers other test folders may import (``from helpers import make_tiny_model_dir, tiny_config``).

``make_tiny_model_dir(path)`` saves a tiny LLaMA (hidden 32, 2 layers, 2 heads, untrained) and a byte-level
BPE tokenizer (with the MEG special tokens) into ``path`` with ``save_pretrained``: the same
``from_pretrained`` path a user's LLaMA-2 7B directory goes through, fully offline.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "the cable spool fort was built by bill and roy",
    "roy climbed to the top of the fort and waved",
    "they did not know what the spool was for",
    "easy money is never as easy as it looks",
    "the black willow stood alone by the river",
    "she listened to the story and smiled",
] * 3


def make_tiny_model_dir(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random LLaMA + tokenizer to ``path`` (created) and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    from brain2text.data.tokenizer import train_bpe_tokenizer

    logging.disable_progress_bar()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = train_bpe_tokenizer(SENTENCES, vocab_size=300)
    cfg = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      intermediate_size=64, vocab_size=len(tok), max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_config(model_dir: str | os.PathLike, overrides: list[str] | None = None):
    """``configs/tiny.yaml`` with ``decoder.model_name_or_path`` set to ``model_dir``."""
    from brain2text.config import load_config

    return load_config(REPO / "configs" / "tiny.yaml", [f"decoder.model_name_or_path={model_dir}", *(overrides or [])])


def make_batch(lengths=(120, 80), n_chans: int = 20, texts=None, seed: int = 0, sfreq: float = 100.0, tokenizer=None):
    """A random padded :class:`MEGBatch` with sensor positions, words and word onsets (and, with
    ``tokenizer``, their token ids, as the data layer's collate gives them for training)."""
    import torch

    from brain2text.data.batch import MEGBatch, tokenize_batch

    g = torch.Generator().manual_seed(seed)
    b, t = len(lengths), max(lengths)
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    meg = torch.randn(b, n_chans, t, generator=g) * mask[:, None]
    texts = list(texts or [SENTENCES[i % len(SENTENCES)] for i in range(b)])
    words = [s.split() for s in texts]
    onsets = [[min(0.3 * i, (n - 1) / sfreq) for i in range(len(w))] for w, n in zip(words, lengths)]
    batch = MEGBatch(meg=meg, meg_mask=mask, subject_index=torch.arange(b) % 4, channel_mask=None,
                     sensor_positions=torch.rand(b, n_chans, 2, generator=g), texts=texts, words=words,
                     word_onsets=onsets, example_ids=[f"ex{i}" for i in range(b)], sfreq=sfreq)
    return batch if tokenizer is None else tokenize_batch(batch, tokenizer)


def ctc_log_prob_by_prefix_scorer(log_probs, blank: int, ids: list[int], length=None) -> float:
    """``log P_CTC(ids | x)`` through the label-synchronous prefix scorer, one label at a time: an
    independent check on :func:`brain2text.decoding.scorers.ctc_sequence_log_prob` (``F.ctc_loss``)."""
    import torch

    from brain2text.decoding.ctc import CTCPrefixScorer

    scorer = CTCPrefixScorer(log_probs, blank, length=length)
    state = scorer.initial_state()
    for c in ids:
        _, state = scorer.score(state, torch.tensor([[c]]))
    return float(scorer.end_scores(state)[0])
