"""Sentence text: treebank detokenisation (the target text) and normalisation (split hashing, dedup).

Case and punctuation decision
-----------------------------
Target sentences keep the case and punctuation of the tokens they are built from; only the treebank
*spacing* is undone (``would n't`` -> ``wouldn't``, ``stock - still`` -> ``stock-still``, no space
before ``, . ! ? ; :`` or a closing quote). MEG-MASC's word events carry no punctuation tokens, so
targets built from events are cased words separated by spaces ("He wished Roy fall for that gag").
Metrics that want case-/punctuation-insensitive scoring normalise on their side;
:func:`normalize_for_split` is the normalisation used to decide splits, so two spellings of one
sentence always land in the same split.
"""

from __future__ import annotations

import re
import unicodedata

# Tokens glued to the previous token (treebank splits clitics off: "would n't", "Harmon 's").
_CLITICS = {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m", "'", "’s", "n’t"}
# No space before these.
_CLOSERS = {",", ".", "!", "?", ";", ":", "...", ")", "]", "}", "%", "''", "”", "’"}
# No space after these.
_OPENERS = {"(", "[", "{", "$", "``", "“", "‘"}
_APOSTROPHES = "'\u2019\u2018`"


def _is_clitic(token: str) -> bool:
    low = token.lower()
    return low in _CLITICS or (low.startswith(("'", "’")) and low[1:].isalpha() and len(low) <= 3)


def detokenize(tokens: list[str]) -> str:
    """Join treebank-style tokens into normal text.

    ``["He", "would", "n't", "go", ",", "\\"", "Hey", "\\""]`` -> ``He wouldn't go, "Hey"``.
    A single ``-`` token joins its neighbours (``stock - still`` -> ``stock-still``); ``--`` stays a
    spaced dash. Plain ``"`` tokens alternate between opening (space before, none after) and closing
    (none before, space after); treebank `````` / ``''`` are written as ``"``.
    """
    out: list[str] = []
    glue_next = False  # the previous token asks the next one to attach without a space
    quote_open = False
    for raw in tokens:
        tok = str(raw).strip()
        if not tok:
            continue
        attach = False
        if tok in ('"', "``", "''", "\u201c", "\u201d"):
            opening = tok in ("``", "\u201c") or (tok == '"' and not quote_open)
            quote_open = opening
            tok = '"'
            attach = not opening
            piece_glues = opening
        elif tok == "-":
            attach, piece_glues = True, True
        else:
            attach = tok in _CLOSERS or _is_clitic(tok) or all(c in ".,!?;:" for c in tok)  # "??", "?!"
            piece_glues = tok in _OPENERS
        if out and not (attach or glue_next):
            out.append(" ")
        out.append(tok)
        glue_next = piece_glues
    return "".join(out).strip()


def normalize_for_split(text: str) -> str:
    """Lowercase, drop apostrophes, turn other punctuation into spaces, collapse whitespace.

    ``"Wouldn't  it, Roy?"`` and ``"would n't it Roy"`` both give ``"wouldnt it roy"``, and
    ``stock-still`` equals ``stock - still``: spellings of one sentence share one split.
    """
    text = detokenize(str(text).split())
    chars = []
    for ch in unicodedata.normalize("NFKC", text).lower():
        if ch in _APOSTROPHES:
            continue
        cat = unicodedata.category(ch)
        chars.append(" " if cat[0] in ("P", "S") else ch)
    return re.sub(r"\s+", " ", "".join(chars)).strip()
