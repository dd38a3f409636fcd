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


class BatchPrefixLM:
    """``prefix_lm_fn`` for :func:`brain2text.decoding.fusion.ctc_fusion_beam_search_batch`: next-token
    log-probs after each example's fixed context (prompt + MEG embeddings, ``(1, P_i, H)``) and a prefix of
    generated ids, of any length, for several examples at once.

    Incremental, like a KV cache that branches: the contexts run once (one right-padded batch), and a
    prefix ``g + [c]`` runs only its last token, on the stored keys and values of its context and of ``g``
    (computed first if they are not stored yet). The requests of one call run as one batch, whatever their
    examples: context and parent keys and values right-padded to a common length, the padding masked out,
    each new token at its own position. Keys and values are stored per prefix as one ``(layers, 2, heads,
    len, d)`` tensor, so that building a batch copies two slices per row.
    """

    def __init__(self, decoder, contexts: list[torch.Tensor], embed: Callable[[torch.Tensor], torch.Tensor]):
        self.decoder, self.contexts, self.embed = decoder, contexts, embed
        self._ctx_kv: list[torch.Tensor] | None = None  # per example, (layers, 2, heads, P_i, d)
        self._after_context: list[torch.Tensor] = []
        self._kv: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}  # (layers, 2, heads, len, d)
        self._next: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}

    @torch.no_grad()
    def _run_contexts(self) -> None:
        lengths = [c.shape[1] for c in self.contexts]
        embeds = torch.cat([_pad(c[0], max(lengths), "right", 0.0)[None] for c in self.contexts])
        mask = torch.zeros(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        for row, n in enumerate(lengths):
            mask[row, :n] = 1
        out = self.decoder(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
        kv = torch.stack([torch.stack([layer.keys, layer.values]) for layer in out.cache.layers])  # (L, 2, B, ..)
        self._ctx_kv = [kv[:, :, row, :, :n] for row, n in enumerate(lengths)]
        self._after_context = [torch.log_softmax(out.logits[row, n - 1].float(), dim=-1)
                               for row, n in enumerate(lengths)]

    def __call__(self, requests: list[tuple[int, list[int]]]) -> torch.Tensor:
        return self._request(requests)

    @torch.no_grad()
    def _request(self, requests: list[tuple[int, list[int]]]) -> torch.Tensor:
        if self._ctx_kv is None:
            self._run_contexts()
        keys = [(i, tuple(p)) for i, p in requests]
        todo = list(dict.fromkeys(k for k in keys if k[1] and k not in self._next))
        parents = list(dict.fromkeys((i, q[:-1]) for i, q in todo if len(q) > 1 and (i, q[:-1]) not in self._kv))
        if parents:
            self._request([(i, list(q)) for i, q in parents])
        if todo:
            self._extend(todo)
        return torch.stack([self._after_context[i] if not p else self._next[(i, p)] for i, p in keys])

    def _extend(self, todo: list[tuple[int, tuple[int, ...]]]) -> None:
        device, n = self.contexts[0].device, len(todo)
        parent_kv = [self._kv[(i, q[:-1])] if len(q) > 1 else None for i, q in todo]
        n_ctx = [self._ctx_kv[i].shape[3] for i, _ in todo]
        lengths = [c + (0 if p is None else p.shape[3]) for c, p in zip(n_ctx, parent_kv)]  # context + parent
        longest = max(lengths)
        first = self._ctx_kv[todo[0][0]]
        # one allocation for every layer's past and the new position (written in place by the forward)
        past = first.new_empty(first.shape[0], 2, n, first.shape[2], longest + 1, first.shape[4])
        for row, ((i, _), c, p, length) in enumerate(zip(todo, n_ctx, parent_kv, lengths)):
            past[:, :, row, :, :c] = self._ctx_kv[i]
            if p is not None:
                past[:, :, row, :, c:length] = p
            past[:, :, row, :, length:longest] = 0.0  # masked out, but must be finite
        mask = torch.ones(n, longest + 1, dtype=torch.long, device=device)
        for row, length in enumerate(lengths):
            mask[row, length:longest] = 0
        positions = torch.tensor([[length] for length in lengths], device=device)
        last = self.embed(torch.tensor([[q[-1]] for _, q in todo], device=device)).to(first.dtype)
        out = self.decoder(inputs_embeds=last, attention_mask=mask, position_ids=positions,
                           cache=slot_cache(past, longest), use_cache=True)
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        new = past[..., longest:, :]  # (L, 2, n, heads, 1, d)
        for row, (key, p) in enumerate(zip(todo, parent_kv)):
            self._next[key] = logp[row]
            self._kv[key] = new[:, :, row].clone() if p is None else torch.cat([p, new[:, :, row]], dim=3)


def slot_cache(past: torch.Tensor, filled: int):
    """A transformers ``Cache`` over ``past`` ``(layers, 2, n, heads, filled + k, d)`` whose first ``filled``
    positions are the past: the forward writes its ``k`` new keys and values into the rest, in place,
    instead of concatenating them onto a copy of the past (which ``DynamicCache`` does, twice when built
    from tensors)."""
    from transformers.cache_utils import Cache, DynamicLayer  # noqa: PLC0415 -- keeps transformers off config's path

    class SlotLayer(DynamicLayer):
        def __init__(self, keys: torch.Tensor, values: torch.Tensor):
            super().__init__()
            self.keys, self.values, self.filled = keys, values, filled
            self.is_initialized, self.device = True, keys.device

        def update(self, key_states, value_states, *args, **kwargs):
            end = self.filled + key_states.shape[-2]
            if end > self.keys.shape[-2]:
                raise ValueError(f"slot cache holds {self.keys.shape[-2]} positions, {end} asked for")
            self.keys[:, :, self.filled:end], self.values[:, :, self.filled:end] = key_states, value_states
            self.filled = end
            return self.keys[:, :, :end], self.values[:, :, :end]

        def get_seq_length(self) -> int:
            return self.filled

    return Cache(layers=[SlotLayer(layer[0], layer[1]) for layer in past])


class PrefixLM(BatchPrefixLM):
    """``prefix_lm_fn`` for :func:`brain2text.decoding.fusion.ctc_fusion_beam_search`: :class:`BatchPrefixLM`
    for one context ``(1, P, H)``, called with prefixes alone."""

    def __init__(self, decoder, context: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__(decoder, [context], embed)

    def __call__(self, prefixes: list[list[int]]) -> torch.Tensor:
        return self._request([(0, p) for p in prefixes])
