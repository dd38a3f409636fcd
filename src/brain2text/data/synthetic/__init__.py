"""Synthetic MEG-MASC: a BIDS dataset in MEG-MASC's own layout whose MEG depends on what was heard.

THE DATA IS SYNTHETIC. ``dataset_description.json`` says so (``"Synthetic": true``), and so do the
README and each FIF file's description. The data layer reads it through exactly the code path that
reads the real MEG-MASC.

Layout: ``sub-XX/ses-0/meg/sub-XX_ses-0_task-T_meg.fif`` (mne-bids, FIF) with ``_events.tsv`` in
MEG-MASC's original layout (``onset duration trial_type value sample``, ``trial_type`` a Python dict
literal), task T = story index (0 lw1, 1 cable_spool_fort, 2 easy_money, 3 the_black_willow), plus
``participants.tsv``, ``dataset_description.json``, ``README`` and ``stimuli/text/<story>.txt``.
Stimulus timelines: see :mod:`.stimuli` (real timings for cable_spool_fort, drawn ones elsewhere).

Signal model (all at ``sfreq``, default 1 kHz; tesla; deterministic for a seed)::

    meg(t) = a * G_s @ x(t) + n_brain(t) + n_sensor(t) + line(t) + drift(t)

* Channels: ``n_chans`` (default 208) KIT axial gradiometers ``MEG 001``... (coil FIFFV_COIL_AXIAL_GRAD_5CM,
  MNE type ``mag``) on a helmet of radius 12 cm, with positions and normals in ``loc``.
* Sources x(t) (48): for every word event, two spatial patterns of the lowercased word (an early one
  with a Hann response from 80 to 280 ms and a late one from 200 to 450 ms after the word onset),
  seeded by the word's SHA-256: the same word evokes the same source pattern in every recording,
  subject and dataset, so word identity is learnable and generalises across subjects. For every
  phoneme event, a pattern that is a fixed linear map of its phonetic features (one-hot of each
  column of ``phoneme_info.csv``: phonation, manner, place, front/back, roundness, centrality),
  response 40-160 ms after the phoneme onset, gain 0.6.
* Forward model G_s (C x 48): dipole-like fields of sources 7 cm below the helmet, shared by every
  subject, plus a subject-specific perturbation (sources moved by N(0, 2 cm) per axis, column gains
  x (1 + N(0, 1)), additive noise 0.6 of a column's rms): subjects differ but share structure. A ridge
  decoder of the 10 most frequent words trained on one subject scores 0.57-0.68 on another (majority 0.29)
  against 0.96-1.0 on held-out words within a subject, so a subject layer has something to learn.
* n_brain: 24 noise sources with a 1/f spectrum (Kellet's pink filter) through their own forward
  matrix (spatially correlated background); n_sensor: white noise per sensor. In the 0.5-40 Hz band
  they contribute 70% and 30% of the noise power.
* line: 50 Hz with a per-channel amplitude (0.3-0.7 noise sd) and phase; drift: per-channel
  random walk with a 30 s leak. Both lie outside the 0.5-40 Hz band that preprocessing keeps.
* SNR (``--snr``, default 1.0) = mean over channels and the whole recording of the evoked power
  ``a^2 |G_s x|^2`` divided by the mean per-channel power of n_brain + n_sensor after a 0.5-40 Hz
  band-pass (line noise and drift excluded: preprocessing removes them). ``a`` is set from a pass over
  the sources; the noise power from a 20 s calibration segment. One noise sd is 0.2 pT.

Generation streams: each recording is produced in 20 s chunks (filter states carried across chunks,
so chunking does not change the samples) written as temporary FIF parts and concatenated without
loading, so full-length data (4 stories x 27 subjects) never sits in memory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mne
import numpy as np

from ...constants import MEG_MASC_STORIES
from ...errors import DataError
from ...utils.atomic import atomic_directory
from .signal import (
    N_NOISE_SOURCES,
    N_SOURCES,
    EvokedSources,
    NoiseStream,
    build_impulses,
    forward_matrix,
    sensor_layout,
)
from .stimuli import find_shared_data, story_events
from .writer import events_tsv, make_info, write_recording

__all__ = ["SynthParams", "generate_dataset", "story_events", "events_tsv", "find_shared_data"]

BRAIN_SHARE = 0.7


@dataclass
class SynthParams:
    """Parameters of :func:`generate_dataset` (recorded in dataset_description.json)."""

    subjects: int = 2
    stories: list[str] = field(default_factory=lambda: list(MEG_MASC_STORIES))
    max_seconds: float | None = None
    snr: float = 1.0
    seed: int = 0
    sfreq: float = 1000.0
    n_chans: int = 208

    def check(self) -> None:
        if self.subjects < 1:
            raise DataError(f"--subjects must be >= 1, got {self.subjects}")
        bad = [s for s in self.stories if s not in MEG_MASC_STORIES]
        if bad or not self.stories:
            raise DataError(f"unknown or no stories {bad}; known: {', '.join(MEG_MASC_STORIES)}")
        if self.max_seconds is not None and self.max_seconds < 10:
            raise DataError(f"--max-seconds must be >= 10, got {self.max_seconds}")
        if self.snr < 0 or self.sfreq < 100 or self.n_chans < 1:
            raise DataError("--snr must be >= 0, --sfreq >= 100 Hz and --n-chans >= 1")


def _noise_power(g_noise: np.ndarray, sfreq: float, seed: int, subject: int) -> tuple[float, float]:
    """In-band (0.5-40 Hz) power per channel of unit-scale brain and sensor noise (20 s calibration)."""
    n, skip = int(25 * sfreq), int(5 * sfreq)
    out = []
    for brain, sensor in ((1.0, 0.0), (0.0, 1.0)):
        stream = NoiseStream(g_noise, sfreq, np.random.default_rng([seed, subject, 99]))
        x, _ = stream(n, brain, sensor)
        h = min(40.0, sfreq / 2 - 1)
        x = mne.filter.filter_data(x, sfreq, 0.5, h, verbose=False)[:, skip:]
        out.append(float((x**2).mean()))
    return out[0], out[1]


def _evoked_power(sources: EvokedSources, g: np.ndarray, n_times: int, sfreq: float) -> float:
    step = int(20 * sfreq)
    cov = np.zeros((N_SOURCES, N_SOURCES))
    for a in range(0, n_times, step):
        x = sources(a, min(a + step, n_times))
        cov += np.einsum("it,jt->ij", x, x)  # no BLAS threads: they spin on a busy machine
    return float(np.trace(g @ cov @ g.T)) / (g.shape[0] * n_times)


def _write_one(root: Path, p: SynthParams, subject: int, story: str, events, phoneme_info: Path) -> dict:
    info = make_info(p.n_chans, p.sfreq)
    pos, _ = sensor_layout(p.n_chans)
    g = forward_matrix(pos, subject, p.seed, N_SOURCES)
    g_noise = forward_matrix(pos, subject, p.seed, N_NOISE_SOURCES)
    end = max(e.onset + e.duration for e in events)
    length = end + 2.0 if p.max_seconds is None else min(end + 2.0, p.max_seconds)
    n_times = int(np.ceil(length * p.sfreq))
    sources = EvokedSources(build_impulses(events, p.sfreq, phoneme_info), p.sfreq)
    pb, ps = _noise_power(g_noise, p.sfreq, p.seed, subject)
    pe = _evoked_power(sources, g, n_times, p.sfreq)
    scales = (np.sqrt(p.snr / pe) if pe > 0 else 0.0, np.sqrt(BRAIN_SHARE / pb), np.sqrt((1 - BRAIN_SHARE) / ps))
    task = MEG_MASC_STORIES.index(story)
    noise = NoiseStream(g_noise, p.sfreq, np.random.default_rng([p.seed, subject, task]))
    write_recording(root, f"{subject:02d}", task, events, info, n_times, sources, g, noise, scales)
    return {"subject": f"{subject:02d}", "story": story, "task": task, "seconds": n_times / p.sfreq}


def _description(p: SynthParams, recordings: list[dict]) -> dict:
    return {
        "Name": "brain2text synthetic MEG-MASC (SYNTHETIC data, not real MEG recordings)",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "Synthetic": True,
        "License": "CC0",
        "GeneratedBy": [{"Name": "brain2text synth", "Description": "Evoked responses to word identity "
                         "(hash-seeded source patterns) and phonetic features, mixed by a subject-specific "
                         "forward matrix, plus 1/f background, sensor noise, 50 Hz line noise and drift. "
                         "See brain2text.data.synthetic's docstring."}],
        "SyntheticParameters": {**asdict(p), "snr_definition": "evoked power / background+sensor noise power "
                                "per channel after a 0.5-40 Hz band-pass"},
        "SyntheticRecordings": recordings,
    }


def generate_dataset(out: str | Path, params: SynthParams | None = None, text_dir: str | Path | None = None,
                     progress=None) -> dict:
    """Write the synthetic dataset to ``out`` atomically (whole or not at all); returns a summary."""
    p = params or SynthParams()
    p.check()
    text_dir = find_shared_data(text_dir)
    phoneme_info = text_dir.parent / "phoneme_info.csv"
    if not phoneme_info.is_file():
        raise DataError("phoneme_info.csv not found beside the story texts", phoneme_info)
    story_ev = {s: story_events(s, text_dir, p.seed, p.max_seconds) for s in p.stories}
    recordings = []
    with atomic_directory(out) as root:
        for subject in range(1, p.subjects + 1):
            for story in p.stories:
                recordings.append(_write_one(root, p, subject, story, story_ev[story], phoneme_info))
                if progress:
                    progress(recordings[-1])
        (root / "dataset_description.json").write_text(json.dumps(_description(p, recordings), indent=2) + "\n")
        (root / "README").write_text("SYNTHETIC MEG-MASC generated by `brain2text synth`: not real brain data.\n"
                                     "See dataset_description.json for the generator and its parameters.\n")
        (root / "stimuli" / "text").mkdir(parents=True)
        for story in p.stories:
            shutil.copyfile(text_dir / f"{story}.txt", root / "stimuli" / "text" / f"{story}.txt")
    words = sum(1 for ev in story_ev.values() for e in ev if e.info["kind"] == "word")
    return {"recordings": len(recordings), "subjects": p.subjects, "stories": list(p.stories),
            "words_per_subject": words, "seconds": sum(r["seconds"] for r in recordings)}


def dataset_hash(root: str | Path) -> str:
    """SHA-256 over every file's relative path and bytes (determinism checks)."""
    h = hashlib.sha256()
    for f in sorted(Path(root).rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()
