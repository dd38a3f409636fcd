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
hypothesis (time-synchronous, which prunes better than a label-synchronous search driven by CTC alone).
In between, each hypothesis considers only the ``pre_beam`` tokens its LM ranks highest (ESPnet's
pre-beam; ``pre_beam >= 2 * beam``, the default, keeps the LM's own top candidates exact), plus the
``pre_beam`` tokens the CTC head gives the highest probability at any frame (so the MEG evidence can
bring in words the LM would not propose: the LM-collapse risk of DESIGN.md §8), plus ``eos``.

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

from .ctc import NEG_INF, CTCPrefixScorer, ctc_prefix_beam_search

LMStepFn = Callable[[list[list[int]]], Tensor]


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
) -> list[int]:
    """Joint CTC/LLM beam search; returns the best hypothesis' token ids (no ``bos_ids``, no ``eos``).

    ``ctc_log_probs``: ``(T, V_tok + 1)`` log-softmax of the CTC head for one example (``blank`` =
    ``V_tok``), ``ctc_length`` its valid frames. ``ctc_weight`` 0 gives :func:`lm_beam_search` and 1
    :func:`~brain2text.decoding.ctc.ctc_prefix_beam_search`'s best hypothesis (module docstring).
    """
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if ctc_weight > 0 and ctc_log_probs is None:
        raise ValueError("ctc_weight > 0 needs ctc_log_probs")
    if ctc_weight == 1.0:
        return ctc_prefix_beam_search(ctc_log_probs, blank, beam=beam, length=ctc_length)[0][0]
    scorer = None
    if ctc_weight > 0:
        scorer = CTCPrefixScorer(ctc_log_probs, blank, eos_id=eos_id, length=ctc_length)
    hyps = _beam_search(
        lm_step_fn, bos_ids, eos_id, beam, max_len, length_penalty, scorer=scorer, ctc_weight=ctc_weight, pre_beam=pre_beam
    )
    return hyps[0][0]


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
) -> list[tuple[list[int], float]]:
    """The shared loop; returns finished ``(tokens without eos, normalised score)``, best first.

    ``scorer`` None: LM only. ``lm_weight`` overrides ``1 - ctc_weight`` (tests run the
    label-synchronous search with CTC alone by passing 0; then every token is a candidate).
    """
    if beam < 1 or max_len < 1:
        raise ValueError(f"beam and max_len must be >= 1, got {beam} and {max_len}")
    n_keep = 2 * beam  # HF keeps (1 + number of eos ids) * num_beams candidates
    lm_w = 1.0 - ctc_weight if lm_weight is None else lm_weight
    running: list[list[int]] = [[]]
    run_score = torch.zeros(1)
    run_lm = torch.zeros(1)
    ctc_state = scorer.initial_state() if scorer is not None else None
    finished: list[tuple[float, list[int]]] = []
    ctc_tokens = None
    for step in range(max_len):
        lm = lm_step_fn([list(bos_ids) + h for h in running])
        if lm.ndim != 2 or lm.shape[0] != len(running):
            raise ValueError(f"lm_step_fn must return ({len(running)}, V) log-probs, got {tuple(lm.shape)}")
        lm = lm.detach().float().cpu()
        if scorer is None:
            cand = None
            cand_lm = run_lm[:, None] + lm  # (n, V)
            cand_score = run_score[:, None] + lm
        else:
            n_pre = n_keep if pre_beam is None else pre_beam
            if ctc_tokens is None:
                ctc_tokens = _ctc_tokens(scorer, n_pre, lm.shape[1])
            cand = _candidates(lm, eos_id, n_pre, ctc_tokens, every_token=lm_w == 0)
            cand_lm = run_lm[:, None] + lm.gather(1, cand.clamp(min=0)).masked_fill(cand < 0, NEG_INF)
            ctc_scores, new_ctc = scorer.score(ctc_state, cand)
            cand_score = lm_w * cand_lm + ctc_weight * ctc_scores.float() if lm_w else ctc_weight * ctc_scores.float()
        top_score, top_flat = _top_candidates(cand_score, n_keep)
        n_col = cand_score.shape[1]
        parents = (top_flat // n_col).tolist()
        tokens = (top_flat % n_col if cand is None else cand.flatten()[top_flat]).tolist()
        hits = [tok == eos_id or step + 1 == max_len for tok in tokens]
        for j in range(min(beam, len(tokens))):
            if hits[j] and top_score[j] > NEG_INF:
                hyp = running[parents[j]] + ([] if tokens[j] == eos_id else [tokens[j]])
                finished.append((float(top_score[j]) / (step + 1) ** length_penalty, hyp))
        finished = sorted(finished, key=lambda f: -f[0])[:beam]
        keep = [j for j in range(len(tokens)) if not hits[j] and top_score[j] > NEG_INF][:beam]
        if not keep:
            break
        running = [running[parents[j]] + [tokens[j]] for j in keep]
        run_score = top_score[keep]
        run_lm = cand_lm.flatten()[top_flat[keep]]
        if ctc_state is not None:
            ctc_state = new_ctc.take(top_flat[keep])
        if hasattr(lm_step_fn, "reorder"):
            lm_step_fn.reorder([parents[j] for j in keep])
        if len(finished) == beam and float(run_score[0]) / (step + 1) ** length_penalty <= finished[-1][0]:
            break  # HF's early_stopping=False heuristic: no running hypothesis can improve the finished set
    if not finished:  # every candidate was -inf (e.g. CTC too short for any hypothesis)
        finished = [(NEG_INF, running[0])]
    return [(hyp, score) for score, hyp in finished]


def _candidates(lm: Tensor, eos_id: int, pre_beam: int, ctc_tokens: Tensor, every_token: bool) -> Tensor:
    """Token ids ``(n, K)`` each hypothesis considers: its LM's ``pre_beam`` best, the CTC's likely tokens
    and ``eos``; repeats within a row are replaced by -1 (an invalid id that scores ``-inf``)."""
    n, vocab = lm.shape
    if every_token or pre_beam >= vocab:
        return torch.arange(vocab).expand(n, vocab)
    top = lm.topk(pre_beam, dim=1).indices  # (n, P)
    eos = torch.full((n, 1), eos_id, dtype=torch.long)
    cand = torch.cat([top, ctc_tokens[None, :].expand(n, -1), eos], dim=1)
    seen = torch.zeros(n, max(vocab, int(cand.max()) + 1), dtype=torch.bool)
    for j in range(cand.shape[1]):
        col = cand[:, j : j + 1]
        dup = seen.gather(1, col)
        seen.scatter_(1, col, True)
        cand[:, j : j + 1] = torch.where(dup, torch.full_like(col, -1), col)
    return cand


def _ctc_tokens(scorer: CTCPrefixScorer, n_tokens: int, vocab: int) -> Tensor:
    """The ``n_tokens`` labels with the highest frame probability anywhere in the utterance (so the MEG
    evidence can propose words the LM ranks low), limited to ids the LM has."""
    x = scorer.x[:, :vocab].clone()
    if scorer.blank < vocab:
        x[:, scorer.blank] = NEG_INF
    if x.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long)
    peak = x.max(dim=0).values
    return peak.topk(min(n_tokens, peak.numel())).indices


def _top_candidates(cand_score: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` best flat indices of ``(n, K)`` scores, best first; ties go to the lower flat index."""
    flat = cand_score.flatten()
    k = min(k, flat.numel())
    order = torch.sort(flat, descending=True, stable=True).indices[:k]
    return flat[order], order
