"""Decoding that uses the MEG evidence: CTC (greedy, prefix beam), LLM beam search, joint CTC/LLM search."""

from .ctc import CTCPrefixScorer, CTCPrefixState, blank_index, ctc_greedy, ctc_prefix_beam_search
from .joint import ctc_fusion_beam_search, joint_beam_search, joint_decode_batch, lm_beam_search, lm_sequence_scores, rescore_nbest

__all__ = [
    "ctc_fusion_beam_search",
    "CTCPrefixScorer",
    "CTCPrefixState",
    "blank_index",
    "ctc_greedy",
    "ctc_prefix_beam_search",
    "joint_beam_search",
    "joint_decode_batch",
    "lm_beam_search",
    "lm_sequence_scores",
    "rescore_nbest",
]
