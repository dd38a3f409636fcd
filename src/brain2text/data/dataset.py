"""PyTorch ``Dataset`` / ``DataLoader`` over a cached :class:`~brain2text.data.cache.ExampleSet`.

Windows have different lengths (sentences) and, across montages, different channel counts:
:func:`collate_examples` pads both with zeros and returns masks in a :class:`MEGBatch`.
"""

from __future__ import annotations

from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset

from .batch import MEGBatch, tokenize_batch
from .cache import ExampleSet

SPLIT_NAMES = ("train", "val", "test", "all")


class MEGDataset(Dataset):
    """The examples of one split (``"train"``, ``"val"``, ``"test"`` or ``"all"``).

    Items are dicts: ``meg`` (C, T) float32 tensor, ``positions`` (C, 2), ``subject_index``,
    ``text``, ``words``, ``word_onsets`` (s from window start), ``id``, ``sfreq``.
    """

    def __init__(self, example_set: ExampleSet, split: str):
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
        self.example_set = example_set
        self.split = split
        self.indices = list(range(len(example_set))) if split == "all" else example_set.indices(split)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        j = self.indices[i]
        ex = self.example_set.examples[j]
        return {
            "meg": torch.from_numpy(self.example_set.get_meg(j)),
            "positions": torch.from_numpy(self.example_set.positions_of(j)),
            "subject_index": int(ex["subject_index"]),
            "text": ex["text"],
            "words": list(ex["words"]),
            "word_onsets": list(ex["word_onsets"]),
            "id": ex["id"],
            "sfreq": self.example_set.sfreq,
        }


def collate_examples(items: list[dict], tokenizer=None) -> MEGBatch:
    """Pad items to (B, C_max, T_max); ``meg_mask`` (B, T) and ``channel_mask`` (B, C) mark real data.
    With ``tokenizer`` the batch also carries its token ids (:func:`~brain2text.data.batch.tokenize_batch`)."""
    if not items:
        raise ValueError("collate_examples needs at least one item")
    n_chans = max(it["meg"].shape[0] for it in items)
    n_times = max(it["meg"].shape[1] for it in items)
    b = len(items)
    meg = torch.zeros(b, n_chans, n_times, dtype=torch.float32)
    meg_mask = torch.zeros(b, n_times, dtype=torch.bool)
    channel_mask = torch.zeros(b, n_chans, dtype=torch.bool)
    positions = torch.zeros(b, n_chans, 2, dtype=torch.float32)
    for k, it in enumerate(items):
        c, t = it["meg"].shape
        meg[k, :c, :t] = it["meg"]
        meg_mask[k, :t] = True
        channel_mask[k, :c] = True
        positions[k, :c] = it["positions"]
    batch = MEGBatch(
        meg=meg,
        meg_mask=meg_mask,
        subject_index=torch.tensor([it["subject_index"] for it in items], dtype=torch.long),
        channel_mask=channel_mask,
        sensor_positions=positions,
        texts=[it["text"] for it in items],
        words=[it["words"] for it in items],
        word_onsets=[it["word_onsets"] for it in items],
        example_ids=[it["id"] for it in items],
        sfreq=float(items[0]["sfreq"]),
    )
    return batch if tokenizer is None else tokenize_batch(batch, tokenizer)


def build_dataloader(example_set: ExampleSet, split: str, batch_size: int, shuffle: bool, seed: int = 0,
                     num_workers: int = 0, drop_last: bool = False, tokenizer=None) -> DataLoader:
    """A DataLoader of :class:`MEGBatch` for ``split``; the shuffle order depends only on ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(MEGDataset(example_set, split), batch_size=batch_size, shuffle=shuffle,
                      collate_fn=partial(collate_examples, tokenizer=tokenizer), generator=generator,
                      num_workers=num_workers, drop_last=drop_last, persistent_workers=False)
