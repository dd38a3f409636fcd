"""Preprocessing as pure functions (braindecode's ``preprocessing/``): filters, resampling, scaling.

Order: notch (only line frequencies the later steps leave, :func:`notch_needed`) -> band-pass at the original rate ->
polyphase resampling -> (later, once the split is known) robust scaling and clamping. Filtering is MNE's
zero-phase FIR (``filter_data``, ``notch_filter``) and resampling MNE's polyphase ``resample``, which also
low-passes against aliasing. A recording is processed a few channels at a time (:func:`chunk_channels_for`),
so a one-hour 208-channel 1 kHz file never sits in memory as float64 (6 GB); see ``CHUNK_BUDGET_BYTES``.
"""

from __future__ import annotations

from fractions import Fraction

import mne
import numpy as np

from ..config import DataConfig
from ..errors import DataError
from .readers import check_finite, recording_name

# Channels filtered at once: as many as fit in this many bytes, counting ~3 float64 copies per channel
# (the block, MNE's padded filter buffer, the resampled result). Measured on a one-hour 208-channel
# 1 kHz recording: chunks of 32 channels peaked at 3.1 GB RSS; the budget keeps it near 1.5-2 GB.
CHUNK_BUDGET_BYTES = 1_500_000_000
MAX_CHUNK_CHANNELS = 64
MAX_SCALER_SAMPLES = 200_000  # time points per channel used to fit median/IQR (plenty, bounded memory)


def notch(x: np.ndarray, sfreq: float, freqs: list[float]) -> np.ndarray:
    """Notch line-noise ``freqs`` (those below Nyquist) out of ``x`` (C, T) float64, in place."""
    freqs = [f for f in freqs if 0 < f < sfreq / 2]
    if not freqs or x.shape[-1] < 2:
        return x
    return mne.filter.notch_filter(x, sfreq, np.asarray(freqs, dtype=float), copy=False, verbose="error")


def bandpass(x: np.ndarray, sfreq: float, l_freq: float | None, h_freq: float | None) -> np.ndarray:
    """Zero-phase FIR band-pass of ``x`` (C, T) float64, in place.

    ``l_freq`` of 0/None skips the high-pass; an ``h_freq`` at or above the input's Nyquist is
    skipped (the resampler low-passes anyway).
    """
    l_freq = l_freq or None
    if h_freq is not None and h_freq >= sfreq / 2:
        h_freq = None
    if (l_freq is None and h_freq is None) or x.shape[-1] < 2:
        return x
    return mne.filter.filter_data(x, sfreq, l_freq, h_freq, copy=False, verbose="error")


def resample(x: np.ndarray, sfreq: float, new_sfreq: float) -> np.ndarray:
    """Polyphase resampling of ``x`` (C, T) from ``sfreq`` to ``new_sfreq`` (rational ratio)."""
    if abs(sfreq - new_sfreq) < 1e-9:
        return x
    ratio = Fraction(new_sfreq / sfreq).limit_denominator(10_000)
    return mne.filter.resample(x, up=float(ratio.numerator), down=float(ratio.denominator),
                               method="polyphase", verbose="error")


def _lowpass_width(sfreq: float, h_freq: float) -> float:
    """MNE's automatic low-pass transition width in ``filter_data`` (``h_trans_bandwidth="auto"``)."""
    return min(max(0.25 * h_freq, 2.0), sfreq / 2 - h_freq)


def notch_needed(freqs: list[float], sfreq: float, h_freq: float | None, new_sfreq: float) -> list[float]:
    """The line frequencies that survive the rest of the chain and so need the notch.

    Dropped: those at or above the output's Nyquist (``new_sfreq / 2``; the polyphase resampler's
    anti-aliasing filter leaves ~1e-8 of them), and those a full transition width inside the low-pass's
    stop band (``h_freq + 2 * width``, more than 70 dB down). Notching them again only costs time (61%
    of preprocessing for 50 Hz behind a 40 Hz low-pass at 1 kHz). A line frequency at the stop band's
    edge (50 Hz behind 40 Hz kept at 200 Hz) keeps its notch: there the low-pass alone gives ~52 dB.
    """
    limit = new_sfreq / 2
    if h_freq is not None and h_freq < sfreq / 2:
        limit = min(limit, h_freq + 2 * _lowpass_width(sfreq, h_freq))
    return [f for f in freqs if f < limit]


