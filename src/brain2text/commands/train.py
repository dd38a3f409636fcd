"""``brain2text train`` / ``python train.py``: the seed's training command.

    python train.py --config configs/default_config.yaml --mode multi_phase|full|distill \
        [--teacher_checkpoint DIR] --output_dir DIR [--resume] [key=value ...]

Runs unchanged under ``accelerate launch train.py ...`` and ``torchrun --nproc_per_node N train.py ...``.
Re-running the same command on the same ``--output_dir`` continues from its newest good checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from ..config import load_config
from ..training.phases import MODES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML config, e.g. configs/default_config.yaml")
    p.add_argument("--mode", required=True, help=f"training strategy: {' | '.join(MODES)}")
    p.add_argument("--output_dir", required=True, help="where checkpoints, logs, best_model and final_model go")
    p.add_argument("--teacher_checkpoint", help="trained teacher model directory (--mode distill), e.g. a run's "
                                                "best_model")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest good checkpoint in --output_dir (an error if there is none); "
                        "re-running the same command without it also continues")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. train.batch_size=4")


def _preflight(output_dir: str) -> None:
    """An --output_dir that cannot be written stops here in one line, before the model is built."""
    from ..utils.preflight import check_output_path

    check_output_path(output_dir, directory=True, what="--output_dir")


def run(args: argparse.Namespace) -> int:
    from ..training.phases import build_plan

    cfg = load_config(args.config, args.overrides)
    build_plan(cfg, args.mode)  # an unknown mode or a bad phase stops here, before any import of the model stack
    _preflight(args.output_dir)
    from ..training.run import train  # the model stack (torch, transformers, peft: seconds to import)
    from ..training.trainer import TrainingInterrupted

    try:
        result = train(cfg, args.mode, args.output_dir, resume=args.resume, teacher_dir=args.teacher_checkpoint)
    except TrainingInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 130
    speeds = ", ".join(f"{name} {v:.3g} steps/s ({result.cpu_seconds_per_step.get(name, 0):.3g} CPU-s/step)"
                       for name, v in result.steps_per_second.items())
    best = result.best
    print(f"done: {result.global_step} steps in {args.output_dir} ({speeds})")
    if best.get("value") is not None:
        print(f"best_model: {best['metric']}={best['value']:.4g} at step {best['step']} "
              f"-> {args.output_dir}/best_model")
    print(f"final_model: {args.output_dir}/final_model")
    return 0
