"""The CTC head's classes: a set of the decoder tokenizer's ids (the units), plus a blank as the last class.

With ``decoder.ctc_units: all`` every tokenizer id is a unit and class ``c`` *is* token id ``c`` (blank
``len(tokenizer)``). A pretrained LM's vocabulary is large (SmolLM2: 49,152 ids), most of it never
heard in MEG-MASC; ``decoder.ctc_units: training_text`` keeps only the ids that occur in the training
split's sentences (a few thousand), so the CTC head, its softmax and every CTC search are that much
smaller. Test-split sentences never choose the units (they would leak which tokens the test holds);
a test token outside them is one the encoder cannot write, like an unseen word.

Decoding maps classes back to token ids (:meth:`tokens`); scoring a candidate maps its token ids to
classes (:meth:`classes`, ``None`` when a token is not a unit: its CTC probability is 0).
"""

from __future__ import annotations

import torch

from ..errors import ModelError

UNIT_CHOICES = ("all", "training_text")


class CTCUnits:
    """Classes ``0 .. U-1`` are token ids ``token_ids``; class ``U`` is the blank."""

    def __init__(self, token_ids: list[int], n_tokens: int):
        ids = [int(i) for i in token_ids]
        if not ids or len(set(ids)) != len(ids) or min(ids) < 0 or max(ids) >= n_tokens:
            raise ModelError(f"CTC units must be distinct token ids below {n_tokens}, got {len(ids)} ids")
        self.token_ids = torch.tensor(ids, dtype=torch.long)  # (U,) class -> token id
        self.lookup = torch.full((n_tokens,), -1, dtype=torch.long)  # (V,) token id -> class, -1 if not a unit
        self.lookup[self.token_ids] = torch.arange(len(ids))
        self.n_tokens = n_tokens
        self.identity = ids == list(range(n_tokens))

    @classmethod
    def every_token(cls, n_tokens: int) -> "CTCUnits":
        return cls(list(range(n_tokens)), n_tokens)

    @classmethod
    def from_texts(cls, tokenizer, texts: list[str], extra: tuple[int, ...] = ()) -> "CTCUnits":
        """The ids that occur in ``texts`` (tokenised without special tokens), sorted, plus ``extra``."""
        ids = set(extra)
        for text in texts:
            ids.update(tokenizer(text, add_special_tokens=False)["input_ids"])
        return cls(sorted(ids), len(tokenizer))

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def blank(self) -> int:
        return len(self.token_ids)

    @property
    def n_classes(self) -> int:
        return len(self.token_ids) + 1

    def classes(self, ids: list[int]) -> list[int] | None:
        """Token ids as classes; None when one of them is not a unit."""
        if self.identity:
            return list(ids)
        out = [int(self.lookup[i]) if 0 <= i < self.n_tokens else -1 for i in ids]
        return None if any(c < 0 for c in out) else out

    def tokens(self, classes: list[int]) -> list[int]:
        """Classes (no blank) as token ids."""
        return list(classes) if self.identity else self.token_ids[list(classes)].tolist()

    def target_classes(self, targets: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC targets ``(B, L)`` of token ids as classes; tokens that are not units are dropped (the
        encoder cannot write them: a validation sentence may hold one) and the lengths shortened."""
        if self.identity:
            return targets, lengths
        cls = self.lookup.to(targets.device)[targets.clamp(0, self.n_tokens - 1)]
        valid = (torch.arange(targets.shape[1], device=targets.device)[None] < lengths[:, None]) & (cls >= 0)
        out = torch.zeros_like(targets)
        for b in range(targets.shape[0]):
            kept = cls[b][valid[b]]
            out[b, : len(kept)] = kept
        return out, valid.sum(1)

    def to_json(self) -> list[int] | None:
        """None for every token (the saved form stays small), else the unit ids."""
        return None if self.identity else self.token_ids.tolist()

    @classmethod
    def from_json(cls, value: list[int] | None, n_tokens: int) -> "CTCUnits":
        return cls.every_token(n_tokens) if value is None else cls(list(value), n_tokens)
