"""Splicing projected MEG tokens into the decoder's input (LLaVA-style), as one small tested function.

A sequence is ``prefix_ids`` (e.g. ``<s>`` + prompt + ``<meg_start>``), then the MEG vectors, then
``suffix_ids`` (``<meg_end>``), then the target tokens when training. Labels are ``IGNORE_INDEX`` on
everything but the targets (and on padding). Training pads on the right; generation on the left, so
that every sequence ends where generation starts. ``position_ids`` count real tokens only, so left
padding does not shift positions: a sequence alone and inside a padded batch see the same positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..constants import IGNORE_INDEX


@dataclass
class SplicedInputs:
    inputs_embeds: torch.Tensor  # (B, L, H)
    attention_mask: torch.Tensor  # (B, L) long, 1 on real positions
    position_ids: torch.Tensor  # (B, L) long
    labels: torch.Tensor | None  # (B, L) long, IGNORE_INDEX except target tokens (HF convention: unshifted)


def splice_meg(prefix_ids: list[int], suffix_ids: list[int], meg: torch.Tensor | None, meg_lengths: torch.Tensor | None,
               embed: Callable[[torch.Tensor], torch.Tensor], targets: list[list[int]] | None = None,
               target_inputs: list[list[int]] | None = None, pad_side: str = "right", batch_size: int | None = None) -> SplicedInputs:
    """Build decoder inputs.

    meg (B, T', H) projected MEG tokens (or None: the prompt alone, the no-MEG control), meg_lengths (B,)
    real MEG tokens per example; embed maps ids (N,) -> (N, H); targets: token ids per example (labels);
    target_inputs: ids fed as input instead of ``targets`` (word dropout), default ``targets``.
    """
    if pad_side not in ("left", "right"):
        raise ValueError(f"pad_side must be 'left' or 'right', got {pad_side!r}")
    n = meg.shape[0] if meg is not None else (len(targets) if targets is not None else batch_size)
    if n is None:
        raise ValueError("splice_meg needs meg, targets or batch_size to know the batch size")
    device = meg.device if meg is not None else embed(torch.zeros(1, dtype=torch.long)).device
    ids = lambda x: torch.as_tensor(x, dtype=torch.long, device=device)  # noqa: E731
    pre, suf = embed(ids(prefix_ids)), embed(ids(suffix_ids))  # (P, H), (S, H)
    seqs, labels = [], []
    for b in range(n):
        parts = [pre]
        if meg is not None:
            parts += [meg[b, : int(meg_lengths[b])].to(pre.dtype), suf]
        n_context = sum(p.shape[0] for p in parts)
        lab = [IGNORE_INDEX] * n_context
        if targets is not None:
            fed = targets[b] if target_inputs is None else target_inputs[b]
            parts.append(embed(ids(fed)))
            lab += list(targets[b])
        seqs.append(torch.cat(parts))
        labels.append(ids(lab))
    length = max(s.shape[0] for s in seqs)
    embeds = torch.stack([_pad(s, length, pad_side, 0.0) for s in seqs])  # (B, L, H)
    mask = torch.stack([_pad(torch.ones(s.shape[0], dtype=torch.long, device=device), length, pad_side, 0) for s in seqs])
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    lab = torch.stack([_pad(x, length, pad_side, IGNORE_INDEX) for x in labels]) if targets is not None else None
    return SplicedInputs(embeds, mask, positions, lab)


def _pad(x: torch.Tensor, length: int, side: str, value) -> torch.Tensor:
    extra = length - x.shape[0]
    widths = (0, 0) * (x.ndim - 1) + ((extra, 0) if side == "left" else (0, extra))
    return F.pad(x, widths, value=value)


class CachedLMStep:
    """``lm_step_fn`` for :mod:`brain2text.decoding.joint`: next-token log-probs after a fixed context
    (prompt + MEG embeddings, (1, P, H)) and each prefix of generated ids, with a KV cache that
    :meth:`reorder` follows the beam's parents."""

    def __init__(self, decoder, context: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor]):
        self.decoder, self.context, self.embed = decoder, context, embed
        self.cache, self.cached_len, self.cached_n = None, -1, 0

    @torch.no_grad()
    def __call__(self, prefixes: list[list[int]]) -> torch.Tensor:
        n, length = len(prefixes), len(prefixes[0])
        device = self.context.device
        if self.cache is not None and self.cached_len == length - 1 and self.cached_n == n and length > 0:
            new = self.embed(torch.tensor([[p[-1]] for p in prefixes], device=device))  # (n, 1, H)
            mask = torch.ones(n, self.context.shape[1] + length, dtype=torch.long, device=device)
            out = self.decoder(inputs_embeds=new, attention_mask=mask, cache=self.cache, use_cache=True)
        else:
            ctx = self.context.expand(n, -1, -1)
            if length:
                ctx = torch.cat([ctx, self.embed(torch.tensor(prefixes, device=device)).to(ctx.dtype)], 1)
            out = self.decoder(inputs_embeds=ctx, attention_mask=torch.ones(ctx.shape[:2], dtype=torch.long, device=device),
                               use_cache=True)
        self.cache, self.cached_len, self.cached_n = out.cache, length, n
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (n, V)

    def reorder(self, parents: list[int]) -> None:
        if self.cache is not None:
            self.cache.reorder_cache(torch.as_tensor(parents, device=self.context.device))
            self.cached_n = len(parents)


class PrefixLM:
    """``prefix_lm_fn`` for :func:`brain2text.decoding.joint.ctc_fusion_beam_search`: next-token log-probs
    after a fixed context (prompt + MEG embeddings, (1, P, H)) and each of several prefixes of generated
    ids, of any lengths (right-padded into one batch; causal attention keeps the padding out)."""

    def __init__(self, decoder, context: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor], pad_id: int = 0):
        self.decoder, self.context, self.embed, self.pad_id = decoder, context, embed, pad_id

    @torch.no_grad()
    def __call__(self, prefixes: list[list[int]]) -> torch.Tensor:
        n, device = len(prefixes), self.context.device
        lengths = torch.tensor([len(p) for p in prefixes], device=device)
        longest = int(lengths.max()) if n else 0
        ctx = self.context.expand(n, -1, -1)
        if longest:
            ids = torch.tensor([p + [self.pad_id] * (longest - len(p)) for p in prefixes], device=device)
            ctx = torch.cat([ctx, self.embed(ids).to(ctx.dtype)], 1)
        mask = torch.ones(ctx.shape[:2], dtype=torch.long, device=device)
        mask[:, self.context.shape[1]:] = (torch.arange(longest, device=device)[None] < lengths[:, None]).long()
        logits = self.decoder(inputs_embeds=ctx, attention_mask=mask).logits
        last = logits[torch.arange(n, device=device), self.context.shape[1] + lengths - 1]  # (n, V)
        return torch.log_softmax(last.float(), dim=-1)
