"""``brain2text demo`` (``make demo``): the main job on the embedded default, end to end."""

from __future__ import annotations

import argparse

from ..errors import Brain2TextError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="configs/demo.yaml", help="demo configuration (default configs/demo.yaml)")
    p.add_argument("--out", default="outputs/demo", help="where metrics, models and the inference JSON go")
    p.add_argument("--subjects", type=int, default=2, help="synthetic subjects (default 2)")
    p.add_argument("--max-seconds", type=float, default=900.0, help="seconds of each story per subject (default 900)")
    p.add_argument("--snr", type=float, default=1.0, help="synthetic signal-to-noise ratio (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    p.add_argument("--no-story-split", action="store_true", help="skip the held-out-story run")
    p.add_argument("--jobs", type=int, default=2,
                   help="evaluations run at a time, each on one thread, its output in <out>/logs/ (default 2; "
                        "1: one by one, their progress shown here)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides for every stage")


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoSettings, run_demo

    if args.jobs < 1:
        raise Brain2TextError(f"--jobs must be at least 1, got {args.jobs}")
    return run_demo(DemoSettings(config=args.config, out=args.out, subjects=args.subjects, max_seconds=args.max_seconds,
                                 snr=args.snr, seed=args.seed, story_split=not args.no_story_split, jobs=args.jobs,
                                 overrides=list(args.overrides)))
