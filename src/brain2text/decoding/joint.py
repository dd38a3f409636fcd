"""LLM beam search, and joint decoding that scores LLM beam hypotheses with the CTC prefix score.

Both run one label-synchronous loop (:func:`_beam_search`). A hypothesis ``y`` (generated tokens after
``bos_ids``) scores ``(1 - w) * log P_LM(y) + w * log psi_CTC(y)`` with ``w = ctc_weight`` (Watanabe et
al. 2017): ``psi`` is the CTC prefix probability while ``y`` is open and the full CTC probability of ``y``
once it ends with ``eos``. The CTC classes are the tokenizer ids plus a blank at ``len(tokenizer)``
(:mod:`brain2text.decoding.ctc`); LM ids the CTC head doesn't have score ``-inf`` under CTC.

The beam search is Hugging Face's ``generate(num_beams=beam, do_sample=False, early_stopping=False,
length_penalty=length_penalty)`` (transformers 5), step for step:

1. every running hypothesis ``h`` (at first only ``bos_ids``) is extended by every token; candidate
   score = score(h) + its step score; the ``2 * beam`` best candidates over all hypotheses are kept,
   best first (ties: lower hypothesis index, then lower token id);
2. a candidate "hits" if its token is ``eos_id`` or it reaches ``max_len`` generated tokens; hitting
   candidates among the first ``beam`` of the ``2 * beam`` become finished hypotheses with score
   ``score / n_generated ** length_penalty`` (``n_generated`` counts the ``eos``); only the ``beam``
   best finished ones are kept;
3. the ``beam`` best candidates that don't hit continue;
4. the search stops at ``max_len``, or once ``beam`` hypotheses are finished and the best running score
   divided by ``n_generated ** length_penalty`` is no better than the worst finished one.

The best finished hypothesis is returned without ``bos_ids`` and without its ``eos``.

With ``w = 0`` no CTC score is computed and joint decoding *is* :func:`lm_beam_search` (same loop,
same numbers). With ``w = 1`` the LM has no say and the result is :func:`ctc_prefix_beam_search`'s best
hypothesis (the CTC decoder's own time-synchronous search; this loop driven by CTC alone reaches the same
hypothesis on confident CTC outputs, but not always on flat ones, so weight 1 calls it directly). Logits
processors (repetition penalty, ...) are not applied: compare with HF beam search without them.
:func:`rescore_nbest` is the other way to combine them (the issue's "rescoring of n-best lists"): the
union of both searches' n-best lists, rescored with exact full-sequence probabilities.

In between, every token of the vocabulary is scored exactly: :meth:`CTCPrefixScorer.prefix_scores`
gives the CTC prefix score of all tokens in one product, so the MEG evidence can bring in words the LM
ranks low (the LM-collapse risk of DESIGN.md §8), and the CTC time recursion runs only for the ``beam``
hypotheses kept. ``pre_beam`` (default None: no restriction) keeps only each hypothesis' ``pre_beam``
best tokens by LM and by CTC, plus ``eos`` (ESPnet's pre-beam, widened to the CTC's own candidates).

``lm_step_fn(prefixes: list[list[int]]) -> Tensor (n_prefixes, V)`` returns next-token log-probs for
full prefixes (``bos_ids`` + generated; all the same length at each call). A stateful step function
(e.g. with a KV cache) may define ``reorder(parents: list[int])``: after each step the search calls it
with, for every new running hypothesis, the index of the hypothesis it extends, so the function can
gather its cache and feed only the last token of each prefix at the next call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .ctc import (
    NEG_INF,
    CTCPrefixScorer,
    checked_log_probs,
    ctc_prefix_beam_search,
    single_thread,
)
from .scorers import ctc_sequence_log_prob

LMStepFn = Callable[[list[list[int]]], Tensor]
LMScoreFn = Callable[[list[list[int]]], Tensor]  # candidates -> log P_LM(y + eos | context) (K,)


def lm_beam_search(
    lm_step_fn: LMStepFn, bos_ids: list[int], eos_id: int, beam: int, max_len: int, length_penalty: float = 1.0
) -> list[int]:
    """LLM-only beam search (Hugging Face's ``num_beams`` search; definition in the module docstring)."""
    return _beam_search(lm_step_fn, bos_ids, eos_id, beam, max_len, length_penalty)[0][0]


def joint_beam_search(
    lm_step_fn: LMStepFn,
    ctc_log_probs: Tensor | None,
    bos_ids: list[int],
    eos_id: int,
    blank: int,
    beam: int,
    ctc_weight: float,
    max_len: int,
    length_penalty: float = 1.0,
    pre_beam: int | None = None,
    ctc_length: int | None = None,
    unit_ids: Tensor | None = None,
) -> list[int]:
    """Joint CTC/LLM beam search; returns the best hypothesis' token ids (no ``bos_ids``, no ``eos``).

    ``ctc_log_probs``: ``(T, U + 1)`` log-softmax of the CTC head for one example (``blank`` = ``U``),
    ``ctc_length`` its valid frames; ``unit_ids`` ``(U,)``: the LM token id of each CTC class (None: class
    ``c`` is token ``c``). ``ctc_weight`` 0 gives :func:`lm_beam_search` and 1
    :func:`~brain2text.decoding.ctc.ctc_prefix_beam_search`'s best hypothesis (module docstring).
    """
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if ctc_weight > 0 and ctc_log_probs is None:
        raise ValueError("ctc_weight > 0 needs ctc_log_probs")
    if ctc_weight == 1.0:
        return as_tokens(ctc_prefix_beam_search(ctc_log_probs, blank, beam=beam, length=ctc_length)[0][0], unit_ids)
    scorer = None
    if ctc_weight > 0:
        scorer = CTCPrefixScorer(ctc_log_probs, blank, eos_id=None, length=ctc_length)
    hyps = _beam_search(
        lm_step_fn, bos_ids, eos_id, beam, max_len, length_penalty, scorer=scorer, ctc_weight=ctc_weight,
        pre_beam=pre_beam, unit_ids=unit_ids
    )
    return hyps[0][0]


def as_tokens(classes: list[int], unit_ids: Tensor | None) -> list[int]:
    """CTC classes (no blank) as LM token ids."""
    return list(classes) if unit_ids is None else unit_ids[list(classes)].tolist()


def _class_lookup(unit_ids: Tensor | None, vocab: int) -> Tensor | None:
    """LM token id -> CTC class, -1 for tokens that are no CTC class (None: the identity)."""
    if unit_ids is None:
        return None
    lookup = torch.full((max(vocab, int(unit_ids.max()) + 1),), -1, dtype=torch.long)
    lookup[unit_ids] = torch.arange(len(unit_ids))
    return lookup


def joint_decode_batch(
    make_lm_step_fn: Callable[[int], LMStepFn],
    ctc_log_probs: Tensor | None,
    ctc_lengths: Sequence[int] | Tensor | None,
    n_examples: int,
    **kwargs,
) -> list[list[int]]:
    """:func:`joint_beam_search` for each example ``i`` of a batch, with ``make_lm_step_fn(i)`` as its LM.

    ``ctc_log_probs``: ``(B, T, V_tok + 1)`` or None, ``ctc_lengths``: ``(B,)`` valid frames (default
    all); ``kwargs``: the remaining :func:`joint_beam_search` arguments (bos_ids, eos_id, blank, ...).
    """
    if ctc_log_probs is not None and (ctc_log_probs.ndim != 3 or ctc_log_probs.shape[0] != n_examples):
        raise ValueError(f"ctc_log_probs must be (B={n_examples}, T, V), got {tuple(ctc_log_probs.shape)}")
    out = []
    for i in range(n_examples):
        lp = None if ctc_log_probs is None else ctc_log_probs[i]
        length = None if ctc_lengths is None else int(ctc_lengths[i])
        out.append(joint_beam_search(make_lm_step_fn(i), lp, ctc_length=length, **kwargs))
    return out


def _beam_search(
    lm_step_fn: LMStepFn,
    bos_ids: list[int],
    eos_id: int,
    beam: int,
    max_len: int,
    length_penalty: float,
    scorer: CTCPrefixScorer | None = None,
    ctc_weight: float = 0.0,
    pre_beam: int | None = None,
    lm_weight: float | None = None,
    unit_ids: Tensor | None = None,
) -> list[tuple[list[int], float]]:
    """The shared loop; returns finished ``(tokens without eos, normalised score)``, best first.

    ``scorer`` None: LM only. ``lm_weight`` overrides ``1 - ctc_weight`` (tests run the
    label-synchronous search with CTC alone by passing 0). ``unit_ids``: see :func:`joint_beam_search`.
    """
    if beam < 1 or max_len < 1:
        raise ValueError(f"beam and max_len must be >= 1, got {beam} and {max_len}")
    lm_w = 1.0 - ctc_weight if lm_weight is None else lm_weight
    running: list[list[int]] = [[]]
    run_score, run_lm = torch.zeros(1), torch.zeros(1)
    ctc_state = scorer.initial_state() if scorer is not None else None
    finished: list[tuple[float, list[int]]] = []
    lookup = None
    for step in range(max_len):
        lm = _next_log_probs(lm_step_fn, bos_ids, running)  # (n, V)
        if lookup is None and unit_ids is not None:
            lookup = _class_lookup(unit_ids, lm.shape[1])
        with single_thread():  # the search's own ops are tiny (the LM keeps its threads)
            cand_lm = run_lm[:, None] + lm
            if scorer is None:
                cand_score = run_score[:, None] + lm  # exactly HF's accumulation
            else:
                cand_ctc = _ctc_columns(scorer, ctc_state, lm.shape[1], lm, eos_id, pre_beam, unit_ids)
                cand_score = ctc_weight * cand_ctc + (lm_w * cand_lm if lm_w else 0.0)
            top_score, top_flat = _top_candidates(cand_score, 2 * beam)  # HF: (1 + n_eos) * num_beams
            parents = (top_flat // lm.shape[1]).tolist()
            tokens = (top_flat % lm.shape[1]).tolist()
            hits = [tok == eos_id or step + 1 == max_len for tok in tokens]
            finished = _add_finished(finished, running, parents, tokens, hits, top_score, beam, eos_id, step + 1,
                                     length_penalty)
            keep = [j for j in range(len(tokens)) if not hits[j] and top_score[j] > NEG_INF][:beam]
            if not keep:
                break
            running = [running[parents[j]] + [tokens[j]] for j in keep]
            run_score, run_lm = top_score[keep], cand_lm.flatten()[top_flat[keep]]
            if ctc_state is not None:  # the time recursion runs only for the hypotheses kept
                kept = torch.tensor([tokens[j] for j in keep])[:, None]
                kept = kept if lookup is None else lookup[kept]  # LM ids -> CTC classes (all are units here)
                _, ctc_state = scorer.score(ctc_state.take([parents[j] for j in keep]), kept)
        if hasattr(lm_step_fn, "reorder"):
            lm_step_fn.reorder([parents[j] for j in keep])
        if len(finished) == beam and float(run_score[0]) / (step + 1) ** length_penalty <= finished[-1][0]:
            break  # HF's early_stopping=False heuristic: no running hypothesis can improve the finished set
    if not finished:  # every candidate was -inf (e.g. CTC too short for any hypothesis)
        finished = [(NEG_INF, running[0])]
    return [(hyp, score) for score, hyp in finished]


def _next_log_probs(lm_step_fn: LMStepFn, bos_ids: list[int], running: list[list[int]]) -> Tensor:
    lm = lm_step_fn([list(bos_ids) + h for h in running])
    if lm.ndim != 2 or lm.shape[0] != len(running):
        raise ValueError(f"lm_step_fn must return ({len(running)}, V) log-probs, got {tuple(lm.shape)}")
    return lm.detach().float().cpu()


def _add_finished(finished, running, parents, tokens, hits, top_score, beam, eos_id, n_generated, length_penalty):
    """HF's finished set: hitting candidates among the first ``beam`` of the ``2 * beam``, scored
    ``score / n_generated ** length_penalty``, merged with the earlier ones; the ``beam`` best stay
    (earlier ones win ties). The ``eos`` itself is not kept in the tokens."""
    for j in range(min(beam, len(tokens))):
        if hits[j] and top_score[j] > NEG_INF:
            hyp = running[parents[j]] + ([] if tokens[j] == eos_id else [tokens[j]])
            finished.append((float(top_score[j]) / n_generated**length_penalty, hyp))
    return sorted(finished, key=lambda f: -f[0])[:beam]


def _ctc_columns(scorer: CTCPrefixScorer, state, vocab: int, lm: Tensor, eos_id: int, pre_beam: int | None,
                 unit_ids: Tensor | None = None) -> Tensor:
    """CTC prefix scores ``(n, vocab)`` in the LM's vocabulary: ids the CTC head lacks score ``-inf``;
    with ``pre_beam``, only each hypothesis' ``pre_beam`` best tokens by LM and by CTC, and ``eos``, stay."""
    ctc = scorer.prefix_scores(state).float()  # (n, V_ctc), blank already -inf
    out = ctc.new_full((ctc.shape[0], vocab), NEG_INF)
    if unit_ids is None:
        shared = min(vocab, ctc.shape[1])
        out[:, :shared] = ctc[:, :shared]
    else:
        out[:, unit_ids] = ctc[:, : len(unit_ids)]
    if eos_id < vocab:  # also when eos lies beyond the CTC classes
        out[:, eos_id] = scorer.end_scores(state).float()
    if pre_beam is not None and pre_beam < vocab:
        allowed = torch.zeros_like(out, dtype=torch.bool)
        allowed.scatter_(1, lm.topk(pre_beam, dim=1).indices, True)
        allowed.scatter_(1, out.topk(pre_beam, dim=1).indices, True)
        allowed[:, eos_id] = True
        out = out.masked_fill(~allowed, NEG_INF)
    return out


def _top_candidates(cand_score: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` best flat indices of ``(n, K)`` scores, best first; ties go to the lower flat index."""
    flat = cand_score.flatten()
    k = min(k, flat.numel())
    order = torch.sort(flat, descending=True, stable=True).indices[:k]
    return flat[order], order


def rescore_nbest(
    lm_step_fn: LMStepFn,
    lm_score_fn: LMScoreFn,
    ctc_log_probs: Tensor,
    bos_ids: list[int],
    eos_id: int,
    blank: int,
    beam: int,
    ctc_weight: float,
    max_len: int,
    length_penalty: float = 1.0,
    ctc_length: int | None = None,
    ctc_score_fn: LMScoreFn | None = None,
    unit_ids: Tensor | None = None,
) -> list[int]:
    """N-best rescoring: the union of the CTC prefix beam's and the LLM beam's ``beam``-best lists,
    each scored ``((1 - w) * log P_LM(y + eos) + w * log P_CTC(y)) / (len(y) + 1) ** length_penalty``
    with exact full-sequence probabilities (:mod:`brain2text.decoding.scorers`; ``lm_score_fn`` gives the LM's
    for a list of candidates, e.g. :func:`~brain2text.decoding.scorers.lm_sequence_log_prob` after the
    example's context); returns the best ``y``. With ``unit_ids`` (see :func:`joint_beam_search`) the
    candidates are token ids and ``ctc_score_fn`` gives their CTC score (``-inf`` for a non-unit token)."""
    lp = checked_log_probs(ctc_log_probs, blank, ctc_length)
    cands = [as_tokens(y, unit_ids) for y, _ in ctc_prefix_beam_search(lp, blank, beam=beam)]
    if ctc_weight < 1.0:
        lm_hyps = _beam_search(lm_step_fn, bos_ids, eos_id, beam, max_len, length_penalty)
        cands += [y for y, _ in lm_hyps if y not in cands]
    ctc = ctc_sequence_log_prob(lp, cands, blank) if ctc_score_fn is None else ctc_score_fn(cands).float().cpu()
    score = ctc_weight * ctc
    if ctc_weight < 1.0:
        score = score + (1.0 - ctc_weight) * lm_score_fn(cands).float().cpu()
    norm = torch.tensor([(len(y) + 1) ** length_penalty for y in cands], dtype=score.dtype)
    return cands[int(torch.argmax(score / norm))]
