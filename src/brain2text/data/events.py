"""MEG-MASC word events: read ``events.tsv`` (both layouts) and group words into sentences.

Layouts (DESIGN.md §3):

* original: ``onset duration trial_type value sample`` where ``trial_type`` is a Python dict literal
  (``{'story': 'lw1', 'kind': 'word', 'word': 'The', ...}``), parsed with :func:`ast.literal_eval`
  (never ``eval``: a ``trial_type`` holding code is refused as malformed, never run);
* flattened: the dict's keys as their own columns and ``trial_type`` holding just the kind.

Both give one table with the columns :data:`EVENT_TABLE_COLUMNS`. Story names are lower-cased
(``The_Black_Willow`` -> ``the_black_willow``) so configs can name them one way.

Hostile or damaged tables are refused before anything expensive runs: a file over
:data:`MAX_EVENTS_BYTES`, a field over :data:`MAX_FIELD_CHARS` characters, a ``trial_type`` nested deeper
than :data:`MAX_NESTING` (``ast.literal_eval`` would recurse into it), a missing or NaN onset. What can be
repaired is repaired, with a warning saying what was done: exact duplicate rows are dropped (a word listed
twice would be heard twice), and rows out of onset order are sorted (see :func:`read_events`). A negative
onset is kept: BIDS allows events before the first sample, and their sentences fall outside the recording,
where windowing skips and counts them.
"""

from __future__ import annotations

import ast
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, warn_user
from .text import detokenize

EVENT_TABLE_COLUMNS = ("onset", "duration", "kind", "story", "sound_id", "word", "phoneme", "sequence_id",
                       "condition", "word_index", "pronounced", "line")
_NUMERIC = ("sound_id", "sequence_id", "word_index", "pronounced")
_TEXT = ("story", "word", "phoneme", "condition")
_MISSING = ("", "n/a", "nan", "none", "null")
# A plain label in a dict-layout file (e.g. mne-bids' BAD_ACQ_SKIP) is an event of that kind, not an error.
_LABEL = re.compile(r"^[A-Za-z_][\w/ .-]*$")
MAX_EVENTS_BYTES = 256 * 2**20  # MEG-MASC's largest events.tsv (words and phonemes) is a few MB
MAX_FIELD_CHARS = 64 * 1024  # a MEG-MASC trial_type is ~300 characters
MAX_NESTING = 8  # a MEG-MASC trial_type is a flat dict (nesting 1)
# pandas writes missing values inside a dict as bare nan / inf, which literal_eval refuses: read them as None.
_BARE_NAN = re.compile(r"(:\s*)(nan|NaN|-?inf)(\s*[,}])")


@dataclass
class Sentence:
    """Consecutive word events sharing ``sequence_id`` within one sound of one story."""

    story: str
    sound_id: float
    sequence_id: float
    condition: str
    words: list[str] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)  # seconds from recording start
    offsets: list[float] = field(default_factory=list)  # onset + duration
    text: str = ""


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in _MISSING


def _number(value, what: str, line: int, path) -> float:
    if _is_missing(value):
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"line {line}: {what} must be a number, got {str(value)[:40]!r}", path) from None
    return out


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError("events file not found", path)
    size = path.stat().st_size
    if size > MAX_EVENTS_BYTES:
        raise DataError(f"events file is {size / 2**20:.0f} MiB, more than any events table holds (at most "
                        f"{MAX_EVENTS_BYTES // 2**20} MiB)", path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise DataError("events file is empty", path) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"malformed events table ({' '.join(str(exc).split())})", path) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"cannot read events file ({exc})", path) from None
    return table


