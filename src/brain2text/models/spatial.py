"""Input layers that make one encoder fit many subjects and montages (Défossez et al. 2023).

* :class:`SpatialAttention` maps any number of sensors to ``n_spatial`` virtual channels. Each virtual
  channel is a softmax-weighted sum of the real sensors, the weights a learned function of each
  sensor's 2-D position (Fourier features). Channels outside ``channel_mask`` get no weight, so the
  same model takes 157-, 192- or 208-channel recordings.
* :class:`SpatialDecoder` is its transpose for the masked-autoencoding head: from virtual channels back
  to every real sensor, again as a function of sensor position.
* :class:`SubjectLayer` is a per-subject linear map over channels (initialised to the identity).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ModelError


class FourierPositions(nn.Module):
    """Fourier features of 2-D sensor positions in [0, 1]: (B, C, 2) -> (B, C, 2 * n_freqs**2)."""

    def __init__(self, n_freqs: int, margin: float = 0.2):
        super().__init__()
        self.n_freqs = n_freqs
        self.margin = margin
        freqs = torch.arange(n_freqs, dtype=torch.float32)
        fx, fy = torch.meshgrid(freqs, freqs, indexing="ij")
        self.register_buffer("fx", fx.reshape(-1), persistent=False)
        self.register_buffer("fy", fy.reshape(-1), persistent=False)

    @property
    def dim(self) -> int:
        return 2 * self.n_freqs**2

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        width = 1.0 + 2 * self.margin
        pos = (positions.float() + self.margin) * (2 * math.pi / width)
        phase = pos[..., :1] * self.fx + pos[..., 1:] * self.fy  # (B, C, F*F)
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)  # (B, C, 2*F*F)


def _check_positions(meg: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    if positions is None:
        raise ModelError("spatial attention needs sensor_positions (B, C, 2); none were given")
    expected = (meg.shape[0], meg.shape[1], 2)
    if tuple(positions.shape) != expected:
        raise ModelError(f"sensor_positions: expected shape {expected}, got {tuple(positions.shape)}")
    return positions


class SpatialAttention(nn.Module):
    """Sensors -> ``n_spatial`` virtual channels by position-dependent attention (Défossez et al. 2023)."""

    def __init__(self, n_spatial: int, n_freqs: int):
        super().__init__()
        self.embed = FourierPositions(n_freqs)
        self.heads = nn.Parameter(torch.randn(n_spatial, self.embed.dim) / math.sqrt(self.embed.dim))
        self.n_spatial = n_spatial

    def weights(self, positions: torch.Tensor, channel_mask: torch.Tensor | None) -> torch.Tensor:
        """Attention of each virtual channel over the real ones: (B, C, n_spatial), summing to 1 over C."""
        scores = self.embed(positions) @ self.heads.t()  # (B, C, S)
        if channel_mask is not None:
            scores = scores.masked_fill(~channel_mask.bool()[..., None], float("-inf"))
        return torch.softmax(scores, dim=1)

    def forward(self, meg, positions, channel_mask=None):
        """meg (B, C, T), positions (B, C, 2), channel_mask (B, C) bool -> (B, n_spatial, T)."""
        positions = _check_positions(meg, positions)
        if channel_mask is not None and not bool(channel_mask.any(1).all()):
            raise ModelError("channel_mask: expected at least 1 real channel in every example, got none")
        w = self.weights(positions, channel_mask).to(meg.dtype)  # (B, C, S)
        meg = meg if channel_mask is None else meg * channel_mask[..., None].to(meg.dtype)
        return torch.einsum("bct,bcs->bst", meg, w)


class SpatialDecoder(nn.Module):
    """Virtual channels -> every real sensor, as a function of sensor position (MAE head)."""

    def __init__(self, n_spatial: int, n_freqs: int):
        super().__init__()
        self.embed = FourierPositions(n_freqs)
        self.proj = nn.Linear(self.embed.dim, n_spatial, bias=False)

    def forward(self, virtual: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """virtual (B, n_spatial, T), positions (B, C, 2) -> (B, C, T)."""
        w = self.proj(self.embed(positions)).to(virtual.dtype) / math.sqrt(virtual.shape[1])  # (B, C, S)
        return torch.einsum("bst,bcs->bct", virtual, w)


class SubjectLayer(nn.Module):
    """One (n_chans x n_chans) linear map per subject, initialised to the identity."""

    def __init__(self, n_subjects: int, n_chans: int):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(n_chans).repeat(n_subjects, 1, 1))  # (S, C, C)

    def forward(self, x: torch.Tensor, subject_index: torch.Tensor) -> torch.Tensor:
        """x (B, C, T), subject_index (B,) long -> (B, C, T)."""
        n_subjects = self.weight.shape[0]
        if subject_index.shape != (x.shape[0],):
            raise ModelError(f"subject_index: expected shape ({x.shape[0]},), got {tuple(subject_index.shape)}")
        if len(subject_index) and (subject_index.min() < 0 or subject_index.max() >= n_subjects):
            raise ModelError(f"subject_index must be in [0, {n_subjects}), got max {int(subject_index.max())}")
        w = self.weight[subject_index.long()].to(x.dtype)  # (B, C_in, C_out)
        return torch.einsum("bct,bcd->bdt", x, w)
