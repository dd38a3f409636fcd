"""CTC decoding of the encoder's per-token class log-probabilities (Graves et al. 2006).

Vocabulary convention (shared with ``models/brain2text.py`` and :mod:`brain2text.decoding.joint`): the
CTC head predicts ``len(tokenizer) + 1`` classes: the decoder tokenizer's ids ``0 .. len(tokenizer) - 1``
unchanged, plus the blank at index ``len(tokenizer)``. CTC hypotheses are therefore
token ids the LLM shares, which is what lets the joint decoder add the two scores token by token.

Three decoders:

- :func:`ctc_greedy`: best class per frame, repeats collapsed, blanks dropped.
- :func:`ctc_prefix_beam_search`: the time-synchronous prefix beam search (Hannun et al. 2014), every
  prefix carrying the log-probabilities of its alignments ending in blank / non-blank.
- :class:`CTCPrefixScorer`: the label-synchronous prefix score of hybrid CTC/attention decoding (Watanabe
  et al. 2017, ESPnet's ``CTCPrefixScore``): ``log P(output starts with g + c | x)`` for many candidate
  labels ``c`` at once, and for end-of-sentence the full probability ``log P(g | x)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..utils.threads import torch_threads

NEG_INF = float("-inf")


def single_thread():
    """Run small tensor ops on one intra-op thread (restored after). The decoders' per-frame and
    per-step ops are tiny; on a loaded CPU, a thread pool's synchronisation made them 15x slower here."""
    return torch_threads(1)


def checked_log_probs(log_probs: Tensor, blank: int, length: int | None) -> Tensor:
    """``log_probs`` ``(T, V)`` checked (blank among the classes), cut to ``length`` valid frames, in
    float32/64 on the CPU."""
    if log_probs.ndim != 2:
        raise ValueError(f"CTC log_probs must have shape (T, V), got {tuple(log_probs.shape)}")
    n_frames, n_classes = log_probs.shape
    if not 0 <= blank < n_classes:
        raise ValueError(f"blank index {blank} is outside the {n_classes} CTC classes")
    if length is not None:
        if not 0 <= length <= n_frames:
            raise ValueError(f"length must be in [0, {n_frames}], got {length}")
        log_probs = log_probs[:length]
    if not log_probs.is_floating_point():
        raise ValueError(f"CTC log_probs must be floating point, got {log_probs.dtype}")
    if log_probs.dtype not in (torch.float32, torch.float64):
        log_probs = log_probs.float()  # half precision would lose the small probabilities CTC sums
    return log_probs.detach().cpu()  # frame loops run on the CPU


def ctc_greedy(log_probs: Tensor, blank: int, length: int | None = None) -> list[int]:
    """Best-path decoding: argmax per frame, collapse repeats, drop blanks.

    ``log_probs``: ``(T, V)`` (V includes the blank); ``length``: number of valid frames (default all).
    """
    best = checked_log_probs(log_probs, blank, length).argmax(dim=-1).tolist()
    out, prev = [], None
    for k in best:
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return out