def _cell_text(value) -> str:
    """A cell as the text a file would hold: booleans as 1/0 (``pronounced``), dicts as their literal."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    return str(value)


def _as_text_table(table: pd.DataFrame, source) -> pd.DataFrame:
    """Every cell as text, as ``_read_table`` reads a file (missing values as ''), header names stripped."""
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"events must be a pandas DataFrame or an events.tsv path, got {type(table).__name__}",
                        source)
    table = table.astype(object).where(table.notna(), "").map(_cell_text)
    table.columns = [str(c).strip() for c in table.columns]
    if "onset" not in table.columns:
        raise DataError(f"events table has no 'onset' column (columns: {list(table.columns)[:8]})", source)
    if "trial_type" not in table.columns and "kind" not in table.columns:
        raise DataError("events table has neither a 'trial_type' nor a 'kind' column", source)
    _check_field_sizes(table, source)
    return table.reset_index(drop=True)


def _check_field_sizes(table: pd.DataFrame, path: Path) -> None:
    """Refuse a field over :data:`MAX_FIELD_CHARS` (a 50 MB row), before any field is parsed."""
    for column in table.columns:
        if len(column) > MAX_FIELD_CHARS:
            raise DataError(f"line 1: a column name is {len(column)} characters long (at most {MAX_FIELD_CHARS})",
                            path)
        lengths = table[column].str.len()
        if len(lengths) and lengths.max() > MAX_FIELD_CHARS:
            row = int(lengths.to_numpy().argmax())
            raise DataError(f"line {row + 2}: field '{column[:40]}' is {int(lengths.iloc[row])} characters long (at "
                            f"most {MAX_FIELD_CHARS}): not an event", path)


def _nesting(text: str) -> int:
    """Deepest bracket nesting of a literal, brackets inside quoted strings not counted."""
    depth = deepest = 0
    quote, escaped = None, False
    for ch in text:
        if quote:  # inside a string: only its closing quote matters
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def _parse_dict(text: str, line: int, path) -> dict:
    text = text.strip()
    if not text.startswith("{") and _LABEL.match(text):
        return {"kind": text}
    if sum(text.count(b) for b in "([{") > MAX_NESTING and _nesting(text) > MAX_NESTING:  # count first: cheap
        raise DataError(f"line {line}: trial_type is nested {_nesting(text)} levels deep (an event is a flat dict; at "
                        f"most {MAX_NESTING})", path)
    try:
        value = ast.literal_eval(_BARE_NAN.sub(r"\1None\3", text))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise DataError(f"line {line}: trial_type is not a Python dict literal ({text[:60]!r})", path) from None
    if not isinstance(value, dict):
        raise DataError(f"line {line}: trial_type must be a dict literal, got {type(value).__name__}", path)
    return value


def _normalise_row(info: dict, onset, duration, line: int, path) -> dict:
    row = {"onset": _number(onset, "onset", line, path), "duration": _number(duration, "duration", line, path)}
    if math.isnan(row["onset"]):
        raise DataError(f"line {line}: onset is missing or NaN (every event needs a time)", path)
    if math.isnan(row["duration"]):
        row["duration"] = 0.0
    if row["duration"] < 0 or not math.isfinite(row["onset"]) or not math.isfinite(row["duration"]):
        raise DataError(f"line {line}: onset/duration must be finite and duration >= 0", path)
    kind = info.get("kind")
    row["kind"] = "" if _is_missing(kind) else str(kind).strip().lower()
    for key in _NUMERIC:
        row[key] = _number(info.get(key), key, line, path)
    for key in _TEXT:
        value = info.get(key)
        row[key] = None if _is_missing(value) else str(value).strip()
    if row["story"] is not None:
        row["story"] = row["story"].lower()
    row["line"] = line
    return row


def read_events(path: str | os.PathLike) -> pd.DataFrame:
    """Read a MEG-MASC ``events.tsv`` (original dict-literal or flattened layout).

    Returns a table with columns :data:`EVENT_TABLE_COLUMNS` (``line`` is the 1-based line in the
    file, header = 1), one row per event, sorted by onset. Raises :class:`DataError` naming the file
    and the line on a malformed row.

    Exact duplicate rows are dropped, and rows out of onset order sorted (stably, so a word and its
    first phoneme keep their order), each with a warning counting them. Sorting rather than refusing:
    MEG-MASC's tables are written in time order, and sentences are runs of consecutive words *in time*,
    so a table concatenated out of order (one story's block after another's) still says exactly which
    word was heard when; refusing it would lose a usable recording.
    """
    path = Path(path)
    return parse_events(_read_table(path), path)


def parse_events(table: pd.DataFrame, source: str | os.PathLike | None = "<events table>") -> pd.DataFrame:
    """:func:`read_events` for a table already in memory (e.g. ``pd.read_csv(..., sep="\\t")``): either
    MEG-MASC layout, any column dtypes; errors name ``source`` and the line as in the file (header = 1)."""
    path = source
    table = _as_text_table(table, source)
    cols = list(table.columns)
    dict_layout = "trial_type" in cols and table["trial_type"].str.lstrip().str.startswith("{").any()
    onsets = table["onset"].tolist()
    durations = table["duration"].tolist() if "duration" in cols else [0.0] * len(table)
    if dict_layout:
        infos = (_parse_dict(t, i + 2, path) for i, t in enumerate(table["trial_type"].tolist()))
    else:
        flat = table.to_dict("records")
        infos = ({**r, "kind": r.get("kind") if not _is_missing(r.get("kind")) else r.get("trial_type")} for r in flat)
    rows = [_normalise_row(info, onsets[i], durations[i], i + 2, path) for i, info in enumerate(infos)]
    if not rows:
        return pd.DataFrame({c: [] for c in EVENT_TABLE_COLUMNS})
    return _in_time_order(_without_duplicates(pd.DataFrame(rows, columns=list(EVENT_TABLE_COLUMNS)), path), path)


def _without_duplicates(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``table`` without rows identical to an earlier one in every column but ``line`` (warned, counted)."""
    dup = table.duplicated(subset=[c for c in EVENT_TABLE_COLUMNS if c != "line"], keep="first")
    if dup.any():
        lines = table.loc[dup, "line"].tolist()
        shown = ", ".join(str(n) for n in lines[:5]) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
        warn_user(f"{len(lines)} duplicate row(s) dropped (line {shown}: the same event as an earlier row)", path)
        table = table[~dup].reset_index(drop=True)
    return table


