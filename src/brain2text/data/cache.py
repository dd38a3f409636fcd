"""The on-disk cache of preprocessed sentence examples, and :class:`ExampleSet` to read it.

Layout of one cache (``<cache_dir>/<dataset name>-<key>/``)::

    manifest.json          examples, recordings (channels, 2-D positions), scalers, skipped, params
    <recording id>.npy     float32 (n_chans, n_samples): preprocessed, robust-scaled, clamped

The key hashes the BIDS root's absolute path, the size and mtime of every recording and events
file, every ``data`` parameter (``cache_dir`` aside) and the cache format / package version, so a
changed file or parameter builds a new cache and a second run reads the existing one. The cache is
built in a temporary folder renamed into place at the end (``atomic_directory``): an interrupted
build never leaves a folder that looks complete. Several processes (e.g. DDP ranks) may build the same
cache at once: the first to finish wins and the others discard their copy and read the winner's
(building once on the main process first saves the duplicated work).

Robust scaling is fitted on training data only: per subject (and montage), median/IQR per channel
over that subject's *train* windows. A subject with no train window (all its sentences in val/test,
or a new subject at inference) is scaled with statistics of its own preprocessed MEG, all of it:
no text or label enters them, so this is per-recording normalisation, not a leak; the manifest
marks such scalers ``"source": "own_recordings"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .._version import __version__
from ..config import DataConfig
from ..errors import DataError
from ..utils.atomic import atomic_directory, atomic_write_json
from .bids import Recording, Skipped, find_recordings, is_synthetic
from .events import extract_sentences, read_events
from .examples import make_examples
from .preprocessing import (
    apply_robust_scaler,
    fit_robust_scaler,
    output_length,
    preprocess_raw,
)
from .readers import meg_picks, read_recording, sensor_positions_2d
from .splits import assign_splits

log = logging.getLogger(__name__)
CACHE_FORMAT = 2  # 2: line frequencies in the low-pass stop band are no longer notched
MANIFEST = "manifest.json"
_STALE_TMP_S = 6 * 3600  # temporary folders of builds killed this long ago are removed
_SCALE_CHUNK = 200_000  # samples per step when scaling a cached recording in place


def _file_stamps(root: Path, paths: list[Path]) -> list[list]:
    out = []
    for p in paths:
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file():
                st = f.stat()
                rel = str(f.relative_to(root)) if f.is_relative_to(root) else str(f)
                out.append([rel, st.st_size, st.st_mtime_ns])
    return out


def cache_key(root: Path, recordings: list[Recording], cfg: DataConfig) -> str:
    """sha256 over the data path, file sizes/mtimes, every data parameter and the code version."""
    paths = [r.path for r in recordings] + [r.events_path for r in recordings if r.events_path]
    params = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "cache_dir"}
    payload = {"format": CACHE_FORMAT, "version": __version__, "root": str(root.resolve()),
               "files": _file_stamps(root, paths), "params": params,
               "description": _file_stamps(root, [root / "dataset_description.json"])}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class ExampleSet:
    """Examples of a built cache. ``get_meg(i)`` gives example ``i``'s (C, T) float32 window."""

    def __init__(self, path: Path, manifest: dict, hit: bool):
        self.path = Path(path)
        self.hit = hit
        self.manifest = manifest
        self.examples: list[dict] = manifest["examples"]
        self.recordings: list[dict] = manifest["recordings"]
        self.sfreq: float = float(manifest["sfreq"])
        self.subjects: list[str] = manifest["subjects"]  # subject_index -> label
        self.scalers: dict = manifest["scalers"]
        self.synthetic: bool = bool(manifest["synthetic"])
        self.skipped = [Skipped(**s) for s in manifest["skipped"]]
        first = self.recordings[self.examples[0]["recording"]] if self.examples else (self.recordings or [{}])[0]
        self.ch_names: list[str] = list(first.get("ch_names", []))
        self.positions = np.asarray(first.get("positions", np.zeros((0, 2))), dtype=np.float32)  # (C, 2)
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def __getstate__(self):  # DataLoader workers reopen the memory maps instead of copying them
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state

    def _array(self, rec: int) -> np.ndarray:
        if rec not in self._arrays:
            self._arrays[rec] = np.load(self.path / self.recordings[rec]["file"], mmap_mode="r", allow_pickle=False)
        return self._arrays[rec]

    def get_meg(self, i: int) -> np.ndarray:
        """Example ``i``'s MEG window, (n_chans, n_times) float32 (a copy, safe to modify)."""
        ex = self.examples[i]
        return np.array(self._array(ex["recording"])[:, ex["start"]:ex["end"]], dtype=np.float32)

    def positions_of(self, i: int) -> np.ndarray:
        """(C, 2) sensor positions in [0, 1] of example ``i``'s recording."""
        return np.asarray(self.recordings[self.examples[i]["recording"]]["positions"], dtype=np.float32)

    def indices(self, split: str) -> list[int]:
        return [i for i, ex in enumerate(self.examples) if ex["split"] == split]

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Per split: examples and distinct sentence texts."""
        out = {}
        for split in ("train", "val", "test"):
            exs = [ex for ex in self.examples if ex["split"] == split]
            out[split] = {"examples": len(exs), "sentences": len({ex["text"] for ex in exs})}
        return out


def load_cache(path: str | Path, hit: bool = True) -> ExampleSet:
    """Open a built cache folder (raises :class:`DataError` if it is not one)."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not a complete brain2text cache ({type(exc).__name__})", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        raise DataError(f"cache format {manifest.get('format') if isinstance(manifest, dict) else '?'} "
                        f"is not {CACHE_FORMAT}; delete it to rebuild", path)
    return ExampleSet(path, manifest, hit)


