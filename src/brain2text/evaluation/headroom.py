"""How much could a language model add to an encoder's CTC search? (``brain2text lm-headroom``)

Shallow fusion (the demo's default search) can only choose among the units the encoder's frames make
possible: a word the CTC head cannot write, or one it ranks far down, stays out of reach whatever the LM.
This module measures that limit for a trained model by fusing n-gram LMs into the same CTC prefix beam
search, in the place of the MEG-conditioned LLM:

- ``ctc``: the encoder alone (the search with ``lm_weight`` and ``length_bonus`` 0);
- ``no_lm``: the same search with its length bonus and no LM;
- ``ngram``: a Witten-Bell n-gram LM (:class:`~brain2text.decoding.ngram.NGramLM`) fitted on the training
  split's sentences: a plain baseline that an LLM in the same search should beat;
- ``oracle``: the same n-gram fitted on the training sentences *and the decoded split's own sentences*. It
  has memorised the text it decodes, so it is a reference point, never a result: what fusion gains over
  ``ctc`` with an LM that already knows every test sentence's n-grams. Where even it does not clear a bar, an
  honest LM in the same search is unlikely to, and the encoder (what the search can write) has to change. It
  is not a strict upper bound: an LM that picked the sentence as a whole (retrieval) could do more.

With ``search="lexicon"`` the same four systems measure the phoneme route instead, the one search that can
write a word the word CTC head cannot (:func:`~brain2text.decoding.lexicon.lexicon_beam_search_batch`, the
``lexicon`` strategy's search over the phoneme head's posteriors): ``ctc`` stays the word CTC head alone (the
bar), ``no_lm`` is the lexicon search over the training words with its word bonus only, ``ngram`` adds a word
n-gram of the training sentences, and ``oracle`` a word n-gram of the training *and decoded* sentences with
a lexicon that holds every decoded word (nothing unseen). As in the ``lexicon`` strategy, an LM's score of
a word's start stands in while it is spelled (the look-ahead: here the n-gram's probability of the word
opening a sentence), and ``ctc_weight`` > 0 adds the word CTC head's prefix score of each word
(:class:`~brain2text.decoding.strategies.WordCTC`) to every lexicon system. Where even the oracle stays
behind ``ctc``, the phoneme posteriors (with that word evidence), not the LM or the lexicon, limit the route.

Each LM's ``lm_weight`` and ``length_bonus`` are chosen on ``tune_split`` (the oracle's on its own oracle of
that split), then applied once to ``split``. Every system is scored like ``evaluate``'s, with paired intervals
that resample sentences. Also reported: the share of the split's reference tokens the CTC head cannot write.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from ..data.dataset import MEGDataset, collate_examples
from ..decoding.fusion import ctc_fusion_beam_search_batch
from ..decoding.lexicon import Lexicon, lexicon_beam_search_batch
from ..decoding.ngram import NGramLM
from ..decoding.strategies import WordCTC, unit_ids
from ..errors import Brain2TextError
from ..models.build import lexicon_words
from .bootstrap import method_info, paired_bootstrap
from .controls import blind
from .evaluate import evaluation_clusters
from .metrics import metrics_info, normalize_for_wer, sentence_stats, wer_statistics
from .report_table import interval_text, p_text

SYSTEMS = ("ctc", "no_lm", "ngram", "oracle")
SEARCHES = ("fusion", "lexicon")
ORDER, LM_WEIGHTS, LENGTH_BONUSES = 3, (0.3, 0.5, 1.0), (1.0, 2.0, 3.0)  # the command's and the demo's defaults
LEXICON_BONUSES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # per word; without an LM the search wants a negative one
BONUSES = {"fusion": LENGTH_BONUSES, "lexicon": LEXICON_BONUSES}  # each search's default length_bonus grid
LM_OF = {"fusion": {"ctc": "none", "no_lm": "none (length bonus only)", "ngram": "n-gram of the training sentences",
                    "oracle": "n-gram of the training + decoded sentences (oracle)"},
         "lexicon": {"ctc": "none (the word CTC head alone)",
                     "no_lm": "none: phoneme lexicon search over the training words, word bonus only",
                     "ngram": "word n-gram of the training sentences, training words' lexicon",
                     "oracle": "word n-gram of the training + decoded sentences, lexicon with the decoded words "
                               "(oracle)"}}
NOTES = {
    "fusion": "oracle's n-gram was fitted on the decoded split's own sentences: its gain over ctc is what shallow "
              "fusion gains with an LM that has memorised the test sentences' n-grams (a reference point for what "
              "an LM can add to this encoder's search); it is not a decoding result",
    "lexicon": "oracle's word n-gram was fitted on the decoded split's own sentences and its lexicon holds their "
               "words: it is what the phoneme lexicon search gains with an LM and a lexicon that know the test "
               "sentences (a reference point for what the phoneme route can reach); it is not a decoding result",
}
PAIRS = (("no_lm", "ctc"), ("ngram", "ctc"), ("oracle", "ctc"), ("ngram", "no_lm"), ("oracle", "no_lm"))


@dataclass
class Posteriors:
    """One split's CTC log-probs (blank last), one ``(T_i, classes)`` tensor per example, with its references
    and subjects."""

    log_probs: list[Tensor]
    references: list[str]
    subjects: list[str]
    phoneme_log_probs: list[Tensor] | None = None  # the phoneme head's, where the model has one


def split_posteriors(model, example_set, split: str, batch_size: int = 8, max_examples: int = 0) -> Posteriors:
    """Encode the examples of ``split`` once (the first ``max_examples``, 0: all; no target information in the
    batch)."""
    dataset = MEGDataset(example_set, split)
    if len(dataset) == 0:
        raise Brain2TextError(f"the {split!r} split has no examples", example_set.path)
    count = min(len(dataset), max_examples) if max_examples else len(dataset)
    log_probs, refs, subjects, phonemes = [], [], [], []
    model.eval()
    with torch.inference_mode():
        for start in range(0, count, batch_size):
            positions = range(start, min(start + batch_size, count))
            batch = collate_examples([dataset[p] for p in positions])
            enc = model.encode(blind(batch))
            log_probs += [lp.float().cpu() for lp in enc.ctc_frames()]
            phonemes += [lp.float().cpu() for lp in enc.phoneme_frames() or []]
            refs += batch.texts
            subjects += [example_set.examples[dataset.indices[p]]["subject"] for p in positions]
    return Posteriors(log_probs, refs, subjects, phonemes if len(phonemes) == len(log_probs) else None)


def split_texts(example_set, split: str) -> list[str]:
    """The split's distinct sentences, sorted (what an n-gram is fitted on)."""
    return sorted({ex["text"] for ex in example_set.examples if ex["split"] == split})


