"""The demo's orchestration: caching decisions and the printed table (the full demo runs in `make demo`)."""

import json
import os
import time

from brain2text.demo import DemoSettings, _fresh, _synth_cached, results_table, strategies_summary


def _result(meg_wer, ctl_wer, ci, strategy="joint", **decoding):
    m = {"wer": meg_wer, "bleu1": 0.5, "bleu4": 0.1, "rougeL_f": 0.4, "bertscore_f1": 0.6, "top1": 0.2}
    c = dict(m, wer=ctl_wer, bleu4=0.0)
    d = {k: {"delta": 0.0, "ci95": [0.01, 0.02]} for k in m}
    d["wer"] = {"delta": meg_wer - ctl_wer, "ci95": ci}
    return {"n_sentences": 10, "strategy": strategy, "decoding": {"strategy": strategy, **decoding}, "metrics": m,
            "controls": {"noise": c, "shuffled": c, "no_meg": c},
            "differences": {"noise": d, "shuffled": d, "no_meg": d}}


def test_table_says_when_meg_does_not_beat_a_control():
    good = results_table("t", _result(0.3, 0.9, [-0.7, -0.5]))
    assert "NOTE" not in good and "30.0" in good and "90.0" in good
    bad = results_table("t", _result(0.8, 0.9, [-0.2, 0.05]))
    assert "does NOT beat the noise control on WER" in bad


def test_strategies_summary_keeps_every_strategy_with_its_decoding_settings():
    s = strategies_summary({"fusion": _result(0.3, 0.9, [-1, -0.5], "fusion", lm_weight=0.3),
                            "ctc": _result(0.4, 1.0, [-1, -0.5], "ctc"),
                            "fusion_no_llm": _result(0.4, 1.0, [-1, -0.5], "fusion", lm_weight=0.0)}, split="story")
    assert [r["name"] for r in s["strategies"]] == ["fusion", "ctc", "fusion_no_llm"]
    assert [r["strategy"] for r in s["strategies"]] == ["fusion", "ctc", "fusion"]
    assert [r["decoding"].get("lm_weight") for r in s["strategies"]] == [0.3, None, 0.0]
    assert s["split"] == "story" and s["default"] == "fusion" and "language_model" not in s
    json.dumps(s)


def test_the_search_without_its_llm_is_evaluated_only_for_searches_with_an_lm_weight():
    from brain2text.demo import Variant, variants

    no_llm = {"lm_weight": 0.0, "length_bonus": 1.0}
    got = variants("fusion", ["beam", "ctc", "fusion"], no_llm)
    assert [v.name for v in got] == ["fusion", "beam", "ctc", "fusion_no_llm"]
    assert got[-1] == Variant("fusion_no_llm", "fusion", (("length_bonus", 1.0), ("lm_weight", 0.0)))
    assert got[-1].overrides() == ["decoding.length_bonus=1.0", "decoding.lm_weight=0.0"]
    assert [v.name for v in variants("lexicon", [], no_llm)] == ["lexicon", "lexicon_no_llm"]
    assert [v.name for v in variants("joint", ["ctc"], no_llm)] == ["joint", "ctc"]  # its LLM weight is ctc_weight
    assert [v.name for v in variants("fusion", ["ctc"], None)] == ["fusion", "ctc"]
    # each split's search without the LLM has that split's own validation bonus
    assert {split: d["lm_weight"] for split, d in DemoSettings().no_llm.items()} == {"sentence": 0.0, "story": 0.0}


def test_memorisation_says_plainly_whether_the_prior_alone_recovers_test_text():
    from brain2text.evaluation.memorisation import memorisation_line, prior_recites

    r = _result(0.3, 0.9, [-1, -0.5])
    r["controls"]["no_meg"] = dict(r["controls"]["no_meg"], bleu4=0.004)
    record = {"perplexity": {"train": {"word_perplexity": 96.2}, "test": {"word_perplexity": 491.9}}}
    assert prior_recites(r) is False
    line = memorisation_line("sentence", record, r)
    assert "train 96.2, test 491.9" in line and "does not recover test text" in line and "0.4%" in line
    r["controls"]["no_meg"]["bleu4"] = 0.05
    assert prior_recites(r) is True and "RECOVERS test text" in memorisation_line("story", None, r)
    del r["controls"]["no_meg"]
    assert prior_recites(r) is None


def test_synth_cache_matches_parameters(tmp_path):
    s = DemoSettings()
    assert not _synth_cached(tmp_path, s)
    params = {"subjects": s.subjects, "max_seconds": s.max_seconds, "snr": s.snr, "seed": s.seed,
              "sfreq": s.synth_sfreq}
    (tmp_path / "dataset_description.json").write_text(json.dumps({"SyntheticParameters": params}))
    assert _synth_cached(tmp_path, s)
    params["snr"] = 2.0
    (tmp_path / "dataset_description.json").write_text(json.dumps({"SyntheticParameters": params}))
    assert not _synth_cached(tmp_path, s)


