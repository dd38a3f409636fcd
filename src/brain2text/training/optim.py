"""AdamW over a phase's trainable parameters, a warm-up + cosine schedule, and their state as
safetensors + JSON (no pickle).

``torch.optim.AdamW.state_dict()`` holds tensors (``exp_avg``, ``exp_avg_sq``, ``step``) keyed by
parameter index, plus plain hyper-parameters; :func:`flatten_optimizer_state` splits it into a flat
``{name: tensor}`` map for safetensors and a JSON-able rest, :func:`unflatten_optimizer_state` joins
them back into something ``load_state_dict`` accepts.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..config import PhaseConfig


def build_optimizer(params: list[nn.Parameter], phase: PhaseConfig, weight_decay: float) -> torch.optim.AdamW | None:
    """AdamW with weight decay on matrices only (biases and norms are not decayed).

    Returns None when the phase has no trainable parameter (e.g. an RVQ phase with EMA codebooks).
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        return None
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
              if g["params"]]
    # foreach=False: the same arithmetic on every run and machine, one parameter at a time.
    return torch.optim.AdamW(groups, lr=phase.lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)


class WarmupCosine:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to ``floor``.

    A plain class (not a lambda) so that ``LambdaLR.state_dict()`` stores its fields as JSON.
    """

    def __init__(self, warmup: int, total: int, floor: float = 0.1):
        self.warmup = int(warmup)
        self.total = int(total)
        self.floor = float(floor)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer | None, phase: PhaseConfig):
    if optimizer is None:
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(phase.warmup_steps, phase.steps))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise TypeError(f"optimizer/scheduler state holds a {type(value).__name__}, which JSON cannot store")


def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict`` into tensors (``state.<param>.<key>``) and JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state_dict["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = _jsonable(value)
    groups = []
    for group in state_dict["param_groups"]:
        groups.append({k: _jsonable(v) for k, v in group.items()})
    return tensors, {"param_groups": groups, "scalars": scalars, "indices": [str(i) for i in state_dict["state"]]}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    """Inverse of :func:`flatten_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {int(i): {} for i in meta["indices"]}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state[int(idx)][key] = value
    for idx, entries in meta["scalars"].items():
        state[int(idx)].update(entries)
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def scheduler_state(scheduler) -> dict[str, Any]:
    return _jsonable(scheduler.state_dict())


def load_scheduler_state(scheduler, state: dict[str, Any]) -> None:
    state = dict(state)
    # LambdaLR stores the factor object's fields; our WarmupCosine is rebuilt from the phase.
    state.pop("lr_lambdas", None)
    scheduler.load_state_dict({**scheduler.state_dict(), **state})
