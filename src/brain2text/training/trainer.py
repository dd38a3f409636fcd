"""The one training loop (HF Accelerate), for every mode and phase.

Per phase: ``model.set_trainable(phase.trainable)``, AdamW over the trainable parameters only, warm-up
+ cosine schedule, ``objective(batch, phase.losses)``; validation every ``eval_every`` steps;
checkpoints every ``save_every`` steps and at the end of each phase (see :mod:`.checkpoint`).
Resuming restores model, optimizer, scheduler, RNG states and the data position, so a killed and
resumed run ends with the same bits as an uninterrupted one (CPU).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import (
    DistributedDataParallelKwargs,
    broadcast_object_list,
    gather_object,
)
from tqdm.auto import tqdm

from ..config import Config, PhaseConfig
from ..constants import MODEL_CARD_FILE, TRAINING_INFO_FILE
from ..errors import Brain2TextError
from ..models.model_card import write_model_card
from ..models.serialization import save_model
from ..utils.atomic import atomic_directory, atomic_write_json
from ..utils.faults import fault_point
from . import checkpoint as ckpt_io
from .data import TrainingData, train_loader, val_batches
from .logging import MetricsLogger, plot_history
from .objective import TrainingObjective
from .optim import (
    build_optimizer,
    build_scheduler,
    flatten_optimizer_state,
    load_scheduler_state,
    scheduler_state,
    unflatten_optimizer_state,
)
from .phases import PhasePlan
from .rng import capture_rng_state, isolated_rng, restore_rng_state, seed_everything
from .run_dir import CHECKPOINTS_DIR
from .sampler import StreamPosition
from .state import excluded_parameter_names, load_model_tensors, model_tensors
from .validation import is_better, validate


class TrainingInterrupted(Brain2TextError):
    """SIGINT/SIGTERM arrived; a checkpoint was written and the run stopped."""


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    best: dict[str, Any]
    steps_per_second: dict[str, float] = field(default_factory=dict)
    cpu_seconds_per_step: dict[str, float] = field(default_factory=dict)


def make_accelerator(cfg: Config):

    # Accelerate keeps one state per process; a second training in the same process (a notebook, the
    # demo, tests) may use another precision or accumulation, so start from a clean one.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.train.mixed_precision,
                       gradient_accumulation_steps=cfg.train.grad_accum,
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


class Trainer:
    def __init__(self, cfg: Config, plan: PhasePlan, output_dir: Path, objective: TrainingObjective, data: TrainingData,
                 accelerator, config_digest: str, resume_allowed: bool = True, save_model_fn=save_model):
        self.cfg, self.plan, self.output_dir = cfg, plan, Path(output_dir)
        self.save_model = save_model_fn  # (model, directory): best_model / final_model exports
        self.accelerator, self.digest, self.resume_allowed = accelerator, config_digest, resume_allowed
        self.objective = objective.to(accelerator.device)
        self.model = objective.model
        self.data = data
        self.ckpt_root = self.output_dir / CHECKPOINTS_DIR
        self.excluded = excluded_parameter_names(objective, self.model, plan)
        self.global_step, self.offset = 0, 0
        self.best: dict[str, Any] = {"metric": cfg.train.best_metric, "value": None, "step": None}
        self.timing: dict[str, list[float]] = {}  # phase -> [steps, wall seconds, CPU seconds of this process]
        self.resume_optimizer: tuple | None = None
        self.stop_signal: int | None = None
        self.warned_metric = False
        self.logger: MetricsLogger | None = None
        if data.preprocessing is not None:
            self.model.preprocessing = data.preprocessing

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    # ----------------------------------------------------------------------------- run
    def fit(self) -> TrainResult:
        if self.is_main and len(self.data.val) == 0:
            warnings.warn("the validation split is empty: no validation, and best_model will be the final model "
                          "(raise data.val_fraction or use more data)", stacklevel=2)
        resumed = self._resume()
        self.logger = MetricsLogger(self.output_dir, self.global_step if resumed else None, enabled=self.is_main)
        previous = self._install_signal_handlers()
        try:
            first, done = self.plan.locate(self.global_step)
            for index in range(first, len(self.plan.phases)):
                self._run_phase(index, done if index == first else 0)
            self._finish()
        finally:
            self._restore_signal_handlers(previous)
            self.logger.close()
        return TrainResult(self.output_dir, self.global_step, dict(self.best), self.steps_per_second(),
                           self.cpu_seconds_per_step())

    def steps_per_second(self) -> dict[str, float]:
        return {name: t[0] / t[1] for name, t in self.timing.items() if t[1] > 0}

    def cpu_seconds_per_step(self) -> dict[str, float]:
        """CPU time per step (all threads): a load-independent cost figure on a shared machine."""
        return {name: t[2] / t[0] for name, t in self.timing.items() if t[0] > 0 and len(t) > 2}

    def _run_phase(self, index: int, start: int) -> None:
        phase = self.plan.phases[index]
        self.model.set_trainable(list(phase.trainable))
        if self.objective.matcher is not None:
            self.objective.matcher.requires_grad_(phase.losses.get("feature", 0.0) > 0)
        params = [p for p in self.objective.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, phase, self.cfg.train.weight_decay)
        scheduler = build_scheduler(optimizer, phase)
        if start > 0 and self.resume_optimizer is not None and optimizer is not None:
            tensors, meta, sched = self.resume_optimizer
            optimizer.load_state_dict(unflatten_optimizer_state(tensors, meta))
            load_scheduler_state(scheduler, sched)
        self.resume_optimizer = None
        wrapped = self.accelerator.prepare_model(self.objective) if params else self.objective
        prepared_opt = self.accelerator.prepare_optimizer(optimizer) if optimizer is not None else None
        acc = self.accelerator
        batches = train_loader(self.data, self.cfg.train.batch_size, self.cfg.train.seed, self.offset,
                               acc.process_index, acc.num_processes, self.cfg.train.num_workers)
        bar = tqdm(total=phase.steps, initial=start, desc=f"{phase.name} ({index + 1}/{len(self.plan.phases)})",
                   unit="step", disable=not self.is_main, file=sys.stderr, dynamic_ncols=True)
        try:
            for step in range(start, phase.steps):
                t0, c0 = time.perf_counter(), time.process_time()
                losses = self._train_step(wrapped, prepared_opt, scheduler, params, batches, phase)
                self._count_time(phase.name, time.perf_counter() - t0, time.process_time() - c0)
                bar.set_postfix(loss=f"{losses['loss']:.4f}", refresh=False)
                bar.update(1)
                self._after_step(index, step + 1, losses, optimizer, scheduler)
        finally:
            bar.close()

    def _count_time(self, name: str, seconds: float, cpu_seconds: float) -> None:
        steps, secs, cpu = (self.timing.get(name, []) + [0, 0.0, 0.0][len(self.timing.get(name, [])):])[:3]
        self.timing[name] = [steps + 1, secs + seconds, cpu + cpu_seconds]

    def _train_step(self, wrapped, optimizer, scheduler, params, batches, phase: PhaseConfig) -> dict[str, float]:
        self.objective.train()
        acc, sums = self.accelerator, {}
        for _ in range(self.cfg.train.grad_accum):
            batch = next(batches).to(acc.device)
            with acc.accumulate(wrapped):
                out = wrapped(batch, phase.losses)
                loss = out["loss"]
                if not torch.isfinite(loss.detach()).all():
                    raise Brain2TextError(f"the loss became {loss.item()} at step {self.global_step + 1} (phase "
                                          f"{phase.name!r}); lower the learning rate or check the data")
                if loss.requires_grad:
                    acc.backward(loss)
                    if acc.sync_gradients and self.cfg.train.max_grad_norm > 0:
                        acc.clip_grad_norm_(params, self.cfg.train.max_grad_norm)
                if optimizer is not None:
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            for name, value in out.items():
                if value is not None:
                    sums[name] = sums.get(name, 0.0) + float(value.detach().float().item())
        if scheduler is not None:
            scheduler.step()
        self.global_step += 1
        self.offset += self.cfg.train.batch_size * acc.num_processes * self.cfg.train.grad_accum
        return {k: v / self.cfg.train.grad_accum for k, v in sums.items()}

    def _after_step(self, index: int, phase_step: int, losses: dict[str, float], optimizer, scheduler) -> None:
        phase, step, tc = self.plan.phases[index], self.global_step, self.cfg.train
        fault_point("after_step", step)
        phase_end = phase_step == phase.steps
        if step % tc.log_every == 0 or phase_end:
            lr = scheduler.get_last_lr()[0] if scheduler is not None else 0.0
            steps, secs = self.timing.get(phase.name, [0, 0.0])[:2]
            self.logger.log(step, phase.name, "train",
                            {**losses, "lr": lr, "steps_per_s": steps / secs if secs else 0.0})
        if step % tc.eval_every == 0 or phase_end:
            self._validate(index)
        stop = self._stop_requested()
        if step % tc.save_every == 0 or phase_end or stop:
            self._save_checkpoint(index, phase_step, None if phase_end else optimizer, scheduler)
        if stop:
            name = signal.Signals(stop).name
            raise TrainingInterrupted(f"stopped by {name} at step {step}; checkpoint saved; run the same command "
                                      "again to continue", self.ckpt_root / ckpt_io.checkpoint_name(step))

    # ------------------------------------------------------------------------- validation
    def _validate(self, index: int) -> None:
        phase = self.plan.phases[index]
        if self.is_main and len(self.data.val) > 0:
            tc = self.cfg.train
            with isolated_rng(tc.seed + 1_000_003):
                metrics, generations = validate(
                    self.objective, val_batches(self.data, tc.batch_size, tc.val_batches), phase,
                    self.accelerator.device, self.cfg.rvq.codebook_size, tc.n_val_generations, self.cfg.decoding)
            self.logger.log(self.global_step, phase.name, "val", metrics)
            shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if not k.startswith("rvq/"))
            tqdm.write(f"[step {self.global_step}] {phase.name} validation: {shown}", file=sys.stderr)
            for pred, ref in generations:
                tqdm.write(f"    generated: {pred!r}\n    reference: {ref!r}", file=sys.stderr)
            if generations:
                self.logger.log_text(self.global_step, "val/generations",
                                     "\n\n".join(f"generated: {p}  \nreference: {r}" for p, r in generations))
            if index == len(self.plan.phases) - 1:  # only the last phase yields a deployable model
                self._maybe_save_best(metrics)
        self.accelerator.wait_for_everyone()

    def _maybe_save_best(self, metrics: dict[str, float]) -> None:
        name = self.best["metric"]
        if name not in metrics:
            if not self.warned_metric:
                warnings.warn(f"train.best_metric {name!r} is not among the validation metrics {sorted(metrics)}",
                              stacklevel=2)
            self.warned_metric = True
            return
        if is_better(name, metrics[name], self.best["value"]):
            self.best = {"metric": name, "value": metrics[name], "step": self.global_step}
            self._export("best_model", {"step": self.global_step, "metric": name, "value": metrics[name]})

    def _export(self, name: str, info: dict[str, Any]) -> Path:
        """Write ``output_dir/name`` (the model, ``training_info.json`` with this run's phases, and the model
        card refreshed with them) atomically."""
        path = self.output_dir / name
        info = {**info, "phases": [dataclasses.asdict(p) for p in self.plan.phases]}
        with atomic_directory(path) as tmp:
            self.save_model(self.model, tmp)
            (tmp / TRAINING_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            if (tmp / MODEL_CARD_FILE).is_file():  # save_model wrote a card (a stand-in model in tests does not)
                write_model_card(tmp, self.model, info, model_path=path)
        return path

    # ------------------------------------------------------------------------- checkpoints
    def _save_checkpoint(self, index: int, phase_step: int, optimizer, scheduler) -> None:
        rng = [capture_rng_state()]
        if self.accelerator.num_processes > 1:
            rng = gather_object(rng)
        if self.is_main:
            opt_tensors, opt_meta = (flatten_optimizer_state(optimizer.state_dict()) if optimizer is not None
                                     else ({}, None))
            state = {
                "global_step": self.global_step, "phase_index": index, "phase": self.plan.phases[index].name,
                "phase_step": phase_step, "config_hash": self.digest, "data": self._position(),
                "rng": rng, "optimizer": opt_meta,
                "scheduler": scheduler_state(scheduler) if optimizer is not None and scheduler is not None else None,
                "best": self.best, "timing": self.timing, "world_size": self.accelerator.num_processes,
            }
            ckpt_io.save_checkpoint(self.ckpt_root, self.global_step, model_tensors(self.objective, self.excluded),
                                    opt_tensors, state)
            ckpt_io.prune_checkpoints(self.ckpt_root, self.cfg.train.keep_last)
        self.accelerator.wait_for_everyone()

    def _position(self) -> dict[str, int]:
        return StreamPosition(self.offset, len(self.data.train)).to_dict()

    def _resume(self) -> bool:
        if not self.resume_allowed:
            return False
        found = None
        if self.is_main:
            ckpt_io.remove_stale_temporaries(self.ckpt_root)
            found = ckpt_io.latest_checkpoint(self.ckpt_root)
        path = self._broadcast(str(found.path) if found is not None else None)
        if path is None:
            if any(self.ckpt_root.glob("step-*.corrupt*")):  # never silently start over a run's history
                raise Brain2TextError("every checkpoint of this run is corrupt (kept as step-*.corrupt); move them "
                                      "away to start over, or use a new --output_dir", self.ckpt_root)
            return False
        if found is None:
            found = ckpt_io.load_checkpoint(Path(path))
        self._restore(found)
        if self.is_main:
            tqdm.write(f"resuming from {found.path} (step {found.step})", file=sys.stderr)
        return True

    def _broadcast(self, value):
        if self.accelerator.num_processes == 1:
            return value

        return broadcast_object_list([value])[0]

    def _restore(self, ckpt: ckpt_io.Checkpoint) -> None:
        st = ckpt.state
        if st.get("config_hash") != self.digest:
            raise Brain2TextError(f"checkpoint was written by another config (hash {st.get('config_hash')}, "
                                  f"this run {self.digest})", ckpt.path)
        load_model_tensors(self.objective, ckpt.model, self.excluded, ckpt.path)
        self.global_step, self.offset = int(st["global_step"]), int(st["data"]["offset"])
        self.timing = {k: list(v) for k, v in st.get("timing", {}).items()}
        if st["best"].get("metric") == self.cfg.train.best_metric:  # best_metric may change on resume
            self.best = dict(st["best"])
        if int(st["data"]["n_examples"]) != len(self.data.train):
            warnings.warn(f"the training split changed size ({st['data']['n_examples']} -> {len(self.data.train)}); "
                          "the resumed data order differs from the original run's", stacklevel=2)
        rng, rank = st["rng"], self.accelerator.process_index
        if len(rng) == self.accelerator.num_processes:
            restore_rng_state(rng[rank])
        else:
            warnings.warn(f"checkpoint has RNG states of {len(rng)} processes, this run has "
                          f"{self.accelerator.num_processes}: reseeding", stacklevel=2)
            seed_everything(self.cfg.train.seed + self.global_step * 1009 + rank)
        if st.get("optimizer") is not None:
            self.resume_optimizer = (ckpt.optimizer, st["optimizer"], st["scheduler"])

    # ------------------------------------------------------------------------- end, signals
    def _finish(self) -> None:
        if self.is_main:
            final = self.output_dir / "final_model"
            self._export("final_model", {"step": self.global_step, "mode_phases": [p.name for p in self.plan.phases]})
            if self.best["value"] is None and not (self.output_dir / "best_model").exists():
                self._export("best_model", {"step": self.global_step, "metric": None, "note": "no validation ran"})
            plot_history(self.output_dir)
            atomic_write_json(self.output_dir / "train_summary.json", {
                "global_step": self.global_step, "best": self.best, "steps_per_second": self.steps_per_second(),
                "cpu_seconds_per_step": self.cpu_seconds_per_step(),
                "final_model": str(final), "best_model": str(self.output_dir / "best_model"),
            })
        self.accelerator.wait_for_everyone()

    def _stop_requested(self) -> int | None:
        stop = self.stop_signal or 0
        if self.accelerator.num_processes > 1:
            flag = torch.tensor([stop], device=self.accelerator.device)
            stop = int(self.accelerator.reduce(flag, reduction="max").item())
        return stop or None

    def _install_signal_handlers(self) -> dict:
        def handler(signum, frame):
            if self.stop_signal is not None:  # a second signal: stop now
                raise KeyboardInterrupt
            self.stop_signal = signum
            if self.is_main:
                tqdm.write(f"{signal.Signals(signum).name}: finishing this step, then saving a checkpoint",
                           file=sys.stderr)

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
