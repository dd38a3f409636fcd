"""Control inputs: noise keeps per-channel statistics and padding; the surrogate keeps spectra and
covariance but not the time course; the shuffled donor is another sentence."""

from __future__ import annotations

import pytest
import torch

from brain2text.data.batch import MEGBatch
from brain2text.evaluation.controls import (
    blind,
    derangement,
    noise_like,
    noise_seeds,
    phase_randomise,
    surrogate_like,
    surrogate_seeds,
)


def _batch():
    g = torch.Generator().manual_seed(0)
    meg = (torch.randn(2, 3, 400, generator=g) * torch.tensor([1.0, 5.0, 0.1])[None, :, None]
           + torch.tensor([0.0, 3.0, -2.0])[None, :, None])
    meg_mask = torch.ones(2, 400, dtype=torch.bool)
    meg_mask[1, 300:] = False
    channel_mask = torch.tensor([[True, True, True], [True, True, False]])
    meg = meg * meg_mask[:, None, :] * channel_mask[:, :, None]
    return MEGBatch(meg=meg, meg_mask=meg_mask, subject_index=torch.tensor([0, 1]), channel_mask=channel_mask,
                    texts=["a b", "c d"], words=[["a", "b"], ["c", "d"]], word_onsets=[[0.1, 0.2], [0.1, 0.3]],
                    example_ids=["x", "y"])


def test_noise_matches_channel_statistics_and_padding():
    batch = _batch()
    noisy = noise_like(batch, noise_seeds(0, [0, 1]))
    assert noisy.meg.shape == batch.meg.shape
    assert (noisy.meg[1, :, 300:] == 0).all() and (noisy.meg[1, 2] == 0).all()  # padding kept
    real = batch.meg[0]
    assert torch.allclose(noisy.meg[0].mean(1), real.mean(1), atol=0.6)
    assert torch.allclose(noisy.meg[0].std(1), real.std(1), rtol=0.15)
    assert not torch.allclose(noisy.meg[0], real)
    assert torch.equal(noisy.meg, noise_like(batch, noise_seeds(0, [0, 1])).meg)  # seeded
    # an example's noise does not depend on the batch it is in
    alone = noise_like(batch.select([1]), noise_seeds(0, [1]))
    assert torch.equal(alone.meg[0], noisy.meg[1])


def test_blind_removes_every_target():
    b = blind(_batch())
    assert b.texts == [] and b.words == [] and b.word_onsets == []
    assert torch.equal(b.meg, _batch().meg)


@pytest.mark.parametrize("seed", range(5))
def test_derangement_gives_a_different_sentence_same_subject_first(seed):
    texts = ["s1", "s2", "s3", "s1", "s2", "s3", "s4"]
    groups = ["a", "a", "a", "b", "b", "b", "c"]
    donor = derangement(texts, groups, seed)
    assert sorted(donor) == list(range(len(texts)))  # a permutation: each MEG used once
    assert all(donor[i] != i and texts[donor[i]] != texts[i] for i in range(len(texts)))
    assert derangement(texts, groups, seed) == donor
    same_group = sum(groups[donor[i]] == groups[i] for i in range(6))
    assert same_group >= 4  # subjects a and b get donors from themselves except where the lone c is spliced in


def test_derangement_impossible_is_an_error():
    with pytest.raises(ValueError, match="two different sentences"):
        derangement(["x", "x", "x"], ["a", "b", "c"], 0)


def _correlated(n_chans=6, n_times=4000, seed=0):
    """(C, T) MEG-like: channels mixing three 1/f-ish sources, plus evoked bursts at fixed times."""
    g = torch.Generator().manual_seed(seed)
    sources = torch.cumsum(torch.randn(3, n_times, generator=g, dtype=torch.float64), dim=1)
    sources = sources - sources.mean(dim=1, keepdim=True)
    mixing = torch.randn(n_chans, 3, generator=g, dtype=torch.float64)
    x = mixing @ sources + 0.3 * torch.randn(n_chans, n_times, generator=g, dtype=torch.float64)
    x[:, ::200] += 8.0  # time-locked "word responses"
    return x + torch.arange(n_chans, dtype=torch.float64)[:, None]  # channel offsets (means)


def test_phase_randomisation_keeps_spectra_and_covariance_and_loses_the_time_course():
    x = _correlated()
    y = phase_randomise(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.float64
    fx, fy = torch.fft.rfft(x, dim=1).abs(), torch.fft.rfft(y, dim=1).abs()
    assert torch.allclose(fx, fy, rtol=1e-9, atol=1e-9 * fx.max())  # every channel's power spectrum
    assert torch.allclose(x.mean(1), y.mean(1), atol=1e-9)
    cx, cy = torch.cov(x), torch.cov(y)
    assert torch.allclose(cx, cy, rtol=1e-8, atol=1e-8 * cx.abs().max())  # zero-lag cross-channel covariance
    xc, yc = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    corr = (xc * yc).sum(1) / (xc.norm(dim=1) * yc.norm(dim=1))
    assert corr.abs().max() < 0.15, corr  # nothing of the original time course is left
    assert y[:, ::200].mean() - y.mean() < 1.0 < x[:, ::200].mean() - x.mean()  # the time-locked bursts are gone
    odd = _correlated(n_times=3999)  # odd length: no Nyquist bin
    assert torch.allclose(torch.fft.rfft(odd, dim=1).abs(),
                          torch.fft.rfft(phase_randomise(odd, torch.Generator().manual_seed(2)), dim=1).abs(),
                          rtol=1e-9, atol=1e-9 * torch.fft.rfft(odd, dim=1).abs().max())


def test_surrogate_keeps_padding_is_seeded_and_independent_of_the_batch():
    batch = _batch()
    out = surrogate_like(batch, surrogate_seeds(0, [0, 1]))
    assert out.meg.shape == batch.meg.shape and out.meg.dtype == batch.meg.dtype
    assert (out.meg[1, :, 300:] == 0).all() and (out.meg[1, 2] == 0).all()  # padded samples and channel
    assert not torch.allclose(out.meg[0], batch.meg[0])
    real = batch.meg[1, :2, :300].double()  # example 1's real part: spectrum per channel kept
    assert torch.allclose(torch.fft.rfft(out.meg[1, :2, :300].double(), dim=1).abs(), torch.fft.rfft(real, dim=1).abs(),
                          rtol=1e-4, atol=1e-4 * torch.fft.rfft(real, dim=1).abs().max())
    assert torch.equal(out.meg, surrogate_like(batch, surrogate_seeds(0, [0, 1])).meg)  # seeded
    assert not torch.equal(out.meg, surrogate_like(batch, surrogate_seeds(1, [0, 1])).meg)
    alone = surrogate_like(batch.select([1]), surrogate_seeds(0, [1]))
    assert torch.equal(alone.meg[0], out.meg[1])
    assert surrogate_seeds(0, [0, 1]) != noise_seeds(0, [0, 1])  # its own random stream
