"""``brain2text config``: print the resolved configuration, or the help of every key."""

from __future__ import annotations

import argparse

import yaml

from ..config import field_help, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (default: built-in full-size defaults)")
    p.add_argument("--help-keys", action="store_true", help="list every key with its help text")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.batch_size=4")


def run(args: argparse.Namespace) -> int:
    if args.help_keys:
        for key, text in field_help():
            print(f"{key:34s} {text}")
        return 0
    cfg = load_config(args.config, args.overrides)
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    return 0
