"""The default decoder: leak-free corpus, from_pretrained round trip, caching."""

from __future__ import annotations

import json

import pytest

from brain2text.config import config_from_dict
from brain2text.training.lm_pretrain import LMSettings, build_corpus, pretrain_lm

TINY = LMSettings(vocab_size=300, hidden_size=32, intermediate_size=64, n_layers=1, n_heads=2, steps=4,
                  batch_size=8, eval_every=2)


@pytest.fixture(scope="module")
def text_dir(shared_data):
    return shared_data / "meg_masc" / "stimuli_text"


def _cfg(tmp_path, **data):
    return config_from_dict({"data": {"bids_root": str(tmp_path / "no-dataset"), **data},
                             "decoder": {"model_name_or_path": str(tmp_path / "lm"), "dtype": "float32"}})


@pytest.mark.parametrize("split", ["sentence", "story"])
def test_corpus_has_no_val_or_test_sentence(tmp_path, text_dir, split):
    from brain2text.data.splits import assign_split
    from brain2text.data.text import normalize_for_split

    cfg = _cfg(tmp_path, split=split)
    corpus = build_corpus(cfg, text_dir)
    assert len(corpus["train"]) > 300 and corpus["val"] and corpus["test"]
    held = {normalize_for_split(t) for t in corpus["val"] + corpus["test"]}
    assert not held & {normalize_for_split(t) for t in corpus["train"]}
    if split == "sentence":
        assert all(assign_split(t, "", cfg.data) == "train" for t in corpus["train"])
    else:  # held-out stories contribute nothing
        assert not any("Tara" in t for t in corpus["train"])  # lw1 (test story) is about Tara


def test_pretrain_roundtrip_and_cache(tmp_path, text_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = _cfg(tmp_path)
    logs: list[str] = []
    record = pretrain_lm(cfg, settings=TINY, text_dir=text_dir, log=logs.append)
    out = tmp_path / "lm"
    assert record["n_sentences"] > 300 and record["heldout_val_perplexity"] > 1.0
    assert json.loads((out / "lm_pretrain.json").read_text())["corpus_sha256"] == record["corpus_sha256"]
    assert not list(out.glob("*.bin")) and (out / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    assert model.config.model_type == "llama" and model.get_input_embeddings().weight.shape[0] == len(tok)
    corpus = (out / "corpus_train.txt").read_text().splitlines()
    assert set(corpus).isdisjoint(build_corpus(cfg, text_dir)["test"])
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    again = pretrain_lm(cfg, settings=TINY, text_dir=text_dir, log=logs.append)
    assert again == record and (out / "model.safetensors").stat().st_mtime_ns == mtime
    assert "up to date" in logs[-1]


def test_cli_refuses_to_write_into_a_hub_id(tmp_path, monkeypatch, capsys):
    from brain2text.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["pretrain-lm"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "hub id" in err and "Traceback" not in err
    assert not (tmp_path / "meta-llama").exists()


def test_cli_takes_the_tokenizer_from_the_config(tmp_path, text_dir, monkeypatch, capsys):
    """`pretrain-lm` trains the tokenizer kind the config names (decoder.pretrain_tokenizer); --tokenizer
    overrides it."""
    from brain2text.cli import main

    monkeypatch.chdir(tmp_path)
    for extra, kind in (([], "word"), (["--tokenizer", "bpe"], "bpe")):
        out = tmp_path / kind
        code = main(["pretrain-lm", "--out", str(out), "--steps", "1", "--text-dir", str(text_dir), "--json", *extra,
                     "decoder.pretrain_tokenizer=word"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert json.loads(captured.out)["settings"]["tokenizer"] == kind


def test_word_perplexities_of_the_decoders_lm_on_training_and_test_sentences(tmp_path, text_dir):
    """The demo's memorisation figures: each sentence scored alone from the start token through the end token,
    the summed NLL spread over words + 1; checked against the model's own loss, sentence by sentence."""
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brain2text.evaluation.memorisation import lm_word_perplexities

    cfg = _cfg(tmp_path)
    pretrain_lm(cfg, settings=TINY, text_dir=text_dir, log=lambda *_: None)
    record = lm_word_perplexities(cfg, text_dir)
    corpus = build_corpus(cfg, text_dir)
    assert record["model"] == str(tmp_path / "lm") and record["data_split"] == "sentence"
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "lm"), local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "lm"), local_files_only=True)
    for split in ("train", "test"):
        got = record["perplexity"][split]
        assert got["n_sentences"] == len(corpus[split]) > 0
        assert got["n_words"] == sum(len(t.split()) + 1 for t in corpus[split])
        nll = 0.0
        with torch.no_grad():
            for text in corpus[split]:
                ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"],
                                     tok.eos_token_id]])
                nll += float(model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
        assert got["word_perplexity"] == pytest.approx(math.exp(nll / got["n_words"]), rel=1e-3)
