"""Entry point of training: check everything that can be wrong before any work, build the model, the
data and (for distillation) the teacher, then run the :class:`~.trainer.Trainer`."""

from __future__ import annotations

import os
import warnings
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from ..config import Config
from ..errors import ConfigError
from ..models.build import build_model
from ..models.serialization import save_model
from .data import TrainingData, build_training_data
from .distillation import (
    FeatureMatcher,
    check_same_tokenizer,
    encoder_width,
    load_teacher,
    load_teacher_tokenizer,
)
from .objective import TrainingObjective
from .phases import build_plan
from .rng import seed_everything
from .run_dir import check_output_dir, config_hash, repair_model_dirs, write_run_file
from .trainer import Trainer, TrainResult, make_accelerator


def check_teacher_args(mode: str, teacher_dir: str | None):
    """Distillation needs a teacher directory with a tokenizer; other modes take none."""
    if mode != "distill":
        if teacher_dir:
            warnings.warn(f"--teacher_checkpoint is only used by --mode distill; ignored for --mode {mode}",
                          stacklevel=2)
        return None
    if not teacher_dir:
        raise ConfigError("--mode distill needs --teacher_checkpoint DIR (a trained model directory, e.g. a run's "
                          "best_model)")
    return load_teacher_tokenizer(teacher_dir)


def train(cfg: Config, mode: str, output_dir: str | Path, *, resume: bool = False, teacher_dir: str | None = None,
          build_model_fn: Callable[[Config], torch.nn.Module] | None = None,
          build_data_fn: Callable[[Config], TrainingData] | None = None,
          load_teacher_fn: Callable[[str, torch.device], torch.nn.Module] | None = None,
          save_model_fn: Callable[[torch.nn.Module, Path], None] | None = None) -> TrainResult:
    """Train ``cfg`` in ``mode`` into ``output_dir``, continuing from its newest good checkpoint.

    ``build_model_fn`` / ``build_data_fn`` / ``load_teacher_fn`` / ``save_model_fn`` default to the real
    model, data cache, :func:`~brain2text.models.serialization.load_model` and ``save_model`` (tests pass
    small stand-ins).
    """
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        return _train(cfg, mode, Path(output_dir), resume, teacher_dir, build_model_fn, build_data_fn, load_teacher_fn,
                      save_model_fn)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)


def _train(cfg, mode, output_dir, resume, teacher_dir, build_model_fn, build_data_fn, load_teacher_fn,
           save_model_fn) -> TrainResult:
    plan = build_plan(cfg, mode)
    teacher_tok = check_teacher_args(mode, teacher_dir)
    digest = config_hash(cfg, mode, teacher_dir if mode == "distill" else None)
    has_run = check_output_dir(output_dir, digest, resume)
    accelerator = make_accelerator(cfg)
    # the data before the model: a bad dataset stops in one line, not after the decoder's loading messages;
    # one process builds the preprocessing cache, the others then read it
    with accelerator.main_process_first():
        data = (build_data_fn or build_training_data)(cfg)
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (no-op on CPU)
        torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(cfg.train.seed)  # identical initial weights on every process and every resume
    model = (build_model_fn or partial(build_model, unit_texts=data.train_texts))(cfg)
    data.tokenizer = getattr(model, "tokenizer", None)  # the data layer tokenises the targets for the losses
    data.phonemes = cfg.encoder.phoneme_head  # and looks words up in the pronouncing dictionary only if they are read
    teacher, matcher = None, None
    if mode == "distill":
        check_same_tokenizer(model.tokenizer, teacher_tok, teacher_dir)
        teacher = (load_teacher_fn or load_teacher)(teacher_dir, accelerator.device)
        matcher = FeatureMatcher(cfg.encoder.d_model, encoder_width(teacher))
    if accelerator.is_main_process:  # everything checked: from here on the output directory is ours
        write_run_file(output_dir, cfg, mode, teacher_dir if mode == "distill" else None, digest)
        if has_run:
            repair_model_dirs(output_dir)
    accelerator.wait_for_everyone()
    seed_everything(cfg.train.seed + 7919 * accelerator.process_index)  # own dropout masks per process
    objective = TrainingObjective(model, teacher, matcher, cfg.train.kd_temperature)
    trainer = Trainer(cfg, plan, output_dir, objective, data, accelerator, digest, resume_allowed=has_run,
                      save_model_fn=save_model_fn or save_model)
    return trainer.fit()
