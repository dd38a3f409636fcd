"""The batch that flows from the data layer into the model (brainmagick's ``SegmentBatch``).

The data layer tokenises (as LLaVA's dataset hands its model ids and labels): :func:`tokenize_batch`
puts the target token ids, the CTC targets and each word's ids on the batch, in the decoder
tokenizer's units, and each word's phonemes; the model never tokenises targets itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from .pronunciation import phoneme_ids


@dataclass
class MEGBatch:
    """A padded batch of sentence examples.

    Shapes: B examples, C channels (padded to the widest montage), T samples (padded to the longest
    window), at the preprocessed sampling rate.
    """

    meg: torch.Tensor  # (B, C, T) float32, preprocessed (robust-scaled, clamped), zeros where padded
    meg_mask: torch.Tensor  # (B, T) bool, True on real samples
    subject_index: torch.Tensor  # (B,) long, index into the model's subject layer
    channel_mask: torch.Tensor | None = None  # (B, C) bool, True on real channels (None = all real)
    sensor_positions: torch.Tensor | None = None  # (B, C, 2) float in [0, 1], 2-D sensor layout
    texts: list[str] = field(default_factory=list)  # normalised target sentences
    words: list[list[str]] = field(default_factory=list)  # the words of each sentence
    word_onsets: list[list[float]] = field(default_factory=list)  # seconds from window start (delay applied)
    example_ids: list[str] = field(default_factory=list)
    sfreq: float = 100.0
    # token ids, set by tokenize_batch (the decoder tokenizer's ids, no special tokens)
    target_ids: list[list[int]] = field(default_factory=list)  # each sentence
    ctc_targets: torch.Tensor | None = None  # (B, L) long, right-padded with 0
    ctc_target_lengths: torch.Tensor | None = None  # (B,) long
    word_ids: list[list[list[int]]] = field(default_factory=list)  # each word of each sentence
    # each word's phonemes (indices into data.pronunciation.PHONEMES), set by tokenize_batch
    phoneme_ids: list[list[list[int]]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.meg.shape[0]

    def to(self, device: torch.device | str) -> "MEGBatch":
        def mv(t):
            return None if t is None else t.to(device)

        return replace(
            self,
            meg=mv(self.meg),
            meg_mask=mv(self.meg_mask),
            subject_index=mv(self.subject_index),
            channel_mask=mv(self.channel_mask),
            sensor_positions=mv(self.sensor_positions),
            ctc_targets=mv(self.ctc_targets),
            ctc_target_lengths=mv(self.ctc_target_lengths),
        )

    def select(self, index: list[int]) -> "MEGBatch":
        """A sub-batch (for controls and per-example generation)."""
        idx = torch.as_tensor(index, dtype=torch.long)

        def pick(t):
            return None if t is None else t[idx]

        def rows(values: list) -> list:
            return [values[i] for i in index] if values else []

        return replace(
            self,
            meg=pick(self.meg),
            meg_mask=pick(self.meg_mask),
            subject_index=pick(self.subject_index),
            channel_mask=pick(self.channel_mask),
            sensor_positions=pick(self.sensor_positions),
            texts=rows(self.texts),
            words=rows(self.words),
            word_onsets=rows(self.word_onsets),
            example_ids=rows(self.example_ids),
            target_ids=rows(self.target_ids),
            ctc_targets=pick(self.ctc_targets),
            ctc_target_lengths=pick(self.ctc_target_lengths),
            word_ids=rows(self.word_ids),
            phoneme_ids=rows(self.phoneme_ids),
        )


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def pad_token_ids(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists as CTC targets: ``(B, L)`` long, right-padded with 0 (``L >= 1``), and lengths ``(B,)``."""
    lengths = torch.tensor([len(i) for i in ids], dtype=torch.long)
    targets = torch.zeros(len(ids), max([1, *lengths.tolist()]), dtype=torch.long)
    for row, i in enumerate(ids):
        targets[row, : len(i)] = torch.tensor(i, dtype=torch.long)
    return targets, lengths


def tokenize_batch(batch: MEGBatch, tokenizer, phonemes: bool = True) -> MEGBatch:
    """``batch`` with its texts and words in ``tokenizer``'s ids (``target_ids``, ``ctc_targets`` +
    ``ctc_target_lengths``, ``word_ids``) and, with ``phonemes``, each word's phonemes (``phoneme_ids``, from
    the pronouncing dictionary, whose first use loads it: 1.5 s): what the model's losses read."""
    ids = [_ids(tokenizer, t) for t in batch.texts]
    targets, lengths = pad_token_ids(ids)
    words = [[_ids(tokenizer, w) for w in ws] for ws in batch.words]
    phonemes = [[phoneme_ids([w]) for w in ws] for ws in batch.words] if phonemes else []
    return replace(batch, target_ids=ids, ctc_targets=targets, ctc_target_lengths=lengths, word_ids=words,
                   phoneme_ids=phonemes)
