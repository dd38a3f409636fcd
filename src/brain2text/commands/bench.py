"""``brain2text bench [--quick] [--only B1,B5] [--out benchmarks/results.json]``: the benchmark suite.

Same code as ``python -m benchmarks`` (``brain2text.benchmarks.suite``); see benchmarks/README.md.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..benchmarks.suite import add_arguments as suite_arguments

    suite_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..benchmarks.suite import run as run_suite

    return run_suite(args)
