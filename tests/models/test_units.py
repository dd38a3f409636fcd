"""CTC units restricted to the training text: a smaller CTC head whose classes map to token ids, the same
searches and scores on top, and the units saved with the model."""

from __future__ import annotations

import pytest
import torch

from brain2text.config import DecodingConfig
from brain2text.decoding.strategies import get_strategy
from brain2text.errors import ConfigError
from brain2text.models.build import build_model
from brain2text.models.serialization import load_model, save_model
from brain2text.models.units import CTCUnits
from brain2text.registry import weighted_total
from helpers import SENTENCES, make_batch, tiny_config

TRAIN = SENTENCES[:4]  # the "training split": the last two sentences' words are partly unseen


@pytest.fixture(scope="module")
def model(tiny_lm_dir):
    torch.manual_seed(0)
    m = build_model(tiny_config(tiny_lm_dir, ["decoder.ctc_units=training_text"]), unit_texts=TRAIN)
    m.train()
    m(make_batch(tokenizer=m.tokenizer), {"commit": 1.0})
    with torch.no_grad():  # sharpen the untrained heads so that searches do not tie
        m.decoder.get_output_embeddings().weight.mul_(60.0)
        m.ctc_head.weight.mul_(30.0)
    return m.eval()


def test_units_are_the_training_texts_ids(model):
    ids = sorted({i for t in TRAIN for i in model.tokenizer(t, add_special_tokens=False)["input_ids"]})
    assert model.units.tokens(list(range(len(model.units)))) == ids
    assert model.ctc_head.out_features == len(ids) + 1 < len(model.tokenizer)
    assert model.units.classes(ids[:3]) == [0, 1, 2]
    assert model.units.classes([ids[0], max(set(range(len(model.tokenizer))) - set(ids))]) is None


def test_ctc_loss_drops_tokens_that_are_not_units(model):
    batch = make_batch(texts=[TRAIN[0], SENTENCES[5]], tokenizer=model.tokenizer)
    targets, lengths = model.units.target_classes(batch.ctc_targets, batch.ctc_target_lengths)
    assert lengths[0] == batch.ctc_target_lengths[0] and lengths[1] < batch.ctc_target_lengths[1]
    assert int(targets.max()) < model.units.blank
    model.train()
    out = model(batch, {"ctc": 1.0, "lm": 1.0})
    weighted_total(out, {"ctc": 1.0, "lm": 1.0}).backward()
    model.zero_grad()
    model.eval()
    assert torch.isfinite(out["ctc"])


@pytest.mark.parametrize("strategy", ["greedy", "beam", "ctc", "joint", "rescore", "fusion"])
def test_every_strategy_decodes_token_ids(model, strategy):
    batch = make_batch(lengths=(150, 90), seed=3)
    out = model.generate(batch, DecodingConfig(strategy=strategy, num_beams=3, ctc_weight=0.5))
    assert len(out) == 2 and all(isinstance(s, str) for s in out)


def test_search_identities_hold_with_units(model):
    batch = make_batch(lengths=(150, 90), seed=3)
    ctc = model.generate(batch, DecodingConfig(strategy="ctc", num_beams=3))
    assert any(ctc)
    assert model.generate(batch, DecodingConfig(strategy="fusion", num_beams=3, lm_weight=0.0)) == ctc
    assert model.generate(batch, DecodingConfig(strategy="joint", num_beams=3, ctc_weight=1.0)) == ctc
    units = set(model.units.token_ids.tolist())
    for strategy in ("ctc", "fusion"):  # the CTC-driven searches write units only, as token ids
        ids = get_strategy(strategy).decode(model, batch, model.encode(batch), DecodingConfig(strategy=strategy))
        assert all(i in units for row in ids for i in row) and any(ids)


def test_ctc_scores_of_unwritable_candidates_are_minus_infinity(model):
    batch = make_batch(lengths=(150, 90), seed=3)
    enc = model.encode(batch)
    cands = [model.text_ids(TRAIN[0])[:3], model.text_ids("quokka zebra")]
    scores = model.ctc_scores(enc, cands)
    assert torch.isfinite(scores[:, 0]).all() and torch.isinf(scores[:, 1]).all()


def test_units_are_saved_with_the_model(model, tmp_path):
    save_model(model, tmp_path / "m", preprocessing={})
    again = load_model(tmp_path / "m")
    assert torch.equal(again.units.token_ids, model.units.token_ids)
    batch = make_batch(lengths=(150, 90), seed=3)
    dec = DecodingConfig(strategy="ctc", num_beams=3)  # (the fixture sharpened the LM head, which is not saved)
    assert again.generate(batch, dec) == model.generate(batch, dec)


def test_training_text_units_need_the_texts(tiny_lm_dir):
    with pytest.raises(ConfigError, match="training split's sentences"):
        build_model(tiny_config(tiny_lm_dir, ["decoder.ctc_units=training_text"]))


def test_every_token_units_are_the_identity():
    units = CTCUnits.every_token(10)
    assert units.identity and units.blank == 10 and units.classes([3, 9]) == [3, 9] and units.tokens([4]) == [4]
    assert CTCUnits.from_json(units.to_json(), 10).identity
    with pytest.raises(Exception, match="distinct token ids"):
        CTCUnits([1, 1], 10)
