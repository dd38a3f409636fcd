"""An n-gram language model over token ids for CTC shallow fusion: interpolated Witten-Bell smoothing,
fitted and defined by ``nltk.lm.WittenBellInterpolated``, scored for a whole vocabulary at once.

nltk scores one word after one context at a time; the fusion search
(:func:`~brain2text.decoding.fusion.ctc_fusion_beam_search_batch`) asks for every unit after every prefix.
:class:`NGramLM` reads nltk's own counts and computes the same probabilities as one vector per context
(a test checks them against ``nltk.lm`` word by word). Witten-Bell as nltk defines it ends in the
unsmoothed unigram distribution: a token the fitted sentences never hold has probability 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from nltk.lm import WittenBellInterpolated
from torch import Tensor

BOS, EOS = "<s>", "</s>"  # nltk's padding symbols


class NGramLM:
    """An order-``order`` Witten-Bell n-gram LM fitted on ``sentences`` (each a sequence of token ids in
    ``[0, vocab_size)``, without start or end tokens), as a batch prefix LM for the fusion search:
    ``lm([(example, prefix ids), ...])`` gives ``(n, vocab_size)`` log-probabilities of the next token after
    each prefix, the end of the sentence in column ``eos_id``. The example index is ignored (one LM for all).
    """

    def __init__(self, sentences: Sequence[Sequence[int]], order: int, vocab_size: int, eos_id: int):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if not 0 <= eos_id < vocab_size:
            raise ValueError(f"eos_id {eos_id} is outside the vocabulary of {vocab_size} ids")
        sentences = [[int(t) for t in s] for s in sentences]
        bad = sorted({t for s in sentences for t in s if not 0 <= t < vocab_size or t == eos_id})
        if bad:
            raise ValueError(f"token ids outside [0, {vocab_size}) or equal to eos_id {eos_id} in the sentences: "
                             f"{bad[:5]}")
        self.order, self.vocab_size, self.eos_id = order, vocab_size, eos_id
        self.nltk = WittenBellInterpolated(order)
        # nltk looks tokens up as strings: a token id is its decimal string. Each sentence gives the n-grams of
        # orders 1..order that end at each of its tokens and at one </s> (the start padded with <s>): the usual
        # counts, so that the probabilities of the ids and the end sum to 1 (nltk's padded_everygram_pipeline also
        # counts its padding as words)
        padded = [[BOS] * (order - 1) + [str(t) for t in s] + [EOS] for s in sentences]
        self.nltk.fit([[tuple(p[i - k + 1:i + 1]) for i in range(order - 1, len(p)) for k in range(1, order + 1)]
                       for p in padded], [w for p in padded for w in p])
        self._unigram = self._frequencies(self.nltk.counts.unigrams)
        self._rows: dict[tuple, Tensor] = {}

    def _frequencies(self, dist) -> np.ndarray:
        """A FreqDist's relative frequencies as a vector over the token ids (``</s>`` at ``eos_id``)."""
        v = np.zeros(self.vocab_size)
        total = dist.N()
        for token, count in dist.items():
            if token == EOS:
                v[self.eos_id] = count / total
            elif token.isdigit():  # <s> and <UNK> are never predicted
                v[int(token)] = count / total
        return v

    def _context(self, prefix: Sequence[int]) -> tuple:
        """The last ``order - 1`` items of the padded sentence so far, as nltk looks them up."""
        if self.order == 1:
            return ()
        padded = [BOS] * (self.order - 1) + [str(int(t)) for t in prefix]
        return tuple(self.nltk.vocab.lookup(padded[-(self.order - 1):]))

    def log_probs(self, prefix: Sequence[int]) -> Tensor:
        """``(vocab_size,)`` log P(next token | prefix): nltk's ``logscore`` of every token, in nats."""
        context = self._context(prefix)
        row = self._rows.get(context)
        if row is None:
            p = self._unigram
            for k in range(1, len(context) + 1):  # nltk's recursion, unrolled from the shortest context
                dist = self.nltk.counts[context[-k:]]
                if dist.N() == 0:  # nltk: no data for this context, defer to the shorter one
                    continue
                gamma = len(dist) / (len(dist) + dist.N())
                p = (1.0 - gamma) * self._frequencies(dist) + gamma * p
            with np.errstate(divide="ignore"):
                row = self._rows[context] = torch.from_numpy(np.log(p)).float()
        return row

    def __call__(self, requests: Sequence[tuple[int, Sequence[int]]]) -> Tensor:
        if not requests:
            return torch.empty(0, self.vocab_size)
        return torch.stack([self.log_probs(prefix) for _, prefix in requests])
