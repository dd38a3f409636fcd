"""Pre-train the small LLaMA-architecture decoder of the embedded default (no model hub needed).

The corpus holds only *training-split* sentences (``brain2text.data.splits``): the sentences of the four
story texts in the form the word events give them (what the data layer turns into targets), plus those
of the dataset's own events when ``data.bids_root`` exists. Every sentence whose normalised text is in
val or test, or equals one that is, is left out; the BPE tokenizer is trained on the same corpus, so a
test sentence leaves no trace in the merges or the weights. Held-out perplexity is measured on the val
sentences, which are never trained on (early stopping uses a dev slice of the training sentences).

The result is a plain Hugging Face directory (``config.json`` + ``model.safetensors`` + tokenizer files)
that loads with ``from_pretrained`` exactly like a user's LLaMA-2 directory, plus
``lm_pretrain.json`` (corpus size and hash, settings, perplexities, time). A directory whose record
matches the corpus hash and settings is reused as is.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from ..config import Config
from ..constants import MEG_MASC_STORIES
from ..data.events import extract_sentences, read_events
from ..data.splits import assign_splits
from ..data.synthetic.stimuli import find_shared_data, story_events
from ..data.text import detokenize, normalize_for_split
from ..data.tokenizer import train_bpe_tokenizer, train_word_tokenizer
from ..errors import ModelError
from ..utils.atomic import atomic_directory

RECORD_FILE = "lm_pretrain.json"
EVAL_MAX_LEN = 512  # = max_position_embeddings: held-out sentences are never truncated when scored
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", RECORD_FILE)


@dataclass
class LMSettings:
    """Size and schedule of the default decoder (tiny: trains in about a minute on 2 CPU cores)."""

    tokenizer: str = "bpe"  # "bpe" (byte-level BPE, any word encodable) or "word" (one id per training word;
    # on the synthetic demo, where each word is one evoked pattern, CTC alone decodes better with it)
    vocab_size: int = 600  # the corpus is ~7k words: a small vocabulary keeps tokens frequent (best of 400/600/1000)
    hidden_size: int = 128
    intermediate_size: int = 384
    n_layers: int = 2
    n_heads: int = 4
    dropout: float = 0.1
    token_dropout: float = 0.25  # share of input tokens replaced by random ones (the corpus is tiny: regularise)
    max_len: int = 128  # training sequences are cut here; dev/val are scored whole (up to EVAL_MAX_LEN)
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.1
    dev_fraction: float = 0.05
    eval_every: int = 25
    seed: int = 0
    threads: int = 1  # torch threads: 1 is faster than 2 on a shared 2-core machine


def _event_sentences(events) -> list[tuple[str, str]]:
    seqs: dict = {}
    for e in events:
        if e.info["kind"] == "word" and e.info["condition"] == "sentence":
            seqs.setdefault((e.info["sound_id"], e.info["sequence_id"]), []).append(e.info["word"])
    return [(detokenize(words), events[0].info["story"]) for words in seqs.values()]


def story_sentences(text_dir=None) -> list[tuple[str, str]]:
    """(text, story) of every sentence of the four stories, as the word events give them."""
    return list(_story_sentences(str(find_shared_data(text_dir).resolve())))


@lru_cache(maxsize=4)
def _story_sentences(text_dir: str) -> tuple[tuple[str, str], ...]:
    out = []
    for story in MEG_MASC_STORIES:
        out += _event_sentences(story_events(story, Path(text_dir), seed=0, max_seconds=None))
    return tuple(out)


def dataset_sentences(bids_root) -> list[tuple[str, str]]:
    """(text, story) of the sentences in a BIDS dataset's events files (empty if there is none)."""
    root = Path(bids_root)
    if not root.is_dir():
        return []

    out = set()
    for path in sorted(root.rglob("*_events.tsv")):
        out.update((s.text, s.story) for s in extract_sentences(read_events(path)))
    return sorted(out)


def build_corpus(cfg: Config, text_dir=None) -> dict[str, list[str]]:
    """{'train': [...], 'val': [...], 'test': [...]} of unique sentence texts; train is leak-free."""
    items = sorted(set(story_sentences(text_dir)) | set(dataset_sentences(cfg.data.bids_root)))
    items = [(t, s) for t, s in items if t.strip()]
    splits = assign_splits(items, cfg.data)
    held = {normalize_for_split(t) for (t, _), sp in zip(items, splits) if sp != "train"}
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    seen: set[tuple[str, str]] = set()
    for (text, _), split in zip(items, splits):
        if (split == "train" and normalize_for_split(text) in held) or (split, text) in seen:
            continue
        seen.add((split, text))
        out[split].append(text)
    return out


def corpus_hash(texts: list[str], settings: LMSettings) -> str:
    h = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode())
    for t in texts:
        h.update(t.encode("utf-8") + b"\n")
    return h.hexdigest()


def is_complete(out: Path, digest: str) -> bool:
    if not all((out / f).is_file() for f in REQUIRED_FILES):
        return False
    try:
        return json.loads((out / RECORD_FILE).read_text()).get("corpus_sha256") == digest
    except (OSError, ValueError):
        return False


def _encode(tok, texts: list[str], max_len: int) -> list[list[int]]:
    """Each text between the tokenizer's start token (its end token where it has none) and its end token."""
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    return [([start] + tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])[:max_len] for t in texts]


