"""Honest evaluation: free-running generation on a split, with controls and paired bootstrap intervals.

The model sees only :func:`~brain2text.evaluation.controls.blind` batches (texts, words and word
onsets removed) and is asked to ``generate`` (free-running, no teacher forcing). The references are
used afterwards, by the metric code, and for retrieval only as the *candidate list*: every distinct
sentence of the evaluated split, scored identically for every example by ``sequence_logprob``.

Each control (noise, surrogate, shuffled, no_meg; see ``controls.py``) is decoded by the same model,
with the same decoding settings and batches, and scored with the same metric code. MEG minus each
control gets, per metric, a paired bootstrap 95% interval that resamples *sentences* (all subjects' rows
of a sentence together; ``eval.bootstrap_unit``), a paired permutation p-value and a verdict (see
``bootstrap.py``).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..config import Config, DecodingConfig, load_config, parse_overrides
from ..data.batch import MEGBatch
from ..data.cache import build_cache
from ..data.dataset import MEGDataset, collate_examples
from ..decoding.strategies import get_strategy
from ..errors import Brain2TextError
from ..inference.model_view import ModelView, config_with
from .bootstrap import Clusters, make_clusters, method_info, paired_bootstrap
from .controls import blind, derangement, noise_like, noise_seeds, surrogate_like, surrogate_seeds
from .metrics import SentenceStats, metrics_info, normalize_for_wer, sentence_stats
from .score import bertscore_settings

log = logging.getLogger(__name__)
N_EXAMPLES = 20
CANDIDATE_CHUNK = 64  # candidates scored per sequence_logprob call (bounded memory)


@dataclass
class SystemRun:
    """What one system (MEG or a control) produced on the evaluated examples."""

    predictions: list[str]
    ranks: np.ndarray | None  # (N,) 1-based rank of the true sentence among the candidates, or None


def true_rank(scores: np.ndarray, true_index: int) -> int:
    """1-based rank of ``scores[true_index]``; ties count against the true sentence (pessimistic)."""
    s = scores[true_index]
    others = np.delete(scores, true_index)
    return 1 + int((others >= s).sum())


def _supports_meg_mode(fn: Callable) -> bool:
    try:
        return "meg_mode" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _candidate_scores(model, batch: MEGBatch, candidates: Sequence[str], meg_mode: str,
                      decoding: DecodingConfig, encoded=None) -> np.ndarray | None:
    """(B, K) scores of every candidate: the decoding strategy's own score where the model has one
    (``candidate_scores``), else the LM log-likelihood (``sequence_logprob``); None if it cannot score."""
    if hasattr(model, "candidate_scores"):
        def score(chunk):
            return model.candidate_scores(batch, chunk, decoding, meg_mode=meg_mode, encoded=encoded)
    else:
        kwargs = {"meg_mode": meg_mode} if meg_mode != "meg" else {}

        def score(chunk):
            return model.sequence_logprob(batch, chunk, **kwargs)
    parts = [score(list(candidates[i:i + CANDIDATE_CHUNK])) for i in range(0, len(candidates), CANDIDATE_CHUNK)]
    if any(p is None for p in parts):
        return None
    return torch.cat([p.detach().float().cpu() for p in parts], dim=1).numpy()  # (B, K)


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def _batches(n: int, batch_size: int) -> list[list[int]]:
    return [list(range(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]


def run_system(model, get_item: Callable[[int], dict], n: int, system: str, decoding: DecodingConfig,
               batch_size: int, control_seed: int = 0, donors: Sequence[int] | None = None,
               candidates: Sequence[str] | None = None, true_index: Sequence[int] | None = None,
               progress: bool = True) -> SystemRun:
    """Decode ``n`` examples (``get_item(position)`` -> dataset item) as ``system``.

    ``system``: ``"meg"``, ``"noise"``, ``"surrogate"``, ``"shuffled"`` (needs ``donors``) or ``"no_meg"``. With
    ``candidates`` and ``true_index`` the true sentence's retrieval rank is computed as well.
    """
    meg_mode = "none" if system == "no_meg" else "meg"
    retrieval = candidates is not None and (meg_mode == "meg" or _supports_meg_mode(model.sequence_logprob))
    # a model with an ``encode`` (Brain2Text) encodes each batch once for decoding and retrieval
    encodes = meg_mode == "meg" and hasattr(model, "encode") and hasattr(model, "candidate_scores")
    predictions: list[str] = []
    ranks: list[int] = []
    for positions in tqdm(_batches(n, batch_size), desc=f"decoding ({system})", unit="batch", disable=not progress):
        sources = [donors[p] for p in positions] if system == "shuffled" else positions
        batch = blind(collate_examples([get_item(p) for p in sources]))
        if system == "noise":
            batch = noise_like(batch, noise_seeds(control_seed, positions))
        elif system == "surrogate":
            batch = surrogate_like(batch, surrogate_seeds(control_seed, positions))
        batch = batch.to(_device(model))
        with torch.inference_mode():
            encoded = {"encoded": model.encode(batch)} if encodes else {}
            out = model.generate(batch, decoding, meg_mode=meg_mode, **encoded)
            if len(out) != len(positions):
                raise RuntimeError(f"model.generate returned {len(out)} texts for {len(positions)} examples")
            predictions.extend(str(t) for t in out)
            if retrieval:
                scores = _candidate_scores(model, batch, candidates, meg_mode, decoding, encoded.get("encoded"))
                if scores is None:  # the strategy cannot score without MEG (ctc on no_meg): no retrieval
                    retrieval, ranks = False, []
                else:
                    ranks.extend(true_rank(row, true_index[p]) for row, p in zip(scores, positions))  # (B, K) rows
    return SystemRun(predictions, np.asarray(ranks) if retrieval else None)


def _retrieval_extra(run: SystemRun) -> dict[str, np.ndarray]:
    if run.ranks is None:
        return {}
    return {"top1": (run.ranks <= 1).astype(np.float64), "top10": (run.ranks <= 10).astype(np.float64)}


def _with_null_retrieval(metrics: dict, retrieval: bool) -> dict:
    if retrieval:
        for key in ("top1", "top10"):
            metrics.setdefault(key, None)  # e.g. no_meg when the model cannot score without MEG
    return metrics


def evaluation_clusters(references: Sequence[str], subjects: Sequence[str], unit: str) -> Clusters:
    """Bootstrap clusters of the evaluated rows: a sentence is its normalised reference text (every
    subject's and session's row of it together); ``subject_sentence`` adds the subjects."""
    return make_clusters(unit, len(references), [normalize_for_wer(r) for r in references], list(subjects))


def score_systems(references: list[str], runs: dict[str, SystemRun], cfg: Config, retrieval: bool,
                  clusters: Clusters, progress: bool = False) -> dict:
    """Metrics of every system, and paired differences MEG - control (same references, resampled and
    swapped by ``clusters``): interval, p-value, verdict."""
    e = cfg.eval
    model_name, layers = bertscore_settings(e)
    stats: dict[str, SentenceStats] = {
        name: sentence_stats(references, run.predictions, model_name, layers, _retrieval_extra(run),
                             e.wer_normalization, progress)
        for name, run in runs.items()}
    controls = [name for name in runs if name != "meg"]
    return {
        "stats": stats,
        "metrics": _with_null_retrieval(stats["meg"].corpus(), retrieval),
        "controls": {c: _with_null_retrieval(stats[c].corpus(), retrieval) for c in controls},
        "differences": {c: paired_bootstrap(stats["meg"], stats[c], e.n_bootstrap, e.bootstrap_seed, clusters=clusters,
                                            n_permutations=e.n_permutations)
                        for c in controls},
        "info": metrics_info(model_name, layers, e.wer_normalization),
        "bootstrap": method_info(clusters, e.n_bootstrap, e.n_permutations, e.bootstrap_seed),
    }


def _split_info(example_set, cfg: Config, split: str) -> dict:
    data = cfg.data
    info = {"mode": data.split, "which": split, "sizes": example_set.split_counts()}
    if data.split == "story":
        info.update(val_stories=list(data.val_stories), test_stories=list(data.test_stories))
    else:
        info.update(val_fraction=data.val_fraction, test_fraction=data.test_fraction, salt=data.split_salt)
    return info


def evaluate_examples(model, example_set, split: str, cfg: Config, progress: bool = True) -> tuple[dict, dict]:
    """Evaluate ``model`` on ``split`` of ``example_set``; returns (result JSON, per-sentence WER by system)."""
    dataset = MEGDataset(example_set, split)
    n = len(dataset) if not cfg.eval.max_sentences else min(len(dataset), cfg.eval.max_sentences)
    if n == 0:
        raise Brain2TextError(f"the {split!r} split has no examples (data.split={cfg.data.split})", example_set.path)
    examples = [example_set.examples[dataset.indices[p]] for p in range(n)]
    references = [ex["text"] for ex in examples]
    candidates = sorted(set(references)) if cfg.eval.retrieval else None
    true_index = [candidates.index(r) for r in references] if candidates else None
    donors = None
    if "shuffled" in cfg.eval.controls:
        try:
            donors = derangement(references, [ex["subject"] for ex in examples], cfg.eval.control_seed)
        except ValueError as exc:
            raise Brain2TextError(f"shuffled control impossible on the {split!r} split: {exc}",
                                  example_set.path) from None
    model.eval()
    runs = {name: run_system(model, dataset.__getitem__, n, name, cfg.decoding, cfg.eval.batch_size,
                             cfg.eval.control_seed, donors, candidates, true_index, progress)
            for name in ["meg", *cfg.eval.controls]}
    clusters = evaluation_clusters(references, [ex["subject"] for ex in examples], cfg.eval.bootstrap_unit)
    scored = score_systems(references, runs, cfg, candidates is not None, clusters, progress)
    result = {
        "split": _split_info(example_set, cfg, split),
        "n_sentences": n,
        "n_distinct_sentences": len(set(references)),
        "n_candidates": len(candidates) if candidates else 0,
        "retrieval_score": _retrieval_score(model, cfg.decoding) if candidates else None,
        "metrics": scored["metrics"],
        "controls": scored["controls"],
        "differences": scored["differences"],
        **scored["info"],
        "synthetic": bool(example_set.synthetic),
        "strategy": cfg.decoding.strategy,
        "decoding": asdict(cfg.decoding),
        "n_bootstrap": cfg.eval.n_bootstrap,
        "n_permutations": cfg.eval.n_permutations,
        "bootstrap_seed": cfg.eval.bootstrap_seed,
        "bootstrap_unit": cfg.eval.bootstrap_unit,
        "n_clusters": clusters.n_clusters,
        "bootstrap": scored["bootstrap"],
        "control_seed": cfg.eval.control_seed,
        "eval": asdict(cfg.eval),
        "examples": [],
        "sentences": [],
    }
    wer = {name: s.per_sentence_wer() for name, s in scored["stats"].items()}
    result["sentences"] = _sentence_rows(examples, references, runs, wer["meg"], donors)
    result["examples"] = [{k: v for k, v in row.items() if k not in ("wer", "rank", "story")}
                          for row in result["sentences"][:N_EXAMPLES]]
    return result, {name: values.tolist() for name, values in wer.items()}


def _retrieval_score(model, decoding: DecodingConfig) -> str:
    if not hasattr(model, "candidate_scores"):
        return "log P_LM(sentence | MEG)"
    return get_strategy(decoding.strategy).describe_score(decoding)


def _sentence_rows(examples: list[dict], references: list[str], runs: dict[str, SystemRun], wer: np.ndarray,
                   donors: Sequence[int] | None) -> list[dict]:
    """One row per evaluated sentence: reference, MEG prediction, each control's prediction."""
    rows = []
    for p, ex in enumerate(examples):
        row = {"id": ex["id"], "subject": ex["subject"], "story": ex.get("story"), "reference": references[p],
               "prediction": runs["meg"].predictions[p], "wer": float(wer[p])}
        for name, run in runs.items():
            if name != "meg":
                row[name] = run.predictions[p]
        if donors is not None:
            row["shuffled_donor"] = examples[donors[p]]["id"]
        if runs["meg"].ranks is not None:
            row["rank"] = int(runs["meg"].ranks[p])
        rows.append(row)
    return rows


