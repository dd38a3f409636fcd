#!/usr/bin/env python
"""Seed entry point, kept as promised:

    python train.py --config configs/default_config.yaml --mode multi_phase|full|distill \
        [--teacher_checkpoint DIR] --output_dir DIR [key=value ...]

Same as ``brain2text train ...``; also runs under ``accelerate launch train.py ...``.
"""

import sys

from brain2text.cli import run_script

if __name__ == "__main__":
    sys.exit(run_script("train"))