def ngram_of(model, texts: list[str], order: int) -> NGramLM:
    """An n-gram LM over the decoder tokenizer's ids, fitted on ``texts`` tokenised as the CTC targets are."""
    return NGramLM([model.text_ids(t) for t in texts], order, len(model.tokenizer), model.eos_id)


class LexiconNGram:
    """A word n-gram over the words of a pronunciation lexicon, as the lexicon search's ``word_lm_fn``:
    ``(example, committed words, next word | None for the end) -> log P`` (the example is ignored)."""

    def __init__(self, texts: list[str], words: list[str], order: int):
        self.lexicon = Lexicon(words)
        index = {w: i for i, w in enumerate(self.lexicon.words)}
        missing = sorted({w for t in texts for w in t.split()} - set(index))
        if missing:
            raise ValueError(f"the n-gram's sentences hold words outside the lexicon: {missing[:5]}")
        n = len(self.lexicon)
        self.ngram = NGramLM([[index[w] for w in t.split()] for t in texts], order, n + 1, n)
        # the look-ahead, as the lexicon strategy's: per trie node, the best score of a word below it opening a sentence
        start = self.ngram.log_probs([])
        self.lookahead = self.lexicon.lookahead([float(start[w]) for w in range(n)])

    def __call__(self, requests: list[tuple[int, tuple[int, ...], int | None]]) -> list[float]:
        return [float(self.ngram.log_probs(words)[self.ngram.eos_id if w is None else w]) for _, words, w in requests]


