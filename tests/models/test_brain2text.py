import pytest
import torch

from brain2text.config import DecodingConfig
from brain2text.errors import ModelError
from brain2text.models.build import build_model
from brain2text.registry import weighted_total
from helpers import ctc_log_prob_by_prefix_scorer, make_batch, tiny_config

ALL_LOSSES = {"mae": 1.0, "commit": 0.25, "entropy": 0.1, "lm": 1.0, "ctc": 0.3, "word": 0.5}


@pytest.fixture(scope="module")
def model(tiny_lm_dir):
    torch.manual_seed(0)
    m = build_model(tiny_config(tiny_lm_dir))
    m.train()
    m(make_batch(tokenizer=m.tokenizer), {"commit": 1.0})  # initialise the codebooks on a first batch
    return m.eval()


def test_encode_shapes_with_padding(model):
    batch = make_batch(lengths=(120, 70))
    enc = model.encode(batch)
    n_tok = model.encoder.output_lengths(batch.meg_mask.sum(1))
    b, t = 2, int(n_tok.max())
    assert enc.tokens.shape == (b, t, 32) and enc.mask.sum(1).tolist() == n_tok.tolist()
    assert enc.quantized.shape == (b, t, 16) and enc.codes.shape == (b, t, 2)
    assert enc.ctc_log_probs.shape == (b, t, len(model.tokenizer) + 1)
    assert model.encoder.output_rate(100.0) == 25.0


def test_forward_returns_named_losses_and_phase1_skips_decoder(model, monkeypatch):
    model.train()
    out = model(make_batch(tokenizer=model.tokenizer), ALL_LOSSES)
    assert set(out) == set(ALL_LOSSES)
    assert all(torch.isfinite(v) for v in out.values())
    total = sum(ALL_LOSSES[k] * out[k] for k in ALL_LOSSES)
    torch.testing.assert_close(weighted_total(out, ALL_LOSSES), total)
    monkeypatch.setattr(model.decoder, "forward", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoder used")))
    out = model(make_batch(), {"mae": 1.0, "lm": 0.0})  # no token ids needed: no loss reads them
    assert set(out) == {"mae"}
    model.eval()


def test_losses_that_read_targets_need_the_data_layers_token_ids(model):
    with pytest.raises(ModelError, match="no ctc_targets"):
        model(make_batch(), {"ctc": 1.0})  # the model never tokenises targets itself
    batch = make_batch(tokenizer=model.tokenizer)
    assert batch.target_ids[0] == model.text_ids(batch.texts[0])
    assert [len(w) for w in batch.word_ids] == [len(w) for w in batch.words]


def test_channel_count_error_without_spatial_attention(tiny_lm_dir):
    m = build_model(tiny_config(tiny_lm_dir, ["encoder.spatial_attention=false", "encoder.n_chans=20"]))
    m.generate(make_batch(n_chans=20), DecodingConfig(strategy="ctc"))
    with pytest.raises(ModelError, match="Expected 20 channels, got 7"):
        m.generate(make_batch(n_chans=7))


def test_fresh_lora_equals_base(tiny_lm_dir):
    from transformers import AutoModelForCausalLM

    model = build_model(tiny_config(tiny_lm_dir)).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 5, 9, 20, 33]])
    torch.testing.assert_close(model.decoder(input_ids=ids).logits, base(input_ids=ids).logits)
    assert sum(p.numel() for p in model.parameter_groups()["lora"]) > 0


def test_one_step_changes_only_projector_and_lora(tiny_lm_dir):
    torch.manual_seed(0)
    m = build_model(tiny_config(tiny_lm_dir))
    m.train()
    m(make_batch(), {"commit": 1.0})
    m.set_trainable(["projector", "lora"])
    trainable = {id(p) for k in ("projector", "lora") for p in m.parameter_groups()[k]}
    assert {id(p) for p in m.parameters() if p.requires_grad} == trainable
    before = {k: v.detach().clone() for k, v in m.state_dict().items()}
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    weighted_total(m(make_batch(tokenizer=m.tokenizer), ALL_LOSSES), ALL_LOSSES).backward()
    opt.step()
    names = {id(p): n for n, p in m.named_parameters()}
    changed = {k for k, v in m.state_dict().items() if not torch.equal(v, before[k])}
    allowed = {names[i] for i in trainable}
    assert changed and changed <= allowed  # buffers (RVQ codebooks) included: nothing else moved
    assert any("lora_A" in k for k in changed) and any(k.startswith("projector") for k in changed)


@pytest.mark.parametrize("strategy", ["greedy", "beam", "joint", "ctc"])
def test_batched_generation_ignores_padding(model, strategy):
    _perturb_lora(model)
    batch = make_batch(lengths=(150, 60, 90) if strategy != "joint" else (150, 60), seed=3)
    dec = DecodingConfig(strategy=strategy, num_beams=2, ctc_weight=0.3)
    together = model.generate(batch, dec)
    alone = [model.generate(_alone(batch, i), dec)[0] for i in range(len(batch))]
    assert together == alone
    assert len(together) == len(batch) and any(together)
    if strategy == "greedy":
        blind = batch.select([0, 1, 2])
        blind.texts, blind.words, blind.word_onsets = ["x"] * 3, [], []  # generation never reads the targets
        blind.target_ids, blind.ctc_targets = [[1, 2]] * 3, torch.zeros(3, 2, dtype=torch.long)
        assert model.generate(blind, dec) == together
        assert (model.generate(batch, dec, meg_mode="none")
                == model.generate(batch.select([1]), dec, meg_mode="none") * 3)