def test_fresh_compares_mtimes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("x")
    assert not _fresh(b, a)
    b.write_text("y")
    now = time.time()
    os.utime(a, (now - 10, now - 10))
    os.utime(b, (now, now))
    assert _fresh(b, a)
    os.utime(a, (now + 10, now + 10))
    assert not _fresh(b, a)


def test_a_run_of_another_config_is_moved_aside_not_reused(tmp_path, repo_root):
    from brain2text.config import load_config
    from brain2text.demo import _same_run
    from brain2text.training.run_dir import config_hash

    cfg = load_config(repo_root / "configs" / "demo.yaml")
    run = tmp_path / "run_sentence"
    assert not _same_run(run, cfg)  # nothing there yet
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"config_hash": config_hash(cfg, "multi_phase", None)}))
    assert _same_run(run, cfg) and run.is_dir()
    changed = load_config(repo_root / "configs" / "demo.yaml", ["encoder.attention_window=0"])
    (run / "weights").write_text("old")
    assert not _same_run(run, changed)
    assert not run.exists() and (tmp_path / "run_sentence.previous" / "weights").read_text() == "old"


def test_default_strategy_is_compared_with_each_other_one_on_the_same_sentences(tmp_path):
    from brain2text.config import EvalConfig
    from brain2text.demo import compare_with_default

    refs = [f"the fort number {i} was built by roy" for i in range(12)]
    files = {}
    for name, preds in (("joint", refs), ("ctc", ["the fort"] * 12)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps({"sentences": [{"reference": r, "prediction": p}
                                                         for r, p in zip(refs, preds)]}))
    diff = compare_with_default(files, "joint", EvalConfig(n_bootstrap=200, n_permutations=200))
    assert list(diff) == ["ctc"]
    wer = diff["ctc"]["wer"]
    assert wer["delta"] < -0.5 and wer["ci95"][1] < 0  # the default (perfect) has the lower WER
    assert wer["verdict"] == "beats"  # 12 different sentences: clusters of one row each
    summary = strategies_summary({"joint": _result(0.3, 0.9, [-1, -0.5]), "ctc": _result(0.4, 1.0, [-1, -0.5])}, diff)
    assert ("default_minus_this" not in summary["strategies"][0]
            and summary["strategies"][1]["default_minus_this"] == diff["ctc"])


def test_table_has_the_surrogate_p_values_and_says_either_way_whether_meg_beats_it():
    r = _result(0.3, 0.9, [-0.7, -0.5])
    r["controls"]["surrogate"] = r["controls"]["noise"]
    r["differences"]["surrogate"] = {k: dict(d, p_value=0.0001) for k, d in r["differences"]["noise"].items()}
    r["differences"]["surrogate"]["bleu4"] = {"delta": 0.0003, "ci95": [-0.000004, 0.0009], "p_value": 0.21}
    r["bootstrap"] = {"bootstrap_unit": "sentence", "n_clusters": 5, "n_bootstrap": 10000}
    table = results_table("t", r)
    lines = table.splitlines()
    # the report's order
    assert [line.split()[0] for line in lines[3:11:2]] == ["noise", "surrogate", "shuffled", "no_meg"]
    assert "[-0.0004,+0.09]" in table  # percentage points; a bound that rounds to 0.00 keeps its sign
    assert "p <0.001 beats" in table and "p 0.21 not established" in table
    assert "MEG beats the surrogate control on 5 of 6 metrics, not on: BLEU-4." in table
    assert "NOTE: MEG does NOT beat the surrogate control on BLEU-4 (not established)" in table
    assert "10000 resamples of 5 sentences" in table
    good = _result(0.3, 0.9, [-0.7, -0.5])
    assert "MEG beats the noise control on every metric (6)." in results_table("t", good)


def test_evaluations_use_the_demo_configs_eval_settings_not_those_saved_with_an_older_model(repo_root):
    from brain2text.config import load_config
    from brain2text.demo import eval_overrides

    cfg = load_config(repo_root / "configs" / "demo.yaml")
    assert "surrogate" in cfg.eval.controls and cfg.eval.n_bootstrap == 10000
    stale = load_config(repo_root / "configs" / "demo.yaml",
                        ["eval.controls=[noise, shuffled]", "eval.n_bootstrap=1000"])
    assert load_config(repo_root / "configs" / "demo.yaml", ["eval.controls=[noise, shuffled]", "eval.n_bootstrap=1000",
                                                             *eval_overrides(cfg.eval)]).eval == cfg.eval != stale.eval