def _in_time_order(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``table`` sorted by onset (stable); rows that came before an earlier onset are counted in a warning."""
    onsets = table["onset"]
    late = onsets < onsets.cummax().shift(fill_value=-math.inf)  # before an onset already seen
    if late.any():
        first = int(table.loc[late, "line"].iloc[0])
        warn_user(f"{int(late.sum())} row(s) out of onset order (first: line {first}); rows sorted by onset", path)
        table = table.sort_values("onset", kind="mergesort").reset_index(drop=True)
    return table


def _key(value):
    return None if _is_missing(value) else value


def extract_sentences(events: pd.DataFrame, include_word_lists: bool = False) -> list[Sentence]:
    """Group word events into sentences.

    A sentence is a run of consecutive ``word`` rows (in onset order) sharing ``sequence_id``
    within one sound (story, sound_id) with ``condition == "sentence"`` (a missing condition counts
    as a sentence). ``word_list`` blocks come back only with ``include_word_lists=True``, their
    condition kept as a label. Words marked ``pronounced == 0`` were not heard and are dropped;
    words without a ``sequence_id`` belong to no sentence.
    """
    words = events[(events["kind"] == "word") & events["word"].notna() & (events["pronounced"] != 0)]
    words = words[words["sequence_id"].notna()].sort_values("onset", kind="mergesort")
    sentences: list[Sentence] = []
    current_key = None
    for row in words.itertuples(index=False):
        condition = row.condition or "sentence"
        key = (_key(row.story), _key(row.sound_id), row.sequence_id, condition)
        if key != current_key:
            current_key = key
            sentences.append(Sentence(story=row.story or "", sound_id=row.sound_id, sequence_id=row.sequence_id,
                                      condition=condition))
        sentence = sentences[-1]
        sentence.words.append(str(row.word))
        sentence.onsets.append(float(row.onset))
        sentence.offsets.append(float(row.onset + row.duration))
    keep = [s for s in sentences if s.condition == "sentence" or include_word_lists]
    for s in keep:
        s.text = detokenize(s.words)
    return keep
