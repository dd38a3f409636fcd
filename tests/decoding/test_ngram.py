"""The n-gram LM of the headroom measurement: the same probabilities as nltk's WittenBellInterpolated, word
by word, and, fused into the CTC search, it moves the output where the CTC is torn."""

from __future__ import annotations

import math
import random

import pytest
import torch

from brain2text.decoding.fusion import ctc_fusion_beam_search_batch
from brain2text.decoding.ngram import NGramLM

EOS = 2


def _corpus(seed=0, n=60, vocab=40):
    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in range(rng.randrange(1, 9))] for _ in range(n)]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_rows_are_nltk_scores_token_by_token(order):
    sents = _corpus()
    lm = NGramLM(sents, order, 45, eos_id=EOS)
    for prefix in ([], [5], [5, 7], sents[0][:2], sents[3], [44, 44], [0, 1], sents[7] + sents[8]):
        row = lm.log_probs(prefix)
        assert row.shape == (45,)
        context = (["<s>"] * (order - 1) + [str(t) for t in prefix])[len(prefix):] if order > 1 else []
        for token in range(45):
            word = "</s>" if token == EOS else str(token)
            expected = 0.0 if token in (0, 1) else lm.nltk.score(word, context)  # ids 0, 1: never in the corpus
            assert math.exp(float(row[token])) == pytest.approx(expected, rel=1e-6, abs=1e-12), (prefix, token)
        assert float(row.exp().sum()) == pytest.approx(1.0, abs=1e-5)  # a distribution over the ids + end


def test_batch_call_and_bad_input():
    lm = NGramLM([[3, 4], [3, 5]], 2, 6, eos_id=EOS)
    rows = lm([(0, [3]), (5, [3]), (1, [])])
    assert rows.shape == (3, 6) and torch.equal(rows[0], rows[1])  # one LM for every example
    assert lm([]).shape == (0, 6)
    with pytest.raises(ValueError, match="order"):
        NGramLM([[3]], 0, 6, EOS)
    with pytest.raises(ValueError, match="eos_id 2"):
        NGramLM([[3, 2]], 2, 6, EOS)
    with pytest.raises(ValueError, match="outside"):
        NGramLM([[3, 6]], 2, 6, EOS)


def test_fused_ngram_chooses_where_the_ctc_is_torn():
    """Frame 1 leans to token 5; the LM has seen 3 4 twice as often as 3 5, so with it the search writes 3 4."""
    p = torch.full((3, 7), 1e-4, dtype=torch.float64)  # tokens 0..5, blank 6
    p[0, 3], p[1, 5], p[1, 4], p[1, 6], p[2, 6] = 1.0, 0.46, 0.40, 0.14, 1.0
    lp = (p / p.sum(1, keepdim=True)).log()
    lm = NGramLM([[3, 4], [3, 4], [3, 5]], 2, 6, eos_id=EOS)
    ctc = ctc_fusion_beam_search_batch([lp], 6, None, EOS, beam=4, lm_weight=0.0)
    fused = ctc_fusion_beam_search_batch([lp], 6, lm, EOS, beam=4, lm_weight=1.0)
    assert ctc == [[3, 5]] and fused == [[3, 4]]