def decode(model, post: Posteriors, lm: NGramLM | LexiconNGram | None, lm_weight: float, length_bonus: float,
           beam: int, ctc_weight: float = 0.0) -> list[str]:
    """The fusion search over ``post``'s word CTC posteriors with ``lm`` (None: no LM), or, for a
    :class:`LexiconNGram`, the lexicon search over its phoneme posteriors with that LM's lexicon (weight 0:
    the lexicon alone) and ``ctc_weight`` times the word CTC head's word scores; texts as the model writes
    them."""
    if isinstance(lm, LexiconNGram):
        words = lm.lexicon.words
        word_ctc = WordCTC(model, post.log_probs, words) if ctc_weight else None
        found = lexicon_beam_search_batch(post.phoneme_log_probs, lm.lexicon, lm if lm_weight else None, beam=beam,
                                          lm_weight=lm_weight, word_bonus=length_bonus, lookahead=lm.lookahead,
                                          word_ctc_fn=word_ctc, word_ctc_weight=ctc_weight)
        return [" ".join(words[w] for w in found_words) for found_words in found]
    return model.texts(ctc_fusion_beam_search_batch(post.log_probs, model.units.blank, lm, model.eos_id, beam,
                                                    lm_weight, length_bonus, unit_ids=unit_ids(model)))


def corpus_wer(references: list[str], predictions: list[str], normalization: str = "default") -> float:
    edits, n_ref = wer_statistics(references, predictions, normalization)
    return float(np.sum(edits) / max(1, np.sum(n_ref)))


def unwritable_share(model, references: list[str]) -> float:
    """The share of the references' tokens (decoder tokenizer) that are not CTC units or are unknown."""
    unk = model.tokenizer.unk_token_id
    tokens = [t for r in references for t in model.text_ids(r)]
    bad = sum(1 for t in tokens if t == unk or model.units.classes([t]) is None)
    return bad / len(tokens) if tokens else 0.0


def _tune(model, post: Posteriors, lm: NGramLM | LexiconNGram | None, weights, bonuses, beam,
          normalization, ctc_weight: float = 0.0) -> tuple[dict, list]:
    grid = []
    for w in weights:
        for b in bonuses:
            texts = decode(model, post, lm, w, b, beam, ctc_weight)
            grid.append({"lm_weight": w, "length_bonus": b, "wer": corpus_wer(post.references, texts, normalization)})
    best = min(grid, key=lambda row: row["wer"])  # the first of equals: the grid's order decides ties
    return best, grid


def check_settings(split: str, tune_split: str, order: int, lm_weights, length_bonuses, search: str = "fusion",
                   ctc_weight: float = 0.0) -> None:
    """A one-line error for settings the measurement cannot use (checked before any model is loaded)."""
    if search not in SEARCHES:
        raise Brain2TextError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if not (math.isfinite(ctc_weight) and ctc_weight >= 0):
        raise Brain2TextError(f"--ctc_weight must be finite and >= 0, got {ctc_weight}")
    if ctc_weight and search != "lexicon":
        raise Brain2TextError("--ctc_weight is the lexicon search's (--search lexicon); fusion's ctc row is the word "
                              "CTC itself")
    if split == tune_split:
        raise Brain2TextError(f"--tune_split must differ from --split (both {split})")
    if "train" in (split, tune_split):
        raise Brain2TextError("--split and --tune_split must be val or test: the n-grams are fitted on the training "
                              "split")
    if order < 1:
        raise Brain2TextError(f"--order must be >= 1, got {order}")
    if not lm_weights or not all(math.isfinite(w) and w > 0 for w in lm_weights):
        raise Brain2TextError(f"--lm_weights must be finite and > 0, got {list(lm_weights)}")
    if not length_bonuses or not all(math.isfinite(b) for b in length_bonuses):
        raise Brain2TextError(f"--length_bonuses must be finite numbers, got {list(length_bonuses)}")


def check_model(model, search: str, path=None) -> None:
    """A one-line error (naming ``path``, the model directory, where given) where the model cannot run
    ``search`` (the lexicon search needs a phoneme head)."""
    if search == "lexicon" and (getattr(model, "phoneme_head", None) is None or not model.lexicon_words):
        raise Brain2TextError("the lexicon search needs a model trained with encoder.phoneme_head: true (its "
                              "phoneme head and lexicon words)", path)


