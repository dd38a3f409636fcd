"""What a checkpoint holds about the model: every tensor that can change during this run.

The frozen base decoder (the ``decoder`` parameter group, billions of weights at full size) is left
out unless some phase trains it: it is rebuilt identically from ``decoder.model_name_or_path``.
Everything else (trainable parts, LoRA, RVQ codebooks and their EMA/usage buffers, the distillation
feature map) is saved, so loading restores the exact bits.
"""

from __future__ import annotations

from torch import nn

from ..errors import ModelError
from .phases import PhasePlan


def excluded_parameter_names(objective: nn.Module, model: nn.Module, plan: PhasePlan) -> set[str]:
    """Names (in ``objective.state_dict()``) of parameters no phase of ``plan`` ever trains and that
    belong to the frozen base decoder."""
    trained = set().union(*(set(p.trainable) for p in plan.phases))
    if "decoder" in trained:
        return set()
    frozen = {id(p) for p in model.parameter_groups().get("decoder", [])}
    return {name for name, p in objective.named_parameters(remove_duplicate=False) if id(p) in frozen}


def model_tensors(objective: nn.Module, excluded: set[str]) -> dict:
    return {k: v.detach() for k, v in objective.state_dict().items() if k not in excluded}


def load_model_tensors(objective: nn.Module, tensors: dict, excluded: set[str], source) -> None:
    result = objective.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if k not in excluded]
    if result.unexpected_keys or missing:
        raise ModelError(f"checkpoint does not fit this model ({len(missing)} missing, "
                         f"{len(result.unexpected_keys)} unexpected tensors, e.g. "
                         f"{(missing + result.unexpected_keys)[:3]})", source)
