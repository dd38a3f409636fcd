"""Residual vector quantizer (SoundStream, Zeghidour et al. 2021; EnCodec, Défossez et al. 2022).

The heart is the plain residual loop: at each level pick the nearest code of the residual and
subtract it (``residual = residual - quantized``). Written for speed on CPUs:

* nearest code by one ``addmm`` per level: argmin ||x - c||^2 = argmin (||c||^2 - 2 x.c), the ||x||^2
  term dropped (it does not change the argmin); no pairwise differences, no one-hot matmuls;
* EMA codebook statistics with ``bincount`` / ``index_put_(accumulate=True)`` (O(N*D), not another
  N x K x D product; ``index_add_`` was ~5x slower on CPU);
* one straight-through estimator on the sum of all levels (gradient = identity to the input).

Losses: commitment ||x - sg(q)||^2 per level (times ``commitment_weight``), plus, for codebooks
learned by gradient, the codebook term ||sg(x) - q||^2; and an entropy (codebook usage) loss
mean_token H(p(code|x)) - H(mean_token p(code|x)) that is lowest for confident, uniform usage.

Dead codes: each code's usage is an EMA of its uses per step; a code below ``dead_code_threshold``
is restarted on a residual vector of the current batch. Under ``torch.distributed`` the counts, sums
and usage are all-reduced and restarts broadcast from rank 0, so every rank keeps the same codebooks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..config import RVQConfig
from ..errors import ModelError


@dataclass
class RVQOutput:
    quantized: torch.Tensor  # (B, T, dim), straight-through in training
    codes: torch.Tensor  # (B, T, n_q) long
    commit_loss: torch.Tensor  # scalar (commitment, plus codebook loss without EMA)
    entropy_loss: torch.Tensor  # scalar (0 unless asked for)
    perplexity: torch.Tensor  # (n_q,) exp(entropy of code usage) over real tokens of this batch
    usage: torch.Tensor  # (n_q,) share of codes used at least once in this batch
    latent: torch.Tensor  # (B, T, dim) the vectors that were quantized


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(t)
    return t


# Rows searched at once: their (rows, K) score block is at most this many bytes (512 rows for 8192
# codes). Besides bounding memory for long inputs, a block that stays in cache between the addmm and
# the argmin is faster: encode of 2,000 tokens x 8 x 8192 x 256 on 2 cores (load ~2) took 552 ms in
# blocks of 4096 rows, 516 ms in 1024 and 454 ms in 512 (benchmark B1).
SEARCH_BLOCK_BYTES = 16 * 2**20


def nearest_codes(x: torch.Tensor, codebook: torch.Tensor, code_sq: torch.Tensor | None = None,
                  chunk: int | None = None) -> torch.Tensor:
    """Index of the nearest code for each row of ``x`` (N, D) in ``codebook`` (K, D): (N,) long.

    Rows go in chunks of ``chunk`` (default: a score block of ``SEARCH_BLOCK_BYTES``).
    """
    if code_sq is None:
        code_sq = codebook.pow(2).sum(1)
    if chunk is None:
        chunk = max(64, SEARCH_BLOCK_BYTES // (4 * codebook.shape[0]))
    books_t = codebook.t()
    if x.shape[0] <= chunk:
        return torch.addmm(code_sq, x, books_t, alpha=-2.0).argmin(1)  # (N, K) -> (N,)
    return torch.cat([torch.addmm(code_sq, x[i:i + chunk], books_t, alpha=-2.0).argmin(1)
                      for i in range(0, x.shape[0], chunk)])


def kmeans(x: torch.Tensor, k: int, n_iters: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on (N, D) -> (centroids (k, D), counts (k,)). Starts from random samples."""
    centroids = sample_vectors(x, k, generator)
    counts = torch.zeros(k, device=x.device)
    for _ in range(n_iters):
        idx = nearest_codes(x, centroids)
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_put_((idx,), x, accumulate=True)
        used = counts > 0
        centroids[used] = sums[used] / counts[used, None]
    return centroids, counts


def sample_vectors(x: torch.Tensor, k: int, generator=None) -> torch.Tensor:
    """``k`` rows of ``x``: without replacement when there are enough, else with (plus a little noise)."""
    n = x.shape[0]
    if n >= k:
        idx = torch.randperm(n, generator=generator)[:k].to(x.device)
        return x[idx].clone()
    idx = torch.randint(0, n, (k,), generator=generator).to(x.device)
    noise = torch.randn(k, x.shape[1], generator=generator).to(x.device, x.dtype)
    return x[idx] + 1e-2 * x.std().clamp(min=1e-6) * noise


