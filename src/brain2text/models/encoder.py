"""MEG encoder: spatial attention / subject layer -> conv stem -> positional encoding -> hierarchical
transformer whose stages shorten the sequence, plus the masked-autoencoding head of phase 1.

At full size (12 x 768, 12 heads, stem stride 2, stage downsampling [2, 2]) 100 Hz MEG becomes
12.5 tokens per second, within the 5-15 tokens/s DESIGN.md asks for in front of the LLM.

Padding: ``meg_mask`` must be True on a prefix of each row (the data layer right-pads). Lengths are
carried through every stride by the convolution formula and padded positions are zeroed after each
layer that could smear them, so an example alone and the same example inside a padded batch give
the same tokens. The MAE head reconstructs the *raw* (preprocessed) MEG channels, through the
transpose of the spatial attention when it is on: a target the encoder cannot shrink away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig
from ..errors import ModelError
from .spatial import SpatialAttention, SpatialDecoder, SubjectLayer


@dataclass
class EncoderTokens:
    tokens: torch.Tensor  # (B, T', d_model), zeros where padded
    mask: torch.Tensor  # (B, T') bool, True on real tokens
    fine: torch.Tensor | None = None  # (B, T1, d_model): the first stage's output, before any token merge
    fine_mask: torch.Tensor | None = None  # (B, T1) bool


def conv_lengths(lengths: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1


def lengths_to_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    return torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]


def sinusoidal_positions(n: int, dim: int, device=None) -> torch.Tensor:
    """(n, dim) fixed sinusoidal encoding (Vaswani et al. 2017)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe


