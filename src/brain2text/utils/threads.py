"""How many CPU threads torch uses while decoding.

Decoding a small model is thousands of tiny operations (one beam step of a 0.5M-parameter decoder is a
few microseconds of arithmetic), and on a CPU each intra-op thread pool barrier can cost more than the
work it splits: on this project's 2-core machines one thread decoded the demo model as fast as two when
the machine was idle and 12x faster under load (128 s against 10.4 s; ``benchmarks/README.md``, B8). A
large model's matrix products do benefit from threads. ``auto`` therefore means one thread for models under
:data:`SMALL_MODEL_PARAMS` parameters on the CPU, and torch's default otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import Brain2TextError

SMALL_MODEL_PARAMS = 50_000_000


def parse_threads(value: str) -> int | None:
    """``--threads`` value: ``auto`` (None) or a positive integer."""
    if value == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise Brain2TextError(f"--threads must be 'auto' or a positive integer, got {value!r}")
    return n


def decode_threads(model: torch.nn.Module, requested: int | None, device: str | torch.device = "cpu") -> int:
    """Threads for decoding ``model``: ``requested`` if given, else the ``auto`` rule (module docstring)."""
    if requested is not None:
        return requested
    if torch.device(device).type == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
        return 1
    return torch.get_num_threads()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads; the previous setting is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
