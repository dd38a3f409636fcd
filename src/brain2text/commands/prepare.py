"""``brain2text prepare --config CFG [key=value ...]``: build (or reuse) the example cache, print the split."""

from __future__ import annotations

import argparse
import json

from ..config import load_config
from ..data.cache import build_cache


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (its data section is used)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.bids_root=/data/meg_masc")


def summary(example_set) -> dict:
    """Split sizes and cache facts of a built :class:`~brain2text.data.cache.ExampleSet`."""
    return {
        "cache": str(example_set.path), "status": "hit" if example_set.hit else "built",
        "synthetic": example_set.synthetic, "split_mode": example_set.manifest["params"]["split"],
        "splits": example_set.split_counts(), "n_examples": len(example_set),
        "n_subjects": len(example_set.subjects), "n_recordings": len(example_set.recordings),
        "sfreq": example_set.sfreq, "n_chans": sorted({len(r["ch_names"]) for r in example_set.recordings}),
        "skipped": [{"path": s.path, "reason": s.reason} for s in example_set.skipped],
    }


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    info = summary(build_cache(cfg.data, progress=not (args.quiet or args.json)))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"cache: {info['cache']} ({info['status']})" + ("  [SYNTHETIC DATA]" if info["synthetic"] else ""))
    print(f"split: {info['split_mode']}   subjects: {info['n_subjects']}   recordings: {info['n_recordings']}"
          f"   sfreq: {info['sfreq']:g} Hz   channels: {info['n_chans']}")
    for name, c in info["splits"].items():
        print(f"  {name:5s}  {c['sentences']:6d} sentences  {c['examples']:7d} examples")
    print(f"skipped: {len(info['skipped'])}")
    for s in info["skipped"]:
        print(f"  {s['path']}: {s['reason']}")
    return 0