class TokenMerge(nn.Module):
    """Merge ``factor`` neighbouring tokens into one (Swin-style patch merging): T -> ceil(T / factor)."""

    def __init__(self, d_model: int, factor: int):
        super().__init__()
        self.factor = factor
        self.norm = nn.LayerNorm(d_model)
        self.proj = nn.Linear(factor * d_model, d_model)

    def forward(self, x, lengths):
        b, t, d = x.shape
        x = self.norm(x) * lengths_to_mask(lengths, t)[..., None].to(x.dtype)
        pad = (-t) % self.factor
        x = F.pad(x, (0, 0, 0, pad)).reshape(b, (t + pad) // self.factor, self.factor * d)  # (B, T/f, f*D)
        return self.proj(x), torch.div(lengths + self.factor - 1, self.factor, rounding_mode="floor")


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer on ``F.scaled_dot_product_attention`` (fused kernels, boolean key mask)."""

    def __init__(self, d_model: int, n_heads: int, d_ffn: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        # Dropout on the residual branches only, none on the 4x-wide FFN activation (fairseq's default
        # activation_dropout=0): that mask's random draws were ~7% of a demo-size training step on CPU
        # (benchmarks/README.md, B4). The Identity keeps the parameter names of the FFN's second Linear.
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ffn), nn.GELU(), nn.Identity(), nn.Linear(d_ffn, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), mask (B, T) bool (True = real) -> (B, T, D). ``attn_mask`` (B, 1, T, T) bool, if
        given, says which keys each query sees (it must already exclude padded keys)."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        # No dropout on attention weights: it would force the unfused (T x T materialising) path.
        attn_mask = mask[:, None, None, :] if attn_mask is None else attn_mask
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, T, D/H)
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ffn(self.norm2(x)))


class MEGEncoder(nn.Module):
    """Hierarchical transformer MEG encoder (conv stem as in Défossez et al. 2023, stages as in Swin)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        n_in = cfg.n_spatial if cfg.spatial_attention else cfg.n_chans
        self.spatial = SpatialAttention(cfg.n_spatial, cfg.spatial_fourier) if cfg.spatial_attention else None
        self.subject = SubjectLayer(cfg.n_subjects, n_in) if cfg.subject_layer else None
        k = cfg.stem_kernel
        self.stem1 = nn.Conv1d(n_in, cfg.stem_channels, k, padding=k // 2)
        self.stem2 = nn.Conv1d(cfg.stem_channels, cfg.d_model, k, stride=cfg.stem_stride, padding=k // 2)
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleList()
        for i, n_layers in enumerate(cfg.stage_layers):
            if i > 0:
                self.merges.append(TokenMerge(cfg.d_model, cfg.stage_downsample[i - 1]))
            self.stages.append(nn.ModuleList([self._layer(cfg) for _ in range(n_layers)]))
        self.norm = nn.LayerNorm(cfg.d_model)
        # Phase 1: learned value of masked input samples, and the head predicting them.
        self.mask_value = nn.Parameter(torch.zeros(n_in))
        # An MLP, not a single matrix: a linear map of d_model features is rank-limited at small widths
        # and learned the masked spans markedly slower (measured on the tiny config).
        d_hidden = cfg.ffn_mult * cfg.d_model
        self.mae_head = nn.Sequential(nn.Linear(cfg.d_model, d_hidden), nn.GELU(),
                                      nn.Linear(d_hidden, cfg.total_stride * n_in))
        self.mae_spatial = SpatialDecoder(cfg.n_spatial, cfg.spatial_fourier) if cfg.spatial_attention else None

    @staticmethod
    def _layer(cfg: EncoderConfig) -> TransformerBlock:
        return TransformerBlock(cfg.d_model, cfg.n_heads, cfg.ffn_mult * cfg.d_model, cfg.dropout)

    # ------------------------------------------------------------------------------ helpers
    def output_rate(self, sfreq: float) -> float:
        """Tokens per second of signal for input sampled at ``sfreq`` Hz."""
        return sfreq / self.cfg.total_stride

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Number of tokens for inputs of ``lengths`` samples."""
        k = self.cfg.stem_kernel
        lengths = conv_lengths(lengths, k, self.cfg.stem_stride, k // 2)
        for f in self.cfg.stage_downsample:
            lengths = torch.div(lengths + f - 1, f, rounding_mode="floor")
        return lengths

    def check_input(self, meg: torch.Tensor, meg_mask: torch.Tensor) -> None:
        if meg.ndim != 3:
            raise ModelError(f"meg: expected 3 dims (batch, channels, times), got {meg.ndim} dims {tuple(meg.shape)}")
        if self.spatial is None and meg.shape[1] != self.cfg.n_chans:
            raise ModelError(f"Expected {self.cfg.n_chans} channels, got {meg.shape[1]}")
        if tuple(meg_mask.shape) != (meg.shape[0], meg.shape[2]):
            raise ModelError(f"meg_mask: expected shape {(meg.shape[0], meg.shape[2])}, got {tuple(meg_mask.shape)}")
        if meg.shape[0] and not bool(meg_mask.any(1).all()):
            raise ModelError("meg_mask: expected at least 1 real sample in every example, got an empty one")

    def project_input(self, meg, subject_index, positions=None, channel_mask=None):
        """Spatial attention and subject layer: (B, C, T) -> (B, n_in, T)."""
        x = self.spatial(meg, positions, channel_mask) if self.spatial is not None else meg
        if self.spatial is None and channel_mask is not None:
            x = x * channel_mask[..., None].to(x.dtype)
        return self.subject(x, subject_index) if self.subject is not None else x

    # ------------------------------------------------------------------------------ forward
    def encode_projected(self, x: torch.Tensor, meg_mask: torch.Tensor) -> EncoderTokens:
        """x (B, n_in, T) after :meth:`project_input` -> tokens (B, T', d_model), mask (B, T')."""
        lengths = meg_mask.long().sum(1)
        x = x * meg_mask[:, None].to(x.dtype)
        x = F.gelu(self.stem1(x)) * meg_mask[:, None].to(x.dtype)
        k = self.cfg.stem_kernel
        lengths = conv_lengths(lengths, k, self.cfg.stem_stride, k // 2)
        x = F.gelu(self.stem2(x)).transpose(1, 2)  # (B, T', D)
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        fine = fine_mask = None
        for i, stage in enumerate(self.stages):
            if i > 0:
                x, lengths = self.merges[i - 1](x, lengths)
            mask = lengths_to_mask(lengths, x.shape[1])
            local = self._local_mask(mask, i)
            for layer in stage:
                x = layer(x, mask, local)
            x = x * mask[..., None].to(x.dtype)
            if i == 0:
                fine, fine_mask = x, mask
        return EncoderTokens(self.norm(x) * mask[..., None].to(x.dtype), mask, fine, fine_mask)

    def _local_mask(self, mask: torch.Tensor, stage: int) -> torch.Tensor | None:
        """(B, 1, T, T) keys within ``attention_window`` (scaled to ``stage``) and not padded; None = global."""
        if self.cfg.attention_window <= 0:
            return None
        window = max(1, math.ceil(self.cfg.attention_window / math.prod(self.cfg.stage_downsample[:stage])))
        pos = torch.arange(mask.shape[1], device=mask.device)
        band = (pos[:, None] - pos[None, :]).abs() <= window  # (T, T)
        return band[None, None] & mask[:, None, None, :]

    def forward(self, meg, meg_mask, subject_index, positions=None, channel_mask=None) -> EncoderTokens:
        """meg (B, C, T) float, meg_mask (B, T) bool, subject_index (B,) long,
        positions (B, C, 2) | None, channel_mask (B, C) bool | None -> :class:`EncoderTokens`."""
        self.check_input(meg, meg_mask)
        return self.encode_projected(self.project_input(meg, subject_index, positions, channel_mask), meg_mask)

    # ------------------------------------------------------------------------------ phase 1
    def span_mask(self, meg_mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, T) bool, True on masked samples: random spans of ``mae_span`` covering ~``mae_mask_ratio``."""
        b, t = meg_mask.shape
        span = max(1, min(self.cfg.mae_span, t))
        n_spans = max(1, math.ceil(self.cfg.mae_mask_ratio * t / span))
        lengths = meg_mask.long().sum(1, keepdim=True).clamp(min=span)
        u = torch.rand(b, n_spans, generator=generator, device="cpu").to(meg_mask.device)
        starts = (u * (lengths - span + 1)).long()  # (B, n_spans)
        pos = torch.arange(t, device=meg_mask.device)
        hit = (pos[None, None] >= starts[..., None]) & (pos[None, None] < starts[..., None] + span)  # (B, n, T)
        return hit.any(1) & meg_mask

    def mae_loss(self, meg, meg_mask, subject_index, positions=None, channel_mask=None, generator=None):
        """Masked autoencoding: mean squared error on masked, real samples of real channels (scalar)."""
        self.check_input(meg, meg_mask)
        masked = self.span_mask(meg_mask, generator)  # (B, T)
        x = self.project_input(meg, subject_index, positions, channel_mask)
        x = torch.where(masked[:, None], self.mask_value[None, :, None].to(x.dtype), x)
        enc = self.encode_projected(x, meg_mask)
        b, t_out, _ = enc.tokens.shape
        pred = self.mae_head(enc.tokens).reshape(b, t_out * self.cfg.total_stride, -1)  # (B, T'*stride, n_in)
        pred = F.pad(pred, (0, 0, 0, max(0, meg.shape[2] - pred.shape[1])))[:, : meg.shape[2]].transpose(1, 2)
        if self.mae_spatial is not None:
            pred = self.mae_spatial(pred, positions)  # (B, C, T)
        weight = masked[:, None].to(meg.dtype)
        if channel_mask is not None:
            weight = weight * channel_mask[..., None].to(meg.dtype)
        weight = weight.expand_as(meg)
        return ((pred - meg) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)
