"""The lexicon decoder: phoneme CTC spelled into lexicon words, with LM word scores fused in.

The reference is brute force: every word sequence the lexicon can spell within the frames (optionally
followed by an unfinished word, which writes nothing), scored with the exact CTC probability of its phonemes
(a sum over all alignments, torch's ctc_loss), the LM's word scores and the bonus; a wide beam must find
its best."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from brain2text.data.pronunciation import PHONEME_INDEX, PHONEMES
from brain2text.decoding.lexicon import Lexicon, lexicon_beam_search_batch
from brain2text.decoding.scorers import ctc_sequence_log_prob

BLANK = len(PHONEMES)
# made-up spellings over a few phonemes, so that the brute force stays small: two homophones (ab, ba2),
# a word that is another's prefix (a / ab), and a two-pronunciation word
SPELL = {"a": [("k",)], "ab": [("k", "t")], "ba2": [("k", "t")], "b": [("t",)], "c": [("s", "k")],
         "d": [("t", "s"), ("s",)]}


def spell(word):
    return SPELL[word]


def ids(phones):
    return [PHONEME_INDEX[p] for p in phones]


def posteriors(seed, n_frames, sharp=2.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n_frames, len(PHONEMES) + 1), -30.0)
    used = ids(["k", "t", "s"]) + [BLANK]
    x[:, used] = sharp * torch.randn(n_frames, len(used), generator=g)
    return torch.log_softmax(x, dim=-1)


class ToyWordLM:
    """A deterministic 'LM': each (previous word, word) pair has a fixed score; eos after a word too."""

    def __init__(self, words, seed):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.log_softmax(torch.randn(len(words) + 1, len(words) + 1, generator=g), dim=-1)
        self.calls = []

    def score(self, words, nxt):
        prev = words[-1] if words else len(self.table) - 1
        return float(self.table[prev, len(self.table) - 1 if nxt is None else nxt])

    def __call__(self, requests):
        self.calls.append(len(requests))
        return [self.score(ws, w) for _, ws, w in requests]


def brute_force(lp, lexicon, lm, lm_weight, bonus, max_words=4):
    """The best of every word sequence, optionally followed by an unfinished word (a trie node that ends no
    word: its phonemes are heard, nothing is written), by exact CTC + LM + bonus."""
    unfinished = [()] + [tuple(p[:k]) for w in lexicon.words for p in spell(w) for k in range(1, len(p))
                         if not any(tuple(q) == tuple(p[:k]) for v in lexicon.words for q in spell(v))]
    best, best_words = -math.inf, None
    for n in range(0, max_words + 1):
        for words in itertools.product(range(len(lexicon)), repeat=n):
            for prons in itertools.product(*[spell(lexicon.words[w]) for w in words]):
                for tail in dict.fromkeys(unfinished):
                    phones = ids([p for pron in prons for p in pron] + list(tail))
                    if not phones:
                        continue
                    ctc = float(ctc_sequence_log_prob(lp, [phones], BLANK)[0])
                    if ctc == -math.inf:
                        continue
                    s = ctc + bonus * n + lm_weight * (sum(lm.score(words[:k], words[k]) for k in range(n))
                                                      + lm.score(words, None))
                    if s > best:
                        best, best_words = s, list(words)
    return best_words


def test_trie_holds_homophones_at_one_node_and_lookahead_is_the_subtree_max():
    lex = Lexicon(["a", "ab", "ba2", "b", "c", "d"], spell)
    k, t = PHONEME_INDEX["k"], PHONEME_INDEX["t"]
    node = lex.children[lex.children[0][k]][t]
    assert sorted(lex.words[w] for w in lex.words_at[node]) == ["ab", "ba2"]
    look = lex.lookahead([-1.0, -3.0, -0.5, -2.0, -4.0, -5.0])
    assert look[lex.children[0][k]] == -0.5  # a (-1), ab (-3), ba2 (-0.5) below "k"
    assert look[0] == -0.5
    assert Lexicon(["zzz"], lambda w: [("not-a-phoneme",)]).words_at == [[]]  # unspellable: left out
    # a word without letters is left out too: the letter fallback would make "1" a homophone of "a"
    real = Lexicon(["1", "--", "a"])
    assert {real.words[w] for node in real.words_at for w in node} == {"a"}  # (at two nodes: "ah" and "ey")


@pytest.mark.parametrize("seed,lm_weight,bonus", [(0, 0.0, 0.0), (1, 0.0, 1.0), (2, 0.7, 0.0), (3, 1.5, 0.5),
                                                  (4, 0.7, -0.5), (5, 3.0, 1.0)])
def test_wide_beam_finds_the_brute_force_best(seed, lm_weight, bonus):
    lex = Lexicon(["a", "ab", "ba2", "b", "c"], spell)  # one pronunciation each: exact CTC sums
    lm = ToyWordLM(lex.words, seed)
    lp = posteriors(seed, n_frames=6)
    got = lexicon_beam_search_batch([lp], lex, lm, beam=400, lm_weight=lm_weight, word_bonus=bonus,
                                    prune_topk=4)[0]
    assert got == brute_force(lp, lex, lm, lm_weight, bonus)


def test_the_lm_breaks_homophone_ties_and_weight_zero_never_calls_it():
    lex = Lexicon(["ab", "ba2"], spell)
    lp = torch.log_softmax(torch.tensor([[0.0] * BLANK + [0.0]] * 4), -1)
    lp[:, :] = -20.0
    lp[0, PHONEME_INDEX["k"]] = lp[1, BLANK] = lp[2, PHONEME_INDEX["t"]] = lp[3, BLANK] = 0.0
    for favourite in (0, 1):
        def lm(requests, favourite=favourite):
            return [0.0 if w is None else (0.0 if w == favourite else -5.0) for _, _, w in requests]
        assert lexicon_beam_search_batch([lp], lex, lm, beam=8, lm_weight=1.0)[0] == [favourite]

    def never(requests):
        raise AssertionError("the LM was called with lm_weight 0")
    assert lexicon_beam_search_batch([lp], lex, never, beam=8, lm_weight=0.0)[0] in ([0], [1])


def test_examples_searched_together_equal_each_alone_and_share_lm_calls():
    lex = Lexicon(["a", "ab", "ba2", "b", "c", "d"], spell)
    lps = [posteriors(s, n) for s, n in zip(range(10, 14), (7, 4, 9, 6))]
    lms = [ToyWordLM(lex.words, s) for s in range(4)]
    alone = [lexicon_beam_search_batch([lp], lex, lm, beam=6, lm_weight=0.8, word_bonus=0.3)[0]
             for lp, lm in zip(lps, lms)]
    calls = []

    def together_lm(requests):
        calls.append(len(requests))
        return [lms[i].score(ws, w) for i, ws, w in requests]

    together = lexicon_beam_search_batch(lps, lex, together_lm, beam=6, lm_weight=0.8, word_bonus=0.3,
                                         lengths=[None, None, 7, None])
    assert together[0] == alone[0] and together[1] == alone[1] and together[3] == alone[3]
    assert together[2] == lexicon_beam_search_batch([lps[2]], lex, lms[2], beam=6, lm_weight=0.8, word_bonus=0.3,
                                                    lengths=[7])[0]
    assert len(calls) <= 9 + 2  # one call per frame at most, plus the end


def test_nothing_spelled_gives_no_words_and_bad_arguments_are_refused():
    lex = Lexicon(["a"], spell)
    silent = torch.full((5, BLANK + 1), -20.0)
    silent[:, BLANK] = 0.0
    assert lexicon_beam_search_batch([silent], lex, None, beam=4, lm_weight=0.0) == [[]]
    with pytest.raises(ValueError, match="word_lm_fn"):
        lexicon_beam_search_batch([silent], lex, None, beam=4, lm_weight=0.5)
    with pytest.raises(ValueError, match="beam"):
        lexicon_beam_search_batch([silent], lex, None, beam=0, lm_weight=0.0)
