"""One example per sentence: where its MEG window lies in the preprocessed recording.

Window of a sentence, in seconds from the recording start::

    start = first word onset - margin_before + meg_delay
    end   = last word offset + margin_after  + meg_delay

(the brain answers ~150 ms after the sound, so the whole window is shifted by ``meg_delay``).
``word_onsets`` are seconds from the window start with the delay applied, i.e. where each word's
response is expected inside the window: ``onset + meg_delay - start``.

An example is a plain JSON-ready dict (the cache manifest stores it as is) with the keys
``id, recording, subject, subject_index, session, task, run, story, sound_id, sequence_id, condition,
split, text, words, word_onsets, start, end, n_times, n_chans`` (``start``/``end`` are sample
indices at the preprocessed rate, ``end`` exclusive, ``n_times = end - start``).
"""

from __future__ import annotations

from collections import Counter

from ..config import DataConfig
from .bids import Recording, Skipped
from .events import Sentence


def _fmt(value: float) -> str:
    return "na" if value != value else f"{value:g}"


def sentence_window(sentence: Sentence, sfreq: float, cfg: DataConfig) -> tuple[int, int]:
    """(start, end) sample indices of a sentence's MEG window at ``sfreq`` (``end`` exclusive)."""
    t0 = sentence.onsets[0] - cfg.margin_before + cfg.meg_delay
    t1 = max(sentence.offsets) + cfg.margin_after + cfg.meg_delay
    return int(round(t0 * sfreq)), int(round(t1 * sfreq))


def make_examples(sentences: list[Sentence], splits: list[str], recording: Recording, recording_index: int,
                  subject_index: int, n_samples: int, n_chans: int, sfreq: float,
                  cfg: DataConfig) -> tuple[list[dict], list[Skipped]]:
    """Examples of one recording (preprocessed to ``n_samples`` at ``sfreq``) and what was dropped.

    A sentence whose window is longer than ``cfg.max_window`` or falls outside the recording is
    dropped; the drops are counted per reason in one :class:`Skipped` entry per reason.
    """
    examples, dropped = [], Counter()
    for sentence, split in zip(sentences, splits):
        start, end = sentence_window(sentence, sfreq, cfg)
        if end - start > cfg.max_window * sfreq:
            dropped[f"window longer than data.max_window={cfg.max_window:g} s"] += 1
            continue
        if start < 0 or end > n_samples or end <= start:
            dropped["window outside the recording"] += 1
            continue
        t_start = start / sfreq
        examples.append({
            "id": f"{recording.id}_sound-{_fmt(sentence.sound_id)}_seq-{_fmt(sentence.sequence_id)}_t-{start}",
            "recording": recording_index,
            "subject": recording.subject,
            "subject_index": subject_index,
            "session": recording.session,
            "task": recording.task,
            "run": recording.run,
            "story": sentence.story,
            "sound_id": None if sentence.sound_id != sentence.sound_id else float(sentence.sound_id),
            "sequence_id": float(sentence.sequence_id),
            "condition": sentence.condition,
            "split": split,
            "text": sentence.text,
            "words": list(sentence.words),
            "word_onsets": [round(o + cfg.meg_delay - t_start, 6) for o in sentence.onsets],
            "start": start,
            "end": end,
            "n_times": end - start,
            "n_chans": n_chans,
        })
    skipped = [Skipped(str(recording.path), f"{n} sentence(s) dropped: {why}") for why, n in sorted(dropped.items())]
    return examples, skipped


def sliding_windows(n_samples: int, sfreq: float, length: float, stride: float) -> list[tuple[int, int]]:
    """(start, end) sample windows covering a recording without word events (inference).

    Windows of ``length`` seconds every ``stride`` seconds; the last one is aligned to the end so
    the tail is covered; a recording shorter than ``length`` gives one window over all of it.
    """
    size, step = max(1, int(round(length * sfreq))), max(1, int(round(stride * sfreq)))
    if n_samples <= size:
        return [(0, n_samples)] if n_samples > 0 else []
    starts = list(range(0, n_samples - size + 1, step))
    if starts[-1] + size < n_samples:
        starts.append(n_samples - size)
    return [(s, s + size) for s in starts]