def sentence_nll(model, tok, texts: list[str], batch_size: int = 64) -> tuple[float, int, int]:
    """Summed NLL (nats) of ``texts``, each scored alone (:func:`_encode`), its number of predicted tokens, and
    of words + 1 (end of sentence): ``exp(nll / tokens)`` is the token perplexity, ``exp(nll / words)`` the
    word perplexity that compares across tokenizers."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    seqs = _encode(tok, texts, EVAL_MAX_LEN)
    nll, n_tokens = total_nll(model, seqs, pad, batch_size) if seqs else (0.0, 0)
    return nll, n_tokens, sum(len(t.split()) + 1 for t in texts)


def _batch(seqs: list[list[int]], pad: int):
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def perplexity(model, seqs: list[list[int]], pad: int, batch_size: int = 64) -> float:
    """exp(mean next-token NLL) over all predicted tokens of ``seqs`` (end-of-sentence included)."""
    total, count = total_nll(model, seqs, pad, batch_size)
    return math.exp(total / max(count, 1))


def total_nll(model, seqs: list[list[int]], pad: int, batch_size: int = 64) -> tuple[float, int]:
    """Summed next-token NLL (nats) over ``seqs`` and the number of predicted tokens."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(seqs), batch_size):
            ids, mask, labels = _batch(seqs[i:i + batch_size], pad)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            tgt = labels[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                    ignore_index=-100, reduction="sum")
            total += float(nll)
            count += int((tgt != -100).sum())
    model.train()
    return total, count


def make_model(tok, s: LMSettings):
    config = LlamaConfig(vocab_size=len(tok), hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
                         num_hidden_layers=s.n_layers, num_attention_heads=s.n_heads, num_key_value_heads=s.n_heads,
                         max_position_embeddings=max(s.max_len, EVAL_MAX_LEN), attention_dropout=s.dropout,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def train_lm(train: list[str], s: LMSettings, log=print):
    """Train tokenizer + model on ``train``; returns (model, tokenizer, best dev perplexity)."""
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, s.threads))
    try:
        return _train(train, s, rng, log)
    finally:
        torch.set_num_threads(threads)


def _train(train: list[str], s: LMSettings, rng: random.Random, log):
    train_tokenizer = {"bpe": train_bpe_tokenizer, "word": train_word_tokenizer}[s.tokenizer]
    tok = train_tokenizer(train, vocab_size=s.vocab_size)
    order = list(train)
    rng.shuffle(order)
    n_dev = max(1, int(len(order) * s.dev_fraction))
    dev, fit = _encode(tok, order[:n_dev], EVAL_MAX_LEN), _encode(tok, order[n_dev:], s.max_len)
    model = make_model(tok, s)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(k, s.steps) / s.steps))))
    best, best_state = float("inf"), None
    model.train()
    for step in range(1, s.steps + 1):
        ids, mask, labels = _batch(rng.sample(fit, min(s.batch_size, len(fit))), tok.pad_token_id)
        noisy = (torch.rand(ids.shape) < s.token_dropout) & (mask == 1)
        noisy[:, 0] = False
        ids = torch.where(noisy, torch.randint(0, len(tok), ids.shape), ids)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % s.eval_every == 0 or step == s.steps:
            ppl = perplexity(model, dev, tok.pad_token_id)
            log(f"  step {step}: train loss {loss.item():.3f}, dev perplexity {ppl:.1f}")
            if ppl < best:
                best, best_state = ppl, {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model, tok, best


def pretrain_lm(cfg: Config, out: str | Path | None = None, settings: LMSettings | None = None,
                text_dir=None, force: bool = False, log=print) -> dict:
    """Build (or reuse) the default decoder directory; returns its record (``lm_pretrain.json``)."""
    s = settings or LMSettings()
    out = Path(out or cfg.decoder.model_name_or_path)
    corpus = build_corpus(cfg, text_dir)
    if not corpus["train"]:
        raise ModelError("no training sentences for the decoder corpus (check data.split and the story texts)")
    digest = corpus_hash(corpus["train"], s)
    if not force and is_complete(out, digest):
        log(f"decoder in {out} is up to date (corpus {digest[:12]}); reusing it")
        return json.loads((out / RECORD_FILE).read_text())
    start = time.perf_counter()
    model, tok, dev_ppl = train_lm(corpus["train"], s, log)
    val = corpus["val"]
    nll, n_tok, n_val_words = sentence_nll(model, tok, val)
    record = {
        "what": "small LLaMA-architecture decoder pretrained on training-split story sentences "
                "(brain2text pretrain-lm)",
        "corpus_sha256": digest, "n_sentences": len(corpus["train"]),
        "n_words": sum(len(t.split()) for t in corpus["train"]),
        "corpus_chars": sum(len(t) for t in corpus["train"]), "n_val_sentences": len(corpus["val"]),
        "n_test_sentences_excluded": len(corpus["test"]), "vocab_size": len(tok),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "dev_perplexity": round(dev_ppl, 3),
        "heldout_val_perplexity": round(math.exp(nll / n_tok), 3) if val else None,
        "heldout_val_word_perplexity": round(math.exp(nll / n_val_words), 3) if val else None,
        "perplexity_note": "per token of this tokenizer (end of sentence included); the word perplexity spreads "
                           "the same total log-likelihood over words + 1 and compares across tokenizers",
        "training_seconds": round(time.perf_counter() - start, 1), "settings": asdict(s),
        "split": {"split": cfg.data.split, "split_salt": cfg.data.split_salt, "val_fraction": cfg.data.val_fraction,
                  "test_fraction": cfg.data.test_fraction},
    }

    hf_logging.disable_progress_bar()
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        (tmp / "corpus_train.txt").write_text("\n".join(corpus["train"]) + "\n", encoding="utf-8")
    return record
