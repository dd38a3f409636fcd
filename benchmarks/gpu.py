"""One GPU, under 8 minutes: a full-size phase-3 training step (LLaMA-2-7B-shaped decoder, random bf16
weights, LoRA r=8) and the full-size encoder + RVQ; tokens/s and MFU (H200 bf16 dense peak 989 TFLOP/s).

    python benchmarks/gpu.py --out benchmarks/gpu_results.json     # on a GPU machine
    python benchmarks/gpu.py --tiny                                # CPU smoke test, seconds

The code is ``brain2text.benchmarks.gpu``; this file also works from a checkout that is not installed.
"""

import sys
from pathlib import Path

try:
    import brain2text  # noqa: F401
except ImportError:  # a bare checkout on the GPU machine
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from brain2text.benchmarks.gpu import main

if __name__ == "__main__":
    sys.exit(main())
