"""``brain2text evaluate`` on a tiny saved model and synthetic BIDS data; honesty checks with the real model."""

from __future__ import annotations

import dataclasses
import json

import pytest

from brain2text.cli import main
from eval_helpers import tiny_eval_setup


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tiny_eval_setup(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(setup):
    from brain2text.data.cache import build_cache
    from brain2text.models.serialization import load_model

    model = load_model(setup.model_dir)
    cfg = setup.config(["eval.bertscore_model=none"])
    return model, cfg, build_cache(cfg.data, progress=False)


def test_evaluate_command_writes_json_table_and_figure(setup, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    rc = main(["evaluate", "--model_path", str(setup.model_dir), "--output_file", str(out), "--strategy", "greedy",
               f"data.cache_dir={setup.cache_dir}", "eval.n_bootstrap=100", "eval.batch_size=4"])
    assert rc == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    keys = {"bleu1", "bleu2", "bleu3", "bleu4", "rouge1_f", "rouge2_f", "rougeL_f", "bertscore_f1", "wer", "top1",
            "top10"}
    assert keys <= set(result["metrics"])
    controls = ("noise", "surrogate", "shuffled", "no_meg")
    assert all(keys <= set(result["controls"][c]) for c in controls)
    for control in controls:
        for key in ("bleu1", "bleu4", "rougeL_f", "bertscore_f1", "wer", "top1", "top10"):
            d = result["differences"][control][key]
            assert d["ci95"][0] <= d["ci95"][1] and d["verdict"] in ("beats", "worse", "not established")
    assert result["split"] == {**result["split"], "mode": "sentence", "which": "test"}
    assert result["n_sentences"] == 4 and result["synthetic"] is True and result["strategy"] == "greedy"
    assert "MiniLM" in result["bertscore_backbone"] and result["bleu_tokenizer"] == "13a"
    assert {"reference", "prediction", *controls} <= set(result["examples"][0])
    assert result["bootstrap_unit"] == "sentence" and result["n_clusters"] == 2  # 2 sentences x 2 subjects
    md = out.with_suffix(".md").read_text()
    assert "| metric (%) | MEG | noise | surrogate | shuffled | no_meg |" in md
    assert "does not beat" in md  # an untrained model must not beat its controls, and the table says so
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_errors_are_one_line_and_write_nothing(setup, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    rc = main(["evaluate", "--model_path", str(tmp_path / "nope"), "--output_file", str(out)])
    assert rc == 2 and "model directory not found" in capsys.readouterr().err
    rc = main(["evaluate", "--model_path", str(setup.model_dir), "--output_file", str(out), "eval.bogus=1"])
    assert rc == 2 and "unknown key 'eval.bogus'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_real_model_fed_its_noise_control_decodes_as_the_noise_control(loaded):
    from brain2text.data.dataset import MEGDataset, collate_examples
    from brain2text.evaluation.controls import noise_like, noise_seeds
    from brain2text.evaluation.evaluate import evaluate_examples

    model, cfg, example_set = loaded
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, controls=["noise"], retrieval=False))
    first, _ = evaluate_examples(model, example_set, "test", cfg, progress=False)

    class NoisySet:  # the same examples whose MEG *is* the noise control
        def __init__(self, base):
            self.__dict__.update({k: getattr(base, k) for k in ("examples", "sfreq", "synthetic", "path", "subjects")})
            self.base, ds = base, MEGDataset(base, "test")
            self.noise = {ds.indices[p]: noise_like(collate_examples([ds[p]]),
                                                    noise_seeds(cfg.eval.control_seed, [p])).meg[0].numpy()
                          for p in range(len(ds))}

        def get_meg(self, i):
            return self.noise[i].copy() if i in self.noise else self.base.get_meg(i)

        def __getattr__(self, name):
            return getattr(self.base, name)

    second, _ = evaluate_examples(model, NoisySet(example_set), "test", cfg, progress=False)
    assert [s["prediction"] for s in second["sentences"]] == [s["noise"] for s in first["sentences"]]
    assert second["metrics"] == pytest.approx(first["controls"]["noise"])


def test_no_reference_is_tokenised_while_generating(loaded, monkeypatch):
    """Fails if any code path hands a target sentence to the model during generation."""
    from brain2text.evaluation.evaluate import evaluate_examples

    model, cfg, example_set = loaded
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, retrieval=False))
    references = {ex["text"] for ex in example_set.examples}
    tokenizer = model.tokenizer
    real_call, real_generate = type(tokenizer).__call__, model.generate
    state = {"generating": False, "calls": 0}

    def guarded_call(self, text, *args, **kwargs):
        texts = [text] if isinstance(text, str) else list(text)
        if state["generating"]:
            state["calls"] += 1
            assert not any(t in references or any(r in t for r in references) for t in texts), f"target leaked: {texts}"
        return real_call(self, text, *args, **kwargs)

    def guarded_generate(batch, *args, **kwargs):
        assert batch.texts == [] and batch.words == [] and batch.word_onsets == []
        state["generating"] = True
        try:
            return real_generate(batch, *args, **kwargs)
        finally:
            state["generating"] = False

    monkeypatch.setattr(type(tokenizer), "__call__", guarded_call)
    monkeypatch.setattr(model, "generate", guarded_generate)
    result, _ = evaluate_examples(model, example_set, "test", cfg, progress=False)
    assert state["calls"] > 0  # the prompt is tokenised under the guard, so the guard is live
    # poisoning the targets changes nothing the model produces
    saved = [(ex["text"], ex["words"]) for ex in example_set.examples]
    for ex in example_set.examples:
        ex["text"], ex["words"] = "SENTINEL " + ex["text"], ["SENTINEL"]
    try:
        poisoned, _ = evaluate_examples(model, example_set, "test", cfg, progress=False)
    finally:
        for ex, (text, words) in zip(example_set.examples, saved):
            ex["text"], ex["words"] = text, words
    keys = ("prediction", "noise", "shuffled", "no_meg")
    assert [[s[k] for k in keys] for s in poisoned["sentences"]] == [[s[k] for k in keys] for s in result["sentences"]]
