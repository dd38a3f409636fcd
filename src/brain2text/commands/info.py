"""``brain2text info --config CFG [--json]``: parameter counts and memory estimates, no weights allocated."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (default: built-in full-size defaults)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. decoder.lora_r=16")


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # info never downloads: unknown shapes are an error
    from ..config import load_config
    from ..models.info import model_info

    info = model_info(load_config(args.config, args.overrides))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    d = info["decoder"]
    print(f"decoder: {d['path']} (hidden {d['hidden_size']}, {d['n_layers']} layers, {d['n_tokens']} tokens, "
          f"{d['dtype']})")
    print(f"MEG tokens per second into the decoder: {info['meg_tokens_per_second']:g}\n")
    print(f"{'component':24s} {'parameters':>16s}")
    for name, n in info["params"].items():
        print(f"{name:24s} {n:16,d}")
    print(f"\n{'phase':34s} {'trainable':>14s} {'memory (GB)':>12s}")
    print(f"{'inference':34s} {'-':>14s} {info['memory_gb']['inference']:12.2f}")
    for key, n in info["trainable"].items():
        print(f"{key:34s} {n:14,d} {info['memory_gb'][key]:12.2f}")
    print("\nassumptions:")
    for line in info["assumptions"]:
        print(f"  - {line}")
    return 0
