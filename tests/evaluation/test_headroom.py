"""``brain2text lm-headroom``: its ctc row is the model's own ctc decoding, the oracle's n-gram holds the
decoded sentences and the plain one does not, and bad input is a one-line error that writes nothing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from brain2text.cli import main
from eval_helpers import tiny_eval_setup


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tiny_eval_setup(tmp_path_factory)


def test_headroom_rows_agree_with_the_model_and_the_oracle_knows_the_split(setup):
    from brain2text.data.cache import build_cache
    from brain2text.data.dataset import MEGDataset, collate_examples
    from brain2text.evaluation.controls import blind
    from brain2text.evaluation.headroom import PAIRS, SYSTEMS, lm_headroom, ngram_of, split_texts
    from brain2text.models.serialization import load_model

    model = load_model(setup.model_dir)
    cfg = setup.config(["eval.bertscore_model=none", "decoding.num_beams=4"])
    example_set = build_cache(cfg.data, progress=False)
    result = lm_headroom(model, example_set, cfg, "test", "val", order=2, lm_weights=(0.5,), length_bonuses=(1.0,))
    assert tuple(result["systems"]) == SYSTEMS and set(result["differences"]) == {f"{a} - {b}" for a, b in PAIRS}
    for name in ("ngram", "oracle"):
        assert result["systems"][name]["lm_weight"] == 0.5 and len(result["systems"][name]["tune_grid"]) == 1
    assert 0.0 <= result["unwritable_token_share"] <= 1.0 and result["split"] == "test"
    # the ctc row is what the model's own ctc strategy writes for the same examples
    dataset = MEGDataset(example_set, "test")
    batch = blind(collate_examples([dataset[i] for i in range(len(result["examples"]))]))
    ctc = model.generate(batch, dataclasses.replace(cfg.decoding, strategy="ctc"))
    assert [row["ctc"] for row in result["examples"]] == ctc
    # the oracle's n-gram has seen the test sentences, the plain one has not
    test = split_texts(example_set, "test")
    plain = ngram_of(model, split_texts(example_set, "train"), 2)
    oracle = ngram_of(model, split_texts(example_set, "train") + test, 2)
    first = model.text_ids(test[0])[0]
    assert float(oracle.log_probs([])[first]) > float(plain.log_probs([])[first])
    assert {row["reference"] for row in result["examples"]} <= set(test)


def test_headroom_command_writes_json_and_table(setup, tmp_path, capsys):
    out = tmp_path / "headroom.json"
    rc = main(["lm-headroom", "--model_path", str(setup.model_dir), "--output_file", str(out),
               "--lm_weights", "0.5", "--length_bonuses", "1", "--order", "2", f"data.cache_dir={setup.cache_dir}",
               "eval.n_bootstrap=100", "eval.n_permutations=100"])
    assert rc == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["model_path"] == str(setup.model_dir) and result["order"] == 2
    md = out.with_suffix(".md").read_text()
    assert "| oracle |" in md and "a reference point" in md and md in capsys.readouterr().out


def test_headroom_errors_are_one_line_and_write_nothing(setup, tmp_path, capsys):
    out = tmp_path / "headroom.json"
    rc = main(["lm-headroom", "--model_path", str(tmp_path / "nope"), "--output_file", str(out)])
    assert rc == 2 and "model directory not found" in capsys.readouterr().err
    rc = main(["lm-headroom", "--model_path", str(setup.model_dir), "--output_file", str(out), "--split", "val",
               "--tune_split", "val"])
    err = capsys.readouterr().err
    assert rc == 2 and "--tune_split must differ from --split" in err and len(err.strip().splitlines()) == 1
    rc = main(["lm-headroom", "--model_path", str(setup.model_dir), "--output_file", str(out), "--lm_weights", "a,b"])
    assert rc == 2 and "comma-separated numbers, got 'a,b'" in capsys.readouterr().err
    # settings are checked before the model loads (a missing model directory is not reached)
    for flags, message in ((["--order", "0"], "--order must be >= 1"), (["--lm_weights", "nan"], "finite and > 0"),
                           (["--lm_weights", "0,1"], "finite and > 0"), (["--length_bonuses", "inf"], "finite")):
        rc = main(["lm-headroom", "--model_path", str(tmp_path / "nope"), "--output_file", str(out), *flags])
        assert rc == 2 and message in capsys.readouterr().err, flags
    rc = main(["lm-headroom", "--model_path", str(tmp_path / "nope"), "--output_file", str(out), "--split", "train"])
    assert rc == 2 and "invalid choice: 'train'" in capsys.readouterr().err
    assert not out.exists() and not out.with_suffix(".md").exists()


def test_the_commands_defaults_are_the_modules():
    import argparse

    from brain2text.commands.lm_headroom import add_arguments
    from brain2text.evaluation.headroom import LENGTH_BONUSES, LM_WEIGHTS, ORDER

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--model_path", "m", "--output_file", "o.json"])
    assert (args.order, args.lm_weights, args.length_bonuses) == (ORDER, LM_WEIGHTS, LENGTH_BONUSES)