def lm_headroom(model, example_set, cfg, split: str = "test", tune_split: str = "val", order: int = ORDER,
                lm_weights: tuple[float, ...] = LM_WEIGHTS, length_bonuses: tuple[float, ...] | None = None,
                progress=None, search: str = "fusion", ctc_weight: float = 0.0) -> dict:
    """The headroom JSON (see the module docstring). ``cfg``: the evaluation config (``cfg.decoding.num_beams``
    beams; ``cfg.eval``'s bootstrap settings, WER normalisation and ``max_sentences``, which caps the decoded
    split as ``evaluate`` does); ``length_bonuses`` None: :data:`LENGTH_BONUSES` for fusion,
    :data:`LEXICON_BONUSES` for the lexicon search; ``ctc_weight``: the lexicon search's weight of the word CTC
    head's word scores; ``progress(message)`` is told each step."""
    if length_bonuses is None:
        length_bonuses = BONUSES.get(search, LENGTH_BONUSES)  # an unknown search is refused just below
    check_settings(split, tune_split, order, lm_weights, length_bonuses, search, ctc_weight)
    check_model(model, search)
    say = progress or (lambda message: None)
    beam, e = cfg.decoding.num_beams, cfg.eval
    say(f"encoding the {tune_split} and {split} splits")
    tune_post = split_posteriors(model, example_set, tune_split)
    post = split_posteriors(model, example_set, split, max_examples=e.max_sentences)
    train = split_texts(example_set, "train")
    if not train:
        raise Brain2TextError("the training split has no sentences to fit the n-gram on", example_set.path)
    tune_oracle, oracle = train + sorted(set(tune_post.references)), train + sorted(set(post.references))
    if search == "lexicon":
        # the model's lexicon (its lexicon strategy's), with the training words of the data decoded here (the same
        # words when the data are the model's own)
        known = sorted(set(model.lexicon_words) | set(lexicon_words(train)))

        def with_words(texts: list[str]) -> list[str]:
            return sorted(set(known) | set(lexicon_words(texts)))

        plain = LexiconNGram(train, known, order)
        lms = {"ngram": (plain, plain), "oracle": (LexiconNGram(tune_oracle, with_words(tune_oracle), order),
                                                   LexiconNGram(oracle, with_words(oracle), order))}
    else:
        plain = None
        lms = {"ngram": (ngram_of(model, train, order),) * 2,
               "oracle": (ngram_of(model, tune_oracle, order), ngram_of(model, oracle, order))}
    systems = {"ctc": {"lm_weight": 0.0, "length_bonus": 0.0, "tune_wer": None, "tune_grid": []}}
    say(f"no_lm: length bonus on {tune_split}")
    best, grid = _tune(model, tune_post, plain, (0.0,), length_bonuses, beam, e.wer_normalization, ctc_weight)
    systems["no_lm"] = {"lm_weight": 0.0, "length_bonus": best["length_bonus"], "tune_wer": best["wer"],
                        "tune_grid": grid}
    for name, (tune_lm, _) in lms.items():
        say(f"{name}: lm_weight x length_bonus on {tune_split}")
        best, grid = _tune(model, tune_post, tune_lm, lm_weights, length_bonuses, beam, e.wer_normalization,
                           ctc_weight)
        systems[name] = {"lm_weight": best["lm_weight"], "length_bonus": best["length_bonus"], "tune_wer": best["wer"],
                         "tune_grid": grid}
    say(f"decoding {split} with the chosen settings")
    lm_of = {"ctc": None, "no_lm": plain, **{name: pair[1] for name, pair in lms.items()}}
    predictions = {name: decode(model, post, lm_of[name], s["lm_weight"], s["length_bonus"], beam, ctc_weight)
                   for name, s in systems.items()}
    stats = {name: sentence_stats(post.references, p, None, wer_normalization=e.wer_normalization)
             for name, p in predictions.items()}
    clusters = evaluation_clusters(post.references, post.subjects, e.bootstrap_unit)
    extra = {}
    if search == "lexicon":
        spelled = {normalize_for_wer(w) for w in plain.lexicon.words}
        ref_words = normalize_for_wer(" ".join(post.references)).split()  # as WER compares them
        extra = {"ctc_weight": ctc_weight, "lexicon_words": len(plain.lexicon),
                 "oracle_lexicon_words": len(lms["oracle"][1].lexicon),
                 "lexicon_oov_share": sum(w not in spelled for w in ref_words) / max(1, len(ref_words))}
    return {
        "search": search,
        "split": split, "tune_split": tune_split, "data_split": cfg.data.split, "order": order, "num_beams": beam,
        "grid": {"lm_weights": list(lm_weights), "length_bonuses": list(length_bonuses)},
        "n_sentences": len(post.references), "n_distinct_sentences": len(set(post.references)),
        "unwritable_token_share": unwritable_share(model, post.references), **extra,
        "systems": {name: {"lm": LM_OF[search][name], **s, "metrics": stats[name].corpus()}
                    for name, s in systems.items()},
        "differences": {f"{a} - {b}": paired_bootstrap(stats[a], stats[b], e.n_bootstrap, e.bootstrap_seed,
                                                       clusters=clusters, n_permutations=e.n_permutations)
                        for a, b in PAIRS},
        **metrics_info(None, None, e.wer_normalization),
        "bootstrap": method_info(clusters, e.n_bootstrap, e.n_permutations, e.bootstrap_seed),
        "decoding": asdict(cfg.decoding), "eval": asdict(cfg.eval),
        "examples": [{"reference": r, **{name: predictions[name][i] for name in SYSTEMS}}
                     for i, r in enumerate(post.references[:5])],
        "note": NOTES[search],
    }