def preprocess_array(x: np.ndarray, sfreq: float, cfg: DataConfig) -> np.ndarray:
    """Notch (line frequencies the low-pass leaves), band-pass and resample one (C, T) block; returns
    float32 (C, T') at ``cfg.sfreq``."""
    x = np.array(x, dtype=np.float64, copy=True)
    x = notch(x, sfreq, notch_needed(list(cfg.notch_freqs), sfreq, cfg.h_freq, cfg.sfreq))
    x = bandpass(x, sfreq, cfg.l_freq, cfg.h_freq)
    return resample(x, sfreq, cfg.sfreq).astype(np.float32)


def chunk_channels_for(n_times: int, budget: int = CHUNK_BUDGET_BYTES) -> int:
    """How many channels of ``n_times`` samples to filter at once within ``budget`` bytes."""
    return int(np.clip(budget // max(1, n_times * 8 * 3), 1, MAX_CHUNK_CHANNELS))


def preprocess_raw(raw: mne.io.BaseRaw, picks: list[int], cfg: DataConfig,
                   chunk_channels: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Preprocess the ``picks`` of ``raw`` chunk by chunk into float32 (len(picks), T') at ``cfg.sfreq``.

    ``chunk_channels`` defaults to :func:`chunk_channels_for` (memory-bounded whatever the length).
    ``out`` may be a preallocated (e.g. memory-mapped) float32 array of the right shape (see
    :func:`output_length`). NaN/Inf in the recording raise :class:`DataError` naming the file.
    """
    sfreq = float(raw.info["sfreq"])
    n_out = output_length(raw.n_times, sfreq, cfg.sfreq)
    chunk_channels = chunk_channels or chunk_channels_for(raw.n_times)
    if out is None:
        out = np.empty((len(picks), n_out), dtype=np.float32)
    varying = False
    for i in range(0, len(picks), chunk_channels):
        block = raw.get_data(picks=picks[i:i + chunk_channels])  # (c, T) float64
        check_finite(block, recording_name(raw))
        varying = varying or bool((block.max(axis=1) > block.min(axis=1)).any())
        y = preprocess_array(block, sfreq, cfg)
        m = min(n_out, y.shape[1])
        out[i:i + len(y), :m] = y[:, :m]
        out[i:i + len(y), m:] = y[:, m - 1:m]  # never reached with MNE's polyphase lengths
    if not varying and raw.n_times > 1:
        raise DataError(f"all {len(picks)} channels are flat (constant): the recording holds no signal",
                        recording_name(raw))
    return out


def output_length(n_times: int, sfreq: float, new_sfreq: float) -> int:
    """Number of samples :func:`resample` produces for ``n_times`` input samples."""
    if abs(sfreq - new_sfreq) < 1e-9:
        return n_times
    ratio = Fraction(new_sfreq / sfreq).limit_denominator(10_000)
    return int(round(n_times * ratio.numerator / ratio.denominator))  # what MNE's polyphase returns


def fit_robust_scaler(arrays, max_samples: int = MAX_SCALER_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel median and inter-quartile range over the time axis of (C, T_i) ``arrays``.

    At most ``max_samples`` time points (drawn evenly at random across arrays) are used. A channel
    with zero IQR (flat) gets IQR 1 so that scaling never divides by zero.
    """
    arrays = [np.asarray(a) for a in arrays if a.shape[-1] > 0]
    if not arrays:
        raise ValueError("fit_robust_scaler needs at least one non-empty (C, T) array")
    total = sum(a.shape[-1] for a in arrays)
    rng = np.random.default_rng(seed)
    parts = []
    for a in arrays:
        k = max(1, round(max_samples * a.shape[-1] / total)) if total > max_samples else a.shape[-1]
        idx = np.sort(rng.choice(a.shape[-1], size=min(k, a.shape[-1]), replace=False))
        parts.append(np.asarray(a[:, idx], dtype=np.float64))
    data = np.concatenate(parts, axis=1)
    q25, median, q75 = np.percentile(data, [25, 50, 75], axis=1)
    iqr = q75 - q25
    iqr[~(iqr > 0)] = 1.0
    return median.astype(np.float32), iqr.astype(np.float32)


def apply_robust_scaler(x: np.ndarray, median: np.ndarray, iqr: np.ndarray, clamp: float | None,
                        out: np.ndarray | None = None) -> np.ndarray:
    """``clip((x - median) / iqr, -clamp, clamp)`` per channel of ``x`` (C, T); float32."""
    if x.shape[0] != len(median) or len(median) != len(iqr):
        raise ValueError(f"scaler has {len(median)} channels, data has {x.shape[0]}")
    out = np.empty(x.shape, dtype=np.float32) if out is None else out
    np.subtract(x, median[:, None], out=out, casting="unsafe")
    np.divide(out, iqr[:, None], out=out)
    if clamp is not None:
        np.clip(out, -clamp, clamp, out=out)
    return out