def _remove_stale_tmp(path: Path) -> None:
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def build_cache(cfg: DataConfig, progress: bool = True) -> ExampleSet:
    """Build (or reuse) the cache of ``cfg.bids_root`` preprocessed with ``cfg``; see module doc.

    A second call with the same data and parameters only reads the manifest (``.hit`` is True).
    Raises :class:`DataError` if no recording gives a single example.
    """
    root = Path(cfg.bids_root).resolve()
    recordings, skipped = find_recordings(root, cfg)
    path = Path(cfg.cache_dir) / f"{root.name}-{cache_key(root, recordings, cfg)[:16]}"
    if (path / MANIFEST).is_file():
        try:
            return load_cache(path, hit=True)
        except DataError:
            log.warning("cache %s unreadable; rebuilding", path)
    if path.parent.is_dir():
        _remove_stale_tmp(path)
    try:
        with atomic_directory(path) as tmp:
            manifest = _build(tmp, root, recordings, list(skipped), cfg, progress)
            atomic_write_json(tmp / MANIFEST, manifest, indent=None)
            if (path / MANIFEST).is_file():  # a concurrent build (another rank) finished first: use its cache
                raise _BuiltElsewhere
    except _BuiltElsewhere:
        return load_cache(path, hit=True)
    return load_cache(path, hit=False)


class _BuiltElsewhere(Exception):
    """Internal: abandon this build (its temporary folder is removed) in favour of a finished one."""


# --------------------------------------------------------------------------------- the build
def _skip(skipped: list[Skipped], path, reason: str) -> None:
    skipped.append(Skipped(str(path), reason))
    log.warning("skipped %s: %s", path, reason)


def _sentences(recordings: list[Recording], cfg: DataConfig, skipped: list[Skipped]) -> dict[int, list]:
    """Sentences per recording index (recordings whose events cannot be used are skipped)."""
    stories = {s.lower() for s in cfg.stories}
    out = {}
    for i, rec in enumerate(recordings):
        if rec.events_path is None:
            _skip(skipped, rec.path, "no events.tsv beside the recording (no word annotations)")
            continue
        try:
            sentences = extract_sentences(read_events(rec.events_path), cfg.include_word_lists)
        except DataError as exc:
            _skip(skipped, rec.events_path, str(exc).removeprefix(f"{rec.events_path}: "))
            continue
        for s in sentences:
            s.story = s.story or f"task-{rec.task}"  # events without a story: fall back to the task label
        sentences = [s for s in sentences if not stories or s.story in stories]
        if not sentences:
            _skip(skipped, rec.events_path, "no sentences (after data.stories filter)")
            continue
        out[i] = sentences
    return out


def _preprocess_one(tmp: Path, rec: Recording, cfg: DataConfig) -> dict:
    raw = read_recording(rec.path)
    picks = meg_picks(raw, cfg.channel_types)
    n_out = output_length(raw.n_times, float(raw.info["sfreq"]), cfg.sfreq)
    file = f"{rec.id}.npy"
    out = np.lib.format.open_memmap(tmp / file, mode="w+", dtype=np.float32, shape=(len(picks), n_out))
    preprocess_raw(raw, picks, cfg, out=out)
    out.flush()
    del out
    return {"id": rec.id, "file": file, "path": str(rec.path), "subject": rec.subject, "n_samples": n_out,
            "ch_names": [raw.ch_names[p] for p in picks],
            "positions": sensor_positions_2d(raw, picks).round(6).tolist()}


