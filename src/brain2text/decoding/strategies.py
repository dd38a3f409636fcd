"""Decoding strategies: each one's name, its search, its sequence score and whether it needs MEG, in one table.

A :class:`Strategy` is what ``decoding.strategy`` names. :meth:`Brain2Text.generate` runs its ``decode``;
retrieval (``evaluate``'s top-1/top-10) ranks candidate sentences by its ``score``, the full-sequence
form of what its search maximises, so that a sentence the search would prefer also ranks higher.
Adding a strategy is one :func:`register` call here (config validation and the CLI's choices read
:data:`STRATEGIES`).

The functions receive the model (:class:`~brain2text.models.brain2text.Brain2Text`, duck-typed), the
batch, the encoded MEG (``None`` for the no-MEG control) and the :class:`~brain2text.config.DecodingConfig`;
``decode`` returns token ids per example, ``score`` a ``(B, K)`` tensor for K candidates given as
token-id lists (``None`` when the strategy cannot score without MEG). The model side they use:
``tokenizer``, ``eos_id``, ``decoder``, ``embed``, ``lm_inputs(batch, enc)`` (prompt + MEG contexts),
``lm_scores`` / ``ctc_scores`` (:mod:`brain2text.decoding.scorers` per example) and ``cfg.decoder``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from ..data.pronunciation import phoneme_ids
from ..errors import ConfigError
from ..models.splice import BatchPrefixLM, CachedLMStep
from .ctc import CTCPrefixScorer, ctc_greedy, ctc_prefix_beam_search
from .fusion import ctc_fusion_beam_search_batch
from .joint import joint_decode_batch, rescore_nbest
from .lexicon import Lexicon, lexicon_beam_search_batch
from .scorers import ctc_sequence_log_prob, lm_sequence_log_prob

DecodeFn = Callable[..., list[list[int]]]  # (model, batch, enc | None, decoding) -> ids per example
ScoreFn = Callable[..., "torch.Tensor | None"]  # (model, batch, enc | None, candidate ids, decoding) -> (B, K)


@dataclass(frozen=True)
class Strategy:
    name: str
    help: str
    decode: DecodeFn
    score: ScoreFn
    describe_score: Callable[..., str]  # (decoding) -> the retrieval score in words, written beside results
    needs_meg: bool = False  # its search runs over the encoder's frames: "" and no score without MEG
    lm_weighted: bool = False  # its LLM term is decoding.lm_weight x log P_LM: at 0 it is the same search without it


STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    if strategy.name in STRATEGIES:
        raise ValueError(f"decoding strategy {strategy.name!r} is registered twice")
    STRATEGIES[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown decoding strategy {name!r}; known: {', '.join(STRATEGIES)}") from None


# ----------------------------------------------------------------------------------------- LLM alone
def _hf_generate(model, batch, enc, decoding, num_beams: int) -> list[list[int]]:
    """Hugging Face ``generate`` from the left-padded prompt (+ MEG) contexts."""
    s = model.lm_inputs(batch, enc, pad_side="left")
    pad = model.tokenizer.pad_token_id
    out = model.decoder.generate(inputs_embeds=s.inputs_embeds, attention_mask=s.attention_mask,
                                 max_new_tokens=model.cfg.decoder.max_new_tokens, num_beams=num_beams, do_sample=False,
                                 length_penalty=decoding.length_penalty,
                                 repetition_penalty=decoding.repetition_penalty, eos_token_id=model.eos_id,
                                 pad_token_id=pad)
    return [[t for t in row.tolist() if t != pad] for row in out]


def _lm_score(model, batch, enc, cands, decoding):
    return model.lm_scores(batch, enc, cands)


register(Strategy("greedy", "the LLM alone, greedy (Hugging Face generate)",
                  lambda m, b, e, d: _hf_generate(m, b, e, d, 1), _lm_score,
                  lambda d: "log P_LM(sentence | MEG)"))
register(Strategy("beam", "the LLM alone, beam search (Hugging Face generate, decoding.num_beams)",
                  lambda m, b, e, d: _hf_generate(m, b, e, d, d.num_beams), _lm_score,
                  lambda d: "log P_LM(sentence | MEG)"))


# --------------------------------------------------------------------------------------- encoder alone
def unit_ids(model) -> torch.Tensor | None:
    """The LM token id of each CTC class, or None when class ``c`` is token ``c``."""
    return None if model.units.identity else model.units.token_ids


def _ctc_decode(model, batch, enc, decoding) -> list[list[int]]:
    """Greedy CTC with one beam, else CTC prefix beam search."""
    blank, lengths = model.units.blank, enc.mask.sum(1).tolist()
    if decoding.num_beams <= 1:
        classes = [ctc_greedy(lp, blank, n) for lp, n in zip(enc.ctc_log_probs, lengths)]
    else:
        classes = [ctc_prefix_beam_search(lp, blank, beam=decoding.num_beams, length=n)[0][0]
                   for lp, n in zip(enc.ctc_log_probs, lengths)]
    return [model.units.tokens(c) for c in classes]


register(Strategy("ctc", "the encoder alone: CTC prefix beam search (greedy with num_beams 1)", _ctc_decode,
                  lambda m, b, e, c, d: m.ctc_scores(e, c),
                  lambda d: "log P_CTC(sentence | MEG); none without MEG", needs_meg=True))


# ------------------------------------------------------------------------------------------ both
def _contexts(model, batch, enc) -> list[torch.Tensor]:
    """Each example's decoder context (prompt + MEG embeddings, unpadded): (1, P_i, H)."""
    s = model.lm_inputs(batch, enc)
    return [s.inputs_embeds[i:i + 1, : int(n)] for i, n in enumerate(s.attention_mask.sum(1).tolist())]


