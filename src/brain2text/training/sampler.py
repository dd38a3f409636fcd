"""Resumable, deterministic order of training examples.

The examples form an endless stream: epoch ``e`` is the permutation drawn from
``numpy.random.default_rng([seed, e])``, and epochs follow each other. The position in the stream is
one integer (examples consumed by all processes together), so a resumed run skips exactly the
batches already used. A global batch of ``batch_size * world_size`` consecutive stream entries is
split between processes (rank ``r`` takes the ``r``-th slice), so DDP processes see disjoint data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


def epoch_permutation(n_examples: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n_examples)


@dataclass
class StreamPosition:
    """Where the training stream stands: ``offset`` examples consumed in total."""

    offset: int
    n_examples: int

    @property
    def epoch(self) -> int:
        return self.offset // self.n_examples

    @property
    def index(self) -> int:
        return self.offset % self.n_examples

    def to_dict(self) -> dict[str, int]:
        return {"offset": self.offset, "epoch": self.epoch, "index": self.index, "n_examples": self.n_examples}


class ResumableBatchSampler:
    """Endless batch sampler for ``DataLoader(batch_sampler=...)`` starting at a stream offset.

    Iterating yields this rank's index lists; the consumer advances its own
    :class:`StreamPosition` by ``global_batch`` per batch it actually used (workers prefetch).
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int, start_offset: int = 0, rank: int = 0,
                 world_size: int = 1):
        if n_examples <= 0:
            raise ValueError("the training split is empty")
        self.n_examples = n_examples
        self.batch_size = batch_size
        self.seed = seed
        self.start_offset = start_offset
        self.rank = rank
        self.world_size = world_size

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def _stream(self, offset: int) -> Iterator[int]:
        epoch, index = divmod(offset, self.n_examples)
        while True:
            perm = epoch_permutation(self.n_examples, self.seed, epoch)
            yield from (int(i) for i in perm[index:])
            epoch, index = epoch + 1, 0

    def __iter__(self) -> Iterator[list[int]]:
        stream = self._stream(self.start_offset)
        lo = self.rank * self.batch_size
        while True:
            chunk = [next(stream) for _ in range(self.global_batch)]
            yield chunk[lo:lo + self.batch_size]
