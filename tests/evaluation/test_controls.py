"""Control inputs: noise keeps per-channel statistics and padding; the shuffled donor is another sentence."""

from __future__ import annotations

import pytest
import torch

from brain2text.data.batch import MEGBatch
from brain2text.evaluation.controls import blind, derangement, noise_like, noise_seeds


def _batch():
    g = torch.Generator().manual_seed(0)
    meg = torch.randn(2, 3, 400, generator=g) * torch.tensor([1.0, 5.0, 0.1])[None, :, None] + torch.tensor([0.0, 3.0, -2.0])[None, :, None]
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
