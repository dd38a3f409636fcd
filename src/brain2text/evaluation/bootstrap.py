"""Paired bootstrap intervals for the difference of two systems on the same references.

Koehn (2004), "Statistical Significance Tests for Machine Translation Evaluation": resample the
sentences with replacement, score both systems on the SAME resample, and take the 2.5 / 97.5
percentiles of metric(A) - metric(B). Corpus metrics are recomputed on each resample from the
per-sentence sufficient statistics (:class:`~brain2text.evaluation.metrics.SentenceStats`), so
corpus BLEU and corpus WER are resampled as corpus metrics, not as means of sentence scores.
"""

from __future__ import annotations

import numpy as np

from .metrics import LOWER_IS_BETTER, SentenceStats

DEFAULT_RESAMPLES = 1000
_CHUNK_CELLS = 2_000_000  # resamples x sentences per block of the count matrix (~16 MB)


def resample_counts(n_items: int, n_resamples: int, seed: int) -> "np.ndarray":
    """Yield blocks (R, N) of how often each sentence appears in each resample (rows sum to N)."""
    rng = np.random.default_rng(seed)
    block = max(1, _CHUNK_CELLS // max(n_items, 1))
    done = 0
    while done < n_resamples:
        r = min(block, n_resamples - done)
        idx = rng.integers(0, n_items, size=(r, n_items))
        counts = np.zeros((r, n_items), dtype=np.float64)
        np.add.at(counts, (np.repeat(np.arange(r), n_items), idx.ravel()), 1.0)
        done += r
        yield counts


def paired_bootstrap(stats_a: SentenceStats, stats_b: SentenceStats, n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0, keys: list[str] | None = None) -> dict[str, dict]:
    """``{metric: {"delta": A - B on all sentences, "ci95": [lo, hi]}}`` (percentile interval).

    Both systems must be scored against the same references, sentence for sentence. ``keys`` defaults
    to the metrics both systems have. For WER a negative delta means A is better.
    """
    if len(stats_a) != len(stats_b):
        raise ValueError(f"paired bootstrap needs the same sentences: {len(stats_a)} vs {len(stats_b)}")
    if len(stats_a) == 0:
        raise ValueError("paired bootstrap needs at least one sentence")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if keys is None:
        keys = [k for k in stats_a.keys() if k in stats_b.keys()]
    full_a, full_b = stats_a.corpus(), stats_b.corpus()
    deltas: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for counts in resample_counts(len(stats_a), n_resamples, seed):
        a, b = stats_a.weighted(counts), stats_b.weighted(counts)
        for k in keys:
            deltas[k].append(a[k] - b[k])
    out = {}
    for k in keys:
        values = np.concatenate(deltas[k])
        lo, hi = np.percentile(values, [2.5, 97.5])
        out[k] = {"delta": float(full_a[k] - full_b[k]), "ci95": [float(lo), float(hi)]}
    return out


def beats(difference: dict, key: str) -> bool:
    """True when the 95% interval of A - B excludes 0 in A's favour (lower is better for WER)."""
    lo, hi = difference["ci95"]

    return hi < 0 if key in LOWER_IS_BETTER else lo > 0