def test_the_demos_models_carry_cards_with_the_default_strategys_evaluation(tmp_path_factory, tmp_path, repo_root,
                                                                            monkeypatch):
    """The demo's train-and-evaluate stage, on the tiny config and data: its model directories carry cards,
    and best_model's records the default strategy's evaluation though another strategy was evaluated last."""
    import functools
    from pathlib import Path

    import yaml

    from brain2text.demo import Stages, _train_and_evaluate
    from brain2text.training import lm_pretrain
    from eval_helpers import tiny_eval_setup

    setup = tiny_eval_setup(tmp_path_factory)
    # the demo's decoder pretraining, shrunk to seconds (the command builds LMSettings() with no size flags)
    tiny_lm = functools.partial(lm_pretrain.LMSettings, vocab_size=300, hidden_size=32, intermediate_size=64,
                                n_layers=1, n_heads=2, steps=3)
    monkeypatch.setattr(lm_pretrain, "LMSettings", tiny_lm)
    s = DemoSettings(config=str(repo_root / "configs" / "tiny.yaml"), out=str(tmp_path / "demo"))
    overrides = [f"data.bids_root={setup.bids_root}", f"data.cache_dir={setup.cache_dir}", "data.val_fraction=0.1",
                 "data.test_fraction=0.5", f"decoder.model_name_or_path={tmp_path / 'lm'}", "eval.n_bootstrap=50",
                 "eval.n_permutations=50", "eval.bertscore_model=none", "eval.controls=[noise, no_meg]",
                 "decoding.strategy=fusion", "decoding.lm_weight=0.3", "decoding.length_bonus=2"]
    results, model, cfg, files, versus = _train_and_evaluate(Stages(6, Path(s.out)), s, "sentence", overrides,
                                                             ["ctc"])
    # the default first, then the other strategy, then the default without its LLM, evaluated last
    assert list(results) == list(files) == ["fusion", "ctc", "fusion_no_llm"]
    assert list(versus) == ["ctc", "fusion_no_llm"]
    no_llm = results["fusion_no_llm"]["decoding"]
    assert (no_llm["strategy"], no_llm["lm_weight"], no_llm["length_bonus"]) == ("fusion", 0.0, 1.0)
    assert results["fusion"]["decoding"]["lm_weight"] == 0.3
    assert files["fusion_no_llm"].name == "metrics_sentence_fusion_no_llm.json"
    summary = json.loads((Path(s.out) / "strategies_sentence.json").read_text())
    assert summary["split"] == "sentence" and summary["default"] == "fusion"
    rows = {r["name"]: r for r in summary["strategies"]}
    assert rows["fusion_no_llm"]["decoding"]["lm_weight"] == 0.0 and rows["fusion_no_llm"]["strategy"] == "fusion"
    assert "default_minus_this" not in rows["fusion"] and rows["ctc"]["default_minus_this"]["wer"]["ci95"]
    ppl = summary["language_model"]["perplexity"]
    assert summary["language_model"]["model"] == str(tmp_path / "lm") and ppl["test"]["n_sentences"] > 0
    assert ppl["train"]["word_perplexity"] > 1 and ppl["test"]["word_perplexity"] > 1
    assert isinstance(summary["prior_recovers_test_text"], bool)
    # the LM headroom of the same search ran beside the evaluations, and its gist is in the summary
    headroom = summary["lm_headroom"]
    assert set(headroom["systems"]) == {"ctc", "no_lm", "ngram", "oracle"} and headroom["split"] == "test"
    assert headroom["wer_differences"]["oracle - ctc"]["ci95"] and (Path(s.out) / "lm_headroom_sentence.md").is_file()
    card = (model / "README.md").read_text()
    assert yaml.safe_load(card.split("---\n")[1])["library_name"] == "brain2text"
    assert f"(`{files['fusion']}`)" in card and "strategy `fusion`" in card and "strategy `ctc`" not in card
    assert "Mode `multi_phase`, 6 optimizer steps" in card and "| no_meg |" in card
    # the demo's scratch LM and its licence
    assert "brain2text pretrain-lm" in card and "MIT, like the brain2text weights: trained here" in card
    final = (model.parent / "final_model" / "README.md").read_text()
    assert "This model is the one at step 6 (the end of training)" in final


def test_independent_stages_run_as_processes_with_logs_and_a_failure_names_its_log(tmp_path, capsys):
    import pytest

    from brain2text.demo import Stages
    from brain2text.errors import Brain2TextError

    stages = Stages(3, tmp_path)
    logs = [tmp_path / "logs" / f"{name}.log" for name in ("help", "bad", "cached")]
    jobs = [("help", ["score", "--help"], logs[0], False),
            ("bad", ["score", "--references", str(tmp_path / "none.txt"), "--predictions", str(tmp_path / "none.txt"),
                     "--output_file", str(tmp_path / "s.json")], logs[1], False),
            ("cached", ["score", "--help"], logs[2], True)]
    with pytest.raises(Brain2TextError) as err:
        stages.run_commands(jobs, workers=2)
    assert "stage `bad` failed (exit 2): error:" in str(err.value) and "none.txt" in str(err.value)
    assert str(logs[1]) in str(err.value)
    assert "--references" in logs[0].read_text() and not logs[2].exists()  # the other stage ran to its end
    assert list(stages.timings) == ["help", "bad", "cached"] and stages.timings["cached"]["cached"]
    assert stages.timings["help"]["seconds"] > 0 and stages.k == 3
    out = capsys.readouterr().out
    assert "[3/3] cached (cached: reusing the previous run)" in out and f"output in {logs[0]}" in out
