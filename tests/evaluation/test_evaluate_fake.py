"""evaluate_examples with a fake model: control machinery, no target leak, output shape, report files."""

from __future__ import annotations

import json

import pytest

from brain2text.config import Config, DecodingConfig, EvalConfig
from brain2text.evaluation.evaluate import evaluate_examples, true_rank
from brain2text.evaluation.report_table import evaluation_markdown, write_figure
from fakes import FakeExampleSet, FakeModel

KEYS = {"bleu1", "bleu2", "bleu3", "bleu4", "rouge1_f", "rouge2_f", "rougeL_f", "bertscore_f1", "wer", "top1", "top10"}


def _cfg(**eval_kw):
    eval_kw.setdefault("n_bootstrap", 200)
    eval_kw.setdefault("bertscore_model", "none")
    return Config(eval=EvalConfig(batch_size=3, **eval_kw), decoding=DecodingConfig(strategy="greedy"))


@pytest.fixture(scope="module")
def result():
    return evaluate_examples(FakeModel(), FakeExampleSet(), "test", _cfg(), progress=False)


def test_output_shape_and_a_decoder_that_uses_meg_beats_its_controls(result):
    out, wer = result
    assert out["n_sentences"] == 16 and out["n_distinct_sentences"] == 8 and out["n_candidates"] == 8
    assert out["split"]["which"] == "test" and out["split"]["mode"] == "sentence"
    assert set(out["controls"]) == {"noise", "surrogate", "shuffled", "no_meg"}
    assert out["metrics"]["wer"] == 0.0 and out["metrics"]["top1"] == 1.0
    for control in ("noise", "surrogate", "shuffled", "no_meg"):
        diffs = out["differences"][control]
        assert diffs["wer"]["ci95"][1] < 0 and diffs["bleu1"]["ci95"][0] > 0, control
        # 8 sentences: the smallest possible two-sided p is 2 / 2^8
        assert diffs["wer"]["p_value"] < 0.05 and diffs["wer"]["verdict"] == "beats", control
    # the intervals resample the 8 sentences, all subjects' rows of a sentence together
    assert out["bootstrap_unit"] == "sentence" and out["n_clusters"] == 8
    assert (out["bootstrap"]["n_rows"] == 16 and out["n_permutations"] == 10_000
            and out["eval"]["bootstrap_unit"] == "sentence")
    assert out["controls"]["shuffled"]["top1"] == 0.0  # another sentence's MEG never retrieves this one
    assert out["controls"]["no_meg"]["top1"] == 0.0  # all candidates tie: ties count against the truth
    assert (len(out["examples"]) == 16
            and {"reference", "prediction", "noise", "surrogate", "shuffled", "no_meg"} <= set(out["examples"][0]))
    assert all(s["shuffled"] != s["reference"] for s in out["sentences"])
    assert out["synthetic"] is True and out["strategy"] == "greedy" and out["bleu_tokenizer"] == "13a"
    assert set(wer) == {"meg", "noise", "surrogate", "shuffled", "no_meg"} and len(wer["meg"]) == 16
    json.dumps(out, allow_nan=False)


def test_model_fed_its_own_noise_control_scores_as_the_noise_control(result):
    """Feed the noise control as the MEG: the MEG row must equal the noise row of the first run."""
    from brain2text.data.dataset import MEGDataset, collate_examples
    from brain2text.evaluation.controls import noise_like, noise_seeds

    data = FakeExampleSet()
    ds = MEGDataset(data, "test")
    noisy = FakeExampleSet()
    for p in range(len(ds)):
        b = noise_like(collate_examples([ds[p]]), noise_seeds(0, [p]))
        noisy._meg[ds.indices[p]] = b.meg[0].numpy()
    out_noisy, _ = evaluate_examples(FakeModel(), noisy, "test", _cfg(), progress=False)
    first = result[0]
    assert [s["prediction"] for s in out_noisy["sentences"]] == [s["noise"] for s in first["sentences"]]
    assert out_noisy["metrics"] == pytest.approx(first["controls"]["noise"])


def test_no_code_path_passes_targets_to_the_model(result):
    """Poison every text/word: predictions of every system are unchanged, and no batch carried targets."""
    poisoned = FakeExampleSet()
    for ex in poisoned.examples:
        ex["text"] = "SENTINEL " + ex["text"]
        ex["words"] = ["SENTINEL"] * 3
        ex["word_onsets"] = [999.0]
    model = FakeModel()
    out, _ = evaluate_examples(model, poisoned, "test", _cfg(), progress=False)
    for a, b in zip(out["sentences"], result[0]["sentences"]):
        systems = ("prediction", "noise", "surrogate", "shuffled", "no_meg")
        assert [a[k] for k in systems] == [b[k] for k in systems]
    assert model.seen_batches and all(b.texts == [] and b.words == [] and b.word_onsets == []
                                      for b in model.seen_batches)


def test_max_sentences_controls_subset_and_no_retrieval():
    out, _ = evaluate_examples(FakeModel(), FakeExampleSet(), "test",
                               _cfg(max_sentences=5, controls=["noise"], retrieval=False), progress=False)
    assert out["n_sentences"] == 5 and set(out["controls"]) == {"noise"} and "top1" not in out["metrics"]


def test_empty_split_is_a_user_error():
    from brain2text.errors import Brain2TextError

    with pytest.raises(Brain2TextError, match="no examples"):
        evaluate_examples(FakeModel(), FakeExampleSet(), "val", _cfg(), progress=False)


def test_true_rank_is_pessimistic_on_ties():
    import numpy as np

    assert true_rank(np.array([0.0, 0.0, 0.0]), 1) == 3
    assert true_rank(np.array([-1.0, 0.0, -2.0]), 1) == 1


def test_markdown_says_when_meg_does_not_beat_a_control(result, tmp_path):
    out = json.loads(json.dumps(result[0]))
    out["differences"]["noise"]["wer"] = {"delta": -0.01, "ci95": [-0.05, 0.03], "p_value": 0.4}
    out["differences"]["shuffled"]["bleu1"] = {"delta": -0.02, "ci95": [-0.04, -0.01], "p_value": 0.01}
    text = evaluation_markdown(out)
    assert "MEG does not beat the noise control on WER: not established (the interval includes 0; p = 0.4)." in text
    assert "MEG does not beat the shuffled control on BLEU-1: it is worse" in text
    assert "MEG beats the surrogate control on 9 of 10 metrics, not on: top-10 retrieval." in text  # either way
    assert "| WER (lower is better) |" in text and "MEG \u2212 surrogate" in text
    assert "-1.0 [-5.00, +3.00], p 0.4: not established" in text  # percentage points, signs shown
    assert "sentences (16 rows in 8 sentence clusters)" in text
    write_figure(out, result[1], tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_way_bootstrap_is_recorded(result):
    out, _ = evaluate_examples(FakeModel(), FakeExampleSet(), "test", _cfg(bootstrap_unit="subject_sentence",
                                                                               controls=["noise"]), progress=False)
    assert out["bootstrap"]["bootstrap_unit"] == "subject_sentence" and out["bootstrap"]["n_subjects"] == 2
    assert out["differences"]["noise"]["wer"]["ci95"][1] < 0
