"""CTC prefix beam search with LLM shallow fusion: with no LM say it is the CTC search, with beams wide
enough it finds the brute-force argmax of log P_CTC + lm_weight log P_LM + bonus len, and the LM moves it
only where the CTC is torn."""

from __future__ import annotations

import pytest
import torch

from brain2text.decoding.ctc import ctc_prefix_beam_search
from brain2text.decoding.fusion import ctc_fusion_beam_search, ctc_fusion_beam_search_batch

EOS = 1


class PrefixToyLM:
    """Next-token log-probs from the last token and the length; counts the prefixes it is asked for."""

    def __init__(self, vocab=12, seed=0, sharp=2.0):
        g = torch.Generator().manual_seed(seed)
        self.table = sharp * torch.randn(vocab + 1, 8, vocab, generator=g, dtype=torch.float64)
        self.asked: list[tuple[int, ...]] = []

    def __call__(self, prefixes):
        self.asked += [tuple(p) for p in prefixes]
        rows = [self.table[p[-1] if p else -1, min(len(p), 7)] for p in prefixes]
        return torch.log_softmax(torch.stack(rows), dim=-1)

    def sequence(self, y):
        """log P_LM(y + eos)."""
        seq, total = list(y) + [EOS], 0.0
        for i, tok in enumerate(seq):
            total += float(self([seq[:i]])[0, tok])
        return total


def _ctc(seed, n_frames=16, n_classes=9, sharp=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(sharp * torch.randn(n_frames, n_classes, generator=g, dtype=torch.float64), dim=-1)


@pytest.mark.parametrize("seed", range(6))
def test_no_lm_say_is_the_ctc_prefix_beam_search(seed):
    ctc = _ctc(seed)
    for beam in (1, 3, 6):
        ref = ctc_prefix_beam_search(ctc, 8, beam=beam)[0][0]
        assert ctc_fusion_beam_search(ctc, 8, None, EOS, beam=beam, lm_weight=0.0) == ref
        # the fused code path with a flat LM ranks exactly as CTC alone
        flat = lambda prefixes: torch.zeros(len(prefixes), 12)  # noqa: E731
        assert ctc_fusion_beam_search(ctc, 8, flat, EOS, beam=beam, lm_weight=0.7) == ref


@pytest.mark.parametrize("seed", range(4))
def test_wide_beam_finds_the_brute_force_argmax(seed):
    from test_ctc import brute_force

    ctc = torch.log_softmax(torch.randn(4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64),
                            dim=-1)
    lm = PrefixToyLM(vocab=5, seed=seed)  # LM ids 3, 4 have no CTC class (3 is the blank)
    exact = brute_force(ctc, blank=3)
    for lm_weight, bonus in ((0.5, 0.0), (1.0, 0.7), (0.3, -0.5)):
        fused = {y: p + lm_weight * lm.sequence(y) + bonus * len(y) for y, p in exact.items()}
        best = max(fused, key=fused.get)
        got = ctc_fusion_beam_search(ctc, 3, lm, EOS, beam=64, lm_weight=lm_weight, length_bonus=bonus)
        assert tuple(got) == best


def test_lm_breaks_a_ctc_tie_and_each_prefix_is_asked_once():
    blank = 8
    frames = [[5], [5], [6], [3, 4], [3, 4]]  # CTC sure of "5 6", torn between 3 and 4
    ctc = torch.full((len(frames), 9), -12.0)
    for t, labels in enumerate(frames):
        ctc[t, labels] = 0.0
    ctc = torch.log_softmax(ctc, dim=-1)

    class Favour(PrefixToyLM):
        def __init__(self, favourite):
            super().__init__()
            self.favourite = favourite

        def __call__(self, prefixes):
            self.asked += [tuple(p) for p in prefixes]
            out = torch.full((len(prefixes), 12), -3.0)
            for i, p in enumerate(prefixes):
                # likes 7 7, then its favourite
                out[i, self.favourite if len(p) == 2 else EOS if len(p) > 2 else 7] = 0.0
            return torch.log_softmax(out, dim=-1)

    for favourite in (3, 4):
        lm = Favour(favourite)
        assert ctc_fusion_beam_search(ctc, blank, lm, EOS, beam=4, lm_weight=0.5) == [5, 6, favourite]
        assert len(lm.asked) == len(set(lm.asked))
    # a strong LM cannot write what the CTC rules out: its 7 has no frame
    assert 7 not in ctc_fusion_beam_search(ctc, blank, Favour(3), EOS, beam=4, lm_weight=3.0)


def test_length_bonus_lengthens_and_shortens():
    ctc = _ctc(3, n_frames=30, sharp=1.0)
    lm = PrefixToyLM(seed=3, sharp=0.5)
    base = ctc_fusion_beam_search(ctc, 8, lm, EOS, beam=4, lm_weight=0.3)
    longer = ctc_fusion_beam_search(ctc, 8, lm, EOS, beam=4, lm_weight=0.3, length_bonus=3.0)
    shorter = ctc_fusion_beam_search(ctc, 8, lm, EOS, beam=4, lm_weight=0.3, length_bonus=-3.0)
    assert len(shorter) < len(base) < len(longer)


@pytest.mark.parametrize("bonus", [0.0, 1.5])
def test_examples_searched_together_give_each_examples_own_search_and_one_lm_call_per_frame(bonus):
    """Batched over examples of different lengths (each with its own LM, as each has its own MEG context),
    every example gets the hypothesis its search alone finds, and the LM is called once per frame (+ the
    end), not once per frame and example."""
    lms = [PrefixToyLM(seed=s, sharp=1.0) for s in range(4)]
    ctcs = [_ctc(10 + s, n_frames=n, sharp=1.0) for s, n in enumerate((16, 9, 16, 4))]
    alone = [ctc_fusion_beam_search(c, 8, lm, EOS, beam=4, lm_weight=0.6, length_bonus=bonus)
             for c, lm in zip(ctcs, lms)]
    calls = []

    def batch_lm(requests):
        calls.append(len(requests))
        return torch.cat([lms[i]([p]) for i, p in requests])

    together = ctc_fusion_beam_search_batch(ctcs, 8, batch_lm, EOS, beam=4, lm_weight=0.6, length_bonus=bonus,
                                            lengths=[None, None, 12, None])
    assert together[0] == alone[0] and together[1] == alone[1] and together[3] == alone[3]
    assert together[2] == ctc_fusion_beam_search(ctcs[2], 8, lms[2], EOS, beam=4, lm_weight=0.6,
                                                 length_bonus=bonus, length=12)
    assert len(calls) <= 16 + 1 and max(calls) > 4  # rows of several examples share a call
    assert ctc_fusion_beam_search_batch([], 8, batch_lm, EOS, beam=4, lm_weight=0.6) == []


def test_bad_arguments():
    ctc = _ctc(0)
    with pytest.raises(ValueError, match="lm_weight"):
        ctc_fusion_beam_search(ctc, 8, None, EOS, beam=2, lm_weight=-1.0)
    with pytest.raises(ValueError, match="prefix_lm_fn"):
        ctc_fusion_beam_search(ctc, 8, None, EOS, beam=2, lm_weight=0.5)
    with pytest.raises(ValueError, match=r"\(1, V\)"):
        ctc_fusion_beam_search(ctc, 8, lambda p: torch.zeros(5), EOS, beam=2, lm_weight=0.5)
