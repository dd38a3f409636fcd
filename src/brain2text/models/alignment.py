"""Losses that tie the MEG encoder to the words heard (DESIGN.md §8): pure functions, no state.

- :func:`ctc_loss`: CTC from encoder tokens to the text in the decoder tokenizer's units (the CTC head's
  classes are the tokenizer ids plus a blank at ``len(tokenizer)``, see :mod:`brain2text.decoding.ctc`);
  the data layer tokenises the texts for it (:func:`brain2text.data.batch.tokenize_batch`).
- :func:`phoneme_frame_labels` / :func:`frame_loss`: each word's phonemes spread evenly from its onset to
  the next word's, as frame-wise targets for the phoneme head. Trained on CTC alone, the phoneme head stayed
  at all-blank (loss at the unigram level after 400 demo steps, at 25 and 50 tokens/s); with this loss
  beside CTC its greedy phoneme error rate on validation was 0.58 after 400 steps and 0.50 after 800.
- :func:`word_contrastive_loss`: CLIP-style symmetric InfoNCE (Radford et al. 2021) between the MEG
  around each word onset (:func:`gather_word_windows`) and the word's text embedding, with repeated
  words as shared positives (:func:`word_labels`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ctc_loss(log_probs: Tensor, input_mask: Tensor, targets: Tensor, target_lengths: Tensor, blank: int) -> Tensor:
    """CTC loss of encoder-token class log-probabilities against token targets.

    ``log_probs``: ``(B, T', V)`` log-softmax over V classes (blank included); ``input_mask``: ``(B, T')``
    bool, True on valid tokens (right padding); ``targets``: ``(B, L)`` long, padded; ``target_lengths``:
    ``(B,)``. Returns torch's ``reduction="mean"``: each example's negative log-likelihood divided by its
    target length (per-token, on the scale of the LM loss), averaged over the batch. Impossible
    alignments (more targets than frames) give 0 rather than inf (``zero_infinity=True``).
    """
    if log_probs.ndim != 3:
        raise ValueError(f"ctc_loss expects log_probs (B, T', V), got {tuple(log_probs.shape)}")
    n_batch, n_tokens, n_classes = log_probs.shape
    if input_mask.shape != (n_batch, n_tokens):
        raise ValueError(f"input_mask must be {(n_batch, n_tokens)}, got {tuple(input_mask.shape)}")
    if targets.ndim != 2 or targets.shape[0] != n_batch or target_lengths.shape != (n_batch,):
        raise ValueError(f"targets must be (B={n_batch}, L) and target_lengths ({n_batch},), got "
                         f"{tuple(targets.shape)} and {tuple(target_lengths.shape)}")
    if not 0 <= blank < n_classes:
        raise ValueError(f"blank {blank} is outside the {n_classes} CTC classes")
    input_lengths = input_mask.long().sum(dim=1)
    return F.ctc_loss(
        log_probs.transpose(0, 1).float(),  # (T', B, V), the layout torch expects
        targets.long(),
        input_lengths,
        target_lengths.long(),
        blank=blank,
        reduction="mean",
        zero_infinity=True,
    )


IGNORE = -100


def phoneme_frame_labels(phoneme_ids: list[list[list[int]]], word_onsets: list[list[float]], rate: float,
                         lengths: Tensor, last_word: float = 0.35) -> Tensor:
    """``(B, T)`` long frame labels at ``rate`` frames/s: word ``j``'s phonemes share the time from its onset to
    word ``j + 1``'s (``last_word`` seconds for the last word) in equal parts; other frames ``IGNORE``."""
    out = torch.full((len(phoneme_ids), int(lengths.max()) if len(lengths) else 0), IGNORE, dtype=torch.long)
    for b, (words, onsets) in enumerate(zip(phoneme_ids, word_onsets)):
        n = int(lengths[b])
        for j, (phones, onset) in enumerate(zip(words, onsets)):
            end = onsets[j + 1] if j + 1 < len(onsets) else onset + last_word
            step = (end - onset) / max(1, len(phones))
            for q, p in enumerate(phones):
                a = max(0, int((onset + q * step) * rate))
                z = min(n, max(int((onset + (q + 1) * step) * rate), a + 1))
                out[b, a:z] = p
    return out


def frame_loss(log_probs: Tensor, labels: Tensor) -> Tensor:
    """Mean negative log-likelihood of ``labels`` (``(B, T)``, ``IGNORE`` skipped) under ``log_probs`` ``(B, T, V)``;
    0 (with a gradient path) when no frame is labelled."""
    if not bool((labels != IGNORE).any()):
        return log_probs.sum() * 0.0
    labels = labels.to(log_probs.device)
    return F.nll_loss(log_probs[:, : labels.shape[1]].reshape(-1, log_probs.shape[-1]), labels.reshape(-1),
                      ignore_index=IGNORE)


