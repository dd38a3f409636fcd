"""B1-B3: the residual vector quantizer against vector-quantize-pytorch and against ``torch.mm``.

B1 encodes the same tokens with the same codebooks (copied into the library's ``ResidualVQ``) in
eval mode and checks that both pick the same code at every level; B2 times a training step
(forward, commitment loss, backward, EMA codebook update) of both in training mode; B3 divides
the nearest-code search's FLOP/s (2*N*K*D per level) by those of ``torch.mm`` on the same shapes.
"""

from __future__ import annotations

import torch

from ..config import RVQConfig
from ..models.rvq import ResidualVQ
from .common import Result, Settings, compare, optional_import, single_thread_cpu

N_Q, K, D = 8, 8192, 256
DECAY, COMMIT = 0.99, 0.25


def _sizes(s: Settings) -> dict:
    return {"n_q": N_Q, "codebook_size": s.pick(K, 1024), "dim": D, "batch": 8, "tokens": s.pick(250, 64)}


def _ours(sz: dict) -> ResidualVQ:
    cfg = RVQConfig(n_codebooks=sz["n_q"], codebook_size=sz["codebook_size"], dim=sz["dim"], init="random",
                    ema=True, ema_decay=DECAY, commitment_weight=COMMIT)
    torch.manual_seed(0)
    return ResidualVQ(cfg)


def _library(vqp, ours: ResidualVQ, sz: dict):
    """The library's ResidualVQ with our codebooks copied in (EMA, no k-means, no dead-code restart)."""
    lib = vqp.ResidualVQ(dim=sz["dim"], num_quantizers=sz["n_q"], codebook_size=sz["codebook_size"], decay=DECAY,
                         commitment_weight=COMMIT, kmeans_init=False, threshold_ema_dead_code=0)
    with torch.no_grad():
        for q, layer in enumerate(lib.layers):
            layer._codebook.embed.data[0].copy_(ours.codebooks[q])
            layer._codebook.embed_avg.data[0].copy_(ours.codebooks[q])
    return lib


def _input(sz: dict) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(sz["batch"], sz["tokens"], sz["dim"], generator=g) / sz["dim"] ** 0.5 * 1.5


def bench_b1_b3(s: Settings) -> list[Result]:
    sz = _sizes(s)
    n = sz["batch"] * sz["tokens"]
    ours = _ours(sz).eval()
    x = _input(sz)
    flops = 2.0 * n * sz["codebook_size"] * sz["dim"] * sz["n_q"]
    book_t = ours.codebooks[0].t().contiguous()
    flat = x.reshape(n, sz["dim"])

    def mm():  # the same products as the search, n_q times
        for _ in range(sz["n_q"]):
            torch.mm(flat, book_t)

    fns = {"ours": lambda: ours.encode(x), "torch_mm": mm}
    vqp = optional_import("vector_quantize_pytorch")
    lib = _library(vqp, ours, sz).eval() if vqp is not None else None
    if lib is not None:
        fns["library"] = lambda: lib(x)
    with torch.inference_mode():
        t = compare(fns, s.repeats, s.warmup)
        codes = ours.encode(x)
        lib_codes = lib(x)[1] if lib is not None else None
        one = single_thread_cpu(fns, s.pick(2, 1))
    b3 = Result("B3", "RVQ nearest-code search efficiency", t["torch_mm"]["median_s"] / t["ours"]["median_s"] * 100,
                "%", 70.0,
                measured=f"{flops / t['ours']['median_s'] / 1e9:.1f} GFLOP/s (2NKD per level, {sz['n_q']} levels); "
                         f"one thread, CPU time: {one['torch_mm'] / one['ours'] * 100:.0f}%",
                baseline=f"torch.mm same shapes {flops / t['torch_mm']['median_s'] / 1e9:.1f} GFLOP/s",
                details={"sizes": sz, "timings": t, "single_thread_cpu_s": one, "flops": flops})
    if lib is None:
        return [Result("B1", "RVQ encode (eval)", None, "x", 3.5, error="vector-quantize-pytorch not installed"), b3]
    agree = (codes == lib_codes).float().mean().item() * 100
    per_level = [(codes[..., q] == lib_codes[..., q]).float().mean().item() * 100 for q in range(sz["n_q"])]
    ratio = t["library"]["median_s"] / t["ours"]["median_s"]
    b1 = Result("B1", "RVQ encode (eval)", ratio, "x", 3.5,
                measured=f"{n / t['ours']['median_s']:,.0f} tokens/s; one thread, CPU time: "
                         f"{one['library'] / one['ours']:.1f}x",
                baseline=f"vector-quantize-pytorch ResidualVQ {n / t['library']['median_s']:,.0f} tokens/s",
                details={"sizes": sz, "timings": t, "single_thread_cpu_s": one, "index_agreement_pct": agree,
                         "per_level_agreement_pct": per_level},
                extra=[{"label": "index agreement %", "figure": agree, "target": 100.0, "comparison": ">="}])
    return [b1, b3]


def bench_b2(s: Settings) -> list[Result]:
    vqp = optional_import("vector_quantize_pytorch")
    if vqp is None:
        return [Result("B2", "RVQ training step", None, "x", 5.0, error="vector-quantize-pytorch not installed")]
    sz = _sizes(s)
    ours = _ours(sz).train()
    lib = _library(vqp, ours, sz).train()
    x0 = _input(sz)

    def step_ours():
        x = x0.clone().requires_grad_(True)
        out = ours(x)
        (out.quantized.pow(2).mean() + out.commit_loss).backward()

    def step_lib():
        x = x0.clone().requires_grad_(True)
        quantized, _, commit = lib(x)
        (quantized.pow(2).mean() + commit.sum()).backward()

    t = compare({"ours": step_ours, "library": step_lib}, s.repeats, s.warmup)
    one = single_thread_cpu({"ours": step_ours, "library": step_lib}, s.pick(2, 1))
    n = sz["batch"] * sz["tokens"]
    ratio = t["library"]["median_s"] / t["ours"]["median_s"]
    return [Result("B2", "RVQ training step (fwd + commit loss + bwd + EMA update)", ratio, "x", 5.0,
                   measured=f"{t['ours']['median_s'] * 1e3:.0f} ms/step ({n} tokens); one thread, CPU time: "
                            f"{one['library'] / one['ours']:.1f}x",
                   baseline=f"vector-quantize-pytorch {t['library']['median_s'] * 1e3:.0f} ms/step",
                   details={"sizes": sz, "timings": t, "single_thread_cpu_s": one, "note": "EMA decay 0.99, commitment "
                                                                                           "0.25, no dead-code "
                            "restarts in either (ours checks usage every step, none falls below threshold here)"})]
