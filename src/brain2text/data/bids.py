"""Find the recordings of a BIDS dataset (MEG-MASC layout or any BIDS MEG/EEG dataset).

Recordings are ``sub-*/[ses-*/]{meg,eeg}/*_{meg,eeg}.<ext>`` (a CTF ``.ds`` folder counts as one
file); entities are parsed with mne-bids' ``get_entities_from_fname``. Nothing is read here beyond
file names and sizes: unreadable files are found (and skipped) when the cache reads them.

What is missing is reported, not hidden: a subject lacking a session or a task that other subjects
have (MEG-MASC: sub-03, 12, 16, 20, 21 have one session) or an empty file becomes a
:class:`Skipped` entry and a logged warning. A recording without ``events.tsv`` is returned with
``events_path=None``; the cache skips it (and says so).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mne_bids import get_entities_from_fname

from ..config import DataConfig
from ..errors import DataError

log = logging.getLogger(__name__)
_SIDECAR_SUFFIXES = {".json", ".tsv", ".mrk", ".txt", ".elp", ".hsp", ".pos", ".md"}


@dataclass
class Recording:
    subject: str
    session: str | None
    task: str | None
    run: str | None
    path: Path  # the MEG/EEG file (or CTF .ds folder)
    events_path: Path | None  # the BIDS events.tsv beside it, None when absent

    @property
    def id(self) -> str:
        parts = [f"sub-{self.subject}"]
        for key, value in (("ses", self.session), ("task", self.task), ("run", self.run)):
            if value is not None:
                parts.append(f"{key}-{value}")
        return "_".join(parts)


@dataclass
class Skipped:
    path: str
    reason: str


def read_description(bids_root: str | os.PathLike) -> dict:
    """``dataset_description.json`` as a dict ({} when absent or unreadable)."""
    path = Path(bids_root) / "dataset_description.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def is_synthetic(bids_root: str | os.PathLike) -> bool:
    """True when ``dataset_description.json`` says ``"Synthetic": true`` (``brain2text synth`` output)."""
    return read_description(bids_root).get("Synthetic") is True


def _candidates(subject_dir: Path) -> list[Path]:
    found = []
    for pattern in ("ses-*/meg/*_meg.*", "meg/*_meg.*", "ses-*/eeg/*_eeg.*", "eeg/*_eeg.*"):
        found.extend(subject_dir.glob(pattern))
    return sorted(p for p in found if p.suffix.lower() not in _SIDECAR_SUFFIXES)


def events_path_for(path: str | os.PathLike) -> Path | None:
    """The BIDS ``*_events.tsv`` beside a recording (``sub-01_task-1_meg.con`` ->
    ``sub-01_task-1_events.tsv``), or None when there is none."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    base = stem.rsplit("_", 1)[0].replace("_split-01", "")
    events = path.with_name(f"{base}_events.tsv")
    return events if events.is_file() else None


_events_path = events_path_for  # older name, kept for callers


def _recording(path: Path, skipped: list[Skipped]) -> Recording | None:
    ent = get_entities_from_fname(path.name, on_error="ignore")
    if ent.get("split") not in (None, "01"):
        return None  # later parts of a split FIF are read through the first part
    if path.is_file() and path.stat().st_size == 0:
        skipped.append(Skipped(str(path), "empty file"))
        return None
    if ent.get("subject") is None:
        skipped.append(Skipped(str(path), "file name has no sub- entity"))
        return None
    events = events_path_for(path)
    return Recording(ent["subject"], ent.get("session"), ent.get("task"), ent.get("run"), path, events)


def _missing(seen: list[tuple], subjects: list[str], root: Path) -> list[Skipped]:
    """Sessions / tasks that other subjects have and a subject lacks (``seen``: (sub, ses, task, run))."""
    have = {s: {k[1:] for k in seen if k[0] == s} for s in subjects}
    expected = set().union(*have.values()) if have else set()
    sessions = {k[0] for k in expected}
    out = []
    for sub in subjects:
        mine = have[sub]
        if not mine:
            continue
        for ses in sorted(sessions - {k[0] for k in mine}, key=str):
            out.append(Skipped(str(root / f"sub-{sub}" / f"ses-{ses}"), f"missing session ses-{ses}"))
        my_sessions = {k[0] for k in mine}
        for ses, task, run in sorted(expected - mine, key=lambda k: tuple(map(str, k))):
            if ses in my_sessions:
                label = f"task-{task}" + (f" run-{run}" if run else "")
                out.append(Skipped(str(root / f"sub-{sub}" / f"ses-{ses}"), f"missing recording {label}"))
    return out


def find_recordings(bids_root: str | os.PathLike, cfg: DataConfig) -> tuple[list[Recording], list[Skipped]]:
    """All recordings under ``bids_root`` (filtered by ``cfg.subjects``) and what was skipped.

    Raises :class:`DataError` when the root is not a folder or has no ``sub-*`` folder.
    """
    root = Path(bids_root)
    if not root.is_dir():
        raise DataError("BIDS root not found (or not a folder)", root)
    subject_dirs = sorted(p for p in root.glob("sub-*") if p.is_dir())
    if not subject_dirs:
        raise DataError("no subjects here (expected sub-*/ folders of a BIDS dataset)", root)
    wanted = {s.removeprefix("sub-") for s in cfg.subjects}
    skipped: list[Skipped] = []
    recordings: list[Recording] = []
    subjects, seen = [], []
    for sub_dir in subject_dirs:
        label = sub_dir.name.removeprefix("sub-")
        if wanted and label not in wanted:
            continue
        subjects.append(label)
        candidates = _candidates(sub_dir)
        for p in candidates:
            ent = get_entities_from_fname(p.name, on_error="ignore")
            seen.append((label, ent.get("session"), ent.get("task"), ent.get("run")))
        found = [r for r in (_recording(p, skipped) for p in candidates) if r is not None]
        if not found:
            skipped.append(Skipped(str(sub_dir), "no MEG/EEG recording (sub-*/[ses-*/]meg/*_meg.*)"))
        recordings.extend(found)
    for label in sorted(wanted - set(subjects)):
        skipped.append(Skipped(str(root / f"sub-{label}"), "subject requested in data.subjects but not found"))
    skipped.extend(_missing(seen, subjects, root))
    for s in skipped:
        log.warning("skipped %s: %s", s.path, s.reason)
    return recordings, skipped