def _joint_decode(model, batch, enc, decoding) -> list[list[int]]:
    """Joint CTC/LLM beam search, or (``rescore``) n-best rescoring; the LLM beam search without MEG."""
    contexts = _contexts(model, batch, enc)

    def step(i: int) -> CachedLMStep:
        return CachedLMStep(model.decoder, contexts[i], model.embed)

    common = dict(bos_ids=[], eos_id=model.eos_id, blank=model.units.blank, beam=decoding.num_beams,
                  max_len=model.cfg.decoder.max_new_tokens, length_penalty=decoding.length_penalty,
                  unit_ids=unit_ids(model))
    if decoding.strategy == "rescore" and enc is not None:
        lengths = enc.mask.sum(1).tolist()
        return [rescore_nbest(step(i), partial(lm_sequence_log_prob, model.decoder, contexts[i], model.embed,
                                               eos_id=model.eos_id),
                              enc.ctc_log_probs[i], ctc_weight=decoding.ctc_weight, ctc_length=int(lengths[i]),
                              ctc_score_fn=None if model.units.identity else
                              (lambda c, i=i: model.ctc_scores(enc.example_ctc(i), c)[0]), **common)
                for i in range(len(batch))]
    if enc is None:
        return joint_decode_batch(step, None, None, len(batch), ctc_weight=0.0, **common)
    return joint_decode_batch(step, enc.ctc_log_probs, enc.mask.sum(1), len(batch), ctc_weight=decoding.ctc_weight,
                              **common)


def _joint_score(model, batch, enc, cands, decoding):
    """``(1 - w) log P_LM + w log P_CTC`` with ``w = ctc_weight``; the LM alone without MEG."""
    w = decoding.ctc_weight if enc is not None else 0.0
    lm = model.lm_scores(batch, enc, cands) if w < 1.0 else None
    if w == 0.0:
        return lm
    ctc = model.ctc_scores(enc, cands)
    return ctc if lm is None else (1.0 - w) * lm + w * ctc


def _joint_words(decoding) -> str:
    w = decoding.ctc_weight
    return f"{1 - w:g} log P_LM + {w:g} log P_CTC (the {decoding.strategy} score); LM only without MEG"


register(Strategy("joint", "label-synchronous LLM beam scored with (1 - ctc_weight) LM + ctc_weight CTC prefix score",
                  _joint_decode, _joint_score, _joint_words))
register(Strategy("rescore", "the CTC and LLM n-best lists pooled and rescored with both exact sequence scores",
                  _joint_decode, _joint_score, _joint_words))


def _fusion_decode(model, batch, enc, decoding) -> list[list[int]]:
    """CTC prefix beam search with the MEG-conditioned LLM's shallow fusion, the batch's examples searched
    together so that each frame asks the LLM once for all of them."""
    return ctc_fusion_beam_search_batch(list(enc.ctc_log_probs), model.units.blank,
                                        BatchPrefixLM(model.decoder, _contexts(model, batch, enc), model.embed),
                                        eos_id=model.eos_id, beam=decoding.num_beams, lm_weight=decoding.lm_weight,
                                        length_bonus=decoding.length_bonus, lengths=enc.mask.sum(1).tolist(),
                                        unit_ids=unit_ids(model))


def _fusion_score(model, batch, enc, cands, decoding):
    """``log P_CTC + lm_weight log P_LM + length_bonus n_tokens`` (what the fusion search ranks by)."""
    score = model.ctc_scores(enc, cands)
    if decoding.lm_weight:
        score = score + decoding.lm_weight * model.lm_scores(batch, enc, cands)
    return score + decoding.length_bonus * torch.tensor([len(c) for c in cands], dtype=torch.float32)


