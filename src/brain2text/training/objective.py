"""The training objective as one module, so that DDP (via Accelerate) wraps a single ``forward``.

``TrainingObjective(batch, losses)`` returns the model's named losses plus, in distillation, ``kd``
and ``feature``, and ``loss``: their weighted sum, made here and only here
(:func:`brain2text.registry.weighted_total`). The teacher is held outside the module tree: it is
neither trained, nor saved, nor synchronised by DDP.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..data.batch import MEGBatch
from ..registry import DISTILL_LOSSES, weighted_total
from .distillation import FeatureMatcher, kd_loss, text_token_logits


class TrainingObjective(nn.Module):
    def __init__(self, model: nn.Module, teacher: nn.Module | None = None, matcher: FeatureMatcher | None = None,
                 kd_temperature: float = 2.0):
        super().__init__()
        self.model = model
        self.matcher = matcher
        self._teacher = (teacher,)  # a tuple hides it from .parameters(), .state_dict() and DDP
        self.kd_temperature = kd_temperature

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0]

    def forward(self, batch: MEGBatch, losses: dict[str, float]) -> dict[str, torch.Tensor]:
        """Named scalar losses and ``loss``, their weighted sum (only weights > 0 are computed)."""
        model_weights = {k: w for k, w in losses.items() if k not in DISTILL_LOSSES and w > 0}
        out: dict[str, torch.Tensor] = {}
        if model_weights:
            out = dict(self.model(batch, model_weights))
        kd_w, feat_w = losses.get("kd", 0.0), losses.get("feature", 0.0)
        if kd_w > 0 or feat_w > 0:
            out.update(self._distill(batch, kd_w > 0, feat_w > 0, freeze_codebooks=bool(model_weights)))
        out["loss"] = weighted_total(out, losses)
        return out

    def _distill(self, batch: MEGBatch, want_kd: bool, want_feature: bool,
                 freeze_codebooks: bool) -> dict[str, torch.Tensor]:
        teacher = self.teacher
        if teacher is None:
            raise RuntimeError("distillation losses need a teacher")
        with _codebooks_frozen(self.model, freeze_codebooks):
            return self._distill_terms(teacher, batch, want_kd, want_feature)

    def _distill_terms(self, teacher, batch: MEGBatch, want_kd: bool, want_feature: bool) -> dict[str, torch.Tensor]:
        out = {}
        if want_kd:
            with torch.no_grad():
                t_logits, t_labels = teacher.lm_logits(batch)
            s_logits, s_labels = self.model.lm_logits(batch)
            vocab = min(s_logits.shape[-1], t_logits.shape[-1])  # embeddings may be padded
            out["kd"] = kd_loss(text_token_logits(s_logits, s_labels)[:, :vocab],
                                text_token_logits(t_logits, t_labels)[:, :vocab], self.kd_temperature)
        if want_feature:
            with torch.no_grad():
                t_enc = teacher.encode(batch)
            s_enc = self.model.encode(batch)
            out["feature"] = self.matcher(s_enc.tokens, t_enc.tokens, t_enc.mask)
        return out


@contextlib.contextmanager
def _codebooks_frozen(model: nn.Module, freeze: bool):
    """The student's extra encoder passes for kd/feature must not update the EMA codebooks a second
    time in one step (the model's own forward already did)."""
    rvq = getattr(model, "rvq", None)
    flag = getattr(rvq, "update_codebooks", None)
    if flag is None or not freeze:
        yield
        return
    rvq.update_codebooks = False
    try:
        yield
    finally:
        rvq.update_codebooks = flag
