"""Every decoding strategy runs through Brain2Text.generate on the tiny config, and joint decoding sits
between its ends: CTC weight 0 is the LLM's beam search, weight 1 is CTC prefix beam decoding; fusion
with LM weight 0 is CTC prefix beam decoding, and the LLM it fuses is the MEG-conditioned one."""

from __future__ import annotations

import pytest
import torch

from brain2text.config import DecodingConfig
from brain2text.decoding.ctc import ctc_prefix_beam_search
from brain2text.models.build import build_model
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

    s = model.lm_inputs(batch, model.encode(batch))
    ctx = s.inputs_embeds[:1, : int(s.attention_mask[0].sum())]
    lm = PrefixLM(model.decoder, ctx, model.embed)
    # grown, and unseen
    for prefixes in ([[], [5], [5, 9, 3], [7, 2]], [[5, 9, 3, 1], [7, 2, 2], [5], [4, 4, 4, 4, 4]]):
        got = lm(prefixes)
        for p, row in zip(prefixes, got):
            assert torch.allclose(row, CachedLMStep(model.decoder, ctx, model.embed)([p])[0], atol=1e-5)


def test_batch_prefix_lm_serves_several_contexts_in_one_call(model, batch):
    """BatchPrefixLM's rows for (example, prefix) requests of mixed examples and lengths, in one call, equal
    each example's KV-cached beam step one prefix at a time; and fusion over the batch decodes each example
    as fusion over that example alone."""
    from brain2text.decoding.fusion import ctc_fusion_beam_search
    from brain2text.decoding.strategies import get_strategy
    from brain2text.models.splice import BatchPrefixLM, CachedLMStep, PrefixLM

    enc = model.encode(batch)
    s = model.lm_inputs(batch, enc)
    ctxs = [s.inputs_embeds[i:i + 1, : int(n)] for i, n in enumerate(s.attention_mask.sum(1).tolist())]
    lm = BatchPrefixLM(model.decoder, ctxs, model.embed)
    for requests in ([(0, []), (1, [5]), (0, [5, 9, 3]), (1, [])], [(1, [5, 9, 3, 1]), (0, [5, 9, 3, 1]), (0, [7])]):
        got = lm(requests)
        for (i, p), row in zip(requests, got):
            assert torch.allclose(row, CachedLMStep(model.decoder, ctxs[i], model.embed)([p])[0], atol=1e-5)
    decoding = DecodingConfig(strategy="fusion", num_beams=3, lm_weight=0.5, length_bonus=0.5)
    together = get_strategy("fusion").decode(model, batch, enc, decoding)
    alone = [ctc_fusion_beam_search(enc.ctc_log_probs[i], model.units.blank, PrefixLM(model.decoder, ctx, model.embed),
                                    model.eos_id, beam=3, lm_weight=0.5, length_bonus=0.5, length=int(n))
             for i, (ctx, n) in enumerate(zip(ctxs, enc.mask.sum(1).tolist()))]
    assert together == alone and all(together)


def test_fusion_without_meg_and_its_retrieval_score(model, batch):
    decoding = DecodingConfig(strategy="fusion", num_beams=3, lm_weight=0.5, length_bonus=0.25)
    assert model.generate(batch, decoding, meg_mode="none") == ["", ""]
    cands = ["the cat", "a dog ran", ""]
    assert model.candidate_scores(batch, cands, decoding, meg_mode="none") is None
    enc = model.encode(batch)
    got = model.candidate_scores(batch, cands, decoding, encoded=enc)
    ids = [model.text_ids(c) for c in cands]
    expected = (model.ctc_scores(enc, ids) + 0.5 * model.sequence_logprob(batch, cands, encoded=enc)
                + 0.25 * torch.tensor([float(len(i)) for i in ids]))
    assert torch.allclose(got, expected)


def test_lm_sequence_log_prob_is_each_candidate_scored_alone(model, batch):
    """The one LM scorer: candidates right-padded in one forward give each candidate's own teacher-forced
    log-probability (+ eos), as a forward of that candidate alone after the same context does."""
    from brain2text.decoding.scorers import lm_sequence_log_prob

    s = model.lm_inputs(batch, model.encode(batch))
    ctx = s.inputs_embeds[1:2, : int(s.attention_mask[1].sum())]
    cands = [[5, 9, 3], [], [7, 2, 2, 2, 8]]
    got = lm_sequence_log_prob(model.decoder, ctx, model.embed, cands, model.eos_id)
    for y, score in zip(cands, got.tolist()):
        seq = y + [model.eos_id]
        x = torch.cat([ctx, model.embed(torch.tensor([seq]))], 1)
        logp = torch.log_softmax(model.decoder(inputs_embeds=x).logits[0].float(), -1)
        expect = sum(float(logp[ctx.shape[1] - 1 + i, t]) for i, t in enumerate(seq))
        assert score == pytest.approx(expect, abs=1e-4)


def test_registry_is_the_one_home_of_strategies():
    """config validation and the CLI's choices come from the registry: a new entry is all it takes."""
    from brain2text.config import ConfigError, decoding_strategies
    from brain2text.decoding.strategies import STRATEGIES, Strategy, register

    assert decoding_strategies() is STRATEGIES
    with pytest.raises(ConfigError, match="decoding.strategy must be one of"):
        DecodingConfig(strategy="toy")
    toy = Strategy("toy", "decodes 'x' for every example", lambda m, b, e, d: [[] for _ in range(len(b))],
                   lambda m, b, e, c, d: None, lambda d: "none")
    register(toy)
    try:
        assert DecodingConfig(strategy="toy").strategy == "toy"
        with pytest.raises(ValueError, match="registered twice"):
            register(toy)
    finally:
        del STRATEGIES["toy"]
