"""Paired bootstrap: contains the delta, narrows with more sentences, deterministic for a seed."""

from __future__ import annotations

import random

import numpy as np
import pytest

from brain2text.evaluation.bootstrap import beats, paired_bootstrap
from brain2text.evaluation.metrics import sentence_stats

WORDS = "the cat sat on a mat and dog ran far away".split()


def _systems(n, seed):
    """System A copies most reference words, system B copies fewer."""
    rng = random.Random(seed)
    refs, a, b = [], [], []
    for _ in range(n):
        ref = rng.choices(WORDS, k=rng.randint(4, 10))
        refs.append(" ".join(ref))
        a.append(" ".join(w if rng.random() < 0.7 else rng.choice(WORDS) for w in ref))
        b.append(" ".join(w if rng.random() < 0.4 else rng.choice(WORDS) for w in ref))
    return (sentence_stats(refs, a, bertscore_model=None, extra={"top1": [rng.random() < 0.5 for _ in refs]}),
            sentence_stats(refs, b, bertscore_model=None, extra={"top1": [rng.random() < 0.3 for _ in refs]}))


def test_interval_contains_delta_and_shape():
    a, b = _systems(200, 0)
    out = paired_bootstrap(a, b, n_resamples=1000, seed=0)
    assert set(out) == {"bleu1", "bleu2", "bleu3", "bleu4", "rougeL_f", "wer", "top1"}
    for key, d in out.items():
        lo, hi = d["ci95"]
        assert lo <= d["delta"] <= hi, key
        assert d["delta"] == pytest.approx(a.corpus()[key] - b.corpus()[key])
    assert beats(out["wer"], "wer") and out["wer"]["delta"] < 0  # A has the lower WER
    assert beats(out["bleu1"], "bleu1")


def test_interval_narrows_with_more_sentences():
    small = paired_bootstrap(*_systems(40, 1), n_resamples=1000, seed=0)
    large = paired_bootstrap(*_systems(640, 1), n_resamples=1000, seed=0)
    for key in ("bleu1", "bleu4", "rougeL_f", "wer", "top1"):
        w_small = np.diff(small[key]["ci95"])[0]
        w_large = np.diff(large[key]["ci95"])[0]
        assert w_large < 0.6 * w_small, key  # ~1/sqrt(16) = 0.25 expected


def test_deterministic_for_a_seed():
    a, b = _systems(50, 2)
    assert paired_bootstrap(a, b, 300, seed=7) == paired_bootstrap(a, b, 300, seed=7)
    assert paired_bootstrap(a, b, 300, seed=7) != paired_bootstrap(a, b, 300, seed=8)


def test_identical_systems_have_zero_interval():
    a, _ = _systems(30, 3)
    out = paired_bootstrap(a, a, 200, seed=0)
    assert all(d["delta"] == 0.0 and d["ci95"] == [0.0, 0.0] for d in out.values())
    assert not beats(out["wer"], "wer")


def test_unpaired_inputs_are_refused():
    a, _ = _systems(10, 4)
    b, _ = _systems(11, 4)
    with pytest.raises(ValueError, match="same sentences"):
        paired_bootstrap(a, b)
