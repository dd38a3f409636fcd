"""``brain2text lm-headroom``: its ctc row is the model's own ctc decoding, the oracle's n-gram holds the
decoded sentences and the plain one does not, and bad input is a one-line error that writes nothing."""

from __future__ import annotations

import dataclasses
import json
import math

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

    from brain2text.commands.lm_headroom import add_arguments, default_bonuses
    from brain2text.evaluation.headroom import LENGTH_BONUSES, LEXICON_BONUSES, LM_WEIGHTS, ORDER

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--model_path", "m", "--output_file", "o.json"])
    assert (args.order, args.lm_weights, args.search, args.length_bonuses) == (ORDER, LM_WEIGHTS, "fusion", None)
    assert default_bonuses("fusion") == LENGTH_BONUSES and default_bonuses("lexicon") == LEXICON_BONUSES


@pytest.fixture(scope="module")
def phoneme_model(setup, tmp_path_factory):
    """A model of the tiny setup with a phoneme head and the training words as its lexicon, saved."""
    import torch

    from brain2text.data.cache import build_cache
    from brain2text.evaluation.headroom import split_texts
    from brain2text.models.build import build_model
    from brain2text.models.serialization import save_model
    from brain2text.training.data import preprocessing_record

    cfg = setup.config(["encoder.phoneme_head=true"])
    example_set = build_cache(cfg.data, progress=False)
    torch.manual_seed(0)
    model = build_model(cfg, unit_texts=split_texts(example_set, "train"))
    model.preprocessing = preprocessing_record(example_set, cfg)
    out = tmp_path_factory.mktemp("phoneme-model") / "model"
    save_model(model, out)
    return out


def test_lexicon_ngram_is_a_distribution_over_the_lexicon_and_the_end():
    from brain2text.evaluation.headroom import LexiconNGram

    lm = LexiconNGram(["the fort stood", "the cable"], ["cable", "fort", "stood", "the", "spool"], order=2)
    the = lm.lexicon.words.index("the")
    for words in ((), (the,)):
        total = sum(math.exp(x) for x in lm([(0, words, w) for w in range(len(lm.lexicon))] + [(0, words, None)]))
        assert total == pytest.approx(1.0)
    assert lm([(0, (), lm.lexicon.words.index("spool"))])[0] == -math.inf  # in the lexicon, never in the text
    with pytest.raises(ValueError, match="outside the lexicon"):
        LexiconNGram(["the moon"], ["the"], order=2)


def test_lexicon_headroom_rows_are_the_models_own_searches_and_the_oracle_lexicon_knows_the_split(
        setup, phoneme_model):
    from brain2text.data.cache import build_cache
    from brain2text.data.dataset import MEGDataset, collate_examples
    from brain2text.decoding.lexicon import lexicon_beam_search_batch
    from brain2text.decoding.strategies import WordCTC
    from brain2text.evaluation.controls import blind
    from brain2text.evaluation.headroom import (
        LEXICON_BONUSES,
        SYSTEMS,
        LexiconNGram,
        lm_headroom,
        split_posteriors,
        split_texts,
    )
    from brain2text.models.serialization import load_model

    model = load_model(phoneme_model)
    cfg = setup.config(["eval.bertscore_model=none", "decoding.num_beams=4"])
    example_set = build_cache(cfg.data, progress=False)
    result = lm_headroom(model, example_set, cfg, "test", "val", order=2, lm_weights=(0.5,), search="lexicon",
                         ctc_weight=0.5)
    assert result["search"] == "lexicon" and tuple(result["systems"]) == SYSTEMS and result["ctc_weight"] == 0.5
    assert [row["length_bonus"] for row in result["systems"]["no_lm"]["tune_grid"]] == list(LEXICON_BONUSES)
    assert result["lexicon_words"] == len(model.lexicon_words) and 0.0 < result["lexicon_oov_share"] <= 1.0
    # the test split holds words no training sentence does, and only the oracle's lexicon has them
    test_words = {w for t in split_texts(example_set, "test") for w in t.split()}
    assert result["oracle_lexicon_words"] == len(set(model.lexicon_words) | test_words) > result["lexicon_words"]
    # ctc is the word CTC head alone; no_lm is the model's own lexicon strategy without its LM, at the chosen bonus
    dataset = MEGDataset(example_set, "test")
    batch = blind(collate_examples([dataset[i] for i in range(len(result["examples"]))]))
    bonus = result["systems"]["no_lm"]["length_bonus"]
    ctc = model.generate(batch, dataclasses.replace(cfg.decoding, strategy="ctc"))
    lexicon = model.generate(batch, dataclasses.replace(cfg.decoding, strategy="lexicon", lm_weight=0.0,
                                                        length_bonus=bonus, ctc_weight=0.5))
    assert [row["ctc"] for row in result["examples"]] == ctc
    assert [" ".join(row["no_lm"].split()) for row in result["examples"]] == [" ".join(t.split()) for t in lexicon]
    # every word the oracle writes is in its lexicon: the training words and the test split's own
    allowed = {w for t in split_texts(example_set, "train") + split_texts(example_set, "test") for w in t.split()}
    assert all(set(row["oracle"].split()) <= allowed for row in result["examples"])
    # the ngram row is the lexicon search with the training n-gram fused in, and the n-gram changes what it writes
    train = split_texts(example_set, "train")
    lm = LexiconNGram(train, model.lexicon_words, 2)
    post = split_posteriors(model, example_set, "test", max_examples=len(result["examples"]))
    chosen = result["systems"]["ngram"]
    assert chosen["lm_weight"] == 0.5

    word_ctc = WordCTC(model, post.log_probs, lm.lexicon.words)

    def search(word_lm):
        return [" ".join(lm.lexicon.words[w] for w in ws) for ws in lexicon_beam_search_batch(
            post.phoneme_log_probs, lm.lexicon, word_lm, beam=4, lm_weight=0.5 if word_lm else 0.0,
            word_bonus=chosen["length_bonus"], lookahead=lm.lookahead, word_ctc_fn=word_ctc, word_ctc_weight=0.5)]

    assert [row["ngram"] for row in result["examples"]] == search(lm) != search(None)


def test_lexicon_headroom_command_and_a_model_without_a_phoneme_head(setup, phoneme_model, tmp_path, capsys):
    out = tmp_path / "headroom.json"
    rc = main(["lm-headroom", "--model_path", str(setup.model_dir), "--output_file", str(out), "--search", "lexicon",
               f"data.cache_dir={setup.cache_dir}"])
    err = capsys.readouterr().err
    assert rc == 2 and "needs a model trained with encoder.phoneme_head" in err and not out.exists()
    rc = main(["lm-headroom", "--model_path", str(phoneme_model), "--output_file", str(out), "--search", "lexicon",
               "--lm_weights", "0.5", "--length_bonuses", "0,1", "--order", "2", f"data.cache_dir={setup.cache_dir}",
               "eval.n_bootstrap=100", "eval.n_permutations=100", "decoding.num_beams=4"])
    assert rc == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["search"] == "lexicon"
    md = out.with_suffix(".md").read_text()
    assert "phoneme lexicon search" in md and "not in the training words' lexicon" in md
