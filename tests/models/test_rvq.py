import pytest
import torch

from brain2text.config import RVQConfig
from brain2text.models.rvq import ResidualVQ, nearest_codes


def _rvq(**kw):
    cfg = dict(n_codebooks=3, codebook_size=64, dim=16, init="data")
    cfg.update(kw)
    return ResidualVQ(RVQConfig(**cfg))


@pytest.mark.parametrize("ema", [True, False])
@pytest.mark.parametrize("init", ["kmeans", "data", "random"])
def test_decode_encode_equals_quantized(ema, init):
    torch.manual_seed(0)
    rvq = _rvq(ema=ema, init=init)
    x = torch.randn(4, 30, 16, requires_grad=True)
    mask = torch.ones(4, 30, dtype=torch.bool)
    mask[1, 20:] = False
    rvq.train()
    out = rvq(x, mask, entropy=True)
    (out.commit_loss + out.entropy_loss + out.quantized.sum()).backward()
    assert out.quantized.shape == (4, 30, 16) and out.codes.shape == (4, 30, 3)
    assert bool(rvq.initialized)
    rvq.eval()
    with torch.no_grad():
        out = rvq(x, mask)
    codes = rvq.encode(x)
    assert torch.equal(codes, out.codes)
    torch.testing.assert_close(rvq.decode(codes), out.quantized, atol=1e-5, rtol=1e-5)
    assert out.perplexity.shape == (3,) and torch.all(out.perplexity >= 1)


def test_straight_through_and_learned_codebook_gradients():
    torch.manual_seed(0)
    rvq = _rvq(ema=False)
    x = torch.randn(2, 10, 16, requires_grad=True)
    rvq.train()
    out = rvq(x)
    out.quantized.sum().backward(retain_graph=True)
    torch.testing.assert_close(x.grad, torch.ones_like(x))  # identity through the quantizer
    out.commit_loss.backward()
    assert rvq.codebooks.grad is not None and rvq.codebooks.grad.abs().sum() > 0


def test_index_agreement_with_brute_force():
    torch.manual_seed(0)
    rvq = _rvq(codebook_size=256, dim=32, init="random").eval()
    x = torch.randn(8, 100, 32)
    codes = rvq.encode(x).reshape(-1, 3)
    flat = x.reshape(-1, 32)
    assert torch.equal(nearest_codes(flat, rvq.codebooks[0], chunk=100), nearest_codes(flat, rvq.codebooks[0]))
    residual = x.reshape(-1, 32).double()
    for q in range(3):
        book = rvq.codebooks[q].double()
        brute = ((residual[:, None, :] - book[None]) ** 2).sum(-1).argmin(1)
        assert torch.equal(brute, codes[:, q])  # 100% agreement
        residual = residual - book[brute]


def test_entropy_loss_lower_for_uniform_usage():
    torch.manual_seed(0)
    rvq = _rvq(n_codebooks=1, codebook_size=8, dim=4, init="random").eval()
    book = torch.eye(4).repeat(2, 1) * torch.tensor([1.0] * 4 + [-1.0] * 4)[:, None] * 5
    rvq.codebooks.copy_(book)
    uniform = book.repeat(4, 1)[None]  # every code used equally, confidently
    collapsed = book[:1].repeat(32, 1)[None]  # one code only
    lu = rvq(uniform, entropy=True).entropy_loss
    lc = rvq(collapsed, entropy=True).entropy_loss
    assert lu < lc
    assert rvq(uniform).perplexity[0] == pytest.approx(8.0, rel=1e-4)
    assert rvq(collapsed).perplexity[0] == pytest.approx(1.0)


def test_commitment_loss_zero_on_codes_and_positive_elsewhere():
    torch.manual_seed(0)
    rvq = _rvq(n_codebooks=1, init="random").eval()
    on_codes = rvq.codebooks[0][:10][None]
    with torch.enable_grad():
        assert rvq(on_codes).commit_loss.item() == pytest.approx(0.0, abs=1e-10)
        assert rvq(on_codes + 0.5).commit_loss.item() > 0


def test_dead_codes_restarted_and_padding_ignored():
    torch.manual_seed(0)
    rvq = _rvq(n_codebooks=1, codebook_size=32, dead_code_threshold=0.5, usage_decay=0.5)
    rvq.train()
    x = torch.randn(2, 40, 16)
    rvq(x)
    # Move every code far away: at most one is used, the others' usage decays and they restart on data.
    with torch.no_grad():
        rvq.codebooks.add_(1000.0)
        rvq.ema_sum.copy_(rvq.codebooks)
    for _ in range(3):
        rvq(x)
    assert int((rvq.codebooks[0].abs().amax(-1) < 100).sum()) >= 24
    assert rvq(x).usage[0] > 0.2
    # Padded tokens never enter the statistics (nor the restarts).
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[:, :5] = True
    before = rvq.usage.clone()
    for _ in range(3):
        rvq(x + 1e6 * (~mask)[..., None], mask)
    assert int((rvq.codebooks[0].abs().amax(-1) < 100).sum()) >= 24
    assert not torch.equal(before, rvq.usage)


def test_input_projection_and_full_size_counts():
    torch.manual_seed(0)
    rvq = ResidualVQ(RVQConfig(n_codebooks=2, codebook_size=16, dim=8, init="data"), input_dim=24).train()
    out = rvq(torch.randn(2, 5, 24))
    assert out.quantized.shape == (2, 5, 8)
    with torch.device("meta"):
        full = ResidualVQ(RVQConfig(), input_dim=768)
    assert full.codebooks.numel() == 8 * 8192 * 256 == 16_777_216
    assert sum(p.numel() for p in full.parameters()) == 768 * 256 + 256  # EMA codebooks are buffers


def test_autocast_bf16_keeps_fp32_search_and_statistics():
    torch.manual_seed(0)
    rvq = _rvq(init="data").train()
    x = torch.randn(2, 30, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rvq(torch.nn.functional.linear(x, torch.eye(16)), entropy=True)  # a bf16 input, as under autocast
    assert out.quantized.dtype == torch.float32 and rvq.codebooks.dtype == torch.float32
    rvq.eval()
    assert torch.equal(rvq.encode(x.bfloat16().float()), rvq(x.bfloat16().float()).codes)
