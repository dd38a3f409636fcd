"""Knowledge distillation from a trained teacher (Hinton et al. 2015; torchtune's KD recipe).

Two terms, weighted by a phase's ``losses``:

* ``kd``: KL(teacher || student) between the softened next-token distributions on the target-text
  positions, times T^2 so gradients keep their scale across temperatures;
* ``feature``: MSE between the student's encoder tokens, mapped by a learned linear layer when the
  widths differ (FitNets, Romero et al. 2015), and the teacher's; resampled in time when the two
  encoders emit a different number of tokens.

The teacher runs in eval mode under ``no_grad`` and is never trained. Its tokenizer must equal the
student's (same vocabulary, same ids), else the logits do not mean the same tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import IGNORE_INDEX, TOKENIZER_DIR
from ..data.tokenizer import load_tokenizer
from ..errors import ConfigError, ModelError
from ..models.serialization import load_model


def text_token_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logits that predict target-text tokens: (B, L, V), (B, L) -> (N, V).

    Labels follow the Hugging Face convention (aligned with the inputs; position t-1 predicts t).
    """
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits (B, L, V) and labels (B, L) disagree: {tuple(logits.shape)} vs {tuple(labels.shape)}")
    keep = labels[:, 1:] != IGNORE_INDEX  # (B, L-1)
    return logits[:, :-1][keep]  # (N, V)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), mean over tokens. Inputs (N, V)."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher text logits differ in shape: {tuple(student_logits.shape)} vs "
                         f"{tuple(teacher_logits.shape)} (same tokenizer and targets expected)")
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    t = temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean") * (t * t)


class FeatureMatcher(nn.Module):
    """Maps student encoder tokens to the teacher's width and scores them with a masked MSE."""

    def __init__(self, student_dim: int, teacher_dim: int):
        super().__init__()
        self.proj = nn.Linear(student_dim, teacher_dim) if student_dim != teacher_dim else nn.Identity()

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, teacher_mask: torch.Tensor | None) -> torch.Tensor:
        """student (B, Ts, Ds), teacher (B, Tt, Dt), teacher_mask (B, Tt) bool -> scalar loss."""
        if student.ndim != 3 or teacher.ndim != 3 or student.shape[0] != teacher.shape[0]:
            raise ValueError(f"expected (B, T, D) encoder tokens, got {tuple(student.shape)} and "
                             f"{tuple(teacher.shape)}")
        mapped = self.proj(student)  # (B, Ts, Dt)
        if mapped.shape[1] != teacher.shape[1]:
            mapped = F.interpolate(mapped.transpose(1, 2), size=teacher.shape[1], mode="linear",
                                   align_corners=False).transpose(1, 2)  # (B, Tt, Dt)
        err = (mapped.float() - teacher.float()).pow(2).mean(dim=-1)  # (B, Tt)
        if teacher_mask is None:
            return err.mean()
        w = teacher_mask.to(err.dtype)
        return (err * w).sum() / w.sum().clamp_min(1.0)


def _vocab(tokenizer) -> dict[str, int]:
    return dict(tokenizer.get_vocab())


def check_same_tokenizer(student_tokenizer, teacher_tokenizer, teacher_dir: str | Path) -> None:
    """Stop with a clear error unless both tokenizers map the same tokens to the same ids."""
    s, t = _vocab(student_tokenizer), _vocab(teacher_tokenizer)
    if s != t:
        only_s = len(set(s) - set(t))
        only_t = len(set(t) - set(s))
        moved = sum(1 for k in set(s) & set(t) if s[k] != t[k])
        raise ConfigError(f"the teacher's tokenizer differs from the student's ({len(t)} vs {len(s)} tokens; "
                          f"{only_t} only in the teacher, {only_s} only in the student, {moved} with other ids); "
                          "distillation needs the same tokenizer", teacher_dir)


def load_teacher_tokenizer(teacher_dir: str | Path):
    """The teacher's tokenizer alone (cheap), to compare before building anything large."""
    teacher_dir = Path(teacher_dir)
    if not teacher_dir.is_dir():
        raise ConfigError("--teacher_checkpoint: teacher model directory not found", teacher_dir)
    tok_dir = teacher_dir / TOKENIZER_DIR
    if not tok_dir.is_dir():
        raise ModelError(f"not a brain2text model directory (no {TOKENIZER_DIR}/ inside)", teacher_dir)
    return load_tokenizer(tok_dir)


def load_teacher(teacher_dir: str | Path, device: torch.device) -> nn.Module:
    """Load a trained Brain2Text, frozen, in eval mode."""
    teacher = load_model(teacher_dir)
    teacher.to(device)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def encoder_width(model: nn.Module) -> int:
    """Width D of a model's encoder tokens (from its config, else its attributes)."""
    for holder in ("config", "cfg"):
        cfg = getattr(model, holder, None)
        if cfg is not None and hasattr(cfg, "encoder"):
            return int(cfg.encoder.d_model)
    for name in ("encoder_dim", "d_model"):
        if isinstance(getattr(model, name, None), int):
            return int(getattr(model, name))
    raise ModelError("cannot tell the teacher's encoder width (no config.encoder.d_model)")
