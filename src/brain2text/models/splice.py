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


def splice_meg(embed: Callable[[torch.Tensor], torch.Tensor], prefix_ids: list[int], *, meg: torch.Tensor | None = None,
               meg_lengths: torch.Tensor | None = None, suffix_ids: list[int] = (),
               targets: list[list[int]] | None = None, target_inputs: list[list[int]] | None = None,
               pad_side: str = "right",
               batch_size: int | None = None) -> SplicedInputs:
    """Build decoder inputs.

    embed maps ids (N,) -> (N, H); meg (B, T', H) projected MEG tokens (None: the prompt alone, the no-MEG
    control), meg_lengths (B,) real MEG tokens per example, suffix_ids the ids after them; targets: token
    ids per example (labels); target_inputs: ids fed as input instead of ``targets`` (word dropout),
    default ``targets``; batch_size: needed only without meg and targets.
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
    mask = torch.stack([_pad(torch.ones(s.shape[0], dtype=torch.long, device=device), length, pad_side, 0)
                        for s in seqs])
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
            out = self.decoder(inputs_embeds=ctx,
                               attention_mask=torch.ones(ctx.shape[:2], dtype=torch.long, device=device),
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
    ids, of any lengths.

    Incremental, like a KV cache that branches: the context runs once, and a prefix ``g + [c]`` runs only
    its last token, on the stored keys and values of ``g`` (computed first if they are not stored yet).
    The prefixes of one call run as one batch: their parents' keys and values right-padded to a common
    length, the padding masked out, each new token at its own position.
    """

    def __init__(self, decoder, context: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor]):
        self.decoder, self.context, self.embed = decoder, context, embed
        self._ctx_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # per layer, (1, heads, P, d)
        self._after_context: torch.Tensor | None = None
        self._kv: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}  # per layer, (heads, len, d)
        self._next: dict[tuple[int, ...], torch.Tensor] = {}

    @torch.no_grad()
    def _run_context(self) -> None:
        mask = torch.ones(self.context.shape[:2], dtype=torch.long, device=self.context.device)
        out = self.decoder(inputs_embeds=self.context, attention_mask=mask, use_cache=True)
        self._ctx_kv = [(layer.keys, layer.values) for layer in out.cache.layers]
        self._after_context = torch.log_softmax(out.logits[0, -1].float(), dim=-1)

    @torch.no_grad()
    def __call__(self, prefixes: list[list[int]]) -> torch.Tensor:
        if self._ctx_kv is None:
            self._run_context()
        todo = list(dict.fromkeys(tuple(p) for p in prefixes if p and tuple(p) not in self._next))
        parents = list(dict.fromkeys(q[:-1] for q in todo if len(q) > 1 and q[:-1] not in self._kv))
        if parents:
            self([list(q) for q in parents])
        if todo:
            self._extend(todo)
        return torch.stack([self._after_context if not p else self._next[tuple(p)] for p in prefixes])

    def _extend(self, todo: list[tuple[int, ...]]) -> None:
        device, n_ctx, n = self.context.device, self.context.shape[1], len(todo)
        lengths = [len(q) - 1 for q in todo]  # of each parent
        longest = max(lengths)
        layers = []
        for layer, (ctx_k, ctx_v) in enumerate(self._ctx_kv):
            keys = ctx_k.new_zeros(n, ctx_k.shape[1], n_ctx + longest, ctx_k.shape[3])
            values = torch.zeros_like(keys)
            keys[:, :, :n_ctx], values[:, :, :n_ctx] = ctx_k, ctx_v
            for row, (q, length) in enumerate(zip(todo, lengths)):
                if length:
                    k, v = self._kv[q[:-1]][layer]
                    keys[row, :, n_ctx:n_ctx + length], values[row, :, n_ctx:n_ctx + length] = k, v
            layers.append((keys, values))
        from transformers import DynamicCache  # noqa: PLC0415 -- keeps transformers off config's import path

        cache = DynamicCache(ddp_cache_data=layers)
        mask = torch.ones(n, n_ctx + longest + 1, dtype=torch.long, device=device)
        for row, length in enumerate(lengths):
            mask[row, n_ctx + length: n_ctx + longest] = 0
        positions = torch.tensor([[n_ctx + length] for length in lengths], device=device)
        last = self.embed(torch.tensor([[q[-1]] for q in todo], device=device)).to(self.context.dtype)
        out = self.decoder(inputs_embeds=last, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        for row, (q, length) in enumerate(zip(todo, lengths)):
            self._next[q] = logp[row]
            self._kv[q] = [(torch.cat([self._kv[q[:-1]][i][0] if length else layer.keys[row, :, :0],
                                       layer.keys[row, :, -1:]], 1),
                            torch.cat([self._kv[q[:-1]][i][1] if length else layer.values[row, :, :0],
                                       layer.values[row, :, -1:]], 1))
                           for i, layer in enumerate(out.cache.layers)]
