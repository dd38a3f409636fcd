"""B4: MEG encoder forward + backward (phase-1 masked-autoencoding loss) as a fraction of ``torch.mm``.

FLOPs are counted once with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions,
attention; forward and backward), then the step is timed; the roofline is the FLOP/s of a square
fp32 ``torch.mm`` measured in the same run.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import EncoderConfig
from ..models.encoder import MEGEncoder
from .common import Result, Settings, compare, single_thread_cpu
from .fixtures import DEMO_MODEL

DEMO = {k: v for k, v in DEMO_MODEL["encoder"].items() if k != "dropout"}  # configs/demo.yaml
MID = dict(d_model=384, n_heads=6, stage_layers=[2, 2, 2], stage_downsample=[2, 2], stem_channels=256, stem_stride=2,
           n_subjects=27, n_spatial=270, spatial_fourier=16)


def _batch(b: int, c: int, t: int):
    g = torch.Generator().manual_seed(0)
    meg = torch.randn(b, c, t, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[b // 2:, int(t * 0.8):] = False  # some padding, as in real batches
    positions = torch.rand(b, c, 2, generator=g)
    return meg * mask[:, None], mask, torch.arange(b) % 4, positions


def _step(enc: MEGEncoder, batch, seed: int = 0):
    meg, mask, subj, pos = batch
    enc.zero_grad(set_to_none=True)
    loss = enc.mae_loss(meg, mask, subj, pos, None, generator=torch.Generator().manual_seed(seed))
    loss.backward()


def _one(name: str, sizes: dict, batch_shape: tuple, s: Settings) -> Result:
    torch.manual_seed(0)
    enc = MEGEncoder(EncoderConfig(**sizes, dropout=0.1)).train()
    batch = _batch(*batch_shape)
    with FlopCounterMode(display=False) as counter:
        _step(enc, batch)
    flops = float(counter.get_total_flops())
    # timed interleaved with a square mm so that both see the same machine load
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = compare({"encoder": lambda: _step(enc, batch), "mm": lambda: torch.mm(a, b)}, s.repeats, s.warmup)
    # the same ratio on one thread in process CPU time: a diagnostic that other processes' load barely moves
    single = single_thread_cpu({"encoder_cpu_s": lambda: _step(enc, batch), "mm_cpu_s": lambda: torch.mm(a, b)},
                               max(2, s.repeats // 2))
    single["fraction_pct"] = 100 * (flops / single["encoder_cpu_s"]) / (2.0 * n**3 / single["mm_cpu_s"])
    rate = flops / t["encoder"]["median_s"]
    mm_rate = 2.0 * n**3 / t["mm"]["median_s"]
    frac = rate / mm_rate * 100
    params = sum(p.numel() for p in enc.parameters())
    return Result("B4", f"encoder fwd+bwd, {name} size", frac, "%", 50.0,
                  measured=f"{rate / 1e9:.1f} GFLOP/s ({flops / 1e9:.2f} GFLOP/step, "
                           f"{t['encoder']['median_s'] * 1e3:.0f} ms); "
                           f"one thread, CPU time: {single['fraction_pct']:.0f}% of mm",
                  baseline=f"torch.mm {n}^3 fp32 {mm_rate / 1e9:.1f} GFLOP/s",
                  details={"single_thread_cpu_time": single, "sizes": sizes, "params": params,
                           "batch (B, C, T)": list(batch_shape), "flops_per_step": flops, "timings": t,
                           "flops_by_op": {str(k): int(v)
                                           for k, v in counter.get_flop_counts().get("Global", {}).items()}})


def bench_b4(s: Settings) -> list[Result]:
    demo_batch = s.pick((16, 208, 600), (2, 208, 200))  # 6 s windows at 100 Hz
    mid_batch = s.pick((8, 208, 1200), (2, 208, 200))
    mid = MID if not s.quick else dict(MID, stage_layers=[1, 1, 1])
    return [_one("demo", DEMO, demo_batch, s), _one("mid", mid, mid_batch, s)]
