"""What the loop needs from the data layer: the train and validation examples, how to collate
them into a :class:`~brain2text.data.batch.MEGBatch`, and the preprocessing record saved with the
model. Loaders here are resumable and deterministic (see :mod:`.sampler`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from ..config import Config
from ..data.batch import MEGBatch, tokenize_batch
from ..data.cache import build_cache
from ..data.dataset import MEGDataset, collate_examples
from ..errors import DataError
from .sampler import ResumableBatchSampler


@dataclass
class TrainingData:
    train: Sequence[Any]  # map-style dataset of examples
    val: Sequence[Any]
    collate: Callable[[list[Any]], MEGBatch]
    preprocessing: dict[str, Any] | None = None  # saved beside the model for inference
    source: str = "<data>"
    tokenizer: Any = None  # the model's: batches then carry their token ids (set once the model is built)
    train_texts: list[str] | None = None  # the training split's sentences (decoder.ctc_units: training_text)
    phonemes: bool = True  # batches carry each word's phonemes (only a model with a phoneme head reads them)

    def batch(self, items: list[Any]) -> MEGBatch:
        """Collate ``items`` and, with a tokenizer, add their token ids (the losses read them)."""
        batch = self.collate(items)
        return batch if self.tokenizer is None else tokenize_batch(batch, self.tokenizer, self.phonemes)


def build_training_data(cfg: Config) -> TrainingData:
    """Preprocess (or reuse the cache of) ``cfg.data`` and return its train/validation splits."""
    example_set = build_cache(cfg.data)
    train, val = MEGDataset(example_set, "train"), MEGDataset(example_set, "val")
    if len(train) == 0:
        raise DataError("the training split is empty (check data.subjects, data.stories and the split settings)",
                        cfg.data.bids_root)
    texts = sorted({example_set.examples[j]["text"] for j in train.indices})
    return TrainingData(train=train, val=val, collate=collate_examples,
                        preprocessing=preprocessing_record(example_set, cfg), source=cfg.data.bids_root,
                        train_texts=texts)


def preprocessing_record(example_set: Any, cfg: Config) -> dict[str, Any]:
    """What inference needs to preprocess raw recordings the same way: the data settings (filters,
    rate, clamp, delay), the robust-scaler statistics and the subject slots of the model."""
    for name in ("preprocessing", "preprocessing_info"):
        value = getattr(example_set, name, None)
        value = value() if callable(value) else value
        if value is not None:
            return value
    return {
        "data": dataclasses.asdict(cfg.data),
        "sfreq": float(example_set.sfreq),
        "subjects": list(getattr(example_set, "subjects", [])),
        "scalers": getattr(example_set, "scalers", {}),
        "ch_names": list(getattr(example_set, "ch_names", [])),
        "synthetic": bool(getattr(example_set, "synthetic", False)),
    }


def train_loader(data: TrainingData, batch_size: int, seed: int, offset: int, rank: int, world_size: int,
                 num_workers: int) -> Iterator[MEGBatch]:
    """Endless iterator of this rank's training batches, starting ``offset`` examples into the stream."""
    sampler = ResumableBatchSampler(len(data.train), batch_size, seed, offset, rank, world_size)
    loader = DataLoader(data.train, batch_sampler=sampler, collate_fn=data.batch, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(seed), persistent_workers=False)
    return iter(loader)


def val_batches(data: TrainingData, batch_size: int, max_batches: int) -> Iterator[MEGBatch]:
    """Validation batches in a fixed order (at most ``max_batches``; 0 = all)."""
    n = len(data.val)
    if max_batches > 0:
        n = min(n, max_batches * batch_size)
    for start in range(0, n, batch_size):
        yield data.batch([data.val[i] for i in range(start, min(start + batch_size, n))])