def scaler_key(subject: str, ch_names: list[str]) -> str:
    """Key of a robust scaler in the manifest: one per subject and montage (``"01|1a2b3c4d"``)."""
    return f"{subject}|" + hashlib.sha1("\n".join(ch_names).encode()).hexdigest()[:8]


def _scaler_group(rec: dict) -> str:
    return scaler_key(rec["subject"], rec["ch_names"])


def _fit_scalers(tmp: Path, recs: list[dict], examples: list[dict]) -> dict:
    arrays = {i: np.load(tmp / r["file"], mmap_mode="r", allow_pickle=False)
              for i, r in enumerate(recs) if r is not None}
    scalers = {}
    for group in sorted({_scaler_group(r) for r in recs if r is not None}):
        members = [i for i, r in enumerate(recs) if r is not None and _scaler_group(r) == group]
        train = [arrays[ex["recording"]][:, ex["start"]:ex["end"]] for ex in examples
                 if ex["split"] == "train" and ex["recording"] in members]
        source = "train_windows" if train else "own_recordings"
        median, iqr = fit_robust_scaler(train or [arrays[i] for i in members])
        scalers[group] = {"median": median.tolist(), "iqr": iqr.tolist(), "source": source}
    return scalers


def _apply_scalers(tmp: Path, recs: list[dict], scalers: dict, clamp: float) -> None:
    for rec in recs:
        if rec is None:
            continue
        sc = scalers[_scaler_group(rec)]
        median, iqr = np.asarray(sc["median"], np.float32), np.asarray(sc["iqr"], np.float32)
        data = np.load(tmp / rec["file"], mmap_mode="r+", allow_pickle=False)
        for t in range(0, data.shape[1], _SCALE_CHUNK):
            block = data[:, t:t + _SCALE_CHUNK]
            apply_robust_scaler(block, median, iqr, clamp, out=block)
        data.flush()
        del data


def _build(tmp: Path, root: Path, recordings: list[Recording], skipped: list[Skipped], cfg: DataConfig,
           progress: bool) -> dict:
    subjects = sorted({r.subject for r in recordings})
    sentences = _sentences(recordings, cfg, skipped)
    flat = [(i, s) for i in sorted(sentences) for s in sentences[i]]
    splits = iter(assign_splits([(s.text, s.story) for _, s in flat], cfg))
    recs: list[dict | None] = [None] * len(recordings)
    examples: list[dict] = []
    for i in tqdm(sorted(sentences), desc="preprocessing", unit="recording", disable=not progress):
        rec_splits = [next(splits) for _ in sentences[i]]
        try:
            recs[i] = _preprocess_one(tmp, recordings[i], cfg)
        except DataError as exc:
            _skip(skipped, recordings[i].path, str(exc).removeprefix(f"{recordings[i].path}: "))
            (tmp / f"{recordings[i].id}.npy").unlink(missing_ok=True)
            continue
        exs, drops = make_examples(sentences[i], rec_splits, recordings[i], i, subjects.index(recordings[i].subject),
                                   recs[i]["n_samples"], len(recs[i]["ch_names"]), cfg.sfreq, cfg)
        examples.extend(exs)
        for d in drops:
            _skip(skipped, d.path, d.reason)
    if not examples:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3]) or "no recordings"
        raise DataError(f"no usable sentence examples ({reasons})", root)
    scalers = _fit_scalers(tmp, recs, examples)
    _apply_scalers(tmp, recs, scalers, cfg.clamp)
    used = sorted({ex["recording"] for ex in examples})
    remap = {old: new for new, old in enumerate(used)}
    for ex in examples:
        ex["recording"] = remap[ex["recording"]]
    for i, r in enumerate(recs):  # recordings without examples are not kept
        if r is not None and i not in remap:
            (tmp / r["file"]).unlink(missing_ok=True)
    return {"format": CACHE_FORMAT, "version": __version__, "bids_root": str(root), "sfreq": cfg.sfreq,
            "synthetic": is_synthetic(root), "params": dataclasses.asdict(cfg), "subjects": subjects,
            "recordings": [recs[i] for i in used], "scalers": scalers, "examples": examples,
            "skipped": [dataclasses.asdict(s) for s in skipped]}
