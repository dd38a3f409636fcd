"""The two exact sequence scores every strategy, retrieval and rescoring use: one for the LM, one for CTC.

- :func:`lm_sequence_log_prob`: ``log P_LM(y + eos | context)`` for many candidates ``y`` after one
  context (prompt, MEG), teacher-forced in one right-padded forward pass of the decoder.
- :func:`ctc_sequence_log_prob`: ``log P_CTC(y | x)``, the exact sum over alignments (``F.ctc_loss``,
  all candidates of one example in one call); ``-inf`` where ``y`` needs more frames than there are.

Both take candidates as token-id lists (the CTC classes are the tokenizer ids plus a blank,
:mod:`brain2text.decoding.ctc`) and return a ``(K,)`` float tensor on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..constants import IGNORE_INDEX
from ..data.batch import pad_token_ids
from .ctc import checked_log_probs


def ctc_sequence_log_prob(log_probs: Tensor, candidates: list[list[int]], blank: int,
                          length: int | None = None) -> Tensor:
    """``log P_CTC(y | x)`` ``(K,)`` for each candidate ``y``; ``log_probs`` ``(T, V)`` of one example,
    ``length`` its valid frames (default all)."""
    lp = checked_log_probs(log_probs, blank, length)
    n, k, n_classes = lp.shape[0], len(candidates), lp.shape[1]
    targets, target_lengths = pad_token_ids(candidates)
    nll = F.ctc_loss(lp[:, None].expand(n, k, n_classes), targets, torch.full((k,), n, dtype=torch.long),
                     target_lengths, blank=blank, reduction="none", zero_infinity=False)
    return -nll


@torch.no_grad()
def lm_sequence_log_prob(decoder, context: Tensor, embed: Callable[[Tensor], Tensor], candidates: list[list[int]],
                         eos_id: int) -> Tensor:
    """``log P_LM(y + eos | context)`` ``(K,)`` for each candidate ``y`` after ``context`` ``(1, P, H)``
    (input embeddings of prompt and MEG), teacher-forced: one forward of the right-padded batch."""
    device = context.device
    targets = [list(y) + [eos_id] for y in candidates]
    rows = [torch.cat([context[0], embed(torch.as_tensor(t, dtype=torch.long, device=device)).to(context.dtype)])
            for t in targets]
    length, n_context = max(r.shape[0] for r in rows), context.shape[1]
    embeds = torch.stack([F.pad(r, (0, 0, 0, length - r.shape[0])) for r in rows])  # (K, L, H)
    mask = torch.zeros(len(rows), length, dtype=torch.long, device=device)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long, device=device)
    for i, (r, t) in enumerate(zip(rows, targets)):
        mask[i, : r.shape[0]] = 1
        labels[i, n_context: r.shape[0]] = torch.as_tensor(t, dtype=torch.long, device=device)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    logits = decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    labels = labels[:, 1:]
    keep = labels != IGNORE_INDEX
    picked = logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return (picked * keep).sum(1).cpu()
