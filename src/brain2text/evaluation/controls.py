"""Control inputs, decoded by the same model in the same way as the MEG (DESIGN.md §4).

* ``noise``: Gaussian noise with each channel's mean and standard deviation of that example (over
  its real samples), the same padding (padded samples and channels stay zero).
* ``surrogate``: the same example's MEG with its Fourier phases randomised, the same random phases for
  every channel (multivariate phase randomisation; Prichard & Theiler 1994, "Generating surrogate data
  for time series with several simultaneously measured variables", Phys. Rev. Lett. 73:951). Each
  channel keeps its power spectrum exactly and the channels keep their cross-spectra, hence their
  zero-lag covariance; what is destroyed is the time course, so the time-locking to the words. It
  tells a decoder that reads the words from one that reads MEG-like statistics (white ``noise`` is
  easy to tell from MEG: a model can learn "white noise means say nothing").
* ``shuffled``: the MEG of a different test sentence: a seeded derangement whose donor has a
  different text, from the same subject when that subject has another sentence.
* ``no_meg``: the prompt without MEG tokens (``meg_mode="none"``): the decoder's language prior.

Everything here is a pure function of the inputs and a seed, and never looks at text except to
make sure the shuffled donor is a *different* sentence.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch

from ..data.batch import MEGBatch

CONTROLS = ("noise", "surrogate", "shuffled", "no_meg")


def blind(batch: MEGBatch) -> MEGBatch:
    """The batch without any target information (texts, words, word onsets, their token ids): what
    generation sees."""
    return replace(batch, texts=[], words=[], word_onsets=[], target_ids=[], ctc_targets=None, ctc_target_lengths=None,
                   word_ids=[], phoneme_ids=[])


def _per_example(batch: MEGBatch, seeds: Sequence[int], make, name: str) -> MEGBatch:
    """``batch`` with each example's real channels x real samples replaced by ``make(x, generator)`` (``x``
    ``(C_real, T_real)``, the generator seeded by the example's own seed, so a control does not depend on
    the batch it is decoded in); padded samples and channels stay zero."""
    if len(seeds) != len(batch):
        raise ValueError(f"{name}: {len(batch)} examples but {len(seeds)} seeds")
    meg = torch.zeros_like(batch.meg)  # (B, C, T)
    for k, seed in enumerate(seeds):
        t_idx = batch.meg_mask[k].nonzero(as_tuple=True)[0]  # (T_real,)
        c_mask = batch.channel_mask[k] if batch.channel_mask is not None else torch.ones(meg.shape[1], dtype=torch.bool)
        c_idx = c_mask.nonzero(as_tuple=True)[0]  # (C_real,)
        if len(t_idx) == 0 or len(c_idx) == 0:
            continue
        x = batch.meg[k].cpu()[c_idx[:, None], t_idx[None, :]]  # (C_real, T_real)
        y = make(x, torch.Generator().manual_seed(int(seed)))
        meg[k, c_idx[:, None], t_idx[None, :]] = y.to(meg.dtype).to(meg.device)
    return replace(batch, meg=meg)


def gaussian_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(C, T) -> (C, T): white Gaussian noise with each channel's mean and standard deviation."""
    x = x.double()
    mean, std = x.mean(dim=1, keepdim=True), x.std(dim=1, unbiased=False, keepdim=True)
    return mean + std * torch.randn(x.shape, generator=generator, dtype=torch.float64)


def noise_like(batch: MEGBatch, seeds: Sequence[int]) -> MEGBatch:
    """Per example and channel: N(mean, std) over the real samples (:func:`gaussian_like`); padding stays
    zero. ``seeds`` gives one seed per example."""
    return _per_example(batch, seeds, gaussian_like, "noise_like")


def noise_seeds(control_seed: int, positions: Sequence[int]) -> list[int]:
    """One seed per evaluated example (its position in the evaluation order)."""
    return [int(control_seed) * 1_000_003 + 7919 * int(p) + 1 for p in positions]


def surrogate_seeds(control_seed: int, positions: Sequence[int]) -> list[int]:
    """One seed per evaluated example for the surrogate, apart from the noise control's seeds."""
    return [s + 500_000_017 for s in noise_seeds(control_seed, positions)]


def phase_randomise(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(C, T) -> (C, T): the same uniform random phase added to every channel at each frequency.

    DC and (for even T) Nyquist bins keep phase 0, so the result is real and keeps each channel's mean;
    ``|rfft|`` per channel and the cross-spectra (hence the zero-lag covariance) are unchanged.
    """
    n = x.shape[-1]
    spectrum = torch.fft.rfft(x.double(), dim=-1)  # (C, F)
    phi = torch.rand(spectrum.shape[-1], generator=generator, dtype=torch.float64) * (2 * torch.pi)  # (F,)
    phi[0] = 0.0
    if n % 2 == 0:
        phi[-1] = 0.0
    return torch.fft.irfft(spectrum * torch.polar(torch.ones_like(phi), phi), n=n, dim=-1)


def surrogate_like(batch: MEGBatch, seeds: Sequence[int]) -> MEGBatch:
    """Per example: :func:`phase_randomise` of its real channels over its real samples; padding stays zero.
    ``seeds`` gives one seed per example."""
    return _per_example(batch, seeds, phase_randomise, "surrogate_like")


def derangement(texts: Sequence[str], groups: Sequence[str], seed: int) -> list[int]:
    """``donor[i] != i`` with ``texts[donor[i]] != texts[i]``, preferring a donor of the same group.

    Within each group (subject) a seeded random cycle; donors with the same text are repaired by
    swapping with another example of the group, then of any group. Raises ``ValueError`` when every
    example has the same text (no different sentence exists).
    """
    n = len(texts)
    if n < 2 or len(set(texts)) < 2:
        raise ValueError("the shuffled control needs at least two different sentences")
    rng = np.random.default_rng(seed)
    donor = list(range(n))
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    singles = []
    for members in by_group.values():
        if len(members) < 2:
            singles.extend(members)
            continue
        order = [members[j] for j in rng.permutation(len(members))]
        for a, b in zip(order, order[1:] + order[:1]):
            donor[a] = b
    if len(singles) == 1:  # one lone example: splice it into any other cycle
        i, j = singles[0], int(rng.integers(0, n - 1))
        j = j + (j >= i)
        donor[i], donor[j] = donor[j], i
    elif singles:
        order = [singles[j] for j in rng.permutation(len(singles))]
        for a, b in zip(order, order[1:] + order[:1]):
            donor[a] = b
    return _repair(donor, texts, groups, rng)


def _ok(donor: list[int], texts: Sequence[str], i: int) -> bool:
    return donor[i] != i and texts[donor[i]] != texts[i]


def _repair(donor: list[int], texts: Sequence[str], groups: Sequence[str], rng: np.random.Generator) -> list[int]:
    n = len(donor)
    for i in range(n):
        if _ok(donor, texts, i):
            continue
        candidates = [j for j in rng.permutation(n) if j != i]
        candidates.sort(key=lambda j: groups[j] != groups[i])  # same group first (stable sort)
        for j in candidates:
            donor[i], donor[j] = donor[j], donor[i]
            if _ok(donor, texts, i) and _ok(donor, texts, j):
                break
            donor[i], donor[j] = donor[j], donor[i]
        else:
            raise ValueError(f"no different sentence found for the shuffled control of example {i}")
    return donor