def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def headroom_markdown(result: dict) -> str:
    """The result as a table: each system's WER and BLEU-4, its settings, and its paired WER differences."""
    search = "phoneme lexicon search" if result.get("search") == "lexicon" else "CTC search"
    lines = [f"LM headroom of the {search} on the {result['split']} split ({result['n_sentences']} examples, "
             f"{result['n_distinct_sentences']} sentences; settings chosen on {result['tune_split']}; "
             f"{result['order']}-gram LMs, {result['num_beams']} beams"
             + (f", word CTC weight {result['ctc_weight']:g}" if result.get("ctc_weight") else "") + "). "
             f"{_pct(result['unwritable_token_share'])}% of the reference tokens are not CTC units"
             + (f"; {_pct(result['lexicon_oov_share'])}% of the reference words are not in the training words' lexicon "
                f"of {result['lexicon_words']:,}." if "lexicon_oov_share" in result else "."), "",
             "| system | LM | lm_weight | length_bonus | WER | BLEU-4 | WER minus ctc | WER minus no_lm |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for name, s in result["systems"].items():
        cells = []
        for other in ("ctc", "no_lm"):
            d = result["differences"].get(f"{name} - {other}", {}).get("wer")
            cells.append("--" if d is None else f"{interval_text(d)} p {p_text(d.get('p_value'))} {d['verdict']}")
        lines.append(f"| {name} | {s['lm']} | {s['lm_weight']:g} | {s['length_bonus']:g} | "
                     f"{_pct(s['metrics']['wer'])} | {_pct(s['metrics']['bleu4'])} | {cells[0]} | {cells[1]} |")
    lines += ["", "WER in %, differences in percentage points with the 95% interval of a paired bootstrap over "
                  "sentences (negative: fewer errors). The oracle has memorised the decoded sentences: its gain is "
                  "a reference point for what an LM in this search can add, not a result."]
    return "\n".join(lines) + "\n"


def headroom_summary(result: dict) -> dict:
    """The headroom JSON's gist for a strategies summary: each system's settings and WER, the WER differences."""
    return {"split": result["split"], "tune_split": result["tune_split"], "order": result["order"],
            "unwritable_token_share": result["unwritable_token_share"],
            "systems": {name: {"lm": s["lm"], "lm_weight": s["lm_weight"], "length_bonus": s["length_bonus"],
                               "wer": s["metrics"]["wer"]} for name, s in result["systems"].items()},
            "wer_differences": {pair: d["wer"] for pair, d in result["differences"].items()},
            "note": result["note"]}


def headroom_line(name: str, result: dict | None) -> str:
    """One line per split for the demo's summary: what the plain and the oracle n-gram change against ctc."""
    try:
        cells = [f"{label} {interval_text(d)} {d['verdict']}"
                 for label, d in (("n-gram of the training sentences", result["differences"]["ngram - ctc"]["wer"]),
                                  ("oracle n-gram", result["differences"]["oracle - ctc"]["wer"]))]
        share = _pct(result["unwritable_token_share"])
        split = result["split"]
    except (KeyError, TypeError):
        return f"  {name}: no readable headroom measurement"
    return f"  {name}: {'; '.join(cells)} ({share}% of the {split} tokens are not CTC units)"