def _override_pairs(overrides: Sequence[str] | Mapping[str, object] | None) -> list[tuple[str, object]]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    if isinstance(overrides, str):
        overrides = [overrides]
    return parse_overrides(list(overrides))


def evaluation_config(view: ModelView, config: str | os.PathLike | None = None,
                      overrides: Sequence[str] | Mapping[str, object] | None = None,
                      strategy: str | None = None, bids_root: str | os.PathLike | None = None) -> Config:
    """The configuration a saved model is evaluated with (``brain2text evaluate`` and ``Decoder.evaluate``).

    The architecture is always the model's. Data, decoding and eval settings come from the YAML ``config``
    when given, else from the model's saved config with the data settings it was trained with; then
    ``overrides`` (``key=value`` strings as on the command line, or a mapping ``{"eval.max_sentences": 50}``),
    ``bids_root`` (``data.bids_root``) and ``strategy``.
    """
    pairs = _override_pairs(overrides) + ([("data.bids_root", str(bids_root))] if bids_root is not None else [])
    base = view.config
    if config:
        user = config_with(load_config(config), pairs) if pairs else load_config(config)
        cfg = dataclasses.replace(base, data=user.data, decoding=user.decoding, eval=user.eval)
    else:
        cfg = config_with(dataclasses.replace(base, data=view.data), pairs)
    if strategy:
        cfg = dataclasses.replace(cfg, decoding=dataclasses.replace(cfg.decoding, strategy=strategy))
    return cfg


def evaluate_model(model, view: ModelView, split: str, cfg: Config, progress: bool = True) -> tuple[dict, dict]:
    """Evaluate a loaded model on ``split`` of ``cfg.data`` (cached preprocessing built if needed): the
    result JSON ``brain2text evaluate`` writes (``model_path`` first), and the per-sentence WER by system."""
    example_set = build_cache(cfg.data, progress)
    result, per_sentence_wer = evaluate_examples(model, example_set, split, cfg, progress)
    return {"model_path": str(view.model_path), **result}, per_sentence_wer
