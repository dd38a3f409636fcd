"""Alignment losses: CTC equals torch's on a known case, contrastive prefers aligned pairs, windows pool
the right tokens."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from brain2text.models.alignment import ctc_loss, gather_word_windows, word_contrastive_loss, word_labels


def test_ctc_loss_known_case():
    # two frames, classes {blank=0, a=1}: P(a) = .6*.7 + .6*.3 + .4*.7
    p = torch.tensor([[[0.4, 0.6], [0.3, 0.7]]])
    loss = ctc_loss(p.log(), torch.ones(1, 2, dtype=torch.bool), torch.tensor([[1]]), torch.tensor([1]), blank=0)
    assert float(loss) == pytest.approx(-math.log(0.6 * 0.7 + 0.6 * 0.3 + 0.4 * 0.7), rel=1e-5)


def test_ctc_loss_matches_torch_with_padding_and_is_finite():
    torch.manual_seed(0)
    lp = torch.log_softmax(torch.randn(3, 12, 7), dim=-1).requires_grad_()
    mask = torch.zeros(3, 12, dtype=torch.bool)
    for b, n in enumerate([12, 8, 2]):
        mask[b, :n] = True
    targets = torch.tensor([[1, 2, 3, 4], [5, 5, 0, 0], [1, 2, 3, 0]])
    lengths = torch.tensor([4, 2, 3])  # the third can't fit 3 labels in 2 frames: inf -> 0
    loss = ctc_loss(lp, mask, targets, lengths, blank=6)
    ref = F.ctc_loss(lp.transpose(0, 1), targets, torch.tensor([12, 8, 2]), lengths, blank=6, zero_infinity=True)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(ref.item())
    loss.backward()
    assert torch.isfinite(lp.grad).all() and lp.grad[2].abs().sum() == 0


def test_ctc_loss_shape_errors():
    lp = torch.zeros(2, 5, 4)
    with pytest.raises(ValueError, match="input_mask"):
        ctc_loss(lp, torch.ones(2, 4, dtype=torch.bool), torch.zeros(2, 1, dtype=torch.long), torch.ones(2), 3)


def test_tokenize_batch_gives_ctc_targets_without_special_tokens():
    from brain2text.data.batch import tokenize_batch
    from brain2text.data.tokenizer import train_bpe_tokenizer
    from helpers import make_batch

    tok = train_bpe_tokenizer(["the cat sat on the mat", "a dog ran in the park"] * 5, vocab_size=300)
    batch = tokenize_batch(make_batch(lengths=(50, 50, 50), texts=["the cat", "", "a dog ran"]), tok)
    targets, lengths = batch.ctc_targets, batch.ctc_target_lengths
    assert lengths[1] == 0 and targets.shape == (3, int(lengths.max()))
    assert tok.decode(targets[0, : lengths[0]].tolist()).strip() == "the cat"
    special = set(tok.all_special_ids)
    assert not special & set(targets[2, : lengths[2]].tolist())
    assert int(targets.max()) < len(tok)  # below the blank
    assert (batch.target_ids[2] == targets[2, : lengths[2]].tolist()
            and batch.word_ids[2][1] == tok("dog", add_special_tokens=False)["input_ids"])


def test_contrastive_lower_for_aligned_than_shuffled():
    torch.manual_seed(0)
    text = torch.randn(16, 32)
    meg = text + 0.3 * torch.randn(16, 32)
    aligned = word_contrastive_loss(meg, text)
    shuffled = word_contrastive_loss(meg[torch.randperm(16)], text)
    assert float(aligned) < 0.5 * float(shuffled)
    assert float(word_contrastive_loss(meg[:0], text[:0])) == 0.0


def test_contrastive_duplicates_are_positives():
    torch.manual_seed(1)
    base = torch.randn(3, 8)
    text = base[[0, 1, 0, 2]]  # word 0 occurs twice
    meg = text.clone()
    labels = torch.tensor([0, 1, 0, 2])
    with_labels = word_contrastive_loss(meg, text, temperature=0.05, labels=labels)
    without = word_contrastive_loss(meg, text, temperature=0.05)
    assert float(with_labels) < 1e-3 < float(without)  # without labels, the two copies compete (~log 2)


def test_gather_word_windows_pools_the_window():
    rate = 10.0  # tokens per second
    tokens = torch.arange(2 * 20, dtype=torch.float32).view(2, 20, 1)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 15:] = False
    emb, index = gather_word_windows(tokens, rate, [[0.0, 1.0], [0.5, 1.45, 3.0]], window=(0.0, 0.3), mask=mask)
    assert index.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]  # onset 3.0 s lies past the valid tokens
    assert emb[:, 0].tolist() == pytest.approx([1.0, 11.0, 20 + 6.0, 20 + 14.0])  # 1.45 s: token 14 only (15+ masked)
    labels = word_labels([["The", "cat"], ["the", "dog,", "x"]], index)
    assert labels.tolist() == [0, 1, 0, 2]
