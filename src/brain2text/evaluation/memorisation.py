"""Does the decoder's language model already know the test text?

A pretrained LM (SmolLM2 was trained on web text that may hold the MASC stories) or one trained on the
training split could recite held-out sentences without any MEG. Two measurements say whether it does:

- its word perplexity on the split's test sentences beside its perplexity on the training sentences
  (:func:`lm_word_perplexities`): a test perplexity near the training one means the LM has seen the test
  text (or text just like it);
- the no-MEG control of every evaluation (the prompt alone): BLEU-4 above :data:`RECITES_ABOVE_BLEU4` says
  that the prior alone recovers test text (:func:`prior_recites`).
"""

from __future__ import annotations

import math

from ..models.build import base_tokenizer
from ..models.decoder import load_base_lm
from ..training.lm_pretrain import build_corpus, sentence_nll

RECITES_ABOVE_BLEU4 = 0.01


def lm_word_perplexities(cfg, text_dir=None, splits: tuple[str, ...] = ("train", "test")) -> dict:
    """Word perplexity of ``cfg.decoder``'s base LM (no LoRA, no MEG) on each split's unique sentences of the
    decoder corpus (:func:`brain2text.training.lm_pretrain.build_corpus`: detokenised story sentences, the
    split assigned as the data config assigns it). Each sentence is scored alone, from the tokenizer's
    beginning-of-sentence token (its end-of-sentence token where it has none) to its end-of-sentence token;
    the summed log-likelihood is spread over words + 1, so that LMs with different tokenizers compare."""
    path = cfg.decoder.model_name_or_path
    corpus = build_corpus(cfg, text_dir)
    model, tok = load_base_lm(cfg.decoder), base_tokenizer(path)
    out = {}
    for split in splits:
        nll, n_tokens, n_words = sentence_nll(model, tok, corpus[split], batch_size=16)
        out[split] = {"n_sentences": len(corpus[split]), "n_words": n_words, "n_tokens": n_tokens,
                      "word_perplexity": round(math.exp(nll / n_words), 3) if n_words else None}
    return {"model": str(path), "data_split": cfg.data.split, "perplexity": out,
            "note": "the base LM alone (no LoRA, no MEG), each sentence from its start token; summed log-likelihood "
                    "over words + 1 (end of sentence); a test perplexity near the training one means the LM knows "
                    "the test text"}


def prior_recites(result: dict) -> bool | None:
    """Whether the no-MEG control of an evaluation (``brain2text evaluate``'s JSON) recovers test text:
    BLEU-4 above 1%. None when the evaluation has no no-MEG control."""
    bleu4 = result.get("controls", {}).get("no_meg", {}).get("bleu4")
    return None if bleu4 is None else bleu4 > RECITES_ABOVE_BLEU4


def memorisation_line(split: str, record: dict | None, result: dict) -> str:
    """One line for the demo's summary: the two perplexities and the no-MEG BLEU-4, said plainly."""
    parts = []
    if record:
        ppl = {k: v["word_perplexity"] for k, v in record["perplexity"].items()}
        parts.append(f"LM word perplexity train {ppl.get('train')}, test {ppl.get('test')}")
    recites = prior_recites(result)
    if recites is not None:
        b4 = 100 * result["controls"]["no_meg"]["bleu4"]
        parts.append(f"no-MEG BLEU-4 {b4:.1f}%: " + ("the prior alone RECOVERS test text (above 1%)" if recites
                                                      else "the prior alone does not recover test text (at most 1%)"))
    return f"  {split}: " + "; ".join(parts) if parts else f"  {split}: no memorisation figures"
