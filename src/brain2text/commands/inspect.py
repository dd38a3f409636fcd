"""``brain2text inspect PATH [--json]``: what a BIDS dataset, a recording or a ``.npy`` array holds.

A BIDS root: subjects, sessions, tasks, runs, stories, channels, rates, duration, word and
sentence counts, and everything skipped with its reason (unreadable files are skipped, not fatal).
A single recording or array that cannot be read is an error (exit 2, one line).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from mne_bids import get_entities_from_fname

from ..config import DataConfig
from ..data.bids import Recording, events_path_for, find_recordings, read_description
from ..data.events import extract_sentences, read_events
from ..data.readers import read_recording
from ..errors import DataError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a BIDS root, a recording (.fif, .con, .sqd, CTF .ds, ...) or a .npy array")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--sfreq", type=float, default=None, help="sampling rate of a .npy array (else its sidecar JSON)")


def _recording_info(path: Path, sfreq: float | None = None) -> dict:
    raw = read_recording(path, sfreq)
    types = Counter(raw.get_channel_types())
    return {"path": str(path), "n_chans": len(raw.ch_names), "channel_types": dict(sorted(types.items())),
            "sfreq": float(raw.info["sfreq"]), "n_times": int(raw.n_times),
            "duration": round(raw.n_times / raw.info["sfreq"], 3)}


def _events_info(events_path: Path | None) -> dict:
    if events_path is None:
        return {"n_words": 0, "n_sentences": 0, "n_word_lists": 0, "stories": []}
    events = read_events(events_path)
    blocks = extract_sentences(events, include_word_lists=True)
    return {"n_words": int((events["kind"] == "word").sum()),
            "n_sentences": sum(b.condition == "sentence" for b in blocks),
            "n_word_lists": sum(b.condition != "sentence" for b in blocks),
            "stories": sorted({s for s in events["story"].dropna()})}


def _summarise(items: list[dict], skipped: list[dict]) -> dict:
    def distinct(key):
        return sorted({it[key] for it in items if it.get(key) is not None}, key=str)

    montages = [dict(t) for t in sorted({tuple(sorted(it["channel_types"].items())) for it in items})]
    return {
        "n_subjects": len(distinct("subject")), "subjects": distinct("subject"), "sessions": distinct("session"),
        "tasks": distinct("task"), "runs": distinct("run"), "n_recordings": len(items),
        "n_words": sum(it["n_words"] for it in items), "n_sentences": sum(it["n_sentences"] for it in items),
        "n_word_lists": sum(it["n_word_lists"] for it in items),
        "stories": sorted({s for it in items for s in it["stories"]}),
        "n_chans": distinct("n_chans"), "channel_types": montages[0] if len(montages) == 1 else montages,
        "sfreq": distinct("sfreq"),
        "duration": round(sum(it["duration"] for it in items), 3), "skipped": skipped, "recordings": items,
    }


def _inspect_bids(root: Path) -> dict:
    recordings, skipped_found = find_recordings(root, DataConfig(bids_root=str(root)))
    skipped = [{"path": s.path, "reason": s.reason} for s in skipped_found]
    items = []
    for rec in recordings:
        try:
            item = {**_recording_info(rec.path), **_events_info(rec.events_path)}
        except DataError as exc:
            skipped.append({"path": exc.path or str(rec.path), "reason": str(exc).removeprefix(f"{exc.path}: ")})
            continue
        if rec.events_path is None:
            skipped.append({"path": str(rec.path), "reason": "no events.tsv (no word annotations)"})
        items.append({**_entities(rec), **item})
    out = _summarise(items, skipped)
    desc = read_description(root)
    out.update({"kind": "bids", "path": str(root), "name": desc.get("Name"),
                "synthetic": desc.get("Synthetic") is True})
    return out


def _entities(rec: Recording) -> dict:
    return {"subject": rec.subject, "session": rec.session, "task": rec.task, "run": rec.run}


def _inspect_file(path: Path, sfreq: float | None) -> dict:
    item = _recording_info(path, sfreq)
    events = events_path_for(path) if "_" in path.name else None
    item.update(_events_info(events))
    ent = get_entities_from_fname(path.name, on_error="ignore")
    item.update({key: ent.get(key) for key in ("subject", "session", "task", "run")})
    out = _summarise([item], [])
    out.update({"kind": "recording", "path": str(path), "events": str(events) if events else None, "synthetic": False})
    return out


def inspect_path(path: str | Path, sfreq: float | None = None) -> dict:
    """The summary ``brain2text inspect`` prints, as a dict (keys: n_subjects, n_recordings, n_words,
    n_sentences, stories, skipped, n_chans, channel_types, sfreq, duration, ...)."""
    path = Path(path)
    if not path.exists():
        raise DataError("not found", path)
    if path.is_dir() and path.suffix.lower() != ".ds":
        return _inspect_bids(path)
    return _inspect_file(path, sfreq)


def _print_text(info: dict) -> None:
    print(f"{info['kind']}: {info['path']}" + ("  [SYNTHETIC DATA]" if info.get("synthetic") else ""))
    if info["kind"] == "bids":
        print(f"  subjects ({info['n_subjects']}): {' '.join(info['subjects'])}")
        print(f"  sessions: {info['sessions']}  tasks: {info['tasks']}  runs: {info['runs'] or '-'}")
        print(f"  recordings: {info['n_recordings']}")
    print(f"  channels: {info['n_chans']} {info['channel_types']}")
    print(f"  sampling rate (Hz): {info['sfreq']}   duration: {info['duration']:.1f} s")
    print(f"  words: {info['n_words']}   sentences: {info['n_sentences']}   word lists: {info['n_word_lists']}")
    print(f"  stories: {', '.join(info['stories']) or '-'}")
    print(f"  skipped: {len(info['skipped'])}")
    for s in info["skipped"]:
        print(f"    {s['path']}: {s['reason']}")


def run(args: argparse.Namespace) -> int:
    info = inspect_path(args.path, args.sfreq)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_text(info)
    return 0
