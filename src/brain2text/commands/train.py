"""``brain2text train`` / ``python train.py``: the seed's training command."""

from __future__ import annotations

import argparse

from ..errors import Brain2TextError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML config, e.g. configs/default_config.yaml")
    p.add_argument("--mode", required=True, choices=["multi_phase", "full", "distill"], help="training strategy")
    p.add_argument("--output_dir", required=True, help="where checkpoints, logs and best_model go")
    p.add_argument("--teacher_checkpoint", help="trained teacher model directory (--mode distill)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output_dir")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")


def run(args: argparse.Namespace) -> int:
    raise Brain2TextError("training is not built yet in this version (see issue #5)")