register(Strategy("fusion", "CTC prefix beam search with the MEG-conditioned LLM's shallow fusion "
                            "(decoding.lm_weight, decoding.length_bonus)", _fusion_decode, _fusion_score,
                  lambda d: f"log P_CTC + {d.lm_weight:g} log P_LM + {d.length_bonus:g} n_tokens (the fusion score); "
                            "none without MEG", needs_meg=True, lm_weighted=True))


# ------------------------------------------------------------------------------ phonemes + lexicon + LLM
class WordLM:
    """``word_lm_fn`` for :func:`~brain2text.decoding.lexicon.lexicon_beam_search_batch`: ``log P_LM(word |
    words, context)`` of each example's decoder context (prompt + MEG), in the decoder's own tokens.

    A word sequence is scored as the text it writes (``model.text_ids(" ".join(words))``), so any tokenizer
    works: the word's score is ``S(words + [word]) - S(words)`` with ``S`` the summed next-token log-probs
    of that text (eos: ``log P(eos | words)``). Every prefix of tokens is computed once
    (:class:`~brain2text.models.splice.BatchPrefixLM`, all requests of a call in one batch)."""

    def __init__(self, model, contexts: list[torch.Tensor], words: list[str]):
        self.model, self.words = model, words
        self.prefix_lm = BatchPrefixLM(model.decoder, contexts, model.embed)
        self._ids: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._sums: dict[tuple[int, tuple[int, ...]], float] = {}

    def ids(self, words: tuple[int, ...]) -> tuple[int, ...]:
        if words not in self._ids:
            self._ids[words] = tuple(self.model.text_ids(" ".join(self.words[w] for w in words))) if words else ()
        return self._ids[words]

    def __call__(self, requests: list[tuple[int, tuple[int, ...], int | None]]) -> list[float]:
        eos = self.model.eos_id
        texts = {(i, self.ids(ws)) for i, ws, _ in requests} | {(i, self.ids(ws + (w,))) for i, ws, w in requests
                                                                 if w is not None}
        prefixes = list(dict.fromkeys((i, seq[:j]) for i, seq in texts for j in range(len(seq) + 1)
                                      if (i, seq) not in self._sums or j == len(seq)))
        rows = dict(zip(prefixes, self.prefix_lm([(i, list(p)) for i, p in prefixes]))) if prefixes else {}
        for i, seq in texts:
            if (i, seq) not in self._sums:
                self._sums[(i, seq)] = sum(float(rows[(i, seq[:j])][t]) for j, t in enumerate(seq))
        out = []
        for i, ws, w in requests:
            base = self.ids(ws)
            if w is None:
                out.append(float(rows[(i, base)][eos]))
            else:
                out.append(self._sums[(i, self.ids(ws + (w,)))] - self._sums[(i, base)])
        return out


class WordCTC:
    """``word_ctc_fn`` for :func:`~brain2text.decoding.lexicon.lexicon_beam_search_batch`: the word CTC head's
    prefix score of each example's word sequence (:class:`~brain2text.decoding.ctc.CTCPrefixScorer`), as the
    gain of one more word: ``log psi(words + word) - log psi(words)`` (eos: ``log P(words) - log psi(words)``).
    A word is the CTC classes of its tokens in context; a word the head cannot write (not among its units)
    scores ``unknown`` instead (a fixed cost: unseen words stay possible, on the phonemes' evidence alone)."""

    def __init__(self, model, log_probs: list[torch.Tensor], words: list[str], unknown: float = -10.0):
        """``log_probs``: each example's word CTC log-probs cut to its frames (``EncodedMEG.ctc_frames()``)."""
        self.model, self.words, self.unknown = model, words, unknown
        self.scorers = [CTCPrefixScorer(lp, model.units.blank) for lp in log_probs]
        self._classes: dict[int, list[int] | None] = {}
        self._states: dict[tuple[int, tuple[int, ...]], tuple] = {}  # -> (state, log psi)

    def classes(self, w: int) -> list[int] | None:
        if w not in self._classes:
            ids = self.model.text_ids(" " + self.words[w])
            self._classes[w] = self.model.units.classes(ids) or None
        return self._classes[w]

    def state(self, i: int, words: tuple[int, ...]):
        """The prefix state and ``log psi`` of the writable words of ``words`` (unknown words skipped)."""
        key = (i, words)
        if key not in self._states:
            if not words:
                self._states[key] = (self.scorers[i].initial_state(), 0.0)
            else:
                state, psi = self.state(i, words[:-1])
                for c in self.classes(words[-1]) or []:
                    scores, nxt = self.scorers[i].score(state, torch.tensor([c]))
                    state, psi = nxt.take([0]), float(scores[0, 0])
                self._states[key] = (state, psi)
        return self._states[key]

    def __call__(self, requests: list[tuple[int, tuple[int, ...], int | None]]) -> list[float]:
        out = []
        for i, ws, w in requests:
            state, psi = self.state(i, ws)
            if w is None:
                out.append(float(self.scorers[i].end_scores(state)[0]) - psi)
            elif self.classes(w) is None:
                out.append(self.unknown)
            else:
                out.append(self.state(i, ws + (w,))[1] - psi)
        return out


