"""Train / val / test splits decided on the sentence text, identical for every subject.

* ``split: sentence`` -- a stable hash (sha256 of ``split_salt`` + the normalised sentence) puts
  ``test_fraction`` of distinct sentences in test and ``val_fraction`` in val. The same text always
  gets the same split, whoever heard it and in whichever story.
* ``split: story`` -- whole stories are held out (``test_stories``, ``val_stories``). A sentence
  text that occurs in a test story must not be learned from, so text-disjointness wins: such a
  text is ``test`` wherever it occurs (and a text of a val story is ``val`` wherever it occurs,
  unless it is also in a test story). Use :func:`assign_splits` over the whole dataset for this;
  :func:`assign_split` alone only knows the story.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from ..config import DataConfig
from .text import normalize_for_split

SPLITS = ("train", "val", "test")
_RANK = {"train": 0, "val": 1, "test": 2}


def hash_unit(text: str, salt: str) -> float:
    """A stable number in [0, 1) from ``salt`` + the normalised ``text`` (same on every machine)."""
    digest = hashlib.sha256((salt + normalize_for_split(text)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_split(text: str, story: str, cfg: DataConfig) -> str:
    """'train', 'val' or 'test' for one sentence (story mode: by story only, see module doc)."""
    if cfg.split == "sentence":
        u = hash_unit(text, cfg.split_salt)
        if u < cfg.test_fraction:
            return "test"
        if u < cfg.test_fraction + cfg.val_fraction:
            return "val"
        return "train"
    story = (story or "").lower()
    if story in {s.lower() for s in cfg.test_stories}:
        return "test"
    if story in {s.lower() for s in cfg.val_stories}:
        return "val"
    return "train"


def assign_splits(items: Sequence[tuple[str, str]], cfg: DataConfig) -> list[str]:
    """Splits for many ``(text, story)`` pairs, text-disjoint across splits in both modes.

    Every occurrence of one normalised text gets the most held-out split any occurrence has
    (test > val > train), so no test sentence text is ever in train or val.
    """
    first = [assign_split(text, story, cfg) for text, story in items]
    strongest: dict[str, str] = {}
    for (text, _), split in zip(items, first):
        key = normalize_for_split(text)
        if _RANK[split] > _RANK[strongest.get(key, "train")]:
            strongest[key] = split
    return [strongest.get(normalize_for_split(text), "train") for text, _ in items]


def split_texts(texts: Iterable[str], splits: Iterable[str]) -> dict[str, set[str]]:
    """Normalised texts per split (for leak checks: ``out['test'] & out['train']`` must be empty)."""
    out: dict[str, set[str]] = {s: set() for s in SPLITS}
    for text, split in zip(texts, splits):
        out[split].add(normalize_for_split(text))
    return out
