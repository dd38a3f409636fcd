"""Synthetic MEG whose content depends on the words and phonemes heard (model in ``synthetic/__init__``).

Everything here is a pure function of (events, subject, seed, parameters): the same inputs give the
same samples, chunk after chunk, so a recording can be streamed to disk without being held in memory.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import signal as sps

N_SOURCES = 48
N_NOISE_SOURCES = 24
WORLD_SEED = 20231129  # fixed: word and phoneme patterns are the same in every dataset and subject
UNIT_TESLA = 2e-13  # one noise standard deviation on a sensor, in tesla
CHUNK_SECONDS = 20.0
# Kellet's 3-pole approximation of a 1/f (pink) spectrum
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


def sensor_layout(n_chans: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (C, 3) in metres on a helmet (upper hemisphere, r = 12 cm) and radial normals (C, 3)."""
    i = np.arange(n_chans) + 0.5
    z = 1.0 - i / n_chans * 0.95  # cos(polar angle) from 1 down to 0.05: a helmet, not a sphere
    r = np.sqrt(1.0 - z**2)
    phi = np.pi * (1.0 + 5**0.5) * i
    normals = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    return 0.12 * normals, normals


def word_vector(word: str) -> np.ndarray:
    """Source pattern (2, N_SOURCES) of a word (early and late component), seeded by the word's hash:
    the same lowercased word gives the same pattern in every recording, subject and dataset."""
    digest = hashlib.sha256(f"word:{word.lower()}".encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    v = rng.standard_normal((2, N_SOURCES))
    return v / np.linalg.norm(v, axis=1, keepdims=True) * np.sqrt(N_SOURCES)


@lru_cache(maxsize=4)
def phoneme_table(path: str) -> dict[str, np.ndarray]:
    """Phonetic feature vectors (one-hot per feature column) from phoneme_info.csv, projected to the
    sources by a fixed random matrix: phonemes sharing features share source patterns."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cols = [c for c in rows[0] if c != "phoneme"]
    levels = sorted({f"{c}={r[c]}" for r in rows for c in cols})
    proj = np.random.default_rng(WORLD_SEED + 1).standard_normal((len(levels), N_SOURCES))
    table = {}
    for r in rows:
        feats = {f"{c}={r[c]}" for c in cols}
        onehot = np.array([float(level in feats) for level in levels])
        v = onehot @ proj
        table[r["phoneme"].lower()] = v / np.linalg.norm(v) * np.sqrt(N_SOURCES)
    return table


def _bump(sfreq: float, start: float, stop: float) -> np.ndarray:
    """A Hann-shaped response from ``start`` to ``stop`` seconds after the onset (zeros before)."""
    n0, n1 = int(round(start * sfreq)), max(int(round(stop * sfreq)), int(round(start * sfreq)) + 3)
    k = np.zeros(n1)
    k[n0:] = np.hanning(n1 - n0)
    return k


def forward_matrix(positions: np.ndarray, subject: int, seed: int, n_sources: int, perturb: float = 2.0) -> np.ndarray:
    """Sensor gains (C, n_sources): smooth dipole-like fields of sources under the helmet, shared by all
    subjects, plus a subject-specific perturbation (moved sources, gain noise) so subjects differ."""
    world = np.random.default_rng(WORLD_SEED + n_sources)
    src = world.standard_normal((n_sources, 3))
    src[:, 2] = np.abs(src[:, 2])
    src = 0.07 * src / np.linalg.norm(src, axis=1, keepdims=True)
    orient = world.standard_normal((n_sources, 3))
    subj = np.random.default_rng([seed, subject, 7])
    src = src + perturb * 0.01 * subj.standard_normal(src.shape)
    norm = np.linalg.norm(src, axis=1, keepdims=True)
    src = src / norm * np.clip(norm, 0.03, 0.09)  # keep every source well inside the 12 cm helmet
    diff = positions[:, None, :] - src[None, :, :]  # (C, S, 3)
    dist = np.linalg.norm(diff, axis=2)
    g = np.einsum("csk,sk->cs", diff, orient) / dist**3
    g = g / np.sqrt((g**2).mean(axis=0, keepdims=True))
    g = g * (1.0 + perturb * 0.5 * subj.standard_normal((1, n_sources)))
    return g + perturb * 0.3 * subj.standard_normal(g.shape)


@dataclass
class Impulses:
    """Onsets (samples) and source vectors of the word (early, late) and phoneme responses."""

    word_samples: np.ndarray
    word_early: np.ndarray
    word_late: np.ndarray
    phon_samples: np.ndarray
    phon_vecs: np.ndarray


def build_impulses(events, sfreq: float, phoneme_info: Path) -> Impulses:
    table = phoneme_table(str(phoneme_info))
    ws, we, wl, ps, pv = [], [], [], [], []
    for e in events:
        kind = e.info["kind"]
        if kind == "word":
            v = word_vector(e.info["word"])
            ws.append(int(round(e.onset * sfreq)))
            we.append(v[0])
            wl.append(v[1])
        elif kind == "phoneme":
            ph = str(e.info["phoneme"]).split("_")[0].lower()
            if ph in table:
                ps.append(int(round(e.onset * sfreq)))
                pv.append(table[ph])
    z = np.zeros((0, N_SOURCES))
    return Impulses(np.array(ws, int), np.array(we) if we else z, np.array(wl) if wl else z,
                    np.array(ps, int), np.array(pv) if pv else z)


class EvokedSources:
    """Source time courses (S, n) of the evoked responses for any sample range [a, b)."""

    PHONEME_GAIN = 0.6

    def __init__(self, imp: Impulses, sfreq: float):
        self.imp = imp
        self.k_early = _bump(sfreq, 0.08, 0.28)
        self.k_late = _bump(sfreq, 0.2, 0.45)
        self.k_phon = _bump(sfreq, 0.04, 0.16)
        self.span = max(len(self.k_early), len(self.k_late), len(self.k_phon))

    def _train(self, samples, vecs, a, b):
        out = np.zeros((N_SOURCES, b - a))
        sel = (samples >= a) & (samples < b)
        np.add.at(out.T, samples[sel] - a, vecs[sel])
        return out

    def __call__(self, a: int, b: int) -> np.ndarray:
        a0 = a - self.span
        imp = self.imp
        total = np.zeros((N_SOURCES, b - a))
        for samples, vecs, kernel, gain in ((imp.word_samples, imp.word_early, self.k_early, 1.0),
                                             (imp.word_samples, imp.word_late, self.k_late, 1.0),
                                             (imp.phon_samples, imp.phon_vecs, self.k_phon, self.PHONEME_GAIN)):
            train = self._train(samples, vecs, a0, b)
            conv = sps.oaconvolve(train, kernel[None, :], axes=1)[:, : b - a0]
            total += gain * conv[:, self.span:]
        return total


class NoiseStream:
    """Background activity chunk by chunk, with filter states carried over (identical whatever the
    chunking): 1/f brain noise through the forward model, white sensor noise, 50 Hz line noise with a
    per-channel amplitude and phase, and a slow per-channel drift."""

    def __init__(self, g_noise: np.ndarray, sfreq: float, rng: np.random.Generator, line_freq: float = 50.0):
        self.g, self.sfreq, self.rng = g_noise, sfreq, rng
        n_chans, n_src = g_noise.shape
        self.zi = np.zeros((n_src, len(_PINK_A) - 1))
        self.drift = rng.standard_normal(n_chans) * 0.5
        self.line_amp = 0.3 + 0.4 * rng.random(n_chans)
        self.line_phase = 2 * np.pi * rng.random(n_chans)
        self.line_freq = line_freq
        self.sample = 0

    def __call__(self, n: int, scale_brain: float, scale_sensor: float) -> tuple[np.ndarray, np.ndarray]:
        """Return (in-band noise (C, n), out-of-band artefacts (C, n)) for the next ``n`` samples."""
        n_chans, n_src = self.g.shape
        pink, self.zi = sps.lfilter(_PINK_B, _PINK_A, self.rng.standard_normal((n_src, n)), axis=1, zi=self.zi)
        noise = scale_brain * (self.g @ pink) + scale_sensor * self.rng.standard_normal((n_chans, n))
        t = (self.sample + np.arange(n)) / self.sfreq
        line = self.line_amp[:, None] * np.sin(2 * np.pi * self.line_freq * t[None, :] + self.line_phase[:, None])
        leak = np.exp(-1.0 / (30.0 * self.sfreq))
        steps = self.rng.standard_normal((n_chans, n)) * np.sqrt(1 - leak**2) * 2.0
        drift, _ = sps.lfilter([1.0], [1.0, -leak], steps, axis=1, zi=(self.drift * leak)[:, None])
        self.drift = drift[:, -1]
        self.sample += n
        return noise, line + drift