class ResidualVQ(nn.Module):
    """``n_codebooks`` residual codebooks of ``codebook_size`` x ``dim``.

    With ``input_dim`` set, an input projection (Linear + LayerNorm without affine, so the latent
    scale cannot collapse under the commitment loss) maps encoder tokens to ``dim`` first.
    """

    def __init__(self, cfg: RVQConfig, input_dim: int | None = None):
        super().__init__()
        self.cfg = cfg
        n_q, k, d = cfg.n_codebooks, cfg.codebook_size, cfg.dim
        self.in_proj = (nn.Sequential(nn.Linear(input_dim, d), nn.LayerNorm(d, elementwise_affine=False))
                        if input_dim else None)
        init = torch.randn(n_q, k, d) / d**0.5
        if cfg.ema:
            self.register_buffer("codebooks", init)
        else:
            self.codebooks = nn.Parameter(init)
        self.register_buffer("ema_count", torch.ones(n_q, k))
        self.register_buffer("ema_sum", init.clone())
        self.register_buffer("usage", torch.ones(n_q, k))
        self.register_buffer("initialized", torch.tensor(cfg.init == "random"))
        # Codebook init / EMA / restarts happen in training mode only while this is True
        # (Brain2Text.set_trainable turns it off when "rvq" is not a trainable part).
        self.update_codebooks = True

    # ------------------------------------------------------------------------------ public
    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_dim) -> (B, T, dim) latent (identity without ``input_dim``)."""
        return self.in_proj(x) if self.in_proj is not None else x

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_dim or dim) -> codes (B, T, n_q) long."""
        latent = self.project(x)
        with torch.autocast(latent.device.type, enabled=False):
            return self._quantize(latent.float())[1]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, T, n_q) -> quantized (B, T, dim): the sum of the chosen code of every level."""
        if codes.shape[-1] != self.cfg.n_codebooks:
            raise ModelError(f"codes: expected last dim {self.cfg.n_codebooks}, got {codes.shape[-1]}")
        out = 0
        for q in range(self.cfg.n_codebooks):
            out = out + F.embedding(codes[..., q], self.codebooks[q])
        return out

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, entropy: bool = False) -> RVQOutput:
        """x (B, T, input_dim or dim), mask (B, T) bool (True = real) -> :class:`RVQOutput`.

        In training mode codebooks are initialised on the first batch, EMA-updated and dead codes
        restarted (statistics from real tokens only).
        """
        if x.ndim != 3:
            raise ModelError(f"rvq input: expected 3 dims (batch, tokens, dim), got {x.ndim}")
        latent = self.project(x)
        with torch.autocast(latent.device.type, enabled=False):  # distances and EMA statistics in fp32
            return self._forward_fp32(latent.float(), mask, entropy)

    def _forward_fp32(self, latent, mask, entropy) -> RVQOutput:
        b, t, d = latent.shape
        flat = latent.reshape(b * t, d)
        valid = torch.ones(b * t, dtype=torch.bool, device=latent.device) if mask is None else mask.reshape(-1).bool()
        if self.training and self.update_codebooks and not bool(self.initialized):
            self._initialize(flat.detach().float()[valid])
        quantized, codes, commit, ent = self._quantize(latent, valid, entropy)
        perplexity, usage = self._usage_stats(codes.reshape(b * t, -1)[valid])
        st = latent + (quantized - latent).detach()  # one straight-through estimator for all levels
        return RVQOutput(st, codes, commit, ent, perplexity, usage, latent)

    # ------------------------------------------------------------------------------ internals
    def _quantize(self, latent, valid=None, entropy=False):
        b, t, d = latent.shape
        residual = latent.reshape(b * t, d)
        if valid is None:
            valid = torch.ones(b * t, dtype=torch.bool, device=latent.device)
        weight = valid.to(residual.dtype)
        n_valid = weight.sum().clamp(min=1.0)
        quantized = torch.zeros_like(residual)
        codes, commit, ent = [], residual.new_zeros(()), residual.new_zeros(())
        for q in range(self.cfg.n_codebooks):
            codebook = self.codebooks[q]
            idx, ent_q = self._search(codebook, residual, valid, entropy)
            chosen = F.embedding(idx, codebook)  # (N, D)
            # computed in eval too: validation reports the real quantisation error (cheap next to the search)
            err = ((residual - chosen.detach()) ** 2).mean(1)
            commit = commit + self.cfg.commitment_weight * (err * weight).sum() / n_valid
            if not self.cfg.ema:
                commit = commit + (((residual.detach() - chosen) ** 2).mean(1) * weight).sum() / n_valid
            if ent_q is not None:
                ent = ent + ent_q
            if self.training and self.update_codebooks:
                self._update(q, residual.detach(), idx, valid)
            residual = residual - chosen.detach()
            quantized = quantized + chosen.detach()
            codes.append(idx)
        return quantized.reshape(b, t, d), torch.stack(codes, 1).reshape(b, t, -1), commit, ent

    def _search(self, codebook, residual, valid, entropy):
        """Nearest codes (N,), plus the entropy loss from the same distance product when asked."""
        if not entropy:
            return nearest_codes(residual.detach(), codebook.detach()), None
        book = codebook.detach().clone() if self.cfg.ema else codebook  # EMA updates codebooks in place later
        scores = torch.addmm(book.pow(2).sum(1), residual, book.t(), alpha=-2.0)  # (N, K), with gradients
        return scores.detach().argmin(1), self._entropy(-scores[valid])

    @staticmethod
    def _entropy(logits: torch.Tensor) -> torch.Tensor:
        """Mean per-token entropy minus entropy of the mean soft assignment; logits (N, K) = -distance."""
        log_probs = torch.log_softmax(logits.float(), dim=1)  # (N, K)
        probs = log_probs.exp()
        per_token = -(probs * log_probs).sum(1).mean()
        avg = probs.mean(0)
        return per_token + (avg * torch.log(avg.clamp(min=1e-10))).sum()

    @torch.no_grad()
    def _usage_stats(self, codes: torch.Tensor):
        k = self.cfg.codebook_size
        perplexity, usage = [], []
        for q in range(codes.shape[1]):
            counts = torch.bincount(codes[:, q], minlength=k).float()
            p = counts / counts.sum().clamp(min=1.0)
            perplexity.append(torch.exp(-(p * torch.log(p.clamp(min=1e-10))).sum()))
            usage.append((counts > 0).float().mean())
        return torch.stack(perplexity), torch.stack(usage)

    @torch.no_grad()
    def _initialize(self, flat: torch.Tensor) -> None:
        """Codebooks from the first training batch: level by level on the residuals."""
        if flat.shape[0] == 0:
            return
        residual = flat
        for q in range(self.cfg.n_codebooks):
            if self.cfg.init == "kmeans":
                book, _ = kmeans(residual, self.cfg.codebook_size, self.cfg.kmeans_iters)
            else:
                book = sample_vectors(residual, self.cfg.codebook_size)
            if _distributed():
                dist.broadcast(book, 0)
            self.codebooks.data[q].copy_(book)
            self.ema_sum[q].copy_(book)
            residual = residual - book[nearest_codes(residual, book)]
        self.ema_count.fill_(1.0)
        self.usage.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, q: int, residual: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor) -> None:
        """EMA statistics of level ``q`` (when ``ema``), usage tracking and dead-code restart."""
        k = self.cfg.codebook_size
        w = valid.to(residual.dtype)
        counts = _all_reduce(torch.bincount(idx, weights=w, minlength=k).to(residual.dtype))
        decay = self.cfg.usage_decay
        self.usage[q].mul_(decay).add_(counts, alpha=1 - decay)
        if self.cfg.ema:
            d = self.cfg.ema_decay
            self.ema_count[q].mul_(d).add_(counts, alpha=1 - d)
            self.ema_sum[q].mul_(d)
            # index_put_(accumulate=True): several times faster than index_add_ on CPU
            if _distributed():
                sums = torch.zeros_like(self.ema_sum[q]).index_put_((idx,), residual * w[:, None], accumulate=True)
                self.ema_sum[q].add_(_all_reduce(sums), alpha=1 - d)
            else:
                self.ema_sum[q].index_put_((idx,), residual * (w * (1 - d))[:, None], accumulate=True)
            self.codebooks[q].copy_(self.ema_sum[q] / self.ema_count[q].clamp(min=1e-5)[:, None])
        self._restart_dead(q, residual[valid])

    @torch.no_grad()
    def _restart_dead(self, q: int, recent: torch.Tensor) -> None:
        dead = self.usage[q] < self.cfg.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead == 0 or recent.shape[0] == 0:
            return
        new = sample_vectors(recent, n_dead).to(self.codebooks.dtype)
        if _distributed():
            dist.broadcast(new, 0)
        self.codebooks.data[q][dead] = new
        self.ema_sum[q][dead] = new
        self.ema_count[q][dead] = 1.0
        self.usage[q][dead] = 1.0
