"""CTC decoders against hand-checked cases and brute-force enumeration of all alignments."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from brain2text.decoding.ctc import CTCPrefixScorer, ctc_greedy, ctc_prefix_beam_search
from brain2text.decoding.scorers import ctc_sequence_log_prob


def _collapse(path, blank):
    out, prev = [], None
    for k in path:
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return tuple(out)


def _logaddexp(a, b):
    hi = max(a, b)
    return hi + math.log(math.exp(a - hi) + math.exp(b - hi)) if hi > -math.inf else hi


def brute_force(log_probs, blank):
    """log P(y | x) for every label sequence y, summing over all V^T alignments."""
    n_frames, n_classes = log_probs.shape
    probs = {}
    for path in itertools.product(range(n_classes), repeat=n_frames):
        p = sum(float(log_probs[t, k]) for t, k in enumerate(path))
        y = _collapse(path, blank)
        probs[y] = _logaddexp(probs.get(y, -math.inf), p)
    return probs


def _random_log_probs(seed, n_frames, n_classes, sharp=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(sharp * torch.randn(n_frames, n_classes, generator=g, dtype=torch.float64), dim=-1)


def test_greedy_hand_checked():
    blank = 0
    path = [1, 1, 0, 1, 2, 2, 0, 0, 2]  # -> 1 1 2 2
    lp = torch.full((len(path), 3), -10.0)
    lp[torch.arange(len(path)), torch.tensor(path)] = 0.0
    assert ctc_greedy(lp, blank) == [1, 1, 2, 2]
    assert ctc_greedy(lp, blank, length=3) == [1]
    assert ctc_greedy(lp[:0], blank) == []


def test_prefix_beam_hand_checked():
    # Two frames, classes {blank, a}: P(a) = P(a a) + P(a -) + P(- a); P() = P(- -)
    p = torch.tensor([[0.4, 0.6], [0.3, 0.7]], dtype=torch.float64)
    hyps = dict((tuple(y), math.exp(s)) for y, s in ctc_prefix_beam_search(p.log(), blank=0, beam=4))
    assert hyps[(1,)] == pytest.approx(0.6 * 0.7 + 0.6 * 0.3 + 0.4 * 0.7)
    assert hyps[()] == pytest.approx(0.4 * 0.3)
    assert (1, 1) not in hyps  # a repeated label needs a blank in between: impossible in two frames


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_frames,n_classes,blank", [(3, 3, 0), (4, 3, 2), (4, 2, 1)])
def test_prefix_beam_equals_brute_force(seed, n_frames, n_classes, blank):
    lp = _random_log_probs(seed, n_frames, n_classes)
    exact = brute_force(lp, blank)
    hyps = ctc_prefix_beam_search(lp, blank, beam=len(exact) + 1)
    assert len(hyps) == len(exact)
    for y, s in hyps:
        assert s == pytest.approx(exact[tuple(y)], abs=1e-9)
    scores = [s for _, s in hyps]
    assert scores == sorted(scores, reverse=True)
    assert math.isclose(sum(math.exp(s) for s in scores), 1.0, rel_tol=1e-9)
    # a narrow beam still finds the brute-force best here, with a score that never exceeds the truth
    y0, s0 = ctc_prefix_beam_search(lp, blank, beam=2)[0]
    assert s0 <= exact[tuple(y0)] + 1e-9


def test_prefix_beam_prune_and_length():
    lp = _random_log_probs(0, 12, 6, sharp=3.0)
    full = ctc_prefix_beam_search(lp, 0, beam=8)
    pruned = ctc_prefix_beam_search(lp, 0, beam=8, prune_topk=6)  # all classes: identical
    assert [y for y, _ in full] == [y for y, _ in pruned]
    short = ctc_prefix_beam_search(lp, 0, beam=8, length=5)
    assert short[0][1] == pytest.approx(ctc_prefix_beam_search(lp[:5], 0, beam=8)[0][1])


def test_prefix_beam_peaked_equals_greedy():
    lp = _random_log_probs(3, 30, 8, sharp=8.0)
    assert ctc_prefix_beam_search(lp, 7, beam=4)[0][0] == ctc_greedy(lp, 7)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_frames,n_classes,blank", [(3, 3, 0), (4, 3, 1)])
def test_prefix_scorer_equals_brute_force(seed, n_frames, n_classes, blank):
    lp = _random_log_probs(seed, n_frames, n_classes)
    exact = brute_force(lp, blank)
    eos = n_classes  # an id outside the CTC classes stands for end-of-sentence
    scorer = CTCPrefixScorer(lp, blank, eos_id=eos)
    labels = [c for c in range(n_classes) if c != blank]
    for n in range(0, n_frames + 1):
        for prefix in itertools.product(labels, repeat=n):
            state = scorer.initial_state()
            for c in prefix:
                _, state = scorer.score(state, torch.tensor([[c]]))
            cands = torch.tensor([labels + [eos, blank]])
            scores, _ = scorer.score(state, cands)
            for c, s in zip(labels, scores[0, : len(labels)].tolist()):
                # psi(g + c) = P(the output starts with g + c)
                expect = math.log(sum(math.exp(v) for y, v in exact.items() if y[: n + 1] == prefix + (c,)) or 0.0) \
                    if any(y[: n + 1] == prefix + (c,) for y in exact) else -math.inf
                assert s == pytest.approx(expect, abs=1e-9)
            assert float(scores[0, -2]) == pytest.approx(exact.get(prefix, -math.inf), abs=1e-9)
            assert float(scores[0, -1]) == -math.inf  # the blank is never a label
            # the exact sequence scorer (F.ctc_loss) agrees with brute force too
            assert float(ctc_sequence_log_prob(lp, [list(prefix)], blank)[0]) == \
                pytest.approx(exact.get(prefix, -math.inf), abs=1e-9)


def test_prefix_scorer_batched_equals_single():
    lp = _random_log_probs(1, 20, 7)
    scorer = CTCPrefixScorer(lp, blank=6, eos_id=5)
    state = scorer.initial_state()
    _, states = scorer.score(state, torch.tensor([[1, 2, 3]]))  # three one-label prefixes
    cands = torch.tensor([[1, 4, 5], [2, 2, 0], [0, 3, 5]])
    batched, _ = scorer.score(states, cands)
    for i in range(3):
        single, _ = scorer.score(states.take([i]), cands[i : i + 1])
        assert torch.allclose(batched[i], single[0])


def test_prefix_scorer_speed():
    import time

    lp = torch.log_softmax(torch.randn(100, 2001), dim=-1)
    scorer = CTCPrefixScorer(lp, blank=2000, eos_id=1)
    state = scorer.initial_state()
    cands = torch.randint(0, 2000, (1, 16))
    _, states = scorer.score(state, cands)
    state = states.take(list(range(8)))
    start = time.perf_counter()
    for _ in range(10):
        scorer.score(state, torch.randint(0, 2000, (8, 16)))
    per_step = (time.perf_counter() - start) / 10
    assert per_step < 0.5, f"one beam-8 step over 100 frames took {per_step:.3f} s (about 0.005 s unloaded)"


@pytest.mark.parametrize("seed", range(3))
def test_prefix_scores_of_all_classes_equal_the_recursion(seed):
    lp = _random_log_probs(seed, 25, 9, sharp=3.0)
    scorer = CTCPrefixScorer(lp, blank=8, eos_id=1)
    state = scorer.initial_state()
    for step, c in enumerate([3, 3, 5, 0]):  # includes a repeated label
        every = torch.arange(9).expand(state.last.shape[0], 9)
        by_recursion, new = scorer.score(state, every)
        assert torch.allclose(scorer.prefix_scores(state), by_recursion, atol=1e-9)
        state = new.take([c])
