"""B7: batched free-running generation (greedy, Hugging Face ``generate`` with its KV cache) at batch 16
against batch 1 on the same demo-shaped model and the same 16 windows.

Tokens the decoder actually processes are counted with a forward pre-hook on the base LLaMA (the
sequence length of every call times its batch), not trusted from flags: with a working KV cache
each sentence costs its prompt once plus one position per generated token.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import DecodingConfig
from ..data.batch import MEGBatch
from ..models.build import build_model
from .common import Result, Settings, compare
from .fixtures import bench_bids, demo_config, demo_lm_dir


def random_windows(n: int, n_chans: int = 208, n_times: int = 400, seed: int = 0) -> MEGBatch:
    g = torch.Generator().manual_seed(seed)
    return MEGBatch(meg=torch.randn(n, n_chans, n_times, generator=g),
                    meg_mask=torch.ones(n, n_times, dtype=torch.bool), subject_index=torch.zeros(n, dtype=torch.long),
                    channel_mask=torch.ones(n, n_chans, dtype=torch.bool),
                    sensor_positions=torch.rand(1, n_chans, 2, generator=g).expand(n, n_chans, 2).clone(), sfreq=100.0)


class TokenCounter:
    """Counts positions processed by a decoder (forward pre-hook on its base model)."""

    def __init__(self, module: torch.nn.Module):
        self.tokens = 0
        self.calls = 0
        self.handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids", args[0] if args else None)
        if x is not None:
            self.tokens += int(x.shape[0] * x.shape[1])
            self.calls += 1

    def reset(self) -> tuple[int, int]:
        out = (self.tokens, self.calls)
        self.tokens = self.calls = 0
        return out


def demo_model(s: Settings, max_new_tokens: int):
    work = Path(s.workdir)
    bids = bench_bids(s)
    cfg = demo_config(work, bids, demo_lm_dir(work, bids))
    cfg.decoder.max_new_tokens = max_new_tokens
    torch.manual_seed(0)
    return build_model(cfg).eval(), cfg


def bench_b7(s: Settings) -> list[Result]:
    """The figure is the decoder's generation (the KV-cache loop) with the MEG already encoded, at batch
    16 against 16 calls at batch 1; the whole ``generate`` (encoder included, which does the same work
    per window at any batch size) is reported beside it."""
    n = s.pick(16, 4)
    model, cfg = demo_model(s, s.pick(32, 8))
    batch = random_windows(n, n_times=s.pick(400, 100))
    greedy = DecodingConfig(strategy="greedy")
    counter = TokenCounter(model.decoder.get_base_model().model)
    singles = [batch.select([i]) for i in range(n)]
    outputs = {}
    with torch.inference_mode():
        enc16 = model.encode(batch)
        enc1 = [model.encode(b) for b in singles]

        def batched():
            outputs["b16"] = model.generate(batch, greedy, encoded=enc16)

        def single():
            outputs["b1"] = [model.generate(b, greedy, encoded=e)[0] for b, e in zip(singles, enc1)]

        def batched_with_encoder():
            model.generate(batch, greedy)

        def single_with_encoder():
            [model.generate(b, greedy)[0] for b in singles]

        batched()
        tokens16, calls16 = counter.reset()
        single()
        tokens1, calls1 = counter.reset()
        t = compare({"batch16": batched, "batch1": single, "batch16_with_encoder": batched_with_encoder,
                     "batch1_with_encoder": single_with_encoder}, s.pick(3, 1), 0)
    counter.handle.remove()
    agree = sum(a == b for a, b in zip(outputs["b16"], outputs["b1"])) / n * 100
    rate16, rate1 = n / t["batch16"]["median_s"], n / t["batch1"]["median_s"]
    whole = t["batch1_with_encoder"]["median_s"] / t["batch16_with_encoder"]["median_s"]
    new_tokens = cfg.decoder.max_new_tokens
    return [Result("B7", f"batched generation (greedy, KV cache), batch {n} vs 1", rate16 / rate1, "x", 6.0,
                   measured=f"{rate16:.1f} sentences/s at batch {n}; with the encoder in the call {whole:.1f}x",
                   baseline=f"{rate1:.1f} sentences/s at batch 1",
                   details={"timings": t, "max_new_tokens": new_tokens, "same_text_pct": agree,
                            "whole_generate_ratio": whole,
                            "what": "decoder generation from encoded MEG (encoder outputs computed once, outside the "
                                    "timing); whole_generate_ratio includes the encoder",
                            "processed_tokens_per_sentence": {"batch16": tokens16 / n, "batch1": tokens1 / n},
                            "decoder_calls": {"batch16": calls16, "batch1": calls1},
                            "kv_cache_check": "a sentence costs about prompt + MEG tokens + one position per new token "
                                              "when the cache works (quadratic growth without it)"})]
