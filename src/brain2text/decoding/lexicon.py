"""Lexicon decoding: phoneme CTC posteriors to words, with the LLM's word scores fused into the search.

The classic speech-recognition decoder (Hannun et al. 2014; flashlight's ``LexiconDecoder``, torchaudio's
``ctc_decoder``): a CTC prefix beam search over phoneme sequences in which every hypothesis spells words of
a pronunciation lexicon (a trie of phonemes). A hypothesis is ``(words, node, last phoneme)``: the words it
has committed and where its current, unfinished word stands in the trie. Each frame it either stays
(blank, or a repeat of its last phoneme) or grows by a phoneme that continues its word in the trie, or,
where its word can end, commits the word (one branch per homophone) and starts the next one.

Ranking: ``log P_CTC(phonemes) + lm_weight * log P_LM(words) + word_bonus * n_words``; the LM term of a
word enters when the word is committed. While a word is unfinished its best possible first-token score
under the LM (``lookahead``, per trie node, the maximum over the words below it) stands in, and is
replaced by the exact score at commit, so every finished hypothesis is ranked by the exact sum (the
look-ahead only decides which unfinished words survive pruning: flashlight's "smearing"). At the last
frame ``lm_weight * log P_LM(eos | words)`` is added; a hypothesis whose last word is unfinished ends with
the words it has committed (the phonemes of the unfinished word write nothing).

``lm_weight = 0`` is the same search without the LLM: the lexicon alone decides, with the bonus.
The examples of a batch are searched together, frame by frame, so that the LM scores every new word of
every example in one call (:class:`brain2text.models.splice.BatchPrefixLM` underneath).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from ..data.pronunciation import PHONEME_INDEX, pronunciations

NEG = -math.inf
# (example, committed word indices, next word index or None for eos) -> log P_LM(word | words, context)
WordLMFn = Callable[[list[tuple[int, tuple[int, ...], int | None]]], list[float]]


def _lse(a: float, b: float) -> float:
    if a == NEG:
        return b
    if b == NEG:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


class Lexicon:
    """Words (their written forms) and their pronunciations as a trie over phoneme indices.

    Node 0 is the root; ``children[n]`` maps a phoneme to the next node, ``words_at[n]`` lists the words whose
    pronunciation ends at ``n``, ``phoneme[n]`` is the phoneme that leads to ``n``. A word ``spell`` gives no
    pronunciation (by default one without letters, see
    :func:`~brain2text.data.pronunciation.pronunciations`) is not in the trie."""

    def __init__(self, words: Sequence[str], spell: Callable[[str], list[tuple[str, ...]]] = pronunciations):
        self.words = list(dict.fromkeys(words))
        self.children: list[dict[int, int]] = [{}]
        self.words_at: list[list[int]] = [[]]
        self.phoneme: list[int] = [-1]
        for w, word in enumerate(self.words):
            for pron in spell(word):
                if not pron or any(p not in PHONEME_INDEX for p in pron):
                    continue
                node = 0
                for p in pron:
                    node = self._child(node, PHONEME_INDEX[p])
                if w not in self.words_at[node]:
                    self.words_at[node].append(w)

    def _child(self, node: int, p: int) -> int:
        nxt = self.children[node].get(p)
        if nxt is None:
            nxt = len(self.children)
            self.children[node][p] = nxt
            self.children.append({})
            self.words_at.append([])
            self.phoneme.append(p)
        return nxt

    def __len__(self) -> int:
        return len(self.words)

    def lookahead(self, word_scores: Sequence[float]) -> list[float]:
        """Per node, the best ``word_scores[w]`` over the words at or below it (``-inf`` where none)."""
        best = [NEG] * len(self.children)
        for node in range(len(self.children) - 1, -1, -1):  # children come after their parents
            b = max((word_scores[w] for w in self.words_at[node]), default=NEG)
            for child in self.children[node].values():
                b = max(b, best[child])
            best[node] = b
        return best


@dataclass
class _Hyp:
    p_b: float
    p_nb: float
    fuse: float


Key = tuple[tuple[int, ...], int, int]  # (committed words, trie node, last phoneme or -1)


def lexicon_beam_search_batch(
    log_probs: Sequence[Tensor],
    lexicon: Lexicon,
    word_lm_fn: WordLMFn | None,
    beam: int,
    lm_weight: float,
    word_bonus: float = 0.0,
    lengths: Sequence[int | None] | None = None,
    prune_topk: int = 8,
    lookahead: Sequence[float] | None = None,
    word_ctc_fn: WordLMFn | None = None,
    word_ctc_weight: float = 0.0,
) -> list[list[int]]:
    """The best word sequence (indices into ``lexicon.words``) for each example.

    ``log_probs``: each example's ``(T_i, P + 1)`` phoneme log-probs (blank last); ``lengths`` their valid
    frames. ``word_lm_fn`` scores ``(example, words, next word | None for eos)`` requests; ``lookahead``:
    per trie node, an upper estimate of the next word's LM score (e.g. :meth:`Lexicon.lookahead` of each
    word's first-token log-prob; None: 0 everywhere). ``prune_topk``: phonemes considered per frame.
    ``word_ctc_fn`` (same requests, weight ``word_ctc_weight``): a second word-level score added beside the
    LM's, e.g. a word CTC head's prefix score (``log psi(words + word) - log psi(words)``, eos: ``log P(words)
    - log psi(words)``), so that word-level MEG evidence joins the phonemes'."""
    if lm_weight < 0 or beam < 1 or prune_topk < 1:
        raise ValueError(f"need lm_weight >= 0, beam >= 1 and prune_topk >= 1, got {lm_weight}, {beam}, {prune_topk}")
    if lm_weight > 0 and word_lm_fn is None:
        raise ValueError("lm_weight > 0 needs word_lm_fn")
    lengths = [None] * len(log_probs) if lengths is None else list(lengths)
    lps = [lp[: lp.shape[0] if n is None else int(n)].detach().float().cpu() for lp, n in zip(log_probs, lengths)]
    if lm_weight and lookahead is not None:
        smear = [lm_weight * (s if s > NEG else 0.0) for s in lookahead]
    else:
        smear = [0.0] * len(lexicon.children)
    scores: dict[tuple[int, tuple[int, ...], int | None], float] = {}

    if word_ctc_weight and word_ctc_fn is None:
        raise ValueError("word_ctc_weight > 0 needs word_ctc_fn")
    scorers = [(fn, wt) for fn, wt in ((word_lm_fn, lm_weight), (word_ctc_fn, word_ctc_weight)) if wt]

    def lm(requests: list[tuple[int, tuple[int, ...], int | None]]) -> None:
        todo = [r for r in dict.fromkeys(requests) if r not in scores]
        totals = [0.0] * len(todo)
        for fn, weight in scorers if todo else ():
            totals = [a + weight * float(b) for a, b in zip(totals, fn(todo))]
        scores.update(zip(todo, totals))

    beams: list[dict[Key, _Hyp]] = [{((), 0, -1): _Hyp(0.0, NEG, 0.0)} for _ in lps]
    for t in range(max((lp.shape[0] for lp in lps), default=0)):
        active = [i for i, lp in enumerate(lps) if t < lp.shape[0]]
        frames = {i: lps[i][t] for i in active}
        cands = {i: [c for c in frames[i].topk(min(prune_topk + 1, frames[i].numel())).indices.tolist()
                     if c != frames[i].numel() - 1][:prune_topk] for i in active}
        lm([(i, key[0], w) for i in active for key in beams[i] for w in lexicon.words_at[key[1]] if key[1]])
        for i in active:
            beams[i] = _step(beams[i], frames[i].tolist(), cands[i], lexicon, smear, scores, i, word_bonus, beam)
    lm([(i, key[0], w) for i, b in enumerate(beams) for key in b for w in lexicon.words_at[key[1]] if key[1]])
    lm([(i, key[0] + (w,), None) for i, b in enumerate(beams) for key in b for w in lexicon.words_at[key[1]]
        if key[1]] + [(i, key[0], None) for i, b in enumerate(beams) for key in b if not lexicon.words_at[key[1]]])
    best = []
    for i, b in enumerate(beams):
        top, top_words = NEG, []
        for (words, node, _), h in b.items():
            total = _lse(h.p_b, h.p_nb) + h.fuse - smear[node]
            if lexicon.words_at[node]:
                finished = [(words + (w,), total + scores[(i, words, w)] + word_bonus + scores[(i, words + (w,), None)])
                            for w in lexicon.words_at[node]]
            else:  # nothing yet, or an unfinished last word: its phonemes write nothing
                finished = [(words, total + scores[(i, words, None)])]
            for ws, s in finished:
                if s > top:
                    top, top_words = s, list(ws)
        best.append(top_words)
    return best


