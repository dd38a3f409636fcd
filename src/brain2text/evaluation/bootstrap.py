"""Paired intervals, permutation p-values and verdicts for two systems scored on the same rows.

**Rows and clusters.** A row is one (reference, prediction) pair; in MEG-MASC, one sentence heard by one
subject in one session. Rows of one sentence are not independent draws (the same text, heard by up to
27 subjects in 2 sessions): resampling rows gives intervals that are too narrow, and the narrower the
more subjects (``tests/evaluation/test_bootstrap.py`` measures the coverage). :class:`Clusters` says
what is resampled:

* ``sentence`` (the default of ``evaluate`` and ``score``): resample sentences with replacement, all
  rows of a sentence together (the cluster bootstrap; Davison & Hinkley 1997, §3.8);
* ``subject_sentence``: resample sentences and subjects independently, a row weighing the product of
  its sentence's and its subject's counts: the two-way "pigeonhole" bootstrap (Owen 2007, "The
  pigeonhole bootstrap", Ann. Appl. Stat. 1(2):386-411), to generalise over sentences *and* subjects.
  Owen shows it is mildly conservative (it counts the interaction variance twice);
* ``row``: resample rows (Koehn 2004), right only when every row is a different sentence.

Corpus metrics are recomputed on each resample from per-row sufficient statistics (corpus BLEU and
corpus WER as corpus ratios, not means of sentence scores), so a resample is a weight matrix (R, N) in
which a row gets its cluster's count, the same for both systems (paired). The interval is the 2.5 and
97.5 percentiles of metric(A) - metric(B) over the resamples.

**Permutation test.** Under H0 "A and B are exchangeable", swapping A's and B's rows of a cluster (all of
them together) leaves the distribution of the difference unchanged. Each permutation flips a fair coin
per cluster (the sentence clusters, also for ``subject_sentence``; rows for ``row``) and recomputes the
corpus difference; the two-sided p-value is ``(1 + #{|delta*| >= |delta|}) / (1 + n_permutations)``
(never 0; Phipson & Smyth 2010). With k clusters no p-value can be under 2 / 2^k: fewer than 6
sentences never give "beats".

**Verdict** (:func:`verdict`, the one rule every table uses): ``beats`` when the 95% interval excludes 0
in A's favour AND p < 0.05; ``worse`` when it excludes 0 against A AND p < 0.05; else ``not
established``. Results written before p-values existed are judged on their interval alone.

**Monte-Carlo error.** Bounds and p-values are Monte-Carlo estimates. A bound's standard error comes
from batch means (the resamples in 20 batches: sd of the batch percentiles / sqrt(20)); the p-value's
is sqrt(p (1 - p) / n). At the defaults (10,000 resamples, 10,000 permutations) a bound's error is about
2.7% of the bootstrap standard deviation of the difference (sqrt(.025 x .975 / R) / phi(1.96)) and p's
is 0.002 at p = 0.05. "Borderline" for a seed therefore means within a few Monte-Carlo errors of the
threshold: a difference whose row-bootstrap bound sat at +0.0003 flipped with the seed at 1,000 row
resamples, and the same data, clustered and at 10,000, gives one verdict for every seed (tested: 1,407
rows, 104 sentences, 5 seeds). No finite number of resamples makes a difference that sits *on* the
threshold seed-independent, so a verdict that would change if a bound or p moved by 3 Monte-Carlo errors
is flagged ``verdict_near_edge`` (and the tables say "near the edge").

**Cost** (reference machine, 2 shared cores, measured by ``test_default_cost_is_small``): 10,000
resamples and 10,000 permutations of 1,407 rows in 104 sentence clusters, all 9 metrics, take 0.3-0.5 s
per comparison, so ``evaluate``'s four controls add under 2 s and ``score`` on 1,407 rows without
BERTScore takes ~2.5 s in all. Rows that always share a weight (a sentence; a sentence x subject pair
for the two-way bootstrap) are summed once, BLEU is recomputed from summed statistics in numpy (not by
sacrebleu per resample), and the weight matrices are built in blocks of ``_CHUNK_CELLS`` cells (~16 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .metrics import LOWER_IS_BETTER, SentenceStats, corpus_from_sums, unpack

BOOTSTRAP_UNITS = ("sentence", "subject_sentence", "row")
DEFAULT_RESAMPLES = 10_000
DEFAULT_PERMUTATIONS = 10_000
ALPHA = 0.05
EDGE_SE = 3.0  # a verdict within this many Monte-Carlo errors of changing is "near the edge"
VERDICTS = ("beats", "worse", "not established")
_CHUNK_CELLS = 2_000_000  # resamples x rows per block of the weight matrix (~16 MB)
_MC_BATCHES = 20


@dataclass(frozen=True)
class Clusters:
    """Which rows are resampled (and swapped) together."""

    unit: str
    sentence: np.ndarray  # (N,) int64: cluster index of each row, 0..n_clusters-1 (rows: 0..N-1)
    subject: np.ndarray | None = None  # (N,) int64: subject index of each row (subject_sentence only)

    def __len__(self) -> int:
        return len(self.sentence)

    @property
    def n_clusters(self) -> int:
        return int(self.sentence.max()) + 1 if len(self.sentence) else 0

    @property
    def n_subjects(self) -> int | None:
        return None if self.subject is None else int(self.subject.max()) + 1

    def info(self) -> dict:
        out = {"bootstrap_unit": self.unit, "n_rows": len(self), "n_clusters": self.n_clusters}
        if self.subject is not None:
            out["n_subjects"] = self.n_subjects
        return out


def _codes(labels: Sequence) -> np.ndarray:
    """(N,) int64 codes of ``labels``, numbered in order of first appearance."""
    index: dict = {}
    return np.array([index.setdefault(x, len(index)) for x in labels], dtype=np.int64)


def make_clusters(unit: str, n_rows: int, sentences: Sequence | None = None,
                  subjects: Sequence | None = None) -> Clusters:
    """Clusters of ``n_rows`` rows: ``sentences[i]`` (any hashable label) is row i's sentence,
    ``subjects[i]`` its subject (needed for ``subject_sentence`` only)."""
    if unit not in BOOTSTRAP_UNITS:
        raise ValueError(f"bootstrap unit must be one of {BOOTSTRAP_UNITS}, got {unit!r}")
    if unit == "row":
        return Clusters("row", np.arange(n_rows, dtype=np.int64))
    if sentences is None or len(sentences) != n_rows:
        raise ValueError(f"bootstrap unit {unit!r} needs {n_rows} sentence labels")
    if unit == "subject_sentence" and (subjects is None or len(subjects) != n_rows):
        raise ValueError(f"bootstrap unit {unit!r} needs {n_rows} subject labels")
    subject = _codes(subjects) if unit == "subject_sentence" else None
    return Clusters(unit, _codes(sentences), subject)


def _counts(rng: np.random.Generator, n_groups: int, r: int) -> np.ndarray:
    """(r, G): how often each of ``n_groups`` groups is drawn in each of ``r`` resamples of size G."""
    idx = rng.integers(0, n_groups, size=(r, n_groups))
    flat = (idx + n_groups * np.arange(r)[:, None]).ravel()
    return np.bincount(flat, minlength=r * n_groups).reshape(r, n_groups).astype(np.float64)


def _blocks(n_total: int, width: int) -> Iterator[int]:
    block = max(1, _CHUNK_CELLS // max(width, 1))
    for start in range(0, n_total, block):
        yield min(block, n_total - start)


@dataclass(frozen=True)
class _Cells:
    """Rows that always share a weight, summed once: a sentence (or a sentence x subject pair, two-way)."""

    of_row: np.ndarray  # (N,) cell of each row
    sentence: np.ndarray  # (n_cells,) sentence cluster of each cell
    subject: np.ndarray | None  # (n_cells,) subject of each cell (two-way only)


def _cells(clusters: Clusters) -> _Cells:
    if clusters.subject is None:
        return _Cells(clusters.sentence, np.arange(clusters.n_clusters), None)
    n_subj = clusters.n_subjects
    pairs, of_row = np.unique(clusters.sentence * n_subj + clusters.subject, return_inverse=True)
    return _Cells(of_row.ravel(), pairs // n_subj, pairs % n_subj)


def _cell_weights(clusters: Clusters, cells: _Cells, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    for r in _blocks(n_resamples, len(clusters)):
        weights = _counts(rng, clusters.n_clusters, r)[:, cells.sentence]  # (r, n_cells)
        if clusters.subject is not None:
            weights *= _counts(rng, clusters.n_subjects, r)[:, cells.subject]
        yield weights


def _cell_flips(clusters: Clusters, cells: _Cells, n_permutations: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng([int(seed), 1])  # a stream apart from the bootstrap's
    for r in _blocks(n_permutations, len(clusters)):
        yield rng.integers(0, 2, size=(r, clusters.n_clusters)).astype(np.float64)[:, cells.sentence]


def resample_weights(clusters: Clusters, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield blocks (r, N) of row weights: each row gets its cluster's count (times its subject's count
    for ``subject_sentence``). With ``row`` clusters this is Koehn's row bootstrap, draw for draw."""
    cells = _cells(clusters)
    for weights in _cell_weights(clusters, cells, n_resamples, seed):
        yield weights[:, cells.of_row]


