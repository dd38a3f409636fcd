"""LLaVA-style projector from quantized MEG vectors to the decoder's embedding space (Liu et al. 2023).

``mlp2x_gelu`` is LLaVA-1.5's two-layer MLP; ``linear`` is LLaVA-1's single matrix. Dropout on the
projected tokens regularises how much the decoder can lean on any single MEG token.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError


class Projector(nn.Module):
    """(B, T', in_dim) -> (B, T', out_dim)."""

    def __init__(self, kind: str, in_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        if kind == "mlp2x_gelu":
            self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        elif kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        else:
            raise ConfigError(f"projector.type must be 'mlp2x_gelu' or 'linear', got {kind!r}")
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.net(x))


def build_projector(cfg, in_dim: int, out_dim: int) -> Projector:
    """The projector named by ``cfg.type`` (a :class:`~brain2text.config.ProjectorConfig`)."""
    return Projector(cfg.type, in_dim, out_dim, cfg.dropout)
