"""Phases are data: a mode is a list of :class:`~brain2text.config.PhaseConfig` run in order.

``multi_phase`` (encoder pre-training, RVQ, end to end), ``full`` (one phase, everything) and
``distill`` (a student taught by a teacher) differ only in the list they pick from the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, PhaseConfig
from ..errors import ConfigError
from ..registry import DISTILL_LOSSES

MODES = ("multi_phase", "full", "distill")


@dataclass(frozen=True)
class PhasePlan:
    """The phases of one run with their global step ranges (global steps count from 1)."""

    phases: tuple[PhaseConfig, ...]

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    def start_step(self, index: int) -> int:
        """Global steps completed before phase ``index`` begins."""
        return sum(p.steps for p in self.phases[:index])

    def locate(self, global_step: int) -> tuple[int, int]:
        """(phase index, steps done within it) after ``global_step`` completed steps.

        A phase that is exactly finished is reported as the next phase at step 0.
        """
        done = global_step
        for i, phase in enumerate(self.phases):
            if done < phase.steps:
                return i, done
            done -= phase.steps
        return len(self.phases), 0


def build_plan(cfg: Config, mode: str) -> PhasePlan:
    """The phases for ``mode``, checked before any work."""
    if mode not in MODES:
        raise ConfigError(f"unknown training mode {mode!r}; choose one of {', '.join(MODES)}")
    phases = tuple(getattr(cfg.train, mode))
    if not phases:
        raise ConfigError(f"train.{mode} has no phases")
    for phase in phases:
        if phase.steps <= 0:  # PhaseConfig checks this too; a phase edited in code might not
            raise ConfigError(f"train.{mode}: phase {phase.name!r} has steps={phase.steps}; it must be > 0")
        if not phase.trainable:
            raise ConfigError(f"train.{mode}: phase {phase.name!r} trains nothing (empty trainable)")
        uses_kd = any(phase.losses.get(k, 0.0) > 0 for k in DISTILL_LOSSES)
        if uses_kd and mode != "distill":
            raise ConfigError(f"train.{mode}: phase {phase.name!r} uses distillation losses (kd/feature), "
                              "which need --mode distill and --teacher_checkpoint")
        if sum(phase.losses.values()) <= 0:
            raise ConfigError(f"train.{mode}: phase {phase.name!r} has no loss with weight > 0")
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise ConfigError(f"train.{mode}: phase names must be unique, got {names}")
    return PhasePlan(phases)