def _step(hyps: dict[Key, _Hyp], x: list[float], cands: list[int], lexicon: Lexicon, smear: list[float],
          scores: dict, example: int, word_bonus: float, beam: int) -> dict[Key, _Hyp]:
    """One frame for one example: stay (blank or repeat) or grow by a phoneme of ``cands``."""
    blank = len(x) - 1
    out: dict[Key, _Hyp] = {}

    def add(key: Key, p_b: float, p_nb: float, fuse: float) -> None:
        h = out.get(key)
        if h is None:
            out[key] = _Hyp(p_b, p_nb, fuse)
        else:  # the same prefix reached two ways: the CTC sums them, its fused score is the prefix's own
            h.p_b, h.p_nb = _lse(h.p_b, p_b), _lse(h.p_nb, p_nb)

    root = lexicon.children[0]
    for key, h in hyps.items():
        words, node, last = key
        total = _lse(h.p_b, h.p_nb)
        add(key, total + x[blank], h.p_nb + x[last] if last >= 0 else NEG, h.fuse)
        ends = lexicon.words_at[node] if node else []
        for c in cands:
            grow = (h.p_b if c == last else total) + x[c]  # a repeated phoneme needs a blank between
            child = lexicon.children[node].get(c)
            if child is not None:
                add((words, child, c), NEG, grow, h.fuse + smear[child] - smear[node])
            start = root.get(c)
            if start is not None:
                for w in ends:
                    add((words + (w,), start, c), NEG, grow,
                        h.fuse - smear[node] + scores[(example, words, w)] + word_bonus + smear[start])
    ranked = sorted(out.items(), key=lambda kv: _lse(kv[1].p_b, kv[1].p_nb) + kv[1].fuse, reverse=True)
    return dict(ranked[:beam])
