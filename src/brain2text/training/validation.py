"""Validation during training: losses on the validation split, codebook use per RVQ level, and a
few free-running generations printed beside their references (never teacher-forced)."""

from __future__ import annotations

import math
from typing import Iterable

import jiwer
import torch
from torch import nn

from ..config import DecodingConfig, PhaseConfig
from ..data.batch import MEGBatch


def codebook_stats(codes: torch.Tensor, mask: torch.Tensor | None, codebook_size: int) -> dict[str, float]:
    """Per-level share of codes used and perplexity: codes (B, T, n_q) long, mask (B, T) bool."""
    if codes.ndim != 3:
        raise ValueError(f"expected codes (B, T, n_q), got {tuple(codes.shape)}")
    flat = codes.reshape(-1, codes.shape[-1])  # (B*T, n_q)
    if mask is not None:
        flat = flat[mask.reshape(-1).bool()]
    stats = {}
    for level in range(flat.shape[1]):
        counts = torch.bincount(flat[:, level].long().cpu(), minlength=codebook_size).double()
        total = counts.sum().item()
        p = counts / max(total, 1.0)
        entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
        stats[f"rvq/level{level}_usage"] = float((counts > 0).sum().item() / codebook_size)
        stats[f"rvq/level{level}_perplexity"] = float(math.exp(entropy)) if total else 0.0
    return stats


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
    if not pairs:
        return float("nan")
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


@torch.no_grad()
def validate(objective: nn.Module, batches: Iterable[MEGBatch], phase: PhaseConfig, device: torch.device,
             codebook_size: int, n_generations: int,
             decoding: DecodingConfig | None) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Mean losses (``val_<name>``, ``val_loss``), RVQ stats and ``n_generations`` (prediction, reference)."""
    model = objective.model
    was_training = objective.training
    objective.eval()
    sums: dict[str, float] = {}
    n_batches = 0
    codes, masks, generations = [], [], []
    try:
        for batch in batches:
            batch = batch.to(device)
            out = objective(batch, phase.losses)
            for name, value in out.items():
                if value is not None:
                    sums[name] = sums.get(name, 0.0) + float(value.detach().float().item())
            n_batches += 1
            enc = model.encode(batch)
            if getattr(enc, "codes", None) is not None:
                codes.append(enc.codes.cpu())
                masks.append(enc.mask.cpu() if enc.mask is not None
                             else torch.ones(enc.codes.shape[:2], dtype=torch.bool))
            if len(generations) < n_generations:
                take = list(range(min(len(batch), n_generations - len(generations))))
                sub = batch.select(take)
                preds = model.generate(sub, decoding=decoding)
                generations.extend(zip(preds, sub.texts))
    finally:
        objective.train(was_training)
    metrics = {f"val_{k}" if k != "loss" else "val_loss": v / max(n_batches, 1) for k, v in sums.items()}
    if codes:
        width = max(c.shape[1] for c in codes)
        pad = [torch.nn.functional.pad(c, (0, 0, 0, width - c.shape[1])) for c in codes]
        padm = [torch.nn.functional.pad(m, (0, width - m.shape[1])) for m in masks]
        metrics.update(codebook_stats(torch.cat(pad), torch.cat(padm), codebook_size))
    if generations:
        metrics["val_wer"] = word_error_rate([r for _, r in generations], [p for p, _ in generations])
    return metrics, generations


def is_better(metric: str, value: float, best: float | None) -> bool:
    """Lower is better for losses and error rates, higher for everything else (BLEU, ROUGE...)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    lower = metric.endswith("loss") or "wer" in metric or "cer" in metric
    return value < best if lower else value > best
