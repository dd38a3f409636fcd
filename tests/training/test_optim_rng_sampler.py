"""Unit tests of the pieces that make resuming exact: optimizer state files, schedule, RNG, data order."""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from brain2text.config import PhaseConfig
from brain2text.training.optim import (
    WarmupCosine,
    build_optimizer,
    build_scheduler,
    flatten_optimizer_state,
    load_scheduler_state,
    scheduler_state,
    unflatten_optimizer_state,
)
from brain2text.training.rng import capture_rng_state, isolated_rng, restore_rng_state
from brain2text.training.sampler import ResumableBatchSampler


def _step(model, opt, sched, seed):
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(seed))
    model(x).pow(2).sum().backward()
    opt.step()
    opt.zero_grad()
    sched.step()


def test_optimizer_state_roundtrip_continues_identically():
    phase = PhaseConfig(steps=10, warmup_steps=2, lr=1e-2)
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    b = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = build_optimizer(list(a.parameters()), phase, 0.1), build_optimizer(list(b.parameters()), phase, 0.1)
    sch_a, sch_b = build_scheduler(opt_a, phase), build_scheduler(opt_b, phase)
    for s in range(3):
        _step(a, opt_a, sch_a, s)
        _step(b, opt_b, sch_b, s)
    tensors, meta = flatten_optimizer_state(opt_a.state_dict())
    tensors = {k: v.clone() for k, v in tensors.items()}  # as read back from disk (no shared storage)
    meta = json.loads(json.dumps(meta))  # through JSON, as on disk
    sched = json.loads(json.dumps(scheduler_state(sch_a)))
    opt_c = build_optimizer(list(b.parameters()), phase, 0.1)
    sch_c = build_scheduler(opt_c, phase)
    opt_c.load_state_dict(unflatten_optimizer_state(tensors, meta))
    load_scheduler_state(sch_c, sched)
    for s in range(3, 6):
        _step(a, opt_a, sch_a, s)
        _step(b, opt_c, sch_c, s)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert sch_a.get_last_lr() == sch_c.get_last_lr()


def test_no_trainable_parameters_gives_no_optimizer():
    p = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    assert build_optimizer([p], PhaseConfig(steps=1), 0.0) is None


def test_warmup_then_cosine_to_floor():
    f = WarmupCosine(warmup=4, total=20, floor=0.1)
    ramp = [f(s) for s in range(4)]
    assert ramp == sorted(ramp) and ramp[-1] < 1.0
    assert f(4) == 1.0
    tail = [f(s) for s in range(4, 21)]
    assert all(x >= y for x, y in zip(tail, tail[1:]))
    assert abs(f(20) - 0.1) < 1e-12


def test_rng_state_roundtrip_through_json():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = json.loads(json.dumps(capture_rng_state()))
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(state)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


def test_isolated_rng_leaves_training_generators_alone():
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    with isolated_rng(123):
        torch.rand(100)
        random.random()
    assert torch.equal(torch.rand(4), expected)


def _take(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_sampler_resume_skips_exactly_the_consumed_batches():
    full = _take(ResumableBatchSampler(7, 3, seed=5), 8)  # crosses several epochs
    resumed = _take(ResumableBatchSampler(7, 3, seed=5, start_offset=3 * 3), 5)
    assert resumed == full[3:]


def test_sampler_epochs_are_permutations_and_ranks_disjoint():
    stream = [i for b in _take(ResumableBatchSampler(6, 2, seed=0), 6) for i in b]
    assert sorted(stream[:6]) == list(range(6)) and sorted(stream[6:12]) == list(range(6))
    assert stream[:6] != stream[6:12]  # a new order each epoch
    r0 = _take(ResumableBatchSampler(8, 2, seed=1, rank=0, world_size=2), 2)
    r1 = _take(ResumableBatchSampler(8, 2, seed=1, rank=1, world_size=2), 2)
    seen = [i for b in r0 + r1 for i in b]
    assert sorted(seen) == list(range(8))


def test_config_hash_ignores_logging_and_other_modes_but_not_training_settings():
    from brain2text.config import load_config
    from brain2text.training.run_dir import config_hash

    base = config_hash(load_config(None), "full", None)
    for same in (["train.eval_every=7", "train.keep_last=9", "data.cache_dir=/elsewhere", "decoding.num_beams=9",
                  "train.multi_phase=[{name: a, steps: 1}]"],):
        assert config_hash(load_config(None, same), "full", None) == base
    for other in (["train.seed=1"], ["train.full=[{name: a, steps: 1}]"], ["encoder.d_model=64", "encoder.n_heads=4"]):
        assert config_hash(load_config(None, other), "full", None) != base
    assert config_hash(load_config(None), "multi_phase", None) != base
