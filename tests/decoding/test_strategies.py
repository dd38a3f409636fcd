"""Every decoding strategy runs through Brain2Text.generate on the tiny config, and joint decoding sits
between its ends: CTC weight 0 is the LLM's beam search, weight 1 is CTC prefix beam decoding; fusion
with LM weight 0 is CTC prefix beam decoding, and the LLM it fuses is the MEG-conditioned one."""

from __future__ import annotations

import pytest
import torch

from brain2text.config import DecodingConfig
from brain2text.decoding import ctc_prefix_beam_search
from brain2text.models.brain2text import build_model
from helpers import make_batch, make_tiny_model_dir, tiny_config


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    m = build_model(tiny_config(make_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))))
    m.train()
    m(make_batch(), {"commit": 1.0})  # initialise the codebooks on a first batch
    with torch.no_grad():  # an untrained LM is nearly uniform: sharpen it so beams don't tie
        m.decoder.get_output_embeddings().weight.mul_(60.0)
        m.ctc_head.weight.mul_(30.0)
    return m.eval()


@pytest.fixture(scope="module")
def batch():
    return make_batch(lengths=(150, 90), seed=3)


@pytest.mark.parametrize("strategy", ["greedy", "beam", "ctc", "joint", "rescore", "fusion"])
def test_each_strategy_runs(model, batch, strategy):
    out = model.generate(batch, DecodingConfig(strategy=strategy, num_beams=3, ctc_weight=0.5))
    assert len(out) == 2 and all(isinstance(s, str) for s in out)


def test_joint_weight_zero_equals_llm_beam_search(model, batch):
    beam = model.generate(batch, DecodingConfig(strategy="beam", num_beams=3))
    joint = model.generate(batch, DecodingConfig(strategy="joint", num_beams=3, ctc_weight=0.0))
    assert joint == beam
    assert any(beam)


def test_joint_weight_one_equals_ctc_prefix_beam(model, batch):
    joint = model.generate(batch, DecodingConfig(strategy="joint", num_beams=3, ctc_weight=1.0))
    enc = model.encode(batch)
    blank = len(model.tokenizer)
    expected = []
    for b in range(2):
        ids = ctc_prefix_beam_search(enc.ctc_log_probs[b], blank, beam=3, length=int(enc.mask[b].sum()))[0][0]
        expected.append(model.tokenizer.decode(ids, skip_special_tokens=True).strip())
    assert joint == expected
    assert any(joint)


def test_ctc_strategy_equals_joint_weight_one(model, batch):
    ctc = model.generate(batch, DecodingConfig(strategy="ctc", num_beams=3))
    joint = model.generate(batch, DecodingConfig(strategy="joint", num_beams=3, ctc_weight=1.0))
    assert ctc == joint


def test_rescore_weight_one_without_length_normalisation_equals_ctc(model, batch):
    # the CTC prefix beam's best hypothesis is the most probable of its n-best under the exact CTC probability
    ctc = model.generate(batch, DecodingConfig(strategy="ctc", num_beams=3))
    rescore = model.generate(batch, DecodingConfig(strategy="rescore", num_beams=3, ctc_weight=1.0, length_penalty=0.0))
    assert rescore == ctc and any(ctc)


def test_rescore_without_meg_is_the_llm_beam_search(model, batch):
    beam = model.generate(batch, DecodingConfig(strategy="beam", num_beams=3), meg_mode="none")
    rescore = model.generate(batch, DecodingConfig(strategy="rescore", num_beams=3, ctc_weight=0.5), meg_mode="none")
    assert rescore == beam


def test_fusion_lm_weight_zero_equals_ctc(model, batch):
    ctc = model.generate(batch, DecodingConfig(strategy="ctc", num_beams=3))
    assert model.generate(batch, DecodingConfig(strategy="fusion", num_beams=3, lm_weight=0.0)) == ctc


def test_fusion_prefix_lm_is_the_meg_conditioned_decoder(model, batch):
    """PrefixLM's next-token log-probs for prefixes of mixed lengths, grown from earlier calls or new, equal the
    KV-cached beam step's, one prefix at a time."""
    from brain2text.models.splice import CachedLMStep, PrefixLM

    s = model._lm_inputs(batch, model.encode(batch), "meg", with_targets=False)
    ctx = s.inputs_embeds[:1, : int(s.attention_mask[0].sum())]
    lm = PrefixLM(model.decoder, ctx, model._embed)
    for prefixes in ([[], [5], [5, 9, 3], [7, 2]], [[5, 9, 3, 1], [7, 2, 2], [5], [4, 4, 4, 4, 4]]):  # grown, and unseen
        got = lm(prefixes)
        for p, row in zip(prefixes, got):
            assert torch.allclose(row, CachedLMStep(model.decoder, ctx, model._embed)([p])[0], atol=1e-5)


def test_fusion_without_meg_and_its_retrieval_score(model, batch):
    decoding = DecodingConfig(strategy="fusion", num_beams=3, lm_weight=0.5, length_bonus=0.25)
    assert model.generate(batch, decoding, meg_mode="none") == ["", ""]
    cands = ["the cat", "a dog ran", ""]
    assert model.candidate_scores(batch, cands, decoding, meg_mode="none") is None
    enc = model.encode(batch)
    got = model.candidate_scores(batch, cands, decoding, encoded=enc)
    expected = (model._ctc_sequence_logprob(enc, cands) + 0.5 * model.sequence_logprob(batch, cands, encoded=enc)
                + 0.25 * model._n_tokens(cands))
    assert torch.allclose(got, expected)
