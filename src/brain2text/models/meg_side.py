"""The MEG side of the model: its modules around a decoder (:func:`meg_modules`, also built on the meta device
to check a saved model's tensors) and what encoding a batch gives (:class:`EncodedMEG`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import Config
from ..data.pronunciation import PHONEMES
from .encoder import MEGEncoder
from .projector import build_projector
from .rvq import ResidualVQ


@dataclass
class EncodedMEG:
    """What :meth:`Brain2Text.encode` returns: the encoder's tokens, their quantization and CTC log-probs."""

    tokens: torch.Tensor  # (B, T', d_model), zeros where padded
    mask: torch.Tensor  # (B, T') bool
    quantized: torch.Tensor | None  # (B, T', rvq.dim); the continuous latent when rvq.enabled is false
    codes: torch.Tensor | None  # (B, T', n_q) long
    ctc_log_probs: torch.Tensor | None  # (B, T', n CTC units + 1) float32, blank last
    commit_loss: torch.Tensor | None = None  # scalar
    entropy_loss: torch.Tensor | None = None  # scalar
    perplexity: torch.Tensor | None = None  # (n_q,) per RVQ level, this batch
    usage: torch.Tensor | None = None  # (n_q,) share of codes used, this batch
    phoneme_log_probs: torch.Tensor | None = None  # (B, T1, 40) float32 at the first stage's rate, blank last
    phoneme_mask: torch.Tensor | None = None  # (B, T1) bool

    def example(self, b: int) -> "EncodedMEG":
        """Example ``b`` alone (tokens, mask and quantized; what the LM side needs)."""
        return EncodedMEG(self.tokens[b:b + 1], self.mask[b:b + 1], self.quantized[b:b + 1], None, None)

    def example_ctc(self, b: int) -> "EncodedMEG":
        """Example ``b`` alone with its mask and CTC log-probs (what a CTC score needs)."""
        return EncodedMEG(self.tokens[b:b + 1], self.mask[b:b + 1], None, None, self.ctc_log_probs[b:b + 1])

    def phoneme_lengths(self) -> list[int]:
        """Each example's number of phoneme frames."""
        return self.phoneme_mask.sum(1).tolist()

    def ctc_frames(self) -> list[torch.Tensor]:
        """Each example's word CTC log-probs ``(T_i, classes)``, cut to its valid frames."""
        return [lp[:n] for lp, n in zip(self.ctc_log_probs, self.mask.sum(1).tolist())]

    def phoneme_frames(self) -> list[torch.Tensor] | None:
        """Each example's phoneme log-probs ``(T1_i, 40)``, cut to its valid frames (None without the head)."""
        if self.phoneme_log_probs is None:
            return None
        return [lp[:n] for lp, n in zip(self.phoneme_log_probs, self.phoneme_lengths())]


def meg_modules(cfg: Config, n_classes: int, hidden: int) -> dict[str, nn.Module]:
    """The MEG side of the model around a decoder of width ``hidden`` with ``n_classes`` CTC classes (the units
    + blank), by attribute name; also built on the meta device to check a saved model's tensors before loading
    (``models/validation``)."""
    modules = {"encoder": MEGEncoder(cfg.encoder), "rvq": ResidualVQ(cfg.rvq, input_dim=cfg.encoder.d_model),
               "projector": build_projector(cfg.projector, cfg.rvq.dim, hidden),
               "ctc_head": nn.Linear(cfg.encoder.d_model, n_classes),  # CTC units + blank (last)
               "word_head": nn.Linear(cfg.encoder.d_model, hidden)}
    if cfg.encoder.phoneme_head:  # phonemes + blank (last)
        modules["phoneme_head"] = nn.Sequential(nn.LayerNorm(cfg.encoder.d_model),
                                                nn.Linear(cfg.encoder.d_model, len(PHONEMES) + 1))
    return modules