def test_sequence_logprob_matches_single_scoring(model):
    batch = make_batch(lengths=(100, 60))
    cands = ["the fort", "roy climbed to the top", "zzz"]
    scores = model.sequence_logprob(batch, cands)
    assert scores.shape == (2, 3) and torch.all(scores < 0)
    one = model.sequence_logprob(_alone(batch, 1), cands[1:2])
    torch.testing.assert_close(one[0, 0], scores[1, 1], atol=1e-4, rtol=1e-4)
    assert model.sequence_logprob(batch, cands, meg_mode="none").shape == (2, 3)


def test_candidate_scores_are_each_strategys_own_score(model):
    batch = make_batch(lengths=(100, 60))
    cands = ["the fort", "roy climbed", "zzz"]
    lm = model.sequence_logprob(batch, cands)
    enc = model.encode(batch)
    ctc = torch.tensor([[ctc_log_prob_by_prefix_scorer(enc.ctc_log_probs[b], len(model.tokenizer), model.text_ids(c),
                                                       int(enc.mask[b].sum())) for c in cands] for b in range(2)])
    torch.testing.assert_close(model.candidate_scores(batch, cands, DecodingConfig(strategy="beam")), lm)
    torch.testing.assert_close(model.candidate_scores(batch, cands, DecodingConfig(strategy="ctc")), ctc.float(),
                               atol=1e-3, rtol=1e-4)
    joint = model.candidate_scores(batch, cands, DecodingConfig(strategy="joint", ctc_weight=0.3))
    torch.testing.assert_close(joint, 0.7 * lm + 0.3 * ctc.float(), atol=1e-3, rtol=1e-4)
    # without MEG: joint is the LM (as its decoding), CTC cannot score
    none_lm = model.sequence_logprob(batch, cands, meg_mode="none")
    torch.testing.assert_close(model.candidate_scores(batch, cands, DecodingConfig(strategy="joint"), meg_mode="none"),
                               none_lm)
    assert model.candidate_scores(batch, cands, DecodingConfig(strategy="ctc"), meg_mode="none") is None


def test_lm_logits_follow_hf_convention(model):
    batch = make_batch(tokenizer=model.tokenizer)
    logits, labels = model.lm_logits(batch)
    assert logits.shape[:2] == labels.shape
    n_text = [len(model.text_ids(t)) + 1 for t in batch.texts]
    assert (labels != -100).sum(1).tolist() == n_text


def _alone(batch, i):
    sub = batch.select([i])
    n = int(sub.meg_mask.sum())
    sub.meg, sub.meg_mask = sub.meg[..., :n], sub.meg_mask[:, :n]
    return sub


def _perturb_lora(model):
    with torch.no_grad():
        for n, p in model.decoder.named_parameters():
            if "lora_B" in n and p.abs().sum() == 0:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))


def test_joint_with_zero_ctc_weight_equals_hf_beam_search(model):
    _perturb_lora(model)
    batch = make_batch(lengths=(150, 60), seed=3)
    joint = model.generate(batch, DecodingConfig(strategy="joint", num_beams=2, ctc_weight=0.0))
    assert joint == model.generate(batch, DecodingConfig(strategy="beam", num_beams=2))


@pytest.mark.parametrize("overrides", [
    ["rvq.enabled=false", "projector.type=linear", "encoder.subject_layer=false"],
    ["rvq.ema=false", "rvq.init=kmeans", "decoder.gradient_checkpointing=true", "decoder.word_dropout=0.3"],
])
def test_config_branches_train_and_generate(tiny_lm_dir, overrides):
    torch.manual_seed(0)
    m = build_model(tiny_config(tiny_lm_dir, overrides))
    base = m.decoder.get_base_model()
    assert bool(getattr(base, "is_activation_checkpointing", base.is_gradient_checkpointing)) == (
        "decoder.gradient_checkpointing=true" in overrides)
    m.train()
    m.set_trainable(["subject", "encoder", "rvq", "projector", "lora", "ctc_head", "word_head"])
    weighted_total(m(make_batch(tokenizer=m.tokenizer), ALL_LOSSES), ALL_LOSSES).backward()
    assert all(p.grad is not None for p in m.projector.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameter_groups()["lora"])
    m.eval()
    texts = m.generate(make_batch(), DecodingConfig(strategy="greedy"))
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_quantized_loading_without_bitsandbytes_is_a_clear_error(tiny_lm_dir):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    with pytest.raises(ModelError, match="bitsandbytes"):
        build_model(tiny_config(tiny_lm_dir, ["decoder.load_in_8bit=true"]))


def test_missing_decoder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="decoder model directory not found"):
        build_model(tiny_config(tmp_path / "missing"))


def test_decoder_weights_only_as_pickle_are_refused(tiny_lm_dir, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_lm_dir, base)
    (base / "model.safetensors").unlink()
    (base / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # never unpickled
    with pytest.raises(ModelError, match="cannot load the decoder"):
        build_model(tiny_config(base))


def test_ctc_strategy_is_prefix_beam_search_and_greedy_with_one_beam(model):
    from brain2text.decoding.ctc import ctc_greedy

    batch = make_batch(lengths=(150, 60), seed=5)
    assert model.generate(batch, DecodingConfig(strategy="ctc", num_beams=3)) == \
        model.generate(batch, DecodingConfig(strategy="joint", num_beams=3, ctc_weight=1.0))
    enc = model.encode(batch)
    greedy = [model.tokenizer.decode(ctc_greedy(enc.ctc_log_probs[b], len(model.tokenizer), int(enc.mask[b].sum())),
                                     skip_special_tokens=True).strip() for b in range(2)]
    assert model.generate(batch, DecodingConfig(strategy="ctc", num_beams=1)) == greedy
