"""The batch that flows from the data layer into the model (brainmagick's ``SegmentBatch``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


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
        )

    def select(self, index: list[int]) -> "MEGBatch":
        """A sub-batch (for controls and per-example generation)."""
        idx = torch.as_tensor(index, dtype=torch.long)

        def pick(t):
            return None if t is None else t[idx]

        return replace(
            self,
            meg=pick(self.meg),
            meg_mask=pick(self.meg_mask),
            subject_index=pick(self.subject_index),
            channel_mask=pick(self.channel_mask),
            sensor_positions=pick(self.sensor_positions),
            texts=[self.texts[i] for i in index] if self.texts else [],
            words=[self.words[i] for i in index] if self.words else [],
            word_onsets=[self.word_onsets[i] for i in index] if self.word_onsets else [],
            example_ids=[self.example_ids[i] for i in index] if self.example_ids else [],
        )
