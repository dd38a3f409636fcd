"""Parameter counts and memory estimates of a configuration, on the meta device (no weights allocated).

Memory model (stated in the output, in GB = 1e9 bytes), per process, no allocator overhead:

* frozen decoder weights in ``decoder.dtype`` (2 B/param in bf16); MEG-side modules (encoder, RVQ,
  projector, heads) in fp32 (4 B); RVQ codebooks plus their EMA sums in fp32;
* each *trainable* parameter adds an fp32 gradient (4 B) and two fp32 AdamW moments (8 B); trainable
  LoRA/decoder parameters are counted the same way (Accelerate's bf16 autocast keeps fp32 masters);
* activations, 16-bit, per transformer layer: 34*s*b*h + 5*a*s^2*b bytes without recomputation
  (Korthikanti et al. 2022), 2*s*b*h with gradient checkpointing; stored only where something at or
  before that layer trains; fp32 logits (and their gradient) for the LM loss; the RVQ's N x K distance
  (and soft assignments with the entropy loss) per level;
* sequence lengths: MEG window ``data.max_window`` seconds, prompt ~32 tokens, target
  ``decoder.max_new_tokens``; batch ``train.batch_size`` (training), ``eval.batch_size`` x beams (inference).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..config import Config
from ..data.tokenizer import add_meg_special_tokens, load_tokenizer
from .brain2text import Brain2Text
from .decoder import build_decoder_on_meta, decoder_config_on_meta

GB = 1e9
ASSUMPTIONS = (
    "GB = 1e9 bytes, per process, no allocator overhead",
    "frozen decoder weights in decoder.dtype; encoder/RVQ/projector/heads and LoRA in fp32; RVQ codebooks + EMA sums "
    "fp32",
    "each trainable parameter: + fp32 gradient (4 B) + AdamW moments (8 B)",
    "activations per transformer layer 34*s*b*h + 5*a*s^2*b bytes (2*s*b*h with gradient checkpointing), "
    "stored only when something at or before the layer trains; fp32 LM logits and their gradient; RVQ N x K distances",
    "MEG window data.max_window s; decoder sequence = 32 prompt + MEG tokens + 2 + decoder.max_new_tokens; "
    "batch train.batch_size (training), eval.batch_size x beams (inference)",
    "distillation phases: the teacher's own weights and activations are not included",
)
PROMPT_TOKENS = 32
DECODER_LOSSES = ("lm", "kd")


def build_on_meta(cfg: Config):
    """(Brain2Text on the meta device, HF decoder config, number of tokenizer ids)."""
    hf_cfg = decoder_config_on_meta(cfg.decoder)
    n_tokens = _n_tokens(cfg, hf_cfg)
    decoder, _ = build_decoder_on_meta(cfg.decoder, n_added_tokens=n_tokens - hf_cfg.vocab_size)
    with torch.device("meta"):
        model = Brain2Text(cfg, decoder, None, n_tokens=n_tokens)
    return model, decoder.config, n_tokens


def _n_tokens(cfg: Config, hf_cfg) -> int:
    path = Path(cfg.decoder.model_name_or_path)
    if path.is_dir() and (path / "tokenizer_config.json").is_file():
        tok = load_tokenizer(path)
        add_meg_special_tokens(tok)
        return max(len(tok), hf_cfg.vocab_size)
    return hf_cfg.vocab_size + 4  # LLaMA-2: + <pad>, <meg_start>, <meg_end>, <meg>


def parameter_counts(model, cfg: Config) -> dict[str, int]:
    groups = {k: sum(p.numel() for p in v) for k, v in model.parameter_groups().items()}
    codebooks = cfg.rvq.n_codebooks * cfg.rvq.codebook_size * cfg.rvq.dim
    rvq = groups["rvq"] + (codebooks if cfg.rvq.ema else 0)  # EMA codebooks are buffers, still weights
    return {"encoder": groups["encoder"] + groups["subject"], "subject": groups["subject"], "rvq": rvq,
            "rvq_codebook_entries": codebooks, "projector": groups["projector"], "decoder": groups["decoder"],
            "lora": groups["lora"], "ctc_head": groups["ctc_head"], "word_head": groups["word_head"],
            "phoneme_head": groups["phoneme_head"], "total": sum(groups.values()) + (codebooks if cfg.rvq.ema else 0)}


def _layer_act(s: float, b: int, h: int, a: int, checkpointing: bool) -> float:
    return 2 * s * b * h if checkpointing else 34 * s * b * h + 5 * a * s * s * b


def _stage_lengths(cfg: Config) -> list[float]:
    n = cfg.data.max_window * cfg.data.sfreq / cfg.encoder.stem_stride
    out = [n]
    for f in cfg.encoder.stage_downsample:
        n = math.ceil(n / f)
        out.append(n)
    return out


def _encoder_activations(cfg: Config, b: int) -> float:
    e = cfg.encoder
    lengths = _stage_lengths(cfg)
    total = sum(_layer_act(s, b, e.d_model, e.n_heads, False) * n for s, n in zip(lengths, e.stage_layers))
    n_in = e.n_spatial if e.spatial_attention else e.n_chans
    samples = cfg.data.max_window * cfg.data.sfreq
    return total + 2 * b * samples * (n_in + e.stem_channels) * 4


def _decoder_tokens(cfg: Config) -> float:
    meg = math.ceil(cfg.data.max_window * cfg.data.sfreq / cfg.encoder.total_stride)
    return PROMPT_TOKENS + meg + 2 + cfg.decoder.max_new_tokens


def _weights_bytes(counts: dict[str, int], cfg: Config) -> float:
    dec_bytes = 2 if cfg.decoder.dtype in ("bfloat16", "float16") else 4
    if cfg.decoder.load_in_8bit:
        dec_bytes = 1
    if cfg.decoder.load_in_4bit:
        dec_bytes = 0.5
    meg_side = counts["total"] - counts["decoder"] - counts["lora"]
    ema = counts["rvq_codebook_entries"] * 4 if cfg.rvq.ema else 0
    return counts["decoder"] * dec_bytes + (meg_side + counts["lora"]) * 4 + ema


def phase_memory(model, cfg: Config, counts: dict[str, int], phase, hf_cfg) -> tuple[int, float]:
    groups = model.parameter_groups()
    trainable = sum(p.numel() for k in phase.trainable for p in groups[k])
    b = cfg.train.batch_size
    mem = _weights_bytes(counts, cfg) + 12 * trainable
    encoder_trains = any(k in phase.trainable for k in ("subject", "encoder"))
    if encoder_trains:
        mem += _encoder_activations(cfg, b)
    n_tok = b * _stage_lengths(cfg)[-1]
    if cfg.rvq.enabled and any(phase.losses.get(k, 0) > 0 for k in ("commit", "entropy", "lm")):
        per_level = n_tok * cfg.rvq.codebook_size * 4
        mem += per_level * (1 + (2 * cfg.rvq.n_codebooks if phase.losses.get("entropy", 0) > 0 else 0))
    if any(phase.losses.get(k, 0) > 0 for k in DECODER_LOSSES):
        s = _decoder_tokens(cfg)
        layer = _layer_act(s, b, hf_cfg.hidden_size, hf_cfg.num_attention_heads, cfg.decoder.gradient_checkpointing)
        mem += layer * hf_cfg.num_hidden_layers + 2 * b * s * model.ctc_head.out_features * 4
    return trainable, mem / GB


def inference_memory(model, cfg: Config, counts: dict[str, int], hf_cfg) -> float:
    beams = cfg.decoding.num_beams if cfg.decoding.strategy in ("beam", "joint", "rescore") else 1
    b = cfg.eval.batch_size
    s = _decoder_tokens(cfg)
    kv_heads = getattr(hf_cfg, "num_key_value_heads", None) or hf_cfg.num_attention_heads
    head_dim = hf_cfg.hidden_size // hf_cfg.num_attention_heads
    kv = 2 * hf_cfg.num_hidden_layers * s * kv_heads * head_dim * 2 * b * beams
    e = cfg.encoder
    enc_peak = max(_layer_act(s_, b, e.d_model, e.n_heads, False) for s_ in _stage_lengths(cfg))
    logits = b * beams * model.ctc_head.out_features * 4 * 2
    return (_weights_bytes(counts, cfg) + kv + enc_peak + logits) / GB


def model_info(cfg: Config) -> dict:
    """Everything ``brain2text info`` prints, as a JSON-able dict."""
    model, hf_cfg, n_tokens = build_on_meta(cfg)
    counts = parameter_counts(model, cfg)
    trainable, memory = {}, {"inference": round(inference_memory(model, cfg, counts, hf_cfg), 3)}
    for mode in ("multi_phase", "full", "distill"):
        for phase in getattr(cfg.train, mode):
            key = f"{mode}/{phase.name}"
            trainable[key], gb = phase_memory(model, cfg, counts, phase, hf_cfg)
            memory[key] = round(gb, 3)
    return {"params": counts, "trainable": trainable, "memory_gb": memory,
            "decoder": {"path": cfg.decoder.model_name_or_path, "hidden_size": hf_cfg.hidden_size,
                        "n_layers": hf_cfg.num_hidden_layers, "n_tokens": n_tokens, "dtype": cfg.decoder.dtype},
            "meg_tokens_per_second": cfg.data.sfreq / cfg.encoder.total_stride,
            "assumptions": list(ASSUMPTIONS)}
