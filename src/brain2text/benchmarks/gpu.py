"""Full-size throughput on one GPU: a phase-3 (end-to-end) training step of brain2text with a
LLaMA-2-7B-shaped decoder (random weights from ``LlamaConfig``, bf16, frozen, LoRA r=8 on q_proj/v_proj),
the full-size MEG encoder (12 x 768) and RVQ (8 x 8192 x 256) training; then the encoder + RVQ alone.

Reports tokens/s (decoder positions and MEG encoder tokens) and model FLOP utilisation: FLOPs of one
step counted by ``torch.utils.flop_counter.FlopCounterMode`` (forward + backward, as executed: the
frozen base computes input gradients but no weight gradients) divided by the step time and by the
peak (H200 SXM bf16 dense: 989 TFLOP/s, ``--peak-tflops``). ``--tiny`` runs the same code with toy
sizes on the CPU (a smoke test). Run: ``python benchmarks/gpu.py [--tiny] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from ..config import load_config
from ..data.batch import MEGBatch, tokenize_batch
from ..data.tokenizer import train_bpe_tokenizer
from ..models.brain2text import Brain2Text
from ..models.decoder import DTYPES, LLAMA2_7B, apply_lora
from ..training.objective import TrainingObjective
from ..utils.atomic import atomic_write_json

H200_BF16_DENSE_TFLOPS = 989.0
WORDS = ("the cable spool fort was built by bill and roy who climbed to the top and waved at the river "
         "where the black willow stood alone while she listened to the story and smiled").split()
TINY_LM = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, intermediate_size=128,
               vocab_size=400, max_position_embeddings=512)
TINY = ["encoder.d_model=32", "encoder.n_heads=2", "encoder.stage_layers=[1,1]", "encoder.stage_downsample=[2]",
        "encoder.stem_channels=32", "encoder.n_spatial=32", "encoder.spatial_fourier=4", "rvq.n_codebooks=2",
        "rvq.codebook_size=64", "rvq.dim=16", "decoder.dtype=float32"]


def _sentences(n: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(n)]


def build(tiny: bool, device):
    """(Brain2Text on ``device`` with random weights, config); LoRA on a frozen LLaMA-shaped base."""
    cfg = load_config(None, TINY if tiny else [])  # the full-size defaults (phase 3: end_to_end)
    tok = train_bpe_tokenizer(_sentences(200, 20, 0) + [" ".join(WORDS)], vocab_size=300)
    shape = dict(TINY_LM if tiny else LLAMA2_7B)
    hf_cfg = LlamaConfig(**shape, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        base = LlamaForCausalLM(hf_cfg).to(DTYPES[cfg.decoder.dtype])
        for p in base.parameters():
            p.requires_grad_(False)
        decoder = apply_lora(base, cfg.decoder)
        model = Brain2Text(cfg, decoder, tok)
    model.to(device)
    return model, cfg


def make_batch(batch: int, seconds: float, n_chans: int, words: int, device, tokenizer):
    g = torch.Generator().manual_seed(0)
    t = int(seconds * 100)
    texts = _sentences(batch, words, 1)
    batch = MEGBatch(meg=torch.randn(batch, n_chans, t, generator=g), meg_mask=torch.ones(batch, t, dtype=torch.bool),
                    subject_index=torch.arange(batch) % 27, channel_mask=torch.ones(batch, n_chans, dtype=torch.bool),
                    sensor_positions=torch.rand(batch, n_chans, 2, generator=g), texts=texts,
                    words=[s.split() for s in texts], word_onsets=[[0.3 * i for i in range(words)] for _ in texts],
                    example_ids=[str(i) for i in range(batch)], sfreq=100.0)
    return tokenize_batch(batch, tokenizer).to(device)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, device, warmup: int, steps: int) -> float:
    """Median seconds of ``step()`` over ``steps`` runs after ``warmup``."""
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, model, step, device, args, tokens: dict) -> dict:
    step()  # first step: k-means codebook init, allocator warm-up
    with FlopCounterMode(display=False) as counter:
        step()
    flops = float(counter.get_total_flops())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = time_steps(step, device, args.warmup, args.steps)
    peak = args.peak_tflops * 1e12
    out = {"name": name, "step_s": seconds, "flops_per_step": flops, "achieved_tflops": flops / seconds / 1e12,
           "mfu_pct": 100 * flops / seconds / peak, "peak_tflops_used": args.peak_tflops,
           **{f"{k}_per_s": v / seconds for k, v in tokens.items()}, **{f"{k}_per_step": v for k, v in tokens.items()}}
    if device.type == "cuda":
        out["max_memory_allocated_gb"] = torch.cuda.max_memory_allocated() / 1e9
    print(json.dumps(out), flush=True)
    return out


def phase3(model, cfg, args, device) -> dict:
    phase = cfg.train.multi_phase[-1]
    model.train()
    model.set_trainable(phase.trainable)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    objective = TrainingObjective(model)
    batch = make_batch(args.batch, args.seconds, 208, args.words, device, model.tokenizer)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with amp:
            loss = objective(batch, phase.losses)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with torch.no_grad(), amp:
        enc = model.encode(batch)
        n_dec = int(model.lm_inputs(batch, enc,
                                    targets=[ids + [model.eos_id] for ids in batch.target_ids]).attention_mask.sum())
        n_meg = int(enc.mask.sum())
    return measure(f"phase 3 ({phase.name}: {', '.join(phase.trainable)}; losses {phase.losses})", model, step, device,
                   args, {"decoder_tokens": n_dec, "meg_tokens": n_meg})


def encoder_rvq(model, cfg, args, device) -> dict:
    model.train()
    model.set_trainable(["subject", "encoder", "rvq"])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    objective = TrainingObjective(model)
    batch = make_batch(args.batch, args.seconds, 208, args.words, device, model.tokenizer)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    losses = {"mae": 1.0, "commit": 1.0}

    def step():
        with amp:
            loss = objective(batch, losses)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with torch.no_grad(), amp:
        n_meg = int(model.encode(batch).mask.sum())
    return measure("encoder + RVQ (mae + commit, full size)", model, step, device, args,
                   {"meg_tokens": n_meg, "meg_samples": int(batch.meg_mask.sum())})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="toy sizes on the CPU: a smoke test of this script")
    p.add_argument("--batch", type=int, default=8, help="examples per step (default 8, the full config's)")
    p.add_argument("--seconds", type=float, default=8.0, help="MEG window length in s at 100 Hz (default 8)")
    p.add_argument("--words", type=int, default=20, help="words per target sentence (default 20)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before timing (default 2)")
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS,
                   help="peak bf16 dense TFLOP/s for MFU (default 989: H200 SXM)")
    p.add_argument("--out", default=None, help="write the results JSON here")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.tiny:
        args.batch, args.seconds, args.words, args.steps, args.warmup = 2, 2.0, 5, min(args.steps, 1), 0
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type == "cpu" and not args.tiny:
        print("no GPU: run with --tiny for a CPU smoke test", flush=True)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    start = time.perf_counter()
    model, cfg = build(args.tiny, device)
    record = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "tiny": args.tiny,
              "torch": torch.__version__, "settings": vars(args), "build_s": time.perf_counter() - start,
              "params": {"total": sum(p.numel() for p in model.parameters()),
                         "decoder": sum(p.numel() for p in model.decoder.parameters())}}
    record["results"] = [phase3(model, cfg, args, device), encoder_rvq(model, cfg, args, device)]
    record["total_s"] = time.perf_counter() - start
    if args.out:
        atomic_write_json(args.out, record)
    print(json.dumps({k: v for k, v in record.items() if k != "results"}), flush=True)
    return 0
