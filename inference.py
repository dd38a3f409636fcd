#!/usr/bin/env python
"""Seed entry point, kept as promised:

    python inference.py --model_path ./output/best_model --input_file x.fif|x.npy --output_file results.json

Same as ``brain2text infer ...``.
"""

import sys

from brain2text.cli import run_script

if __name__ == "__main__":
    sys.exit(run_script("infer"))
