"""Distillation losses: KL on text-token logits at a temperature, feature matching with a learned map."""

from __future__ import annotations

import pytest
import torch

from brain2text.errors import ConfigError
from brain2text.training.distillation import FeatureMatcher, check_same_tokenizer, kd_loss, text_token_logits
from training_standins import StandInTokenizer


def test_kd_is_zero_for_equal_logits_positive_otherwise_and_scaled_by_t2():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(7, 11, generator=g), torch.randn(7, 11, generator=g)
    assert kd_loss(s, s.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(s, t, 1.0).item() > 0
    big_t = kd_loss(s, t, 50.0).item()  # T^2 keeps the scale: approaches the logit-MSE/2V limit, not 0
    assert big_t > 0.1 * kd_loss(s, t, 1.0).item() / 50


def test_kd_gradient_pulls_student_to_teacher():
    t = torch.randn(4, 5)
    s = torch.zeros(4, 5, requires_grad=True)
    opt = torch.optim.SGD([s], lr=1.0)
    first = None
    for _ in range(50):
        loss = kd_loss(s, t, 1.0)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_text_token_logits_take_positions_predicting_targets():
    logits = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    labels = torch.tensor([[-100, -100, 5, 6], [-100, 7, -100, -100]])
    picked = text_token_logits(logits, labels)
    assert picked.shape == (3, 3)
    assert torch.equal(picked[0], logits[0, 1]) and torch.equal(picked[2], logits[1, 0])


def test_feature_matcher_maps_width_resamples_time_and_masks():
    m = FeatureMatcher(4, 6)
    assert isinstance(m.proj, torch.nn.Linear)
    student, teacher = torch.randn(2, 5, 4), torch.randn(2, 10, 6)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 5:] = False
    loss = m(student, teacher, mask)
    assert loss.ndim == 0 and loss.item() > 0
    teacher2 = teacher.clone()
    teacher2[1, 5:] += 100.0  # padding must not count
    assert torch.allclose(m(student, teacher2, mask), loss)
    same = FeatureMatcher(6, 6)
    assert isinstance(same.proj, torch.nn.Identity)
    x = torch.randn(1, 3, 6)
    assert same(x, x, None).item() == 0.0


def test_tokenizer_mismatch_is_a_clear_error(tmp_path):
    check_same_tokenizer(StandInTokenizer(), StandInTokenizer(), tmp_path)
    with pytest.raises(ConfigError, match="tokenizer differs"):
        check_same_tokenizer(StandInTokenizer(), StandInTokenizer(extra=2), tmp_path)


def test_student_extra_passes_do_not_update_codebooks_twice():
    from brain2text.training.objective import TrainingObjective
    from training_standins import StandInModel

    seen = []

    class Student(StandInModel):
        def __init__(self):
            super().__init__()
            self.rvq = torch.nn.Module()
            self.rvq.update_codebooks = True

        def encode(self, batch):
            seen.append(self.rvq.update_codebooks)
            return super().encode(batch)

    from training_standins import standin_data

    data = standin_data()
    batch = data.collate([data.train[i] for i in range(2)])
    student, teacher = Student(), StandInModel(d_model=12).eval()
    obj = TrainingObjective(student, teacher, FeatureMatcher(8, 12))
    out = obj(batch, {"lm": 1.0, "kd": 1.0, "feature": 1.0})
    assert set(out) >= {"lm", "kd", "feature", "loss"}
    assert seen[0] is True and seen[1:] and not any(seen[1:])  # only the model's own pass updates
    assert student.rvq.update_codebooks is True
    seen.clear()
    obj(batch, {"kd": 1.0})  # no model loss: the distillation pass is the one that updates
    assert seen == [True]