def permutation_flips(clusters: Clusters, n_permutations: int, seed: int) -> Iterator[np.ndarray]:
    """Yield blocks (r, N) of 0/1: 1 where a row's cluster swaps A and B in that permutation."""
    cells = _cells(clusters)
    for flips in _cell_flips(clusters, cells, n_permutations, seed):
        yield flips[:, cells.of_row]


def _cell_sums(stats: SentenceStats, cells: _Cells) -> tuple[list, np.ndarray]:
    """(layout, (n_cells, K)): the statistics summed over the rows of each cell."""
    layout, matrix = stats.columns()
    out = np.zeros((len(cells.sentence), matrix.shape[1]))
    np.add.at(out, cells.of_row, matrix)
    return layout, out


def _bootstrap_deltas(a: SentenceStats, b: SentenceStats, clusters: Clusters, n: int, seed: int,
                      keys: list[str]) -> dict[str, np.ndarray]:
    cells = _cells(clusters)
    (layout_a, ma), (layout_b, mb) = _cell_sums(a, cells), _cell_sums(b, cells)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for weights in _cell_weights(clusters, cells, n, seed):  # (r, n_cells)
        weights = weights[weights.sum(axis=1) > 0]  # a two-way resample can miss every row (sparse designs)
        ca, cb = corpus_from_sums(unpack(layout_a, weights @ ma)), corpus_from_sums(unpack(layout_b, weights @ mb))
        for k in keys:
            parts[k].append(ca[k] - cb[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


def _permutation_deltas(a: SentenceStats, b: SentenceStats, clusters: Clusters, n: int, seed: int,
                        keys: list[str]) -> dict[str, np.ndarray]:
    """A - B after swapping the flipped clusters' rows: sums(A*) = sums(A) - flips @ A + flips @ B."""
    cells = _cells(clusters)
    (layout_a, ma), (layout_b, mb) = _cell_sums(a, cells), _cell_sums(b, cells)
    total_a, total_b = unpack(layout_a, ma.sum(axis=0, keepdims=True)), unpack(layout_b, mb.sum(axis=0, keepdims=True))
    shared = [k for k in total_a if k in total_b]  # a statistic one system lacks (retrieval) cannot be swapped
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for flips in _cell_flips(clusters, cells, n, seed):  # (r, n_cells)
        fa, fb = unpack(layout_a, flips @ ma), unpack(layout_b, flips @ mb)
        ca = corpus_from_sums({k: total_a[k] - fa[k] + fb[k] for k in shared})
        cb = corpus_from_sums({k: total_b[k] - fb[k] + fa[k] for k in shared})
        for k in keys:
            parts[k].append(ca[k] - cb[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


def _percentile_se(values: np.ndarray, q: float) -> float | None:
    """Monte-Carlo standard error of ``percentile(values, q)`` by batch means (None: too few values)."""
    n_batches = min(_MC_BATCHES, len(values) // 50)
    if n_batches < 2:
        return None
    estimates = [np.percentile(x, q) for x in np.array_split(values, n_batches)]
    return float(np.std(estimates, ddof=1) / np.sqrt(n_batches))


def _p_value(permuted: np.ndarray, observed: float) -> float:
    tolerance = 1e-9 * abs(observed) + 1e-12  # float noise of recomputed ratios is not a larger delta
    return float((1 + np.sum(np.abs(permuted) >= abs(observed) - tolerance)) / (1 + len(permuted)))


def paired_bootstrap(stats_a: SentenceStats, stats_b: SentenceStats, n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0, keys: list[str] | None = None, clusters: Clusters | None = None,
                     n_permutations: int = DEFAULT_PERMUTATIONS) -> dict[str, dict]:
    """Per metric: ``delta`` (A - B on all rows), ``ci95`` (percentile interval) and its ``ci95_mc_se``,
    ``p_value`` and ``p_value_mc_se`` (None when ``n_permutations`` is 0), ``verdict``, ``verdict_near_edge``.

    Both systems must be scored against the same references, row for row. ``clusters`` defaults to
    rows (see the module docstring for why callers who know the sentences pass them). ``keys``
    defaults to the metrics both systems have. For WER a negative delta means A is better.
    """
    if len(stats_a) != len(stats_b):
        raise ValueError(f"paired bootstrap needs the same sentences: {len(stats_a)} vs {len(stats_b)}")
    if len(stats_a) == 0:
        raise ValueError("paired bootstrap needs at least one sentence")
    if n_resamples < 1 or n_permutations < 0:
        raise ValueError(f"need n_resamples >= 1 and n_permutations >= 0, got {n_resamples}, {n_permutations}")
    clusters = clusters or make_clusters("row", len(stats_a))
    if len(clusters) != len(stats_a):
        raise ValueError(f"clusters for {len(clusters)} rows, statistics for {len(stats_a)}")
    if keys is None:
        keys = [k for k in stats_a.keys() if k in stats_b.keys()]
    full_a, full_b = stats_a.corpus(), stats_b.corpus()
    boot = _bootstrap_deltas(stats_a, stats_b, clusters, n_resamples, seed, keys)
    perm = _permutation_deltas(stats_a, stats_b, clusters, n_permutations, seed, keys) if n_permutations else {}
    out = {}
    for k in keys:
        delta = float(full_a[k] - full_b[k])
        lo, hi = np.percentile(boot[k], [2.5, 97.5])
        d = {"delta": delta, "ci95": [float(lo), float(hi)],
             "ci95_mc_se": [_percentile_se(boot[k], 2.5), _percentile_se(boot[k], 97.5)],
             "p_value": None, "p_value_mc_se": None}
        if n_permutations:
            p = _p_value(perm[k], delta)
            d.update(p_value=p, p_value_mc_se=float(np.sqrt(p * (1 - p) / n_permutations)))
        d.update(verdict=verdict(d, k), verdict_near_edge=near_edge(d, k))
        out[k] = d
    return out


def method_info(clusters: Clusters, n_resamples: int, n_permutations: int, seed: int) -> dict:
    """What the intervals and p-values are (written beside every result)."""
    how = {"sentence": "sentences resampled with replacement, all rows of a sentence together",
           "subject_sentence": "sentences and subjects resampled independently, row weight = product of the "
                               "counts (Owen 2007 pigeonhole bootstrap)",
           "row": "rows resampled with replacement (each row treated as independent)"}[clusters.unit]
    return {**clusters.info(), "n_bootstrap": n_resamples, "n_permutations": n_permutations, "bootstrap_seed": seed,
            "method": f"paired percentile bootstrap 95% interval ({how}); two-sided paired permutation test swapping "
                      f"the two systems' rows per {'row' if clusters.unit == 'row' else 'sentence'}; "
                      f"verdict: beats / worse when the interval excludes 0 and p < {ALPHA}, else not established"}


# ------------------------------------------------------------------------------------- verdicts
def _verdict(lo: float, hi: float, p: float | None, lower_is_better: bool) -> str:
    if p is not None and not p < ALPHA:
        return "not established"
    good, bad = (hi < 0, lo > 0) if lower_is_better else (lo > 0, hi < 0)
    return "beats" if good else "worse" if bad else "not established"


def verdict(difference: dict, key: str) -> str:
    """``beats`` / ``worse`` / ``not established`` for A - B on metric ``key`` (see module docstring)."""
    lo, hi = difference["ci95"]
    return _verdict(lo, hi, difference.get("p_value"), key in LOWER_IS_BETTER)


def near_edge(difference: dict, key: str) -> bool:
    """True when moving a bound or p by ``EDGE_SE`` Monte-Carlo errors could change the verdict."""
    lo, hi = difference["ci95"]
    se_lo, se_hi = [s or 0.0 for s in (difference.get("ci95_mc_se") or [0.0, 0.0])]
    p, se_p = difference.get("p_value"), difference.get("p_value_mc_se") or 0.0
    lower = key in LOWER_IS_BETTER
    now = _verdict(lo, hi, p, lower)
    for dl in (-EDGE_SE * se_lo, EDGE_SE * se_lo):
        for dh in (-EDGE_SE * se_hi, EDGE_SE * se_hi):
            for dp in (-EDGE_SE * se_p, EDGE_SE * se_p):
                if _verdict(lo + dl, hi + dh, None if p is None else p + dp, lower) != now:
                    return True
    return False


def beats(difference: dict, key: str) -> bool:
    """True when A beats B on ``key``: the interval excludes 0 in A's favour (and p < 0.05 where known)."""
    return verdict(difference, key) == "beats"
