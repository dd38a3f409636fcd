"""The phoneme head (encoder.phoneme_head): its losses, its rate, the lexicon strategy that reads it, and a
saved model that keeps its lexicon; a model without it is unchanged (no tensor, no lexicon)."""

from __future__ import annotations

import json

import pytest
import torch

from brain2text.config import DecodingConfig
from brain2text.data.batch import tokenize_batch
from brain2text.data.pronunciation import PHONEMES, phoneme_ids, pronounce
from brain2text.decoding.strategies import WordLM, _contexts, model_lexicon
from brain2text.errors import ConfigError, ModelError
from brain2text.models.build import build_model
from brain2text.models.serialization import load_model, save_model
from helpers import SENTENCES, make_batch, make_tiny_model_dir, tiny_config


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    cfg = tiny_config(make_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama")), ["encoder.phoneme_head=true"])
    m = build_model(cfg, unit_texts=SENTENCES)
    m.train()
    m(make_batch(), {"commit": 1.0})  # initialise the codebooks
    return m.eval()


def test_pronunciations_and_the_synthetic_generator_share_one_dictionary():
    assert len(PHONEMES) == 39 and pronounce("cable") == ("k", "ey", "b", "ah", "l")
    assert pronounce("Arrallin") and all(p in PHONEMES for p in pronounce("Arrallin"))  # letter fallback
    assert phoneme_ids(["the", "fort"]) == [PHONEMES.index(p) for p in pronounce("the") + pronounce("fort")]


def test_phoneme_head_runs_at_the_first_stage_rate_and_its_losses_train(model):
    batch = make_batch(tokenizer=model.tokenizer)
    enc = model.encode(batch)
    assert enc.phoneme_log_probs.shape[-1] == len(PHONEMES) + 1
    assert enc.phoneme_log_probs.shape[1] == 2 * enc.tokens.shape[1]  # before the stage merge (factor 2)
    assert enc.phoneme_lengths() == [60, 40]  # 120 and 80 samples at stem stride 2
    model.train()
    losses = model(batch, {"phoneme": 1.0, "phoneme_frame": 1.0})
    model.eval()
    assert set(losses) == {"phoneme", "phoneme_frame"} and all(torch.isfinite(v) and v > 0 for v in losses.values())
    (losses["phoneme"] + losses["phoneme_frame"]).backward()
    assert model.phoneme_head[1].weight.grad is not None and model.phoneme_head[1].weight.grad.abs().sum() > 0
    model.zero_grad()


def test_a_model_without_the_head_refuses_its_losses_and_the_lexicon_strategy(tmp_path):
    plain = build_model(tiny_config(make_tiny_model_dir(tmp_path)))
    assert getattr(plain, "phoneme_head", None) is None and plain.lexicon_words is None
    with pytest.raises(ConfigError, match="phoneme_head"):
        plain(make_batch(tokenizer=plain.tokenizer), {"phoneme": 1.0})
    plain.train()
    plain(make_batch(), {"commit": 1.0})
    with pytest.raises(ConfigError, match="phoneme_head"):
        plain.eval().generate(make_batch(), DecodingConfig(strategy="lexicon", lm_weight=0.0))


def test_lexicon_strategy_writes_lexicon_words_and_its_score_ranks_what_it_decodes(model):
    assert model.lexicon_words == sorted({w for s in SENTENCES for w in s.split()})
    batch = make_batch(lengths=(150, 90), seed=3)
    words = set(model.lexicon_words)
    for d in (DecodingConfig(strategy="lexicon", num_beams=4, lm_weight=0.0, length_bonus=2.0),
              DecodingConfig(strategy="lexicon", num_beams=4, lm_weight=0.5, length_bonus=2.0)):
        out = model.generate(batch, d)
        assert len(out) == 2 and all(set(o.split()) <= words for o in out)
        scores = model.candidate_scores(batch, [o or "the" for o in out] + ["roy climbed"], d)
        assert scores.shape == (2, 3) and torch.isfinite(scores).all()
    assert model.generate(batch, d, meg_mode="none") == ["", ""]


def _text_log_prob(model, context, ids):
    """(sum of log P(ids[j] | context, ids[:j]), log P(eos | context, ids)) from one teacher-forced forward."""
    emb = torch.cat([context[0], model.embed(torch.tensor(ids, dtype=torch.long)).to(context.dtype)])[None]
    with torch.no_grad():
        logp = torch.log_softmax(model.decoder(inputs_embeds=emb).logits[0].float(), -1)
    n = context.shape[1]
    return sum(float(logp[n - 1 + j, t]) for j, t in enumerate(ids)), float(logp[n - 1 + len(ids), model.eos_id])


def test_word_lm_scores_words_as_the_text_they_write(model):
    """WordLM's score of a word after a word sequence is the LM's log-prob of the new tokens of the text."""
    batch = make_batch(lengths=(150, 90), seed=3)
    enc = model.encode(batch)
    contexts = _contexts(model, batch, enc)
    lex = model_lexicon(model)
    lm = WordLM(model, contexts, lex.words)
    w = {word: i for i, word in enumerate(lex.words)}
    requests = [(0, (), w["roy"]), (1, (w["the"],), w["fort"]), (0, (w["the"], w["fort"]), None)]
    for (i, ws, nxt), value in zip(requests, lm(requests)):
        text = " ".join(lex.words[k] for k in ws)
        before, eos = _text_log_prob(model, contexts[i], model.text_ids(text)) if text else (0.0, None)
        if nxt is None:
            assert value == pytest.approx(eos, abs=1e-4)
        else:
            after, _ = _text_log_prob(model, contexts[i], model.text_ids((text + " " + lex.words[nxt]).strip()))
            assert value == pytest.approx(after - before, abs=1e-4)


def test_saved_model_keeps_its_phoneme_head_and_lexicon_and_a_bad_lexicon_is_refused(model, tmp_path):
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.lexicon_words == model.lexicon_words
    batch = make_batch(seed=5)
    assert torch.equal(back.encode(batch).phoneme_log_probs, model.encode(batch).phoneme_log_probs)
    meta_path = tmp_path / "m" / "brain2text_config.json"
    meta = json.loads(meta_path.read_text())
    for bad in (["two words"], ["roy", "roy"], "roy", [3]):
        meta["lexicon_words"] = bad
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(ModelError, match="lexicon_words"):
            load_model(tmp_path / "m")


def test_tokenize_batch_carries_each_words_phonemes(model):
    batch = tokenize_batch(make_batch(lengths=(50,), texts=["the fort"]), model.tokenizer)
    assert batch.phoneme_ids == [[phoneme_ids(["the"]), phoneme_ids(["fort"])]]


def test_word_ctc_gains_sum_to_the_word_heads_sequence_probability(model):
    """WordCTC's per-word gains plus its end score add up to log P_CTC of the words' classes (exact), and an
    unwritable word costs the fixed ``unknown``; the lexicon strategy runs with it."""
    from brain2text.decoding.scorers import ctc_sequence_log_prob
    from brain2text.decoding.strategies import WordCTC

    batch = make_batch(lengths=(150, 90), seed=3)
    enc = model.encode(batch)
    words = ["the", "fort", "roy", "zzyzx-not-a-unit"]
    wc = WordCTC(model, enc.ctc_frames(), words, unknown=-7.0)
    seq = (0, 1, 2)
    gains = wc([(1, seq[:k], seq[k]) for k in range(3)] + [(1, seq, None)])
    classes = [c for w in seq for c in wc.classes(w)]
    exact = ctc_sequence_log_prob(enc.ctc_log_probs[1], [classes], model.units.blank, int(enc.mask[1].sum()))
    assert sum(gains) == pytest.approx(float(exact[0]), abs=1e-3)
    if wc.classes(3) is None:
        assert wc([(0, (), 3)]) == [-7.0]
    d = DecodingConfig(strategy="lexicon", num_beams=4, lm_weight=0.3, ctc_weight=1.0, length_bonus=1.0)
    out = model.generate(batch, d)
    assert len(out) == 2
    assert torch.isfinite(model.candidate_scores(batch, ["the fort", "roy"], d)).all()