def word_contrastive_loss(
    meg_emb: Tensor, text_emb: Tensor, temperature: float = 0.1, labels: Tensor | None = None
) -> Tensor:
    """Symmetric InfoNCE between MEG word embeddings ``(N, D)`` and text word embeddings ``(N, D)``.

    Row ``i`` of each is the same word occurrence. With ``labels`` ``(N,)`` (word ids, e.g. from
    :func:`word_labels`), every pair with equal labels is a positive: the loss is
    ``-log(sum over positives of exp(sim) / sum over all of exp(sim))`` in both directions, so repeated
    words are not pushed apart. Cosine similarity divided by ``temperature``. ``N == 0`` gives 0.
    """
    if meg_emb.ndim != 2 or meg_emb.shape != text_emb.shape:
        raise ValueError(f"meg_emb and text_emb must both be (N, D), got {tuple(meg_emb.shape)} and "
                         f"{tuple(text_emb.shape)}")
    n = meg_emb.shape[0]
    if n == 0:
        return meg_emb.sum() * 0.0 + text_emb.sum() * 0.0
    if labels is None:
        labels = torch.arange(n, device=meg_emb.device)
    if labels.shape != (n,):
        raise ValueError(f"labels must be ({n},), got {tuple(labels.shape)}")
    logits = F.normalize(meg_emb.float(), dim=-1) @ F.normalize(text_emb.float(), dim=-1).T / temperature  # (N, N)
    positive = labels[:, None] == labels[None, :]
    return 0.5 * (_multi_positive_nce(logits, positive) + _multi_positive_nce(logits.T, positive.T))


def _multi_positive_nce(logits: Tensor, positive: Tensor) -> Tensor:
    pos = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    return (torch.logsumexp(logits, dim=1) - pos).mean()


def gather_word_windows(
    tokens: Tensor,
    token_rate: float,
    word_onsets: list[list[float]],
    window: tuple[float, float] = (0.0, 0.5),
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean-pool encoder tokens in ``[onset + window[0], onset + window[1])`` seconds after each word.

    ``tokens``: ``(B, T', D)`` at ``token_rate`` tokens per second (token ``i`` covers
    ``[i / rate, (i + 1) / rate)`` of the MEG window); ``word_onsets``: per example, seconds from the
    window start as the data layer gives them (its MEG delay is already applied, so none is added here);
    ``mask``: ``(B, T')`` valid tokens. Returns ``emb`` ``(N, D)`` and ``index`` ``(N, 2)`` = (example,
    word position) of the words kept: a word whose window holds no valid token is skipped.
    """
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be (B, T', D), got {tuple(tokens.shape)}")
    n_batch, n_tokens, _ = tokens.shape
    if len(word_onsets) != n_batch:
        raise ValueError(f"word_onsets has {len(word_onsets)} examples, tokens {n_batch}")
    if not window[1] > window[0] or token_rate <= 0:
        raise ValueError(f"need window[1] > window[0] and token_rate > 0, got {window} and {token_rate}")
    valid = torch.ones(n_batch, n_tokens, dtype=torch.bool, device=tokens.device) if mask is None else mask.bool()
    starts = torch.arange(n_tokens, device=tokens.device, dtype=torch.float64) / token_rate  # (T',)
    ends = starts + 1.0 / token_rate
    embs, index = [], []
    for b, onsets in enumerate(word_onsets):
        if not len(onsets):
            continue
        on = torch.as_tensor(onsets, dtype=torch.float64, device=tokens.device)[:, None]  # (W, 1)
        # a token belongs to a word's window when their time spans overlap
        weight = (ends[None] > on + window[0]) & (starts[None] < on + window[1]) & valid[b][None]  # (W, T')
        count = weight.sum(dim=1)
        keep = (count > 0).nonzero().flatten()
        if keep.numel() == 0:
            continue
        w = weight[keep].to(tokens.dtype) / count[keep, None].to(tokens.dtype)
        embs.append(w @ tokens[b])  # (W_kept, D)
        index.append(torch.stack([torch.full_like(keep, b), keep], dim=1))
    if not embs:
        return tokens.new_zeros(0, tokens.shape[-1]), torch.zeros(0, 2, dtype=torch.long, device=tokens.device)
    return torch.cat(embs), torch.cat(index)


def word_labels(words: list[list[str]], index: Tensor) -> Tensor:
    """Word-identity ids ``(N,)`` for the words ``index`` picked (case and surrounding punctuation
    ignored), for :func:`word_contrastive_loss`'s shared positives."""
    ids: dict[str, int] = {}
    out = []
    for b, w in index.tolist():
        key = words[b][w].strip(" .,;:!?\"'()[]").lower()
        out.append(ids.setdefault(key, len(ids)))
    return torch.tensor(out, dtype=torch.long, device=index.device)
