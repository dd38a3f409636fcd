import pytest
import torch

from brain2text.config import EncoderConfig, load_config
from brain2text.errors import ModelError
from brain2text.models.encoder import MEGEncoder


@pytest.fixture(scope="module")
def enc_cfg(repo_root):
    return load_config(repo_root / "configs" / "tiny.yaml").encoder


def _batch(b=3, c=20, t=157, lengths=(157, 100, 60), seed=0):
    g = torch.Generator().manual_seed(seed)
    meg = torch.randn(b, c, t, generator=g)
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    meg = meg * mask[:, None]
    return meg, mask, torch.arange(b) % 4, torch.rand(b, c, 2, generator=g)


@pytest.mark.parametrize("spatial", [True, False])
def test_shapes_and_padding_invariance(enc_cfg, spatial):
    cfg = EncoderConfig(**{**enc_cfg.__dict__, "spatial_attention": spatial, "n_chans": 20})
    torch.manual_seed(0)
    enc = MEGEncoder(cfg).eval()
    meg, mask, sub, pos = _batch()
    out = enc(meg, mask, sub, pos if spatial else None)
    n_tok = enc.output_lengths(mask.sum(1))
    assert out.tokens.shape == (3, int(n_tok.max()), cfg.d_model)
    assert out.mask.sum(1).tolist() == n_tok.tolist()
    assert torch.all(out.tokens[~out.mask] == 0)
    # The padded example alone gives the same tokens as inside the batch.
    for i, length in [(1, 100), (2, 60)]:
        alone = enc(meg[i:i + 1, :, :length], mask[i:i + 1, :length], sub[i:i + 1], pos[i:i + 1] if spatial else None)
        n = alone.tokens.shape[1]
        assert n == int(n_tok[i])
        torch.testing.assert_close(alone.tokens[0], out.tokens[i, :n], atol=1e-5, rtol=1e-4)


def test_spatial_attention_any_channel_count_and_channel_mask(enc_cfg):
    torch.manual_seed(0)
    enc = MEGEncoder(enc_cfg).eval()
    meg, mask, sub, pos = _batch(c=20)
    ch_mask = torch.ones(3, 20, dtype=torch.bool)
    ch_mask[0, 15:] = False
    out = enc(meg, mask, sub, pos, ch_mask)
    # Masked channels carry no information: changing them changes nothing.
    meg2 = meg.clone()
    meg2[0, 15:] = 100.0
    torch.testing.assert_close(enc(meg2, mask, sub, pos, ch_mask).tokens, out.tokens)
    # Same as the 15-channel montage alone.
    alone = enc(meg[:1, :15], mask[:1], sub[:1], pos[:1, :15])
    torch.testing.assert_close(alone.tokens[0], out.tokens[0], atol=1e-5, rtol=1e-4)
    assert enc(torch.randn(2, 37, 50), torch.ones(2, 50, dtype=torch.bool), sub[:2],
               torch.rand(2, 37, 2)).tokens.shape[0] == 2


def test_errors_name_expected_and_got(enc_cfg):
    cfg = EncoderConfig(**{**enc_cfg.__dict__, "spatial_attention": False, "n_chans": 20})
    enc = MEGEncoder(cfg)
    mask = torch.ones(2, 50, dtype=torch.bool)
    with pytest.raises(ModelError, match="Expected 20 channels, got 7"):
        enc(torch.randn(2, 7, 50), mask, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ModelError, match="expected 3 dims.*got 2"):
        enc(torch.randn(20, 50), mask, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ModelError, match="subject_index must be in"):
        enc(torch.randn(2, 20, 50), mask, torch.tensor([0, 9]))
    with pytest.raises(ModelError, match="at least 1 real sample"):
        enc(torch.randn(2, 20, 50), torch.zeros(2, 50, dtype=torch.bool), torch.zeros(2, dtype=torch.long))
    # a window shorter than the stem kernel still gives one token
    assert enc(torch.randn(1, 20, 2), torch.ones(1, 2, dtype=torch.bool),
               torch.zeros(1, dtype=torch.long)).tokens.shape[1] == 1
    with pytest.raises(ModelError, match="sensor_positions"):
        MEGEncoder(enc_cfg)(torch.randn(2, 20, 50), mask, torch.zeros(2, dtype=torch.long))


def test_mae_loss_only_on_masked_real_samples(enc_cfg):
    torch.manual_seed(0)
    enc = MEGEncoder(enc_cfg)
    meg, mask, sub, pos = _batch()
    g = torch.Generator().manual_seed(1)
    masked = enc.span_mask(mask, g)
    assert not masked[~mask].any()
    ratio = masked.sum(1).float() / mask.sum(1)
    assert torch.all(ratio > 0.2) and torch.all(ratio <= 1.0)
    loss = enc.mae_loss(meg, mask, sub, pos, generator=torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert enc.mae_head[0].weight.grad.abs().sum() > 0
    # Changing unmasked-but-padded samples of the target does not change the loss.
    meg2 = meg.clone()
    meg2[2, :, 60:] = 50.0  # padding of example 2
    loss2 = enc.mae_loss(meg2, mask, sub, pos, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loss2, loss)


def test_output_rate_full_size():
    assert MEGEncoder.__dict__["output_rate"](type("E", (), {"cfg": EncoderConfig()})(), 100.0) == 12.5


def test_full_size_parameter_count_on_meta():
    with torch.device("meta"):
        enc = MEGEncoder(EncoderConfig())
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in enc.named_children()}
    assert counts["stages"] == 85_054_464  # 12 x (attention 2,362,368 + FFN 4,722,432 + norms 3,072)
    assert counts["spatial"] == 270 * 2 * 32 * 32
    assert counts["subject"] == 27 * 270 * 270
    assert sum(p.numel() for p in enc.parameters()) == 101_820_650


@pytest.mark.parametrize("window", [0, 2])
def test_local_attention_limits_what_a_token_sees(enc_cfg, window):
    cfg = EncoderConfig(**{**enc_cfg.__dict__, "n_chans": 20, "attention_window": window})
    torch.manual_seed(0)
    enc = MEGEncoder(cfg).eval()
    meg, mask, sub, pos = _batch(b=1, t=400, lengths=(400,))
    far = meg.clone()
    far[:, :, 300:] += 5.0 * torch.randn_like(far[:, :, 300:])  # change only the end of the window
    a, b = enc(meg, mask, sub, pos).tokens, enc(far, mask, sub, pos).tokens
    first_changed = (a - b).abs().amax(-1)[0].nonzero()[0, 0].item()
    if window == 0:
        assert first_changed == 0  # global attention: every token sees the change
    else:  # the change reaches back only through the stem's kernels and the window, layer after layer
        assert first_changed > 20
        assert torch.equal(a[:, :first_changed], b[:, :first_changed])


def test_attention_window_must_not_be_negative(enc_cfg):
    from brain2text.errors import ConfigError

    with pytest.raises(ConfigError, match="attention_window"):
        EncoderConfig(**{**enc_cfg.__dict__, "attention_window": -1})
