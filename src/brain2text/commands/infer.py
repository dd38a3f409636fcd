"""``brain2text infer`` / ``python inference.py``: decode recordings to JSON."""

from __future__ import annotations

import argparse

from ..errors import Brain2TextError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model_path", required=True, help="a trained model directory (output_dir/best_model)")
    p.add_argument("--input_file", required=True, nargs="+", help=".fif, .npy, any MNE-readable recording, or a glob")
    p.add_argument("--output_file", required=True, help="results JSON (written atomically)")


def run(args: argparse.Namespace) -> int:
    raise Brain2TextError("inference is not built yet in this version (see issue #6)")
