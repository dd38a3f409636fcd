"""Metric code against hand-computed values, and the fast (resampling) path against the libraries."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from brain2text.evaluation.metrics import (
    bertscore_f1,
    metrics_info,
    normalize_for_wer,
    rouge_l_f,
    sentence_stats,
    wer_statistics,
)


def corpus(refs, hyps, **kw):
    return sentence_stats(refs, hyps, bertscore_model=None, **kw).corpus()


def test_wer_hand_values():
    assert corpus(["a b c"], ["a x c"])["wer"] == pytest.approx(1 / 3)
    # corpus WER = total edits / total reference words: (1 sub + 1 del) / 5
    assert corpus(["a b c", "a b"], ["a x c", "a"])["wer"] == pytest.approx(2 / 5)
    # normalisation: case and punctuation do not count as errors
    assert corpus(["He said, hello!"], ["he said hello"])["wer"] == 0.0


def test_wer_empty_reference_counts_insertions():
    edits, n_ref = wer_statistics(["", "a b c", ""], ["x y", "a b c", ""])
    assert edits.tolist() == [2, 0, 0] and n_ref.tolist() == [0, 3, 0]
    assert corpus(["a b c", ""], ["a b c", "x y"])["wer"] == pytest.approx(2 / 3)
    assert corpus([""], [""])["wer"] == 0.0  # nothing to say, nothing said
    assert corpus([""], ["x"])["wer"] == 1.0
    assert corpus(["a b"], [""])["wer"] == 1.0  # two deletions


def test_bleu_hand_values():
    hyp, ref = "the cat sat on the mat", "the cat is on the mat"
    m = corpus([ref], [hyp])
    assert m["bleu1"] == pytest.approx(5 / 6)  # the x2, cat, on, mat match; sat does not
    assert m["bleu2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5))  # the cat, on the, the mat
    # brevity penalty exp(1 - 4/2), all unigrams match
    assert corpus(["the cat sat on"], ["the cat"])["bleu1"] == pytest.approx(math.exp(-1))
    assert corpus(["exactly the same words here"], ["exactly the same words here"])["bleu4"] == pytest.approx(1.0)


def test_rouge_l_hand_values():
    # LCS(a b c d, a c e d) = a c d: P = R = 3/4
    assert rouge_l_f(["a b c d"], ["a c e d"])[0] == pytest.approx(0.75)
    # LCS = 3, P = 1, R = 1/2, F = 2/3; reference is the first argument
    assert rouge_l_f(["a b c d e f"], ["a c f"])[0] == pytest.approx(2 / 3)
    assert rouge_l_f(["cats running"], ["cat runs"])[0] == pytest.approx(1.0)  # stemmer on
    assert rouge_l_f(["", "a", ""], ["", "", "b"]).tolist() == [1.0, 0.0, 0.0]


def test_normalize_for_wer():
    assert normalize_for_wer("He wouldn\u2019t go, \"Hey\" -- stock-still!\n") == "he wouldn't go hey stock-still"
    assert normalize_for_wer("  ...  ") == ""


def _random_corpus(n, seed):
    rng = random.Random(seed)
    words = "the cat sat on a mat and dog ran far away It".split()
    refs = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(n)]
    hyps = [" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(n)]
    return refs, hyps


def test_fast_path_equals_libraries_on_full_set():
    import jiwer
    import sacrebleu
    from rouge_score import rouge_scorer

    refs, hyps = _random_corpus(120, 0)
    m = corpus(refs, hyps)
    for n in range(1, 5):
        expected = sacrebleu.metrics.BLEU(tokenize="13a", max_ngram_order=n).corpus_score(hyps, [refs]).score / 100
        assert m[f"bleu{n}"] == pytest.approx(expected, abs=1e-12)
    norm = [normalize_for_wer(x) for x in refs], [normalize_for_wer(x) for x in hyps]
    assert m["wer"] == pytest.approx(jiwer.wer(*norm), abs=1e-12)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    assert m["rougeL_f"] == pytest.approx(np.mean([scorer.score(r, h)["rougeL"].fmeasure for r, h in zip(refs, hyps)]))


def test_weighted_counts_equal_a_resampled_corpus():
    refs, hyps = _random_corpus(30, 1)
    stats = sentence_stats(refs, hyps, bertscore_model=None, extra={"top1": np.arange(30) % 2})
    idx = np.random.default_rng(0).integers(0, 30, 30)
    counts = np.bincount(idx, minlength=30)[None, :]
    fast = {k: float(v[0]) for k, v in stats.weighted(counts).items()}
    slow = sentence_stats([refs[i] for i in idx], [hyps[i] for i in idx], bertscore_model=None,
                          extra={"top1": (idx % 2)}).corpus()
    assert fast == pytest.approx(slow, abs=1e-12)


def test_bertscore_matches_library_and_handles_empty():
    from brain2text.evaluation.metrics import get_bertscorer

    refs = ["the cat sat on the mat", "", "hello", "", "a long sentence about dogs"]
    hyps = ["a cat sat on a mat", "", "", "oops", "a long sentence about dogs"]
    f1 = bertscore_f1(refs, hyps)
    scorer, name = get_bertscorer()
    assert "MiniLM" in name
    direct = scorer.score([hyps[0]], [refs[0]])[2].item()
    assert f1[0] == pytest.approx(direct, abs=1e-6)
    assert f1[1:4].tolist() == [1.0, 0.0, 0.0]
    assert f1[4] == pytest.approx(1.0, abs=1e-4)
    assert 0.0 < f1[0] < f1[4]
    assert "MiniLM" in metrics_info()["bertscore_backbone"] and metrics_info()["bleu_tokenizer"] == "13a"


def test_mismatched_lengths_are_a_user_error():
    from brain2text.errors import Brain2TextError

    with pytest.raises(Brain2TextError, match="2 references but 1 predictions"):
        sentence_stats(["a", "b"], ["a"], bertscore_model=None)


def test_rouge_1_and_2_equal_rouge_score():
    from rouge_score import rouge_scorer

    from brain2text.evaluation.metrics import rouge_f

    refs, hyps = _random_corpus(60, 3)
    refs += ["The cats were running home", "a"]
    hyps += ["the cat runs home", "a"]
    ours = rouge_f(refs, hyps)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=True)
    for i, (r, h) in enumerate(zip(refs, hyps)):
        direct = scorer.score(r, h)
        assert ours["rouge1_f"][i] == pytest.approx(direct["rouge1"].fmeasure, abs=1e-12), (r, h)
        assert ours["rouge2_f"][i] == pytest.approx(direct["rouge2"].fmeasure, abs=1e-12), (r, h)
    m = corpus(refs, hyps)
    assert (m["rouge1_f"] == pytest.approx(ours["rouge1_f"].mean())
            and m["rouge2_f"] == pytest.approx(ours["rouge2_f"].mean()))
    assert rouge_f([""], [""])["rouge2_f"].tolist() == [1.0]  # both empty: a perfect match, as for ROUGE-L


def test_wer_normalization_none_counts_case_and_punctuation():
    import jiwer

    refs, hyps = ["He said, hello!", "the cat"], ["he said hello", "The  cat"]
    assert corpus(refs, hyps)["wer"] == 0.0
    none = corpus(refs, hyps, wer_normalization="none")["wer"]
    assert none == pytest.approx(jiwer.wer(refs, [" ".join(h.split()) for h in hyps]))  # jiwer on the raw text
    assert none == pytest.approx(4 / 5)  # He/he, said,/said, hello!/hello, the/The
    assert metrics_info(None, wer_normalization="none")["normalisation"]["wer_normalization"] == "none"
    with pytest.raises(ValueError, match="wer normalization"):
        wer_statistics(refs, hyps, "lower")


def test_vectorised_bleu_equals_sacrebleu_on_summed_statistics():
    from sacrebleu.metrics import BLEU

    from brain2text.evaluation.metrics import bleu_from_sums

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(400):
        sys_len, ref_len = rng.integers(0, 40, size=2)
        total = np.maximum(0, sys_len - np.arange(4))
        correct = np.minimum(total, rng.integers(0, 12, size=4)) * (rng.random(4) < 0.7)
        rows.append([sys_len, ref_len, *correct, *total])
    rows += [[0] * 10, [5, 5, 0, 0, 0, 0, 5, 4, 3, 2], [3, 9, 3, 2, 1, 0, 3, 2, 1, 0], [2, 2, 2, 1, 0, 0, 2, 1, 0, 0]]
    sums = np.array(rows)
    for order in range(1, 5):
        fast = bleu_from_sums(sums, order)
        for row, value in zip(sums, fast):
            slow = BLEU.compute_bleu([int(x) for x in row[2:2 + order]], [int(x) for x in row[6:6 + order]],
                                     int(row[0]), int(row[1]), smooth_method="exp", max_ngram_order=order).score / 100
            assert value == pytest.approx(slow, abs=1e-12), (row, order)