def model_lexicon(model) -> Lexicon:
    """The model's pronunciation lexicon (its ``lexicon_words``), built once."""
    words = getattr(model, "lexicon_words", None)
    if not words:
        raise ConfigError("decoding.strategy=lexicon needs a model with encoder.phoneme_head and lexicon words "
                          "(saved by training)")
    cached = getattr(model, "_lexicon", None)
    if cached is None or cached.words != list(dict.fromkeys(words)):
        cached = Lexicon(words)
        model._lexicon = cached
    return cached


def _lexicon_lookahead(model, lexicon: Lexicon) -> list[float]:
    """Per trie node, the best log-prob of a word's first token after the prompt alone (the look-ahead)."""
    cached = getattr(model, "_lexicon_lookahead", None)
    if cached is not None and cached[0] is lexicon:
        return cached[1]
    prompt = model.lm_inputs(None, None, targets=None, batch_size=1)
    row = BatchPrefixLM(model.decoder, [prompt.inputs_embeds], model.embed)([(0, [])])[0]
    first = [float(row[ids[0]]) if (ids := model.text_ids(" " + w)) else 0.0 for w in lexicon.words]
    model._lexicon_lookahead = (lexicon, lexicon.lookahead(first))
    return model._lexicon_lookahead[1]


def _lexicon_score(model, batch, enc, cands, decoding):
    """``log P_CTC(phonemes of the words) + lm_weight log P_LM + ctc_weight log P_CTC(words) + length_bonus
    n_words``: what the lexicon search ranks by, with each word's first pronunciation (a word the word CTC
    head cannot write costs ``WordCTC.unknown`` instead of its CTC term)."""
    words = [model.tokenizer.decode(c, skip_special_tokens=True).split() for c in cands]
    score = torch.stack([ctc_sequence_log_prob(lp, [phoneme_ids(ws) for ws in words], lp.shape[-1] - 1, int(n))
                         for lp, n in zip(enc.phoneme_log_probs, enc.phoneme_lengths())])
    if decoding.lm_weight:
        score = score + decoding.lm_weight * model.lm_scores(batch, enc, cands)
    if decoding.ctc_weight:
        vocab = sorted({w for ws in words for w in ws})
        index = {w: k for k, w in enumerate(vocab)}
        word_ctc = WordCTC(model, enc.ctc_frames(), vocab)
        score = score + decoding.ctc_weight * torch.tensor(
            [[sum(word_ctc([(i, tuple(index[w] for w in ws[:k]), index[ws[k]]) for k in range(len(ws))]))
              + word_ctc([(i, tuple(index[w] for w in ws), None)])[0] for ws in words] for i in range(len(batch))])
    return score + decoding.length_bonus * torch.tensor([len(ws) for ws in words], dtype=torch.float32)


def _lexicon_decode(model, batch, enc, decoding) -> list[list[int]]:
    """Phoneme CTC + pronunciation lexicon + the MEG-conditioned LLM's word scores (lexicon.py)."""
    if enc.phoneme_log_probs is None:
        raise ConfigError("decoding.strategy=lexicon needs encoder.phoneme_head: true")
    lexicon = model_lexicon(model)
    word_lm = WordLM(model, _contexts(model, batch, enc), lexicon.words) if decoding.lm_weight else None
    lookahead = _lexicon_lookahead(model, lexicon) if decoding.lm_weight else None
    word_ctc = WordCTC(model, enc.ctc_frames(), lexicon.words) if decoding.ctc_weight else None
    found = lexicon_beam_search_batch(list(enc.phoneme_log_probs), lexicon, word_lm, beam=decoding.num_beams,
                                      lm_weight=decoding.lm_weight, word_bonus=decoding.length_bonus,
                                      lengths=enc.phoneme_lengths(), lookahead=lookahead, word_ctc_fn=word_ctc,
                                      word_ctc_weight=decoding.ctc_weight)
    return [model.text_ids(" ".join(lexicon.words[w] for w in words)) for words in found]


register(Strategy("lexicon", "phoneme CTC spelled into words of the pronunciation lexicon, with the MEG-conditioned "
                             "LLM's word scores (decoding.lm_weight) and the word CTC head's prefix score "
                             "(decoding.ctc_weight) fused in; decoding.length_bonus per word",
                  _lexicon_decode, _lexicon_score,
                  lambda d: f"log P_CTC(phonemes) + {d.lm_weight:g} log P_LM + {d.ctc_weight:g} log P_CTC(words) + "
                            f"{d.length_bonus:g} n_words (the lexicon score, each word's first pronunciation); none "
                            "without MEG", needs_meg=True, lm_weighted=True))
