"""Decoding that uses the MEG evidence: CTC (greedy, prefix beam), LLM beam search, joint CTC/LLM search,
n-best rescoring and CTC/LLM shallow fusion (:mod:`.joint`), the two exact sequence scorers
(:mod:`.scorers`) and the registry of decoding strategies (:mod:`.strategies`)."""