def ctc_prefix_beam_search(
    log_probs: Tensor, blank: int, beam: int = 8, length: int | None = None, prune_topk: int | None = None
) -> list[tuple[list[int], float]]:
    """CTC prefix beam search in log space; returns up to ``beam`` ``(token ids, log P(ids | x))``, best first.

    Each kept prefix carries ``log p_b`` / ``log p_nb``: the probability of all alignments of the frames
    seen so far that collapse to the prefix and end in a blank / in its last label. The scores are exact
    while a prefix and its parent stay in the beam (with a beam at least as large as the number of
    possible prefixes they equal brute-force enumeration). ``prune_topk`` considers only the ``k`` most
    likely classes of each frame as extensions (speed for large vocabularies).
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    lp = checked_log_probs(log_probs, blank, length)
    prefixes: list[tuple[int, ...]] = [()]
    p_b = lp.new_zeros(1)
    p_nb = lp.new_full((1,), NEG_INF)
    with single_thread():
        for x in lp:  # x: (V,)
            prefixes, p_b, p_nb, _ = prefix_beam_step(x, blank, beam, prune_topk, prefixes, p_b, p_nb)
    total = torch.logaddexp(p_b, p_nb).tolist()
    out = [(list(p), s) for p, s in zip(prefixes, total) if s > NEG_INF]
    return out or [(list(prefixes[0]), total[0])]


class PrefixBeam(NamedTuple):
    """The prefixes kept after a frame, their blank- / non-blank-ending CTC log-probabilities ``(n,)``
    and, when fusing, their accumulated non-CTC score ``(n,)`` (else None)."""

    prefixes: list[tuple[int, ...]]
    p_b: Tensor
    p_nb: Tensor
    fuse: Tensor | None


def prefix_beam_step(x: Tensor, blank: int, beam: int, prune_topk: int | None, prefixes, p_b: Tensor, p_nb: Tensor,
                     fuse: Tensor | None = None, ext_fuse: Tensor | None = None) -> PrefixBeam:
    """One frame of prefix beam search: every prefix either stays (blank or repeat) or grows by a label.

    Shallow fusion (:func:`brain2text.decoding.fusion.ctc_fusion_beam_search`): ``fuse`` ``(n,)`` is each
    prefix's accumulated non-CTC score and ``ext_fuse`` ``(n, V)`` what growing it by each class adds;
    prefixes are then ranked by CTC + fused score while ``p_b``/``p_nb`` stay pure CTC.
    """
    x_ext = x.clone()
    if prune_topk is not None and prune_topk < x.numel():
        x_ext = torch.full_like(x, NEG_INF)
        top = x.topk(prune_topk).indices
        x_ext[top] = x[top]
    x_ext[blank] = NEG_INF  # a blank never extends a prefix
    total = torch.logaddexp(p_b, p_nb)  # (n,)
    last = torch.tensor([p[-1] if p else -1 for p in prefixes], dtype=torch.long)
    has_last = last >= 0
    stay_b = total + x[blank]
    stay_nb = torch.where(has_last, p_nb + x[last.clamp(min=0)], torch.full_like(p_nb, NEG_INF))
    ext = total[:, None] + x_ext[None, :]  # (n, V): prefix + c ends in c at this frame
    rows = has_last.nonzero().flatten()
    # Repeating the last label needs a blank in between, so only the blank-ending alignments extend.
    ext[rows, last[rows]] = p_b[rows] + x_ext[last[rows]]
    index = {p: i for i, p in enumerate(prefixes)}
    for i, p in enumerate(prefixes):  # an extension that is already a kept prefix merges into it
        j = index.get(p[:-1]) if p else None
        if j is not None:
            stay_nb[i] = torch.logaddexp(stay_nb[i], ext[j, p[-1]])
            ext[j, p[-1]] = NEG_INF
    k = min(beam, ext.numel())
    if fuse is None:
        ext_top, ext_idx = ext.flatten().topk(k)
    else:
        grown = fuse[:, None] + ext_fuse  # (n, V): the fused score of each extension
        _, ext_idx = (ext + grown).flatten().topk(k)
        ext_top = ext.flatten()[ext_idx]
    n_stay, n_cls = len(prefixes), ext.shape[1]
    cand_b = torch.cat([stay_b, ext_top.new_full((k,), NEG_INF)])
    cand_nb = torch.cat([stay_nb, ext_top])
    cand_total = torch.logaddexp(cand_b, cand_nb)
    cand_fuse = None if fuse is None else torch.cat([fuse, grown.flatten()[ext_idx]])
    rank = cand_total if fuse is None else cand_total + cand_fuse
    order = rank.argsort(descending=True, stable=True)[:beam]
    # impossible candidates (-inf) would duplicate merged prefixes; keep one only if nothing else is left
    order = order[cand_total[order] > NEG_INF] if bool(cand_total[order[0]] > NEG_INF) else order[:1]
    new_prefixes = []
    for j in order.tolist():
        if j < n_stay:
            new_prefixes.append(prefixes[j])
        else:
            flat = int(ext_idx[j - n_stay])
            new_prefixes.append(prefixes[flat // n_cls] + (flat % n_cls,))
    return PrefixBeam(new_prefixes, cand_b[order], cand_nb[order], None if fuse is None else cand_fuse[order])


@dataclass
class CTCPrefixState:
    """Prefix-scoring state of ``M`` hypotheses (one column each).

    ``r``: ``(T, 2, M)``, log-probability that the prefix has been emitted by frame ``t``, the last frame
    being its last label (``[:, 0]``) or a blank (``[:, 1]``); ``log_psi``: ``(M,)`` prefix scores;
    ``last``: ``(M,)`` last label (-1 for the empty prefix); ``n_labels``: ``(M,)`` prefix lengths.
    """

    r: Tensor
    log_psi: Tensor
    last: Tensor
    n_labels: Tensor

    def take(self, index: Tensor | list[int]) -> "CTCPrefixState":
        """The states of hypotheses ``index`` (e.g. the flat ``(hypothesis, candidate)`` indices kept)."""
        index = torch.as_tensor(index, dtype=torch.long)
        return CTCPrefixState(self.r[:, :, index], self.log_psi[index], self.last[index], self.n_labels[index])


class CTCPrefixScorer:
    """Label-synchronous CTC prefix scores (Watanabe et al. 2017, "Hybrid CTC/Attention Architecture for
    End-to-End Speech Recognition"; ESPnet's ``CTCPrefixScore``), vectorised over hypotheses and candidates.

    ``score(state, candidates)`` returns ``log psi(g + c) = log P(the output starts with g + c | x)`` for
    every candidate ``c`` of every prefix ``g``; for ``c == eos_id`` it returns ``log P(g | x)``, the
    probability that the output is exactly ``g``. The blank, and ids outside the CTC classes (an LLM
    vocabulary padded beyond the tokenizer), score ``-inf``. :meth:`prefix_scores` gives the same
    scores for every class in one matrix product; :meth:`score` runs the ``T``-step recursion that the
    next states need, so call it only for the hypotheses kept (or ESPnet's pre-beam candidates).
    """

    def __init__(self, log_probs: Tensor, blank: int, eos_id: int | None = None, length: int | None = None):
        self.x = checked_log_probs(log_probs, blank, length)
        self.blank = blank
        self.eos_id = eos_id
        self._exp_x: tuple[Tensor, Tensor] | None = None  # exp(x - max_t x) and max_t x, for prefix_scores

    def initial_state(self) -> CTCPrefixState:
        """State of the empty prefix: all frames so far blank."""
        x = self.x
        r = x.new_full((x.shape[0], 2, 1), NEG_INF)
        r[:, 1, 0] = torch.cumsum(x[:, self.blank], dim=0)
        return CTCPrefixState(r, x.new_zeros(1), torch.full((1,), -1, dtype=torch.long),
                              torch.zeros(1, dtype=torch.long))

    def score(self, state: CTCPrefixState, candidate_ids: Tensor) -> tuple[Tensor, CTCPrefixState]:
        """Scores ``(M, K)`` of prefixes ``state`` extended by ``candidate_ids`` ``(M, K)`` (or ``(K,)``
        for one prefix), and the ``M * K`` new states, flattened row-major (select with ``.take``)."""
        x, blank = self.x, self.blank
        n_frames, n_classes = x.shape
        cand = torch.as_tensor(candidate_ids, dtype=torch.long).reshape(state.last.shape[0], -1)  # (M, K)
        n_hyp, n_cand = cand.shape
        valid = (cand >= 0) & (cand < n_classes) & (cand != blank)
        xs = x[:, cand.clamp(0, n_classes - 1).flatten()].view(n_frames, n_hyp, n_cand)  # (T, M, K)
        xs = xs.masked_fill(~valid, NEG_INF)
        r_sum = torch.logaddexp(state.r[:, 0], state.r[:, 1])  # (T, M)
        # After the same label, a new label needs a blank in between: only blank-ending paths count.
        same = cand == state.last[:, None]
        log_phi = torch.where(same[None], state.r[:, 1, :, None], r_sum[:, :, None])  # (T, M, K)
        r_new = x.new_full((n_frames, 2, n_hyp, n_cand), NEG_INF)
        if n_frames == 0:
            log_psi = x.new_full((n_hyp, n_cand), NEG_INF)
        else:
            empty = (state.n_labels == 0)[:, None]
            r_new[0, 0] = torch.where(empty, xs[0], torch.full_like(xs[0], NEG_INF))
            start = max(int(state.n_labels.min()), 1)  # fewer frames than labels: impossible, skipped
            with single_thread():
                for t in range(start, n_frames):
                    r_new[t, 0] = torch.logaddexp(r_new[t - 1, 0], log_phi[t - 1]) + xs[t]
                    r_new[t, 1] = torch.logaddexp(r_new[t - 1, 0], r_new[t - 1, 1]) + x[t, blank]
            # c starts at frame t after g was emitted by t - 1 (or at frame 0 for an empty g).
            starts = torch.cat([r_new[:1, 0], log_phi[start - 1 : n_frames - 1] + xs[start:]], dim=0)
            log_psi = torch.logsumexp(starts, dim=0)  # (M, K)
        if self.eos_id is not None:
            log_psi = torch.where(cand == self.eos_id, self.end_scores(state)[:, None].expand(n_hyp, n_cand), log_psi)
        new_state = CTCPrefixState(
            r_new.reshape(n_frames, 2, n_hyp * n_cand),
            log_psi.flatten(),
            cand.flatten(),
            (state.n_labels[:, None] + 1).expand(n_hyp, n_cand).flatten(),
        )
        return log_psi, new_state

    def prefix_scores(self, state: CTCPrefixState) -> Tensor:
        """``log psi(g + c)`` ``(M, V)`` for every class ``c`` at once, without the time recursion.

        ``psi(g + c) = sum_t phi_{t-1}(c) x_t(c)``, where ``phi`` is the probability that ``g`` is complete
        by frame ``t - 1`` (only its blank-ending part when ``c`` repeats the last label, 1 before frame 0
        for the empty prefix): one log-space product of ``(M, T)`` by ``(T, V)``, in float64. Column
        ``eos_id`` holds ``log P(g | x)``, the blank ``-inf``. Equal to :meth:`score` on all classes;
        :meth:`score` is still needed for the states of the hypotheses kept.
        """
        x, n_hyp = self.x, state.last.shape[0]
        n_frames, n_classes = x.shape
        if n_frames == 0:
            out = x.new_full((n_hyp, n_classes), NEG_INF)
        else:
            r = state.r.double()
            empty_start = torch.where(state.n_labels == 0, 0.0, NEG_INF).to(r)[None]  # (1, M)
            phi = torch.cat([empty_start, torch.logaddexp(r[:-1, 0], r[:-1, 1])], dim=0)  # (T, M): g done by t-1
            if self._exp_x is None:
                x_max = x.double().max(dim=0, keepdim=True).values.clamp(min=-1e30)  # (1, V)
                self._exp_x = (torch.exp(x.double() - x_max), x_max)
            exp_x, x_max = self._exp_x
            phi_max = phi.max(dim=0, keepdim=True).values.clamp(min=-1e30)  # (1, M); all -inf stays -inf
            out = torch.log(torch.exp(phi - phi_max).T @ exp_x) + phi_max.T + x_max  # (M, V): log-space product
            has_last = (state.last >= 0).nonzero().flatten()
            if has_last.numel():  # repeating the last label needs a blank in between
                phi_b = torch.cat([r.new_full((1, n_hyp), NEG_INF), r[:-1, 1]], dim=0)  # (T, M)
                last = state.last[has_last]
                out[has_last, last] = torch.logsumexp(phi_b[:, has_last] + x[:, last].double(), dim=0)
            out = out.to(x.dtype)
        out[:, self.blank] = NEG_INF
        if self.eos_id is not None and 0 <= self.eos_id < n_classes:
            out[:, self.eos_id] = self.end_scores(state)
        return out

    def end_scores(self, state: CTCPrefixState) -> Tensor:
        """``log P(g | x)`` ``(M,)``: the output is exactly the prefix (its end-of-sentence score)."""
        if self.x.shape[0] == 0:
            return torch.where(state.n_labels == 0, 0.0, NEG_INF).to(self.x)
        return torch.logaddexp(state.r[-1, 0], state.r[-1, 1])

