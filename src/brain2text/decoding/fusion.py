"""CTC prefix beam search with LLM shallow fusion (the demo's default decoding).

The CTC decoder's own time-synchronous search, with each prefix's LM log-probability (times a weight) and a
per-unit length bonus added to its rank; the examples of a batch are searched together, frame by frame,
so that the LM is asked once per frame for every new prefix of every example.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .ctc import NEG_INF, PrefixBeam, checked_log_probs, ctc_prefix_beam_search, prefix_beam_step, single_thread
from .joint import as_tokens

PrefixLMFn = Callable[[list[list[int]]], Tensor]  # prefixes -> (n, V) next-token log-probs
BatchPrefixLMFn = Callable[[list[tuple[int, list[int]]]], Tensor]  # (example, prefix) pairs -> (n, V)


def ctc_fusion_beam_search(
    log_probs: Tensor,
    blank: int,
    prefix_lm_fn: PrefixLMFn | None,
    eos_id: int,
    beam: int,
    lm_weight: float,
    length_bonus: float = 0.0,
    length: int | None = None,
    prune_topk: int | None = None,
    unit_ids: Tensor | None = None,
) -> list[int]:
    """CTC prefix beam search with LLM shallow fusion; returns the best hypothesis' token ids.

    The CTC decoder's own time-synchronous search (:func:`~brain2text.decoding.ctc.ctc_prefix_beam_search`),
    with prefixes ranked by ``log P_CTC(y) + lm_weight * log P_LM(y) + length_bonus * len(y)`` (Hannun et
    al. 2014's LM term; the ``word_score`` / ``lm_weight`` of torchaudio's and ESPnet's CTC decoders), and
    the finished prefixes by the same score with ``lm_weight * log P_LM(eos | y)`` added. The CTC
    probabilities stay exact sums over alignments; the LM only decides which prefixes stay in the beam and
    which one wins. ``lm_weight = length_bonus = 0`` *is* the CTC prefix beam search (it is called), so
    the LLM can only move the output away from the encoder's where its evidence outweighs the CTC's.

    ``prefix_lm_fn(prefixes) -> (n, V_lm)`` next-token log-probs after each prefix of token ids (prefixes of
    any lengths; each distinct prefix is asked for once). ``unit_ids`` ``(U,)``: the LM token id of each
    CTC class (None: class ``c`` is token ``c``, and LM ids beyond the CTC classes are ignored).
    One example of :func:`ctc_fusion_beam_search_batch`.
    """
    batch_fn = None if prefix_lm_fn is None else (lambda requests: prefix_lm_fn([p for _, p in requests]))
    return ctc_fusion_beam_search_batch([log_probs], blank, batch_fn, eos_id, beam, lm_weight, length_bonus,
                                        lengths=[length], prune_topk=prune_topk, unit_ids=unit_ids)[0]


def ctc_fusion_beam_search_batch(
    log_probs: Sequence[Tensor],
    blank: int,
    prefix_lm_fn: BatchPrefixLMFn | None,
    eos_id: int,
    beam: int,
    lm_weight: float,
    length_bonus: float = 0.0,
    lengths: Sequence[int | None] | None = None,
    prune_topk: int | None = None,
    unit_ids: Tensor | None = None,
) -> list[list[int]]:
    """:func:`ctc_fusion_beam_search` for several examples at once, frame by frame, so that the LM runs
    once per frame for the new prefixes of every example (one batch, not one per example: on a CPU an LM
    step costs about the same for 8 rows as for 64, since it streams every weight once).

    ``log_probs``: each example's ``(T_i, V)`` CTC log-probs; ``lengths`` their valid frames (None: all);
    ``prefix_lm_fn([(example, prefix), ...]) -> (n, V_lm)`` next-token log-probs after each example's
    prefix of token ids. Each example's search is the one :func:`ctc_fusion_beam_search` runs alone.
    """
    if lm_weight < 0:
        raise ValueError(f"lm_weight must be >= 0, got {lm_weight}")
    lengths = [None] * len(log_probs) if lengths is None else list(lengths)
    if lm_weight == 0 and length_bonus == 0:
        return [as_tokens(ctc_prefix_beam_search(lp, blank, beam=beam, length=n, prune_topk=prune_topk)[0][0],
                          unit_ids) for lp, n in zip(log_probs, lengths)]
    if lm_weight > 0 and prefix_lm_fn is None:
        raise ValueError("lm_weight > 0 needs prefix_lm_fn")
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    lps = [checked_log_probs(lp, blank, n) for lp, n in zip(log_probs, lengths)]
    if not lps:
        return []
    n_classes = lps[0].shape[1]
    cache: dict[tuple[int, tuple[int, ...]], Tensor] = {}

    def lm_rows(keys: list[tuple[int, tuple[int, ...]]]) -> Tensor:
        """``lm_weight * log P_LM(. | prefix)`` over the CTC classes (blank column -inf), + the eos column."""
        todo = [k for k in dict.fromkeys(keys) if k not in cache]
        if todo:
            out = prefix_lm_fn([(i, as_tokens(p, unit_ids)) for i, p in todo]).detach().float().cpu()
            if out.ndim != 2 or out.shape[0] != len(todo):
                raise ValueError(f"prefix_lm_fn must return ({len(todo)}, V) log-probs, got {tuple(out.shape)}")
            for key, row in zip(todo, out):
                cls = row.new_full((n_classes + 1,), NEG_INF)
                if unit_ids is None:
                    shared = min(n_classes, row.shape[0])
                    cls[:shared] = lm_weight * row[:shared]
                else:
                    cls[: len(unit_ids)] = lm_weight * row[unit_ids]
                cls[blank] = NEG_INF
                cls[n_classes] = lm_weight * row[eos_id] if eos_id < row.shape[0] else NEG_INF
                cache[key] = cls
        return torch.stack([cache[k] for k in keys])

    bonus = torch.full((n_classes,), float(length_bonus))
    beams = [PrefixBeam([()], lp.new_zeros(1), lp.new_full((1,), NEG_INF), lp.new_zeros(1)) for lp in lps]
    for t in range(max(lp.shape[0] for lp in lps)):
        active = [i for i, lp in enumerate(lps) if t < lp.shape[0]]
        if lm_weight:  # the LM keeps its threads
            rows = lm_rows([(i, p) for i in active for p in beams[i].prefixes])[:, :n_classes]
            ext = rows.split([len(beams[i].prefixes) for i in active])
        with single_thread():  # the search's own ops are tiny
            for k, i in enumerate(active):
                b = beams[i]
                ext_fuse = ext[k] + bonus if lm_weight else bonus[None, :]
                beams[i] = prefix_beam_step(lps[i][t], blank, beam, prune_topk, b.prefixes, b.p_b, b.p_nb,
                                            fuse=b.fuse, ext_fuse=ext_fuse)
    if lm_weight > 0:
        ends = lm_rows([(i, p) for i, b in enumerate(beams) for p in b.prefixes])[:, n_classes]
        ends = ends.split([len(b.prefixes) for b in beams])
    best = []
    for i, b in enumerate(beams):
        final = torch.logaddexp(b.p_b, b.p_nb) + b.fuse
        if lm_weight > 0:
            final = final + ends[i]
        best.append(as_tokens(b.prefixes[int(torch.argmax(final))], unit_ids))
    return best
