"""The configuration sections of the data and the model: data, encoder, RVQ, projector, decoder, decoding.

Each is a dataclass whose fields carry their help text (``brain2text config --help-keys``) and whose
``__post_init__`` checks values and cross-field rules (peft's ``LoraConfig`` style). Defaults are the
seed's full-size system (MEG encoder 12 x 768 x 12 heads, RVQ 8 x 8192 x 256, LLaMA-2 7B + LoRA r=8).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING):
    """A dataclass field carrying its help text (shown by ``brain2text config --help-keys``)."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


def check_positive(section: str, obj: Any, names: tuple[str, ...]) -> None:
    """Every size, count or rate in ``names`` must be > 0: a zero or negative one cannot build a model (and a
    saved model whose config holds one is damaged), so it is refused here with its key, not deep in torch."""
    for name in names:
        value = getattr(obj, name)
        values = value if isinstance(value, list) else [value]
        if any(not v > 0 for v in values):
            raise ConfigError(f"{section}.{name} must be > 0, got {value}")


def check_fraction(section: str, obj: Any, names: tuple[str, ...]) -> None:
    """Every dropout-like share in ``names`` must be in [0, 1)."""
    for name in names:
        value = getattr(obj, name)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{section}.{name} must be in [0, 1), got {value}")


# ----------------------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    bids_root: str = _help("Root of the BIDS dataset (MEG-MASC download or `brain2text synth` output). "
                           "Edit this.", "data/meg_masc")
    cache_dir: str = _help("Where preprocessed examples are cached (memory-mapped arrays + JSON manifest).",
                           ".cache/brain2text")
    subjects: list[str] = _help("Subjects to use (BIDS labels without 'sub-'); empty = all.", factory=list)
    stories: list[str] = _help("Stories to use; empty = all found in the events.", factory=list)
    include_word_lists: bool = _help("Keep MEG-MASC's word_list blocks as (labelled) examples; they are not "
                                     "sentences.", False)
    # --- splits (decided on text, identical for every subject)
    split: str = _help("'sentence' (stable hash of the normalised sentence) or 'story' (held-out stories).", "sentence")
    val_fraction: float = _help("Share of sentences in validation (split=sentence).", 0.1)
    test_fraction: float = _help("Share of sentences in test (split=sentence).", 0.1)
    split_salt: str = _help("Salt of the sentence hash; change it to draw another split.", "brain2text")
    val_stories: list[str] = _help("Validation stories (split=story).", factory=lambda: ["easy_money"])
    test_stories: list[str] = _help("Held-out test stories (split=story).", factory=lambda: ["lw1"])
    # --- preprocessing (pure functions in data/preprocessing.py)
    l_freq: float = _help("High-pass edge in Hz. 0.5 Hz removes slow drift but keeps evoked responses.", 0.5)
    h_freq: float = _help("Low-pass edge in Hz. Evoked responses to speech live below ~30 Hz; 40 Hz keeps some margin "
                          "under Nyquist at 100 Hz.", 40.0)
    notch_freqs: list[float] = _help("Line-noise frequencies to notch (MEG-MASC was recorded on 50 Hz mains). Empty = "
                                     "none.", factory=lambda: [50.0])
    sfreq: float = _help("Target sampling rate after resampling (Hz). 100 Hz is brainmagick's choice.", 100.0)
    clamp: float = _help("After robust scaling, clamp values to +-clamp (Defossez et al. 2023 use 20).", 20.0)
    meg_delay: float = _help("Shift the MEG window this many seconds after the stimulus (brain responses lag "
                             "~150 ms).", 0.15)
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
        check_positive("data", self, ("sfreq", "notch_freqs"))
        if self.h_freq is not None and self.h_freq >= self.sfreq / 2:
            raise ConfigError(f"data.h_freq ({self.h_freq} Hz) must be below Nyquist of data.sfreq ({self.sfreq / 2} "
                              "Hz)")
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
        if not self.channel_types:
            raise ConfigError("data.channel_types must name at least one MNE channel type (e.g. [mag, grad])")


# ------------------------------------------------------------------------------------- encoder
@dataclass
class EncoderConfig:
    n_chans: int = _help("Input channels when spatial attention is off (MEG-MASC: 208).", 208)
    d_model: int = _help("Transformer width.", 768)
    n_heads: int = _help("Attention heads.", 12)
    stage_layers: list[int] = _help("Transformer layers per hierarchical stage (sum = total layers).",
                                    factory=lambda: [4, 4, 4])
    stage_downsample: list[int] = _help("Time downsampling before each stage after the first (len = stages - 1).",
                                        factory=lambda: [2, 2])
    stem_channels: int = _help("Channels of the convolutional stem.", 320)
    stem_kernel: int = _help("Kernel size (samples) of the stem convolutions.", 7)
    stem_stride: int = _help("Total time stride of the stem. 100 Hz / 2 stem / 2 / 2 = 12.5 tokens/s into the RVQ.", 2)
    ffn_mult: int = _help("Feed-forward width multiplier.", 4)
    dropout: float = _help("Dropout inside the encoder.", 0.1)
    attention_window: int = _help("Local self-attention: each token sees tokens at most this many positions away in "
                                  "the first stage (divided by each later stage's downsampling, at least 1); 0 = "
                                  "global attention.", 0)
    subject_layer: bool = _help("Per-subject linear layer on the input (Defossez et al. 2023).", True)
    n_subjects: int = _help("Subject slots of the subject layer (MEG-MASC: 27).", 27)
    spatial_attention: bool = _help("Spatial attention over sensor positions: any montage / channel count.", True)
    n_spatial: int = _help("Output channels of the spatial attention layer.", 270)
    spatial_fourier: int = _help("Fourier frequencies per axis for sensor-position embedding.", 32)
    mae_mask_ratio: float = _help("Phase 1: share of time masked for masked autoencoding.", 0.5)
    mae_span: int = _help("Phase 1: length (in input samples) of each masked span.", 20)
    word_window: float = _help("'word' loss: seconds of encoder tokens after each word onset pooled into its MEG "
                               "embedding.", 0.5)
    word_temperature: float = _help("'word' loss: temperature of the MEG/text word contrastive loss.", 0.1)
    phoneme_head: bool = _help("A CTC head over the 39 ARPAbet phonemes on the first stage's tokens (before any "
                               "token merge: the input rate over the stem stride, 25 tokens/s in the demo), for the "
                               "'phoneme' losses and the 'lexicon' decoding strategy.", False)

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
        check_positive("encoder", self, ("n_chans", "stage_downsample", "stem_channels", "stem_kernel", "stem_stride",
                                         "ffn_mult", "n_subjects", "n_spatial", "spatial_fourier", "mae_span",
                                         "word_window", "word_temperature"))
        check_fraction("encoder", self, ("dropout",))

    @property
    def n_layers(self) -> int:
        return sum(self.stage_layers)

    @property
    def fine_stride(self) -> int:
        """Input samples per token of the first stage (the phoneme head's rate)."""
        return self.stem_stride

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
    dead_code_threshold: float = _help("Restart a code whose EMA usage (expected uses per step) falls below this.",
                                       0.01)
    usage_decay: float = _help("EMA decay of per-code usage used to find dead codes.", 0.99)
    enabled: bool = _help("Quantize (True) or pass encoder features through continuously (ablation).", True)

    def __post_init__(self):
        if self.init not in ("kmeans", "data", "random"):
            raise ConfigError(f"rvq.init must be kmeans, data or random, got {self.init!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError("rvq.ema_decay must be in (0, 1)")
        if not 0.0 < self.usage_decay < 1.0:
            raise ConfigError("rvq.usage_decay must be in (0, 1)")
        check_positive("rvq", self, ("n_codebooks", "codebook_size", "dim", "kmeans_iters"))
        if self.commitment_weight < 0 or self.dead_code_threshold < 0:
            raise ConfigError("rvq.commitment_weight and rvq.dead_code_threshold must be >= 0")


# ----------------------------------------------------------------------------------- projector
@dataclass
class ProjectorConfig:
    type: str = _help("'mlp2x_gelu' (LLaVA-1.5) or 'linear'.", "mlp2x_gelu")
    dropout: float = _help("Dropout on projected MEG tokens (regularises the decoder's use of MEG).", 0.1)

    def __post_init__(self):
        if self.type not in ("mlp2x_gelu", "linear"):
            raise ConfigError(f"projector.type must be 'mlp2x_gelu' or 'linear', got {self.type!r}")
        check_fraction("projector", self, ("dropout",))


# ------------------------------------------------------------------------------------- decoder
@dataclass
class DecoderConfig:
    model_name_or_path: str = _help("Local directory or hub id of a causal LM (from_pretrained), or a .gguf file "
                                    "(de-quantized to dtype on load; `brain2text prepare-lm` converts SmolLM2-135M "
                                    "once into a folder).", "meta-llama/Llama-2-7b-hf")
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
    ctc_units: str = _help("Classes of the CTC head: 'all' (every tokenizer id) or 'training_text' (the ids that "
                           "occur in the training split's sentences: a pretrained LM's 49k-id vocabulary shrinks to "
                           "a few thousand, and the CTC head and searches with it).", "all")
    pretrain_tokenizer: str = _help("Tokenizer that `brain2text pretrain-lm` trains with the default decoder: 'bpe' "
                                    "(byte-level BPE) or 'word' (one id per training word).", "bpe")

    def __post_init__(self):
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"decoder.dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.load_in_8bit and self.load_in_4bit:
            raise ConfigError("decoder.load_in_8bit and decoder.load_in_4bit are exclusive")
        if self.pretrain_tokenizer not in ("bpe", "word"):
            raise ConfigError(f"decoder.pretrain_tokenizer must be 'bpe' or 'word', got {self.pretrain_tokenizer!r}")
        check_positive("decoder", self, ("lora_r", "lora_alpha", "max_new_tokens"))
        check_fraction("decoder", self, ("lora_dropout", "word_dropout"))
        if not self.lora_target_modules:
            raise ConfigError("decoder.lora_target_modules must name at least one module (e.g. [q_proj, v_proj])")
        if self.ctc_units not in ("all", "training_text"):
            raise ConfigError(f"decoder.ctc_units must be 'all' or 'training_text', got {self.ctc_units!r}")


# ------------------------------------------------------------------------------------ decoding
def decoding_strategies() -> dict:
    """The registered decoding strategies (:mod:`brain2text.decoding.strategies`), name -> Strategy."""
    from ..decoding.strategies import STRATEGIES  # noqa: PLC0415 -- keeps torch off config's import (CLI start-up)

    return STRATEGIES


class StrategyNames:
    """The registered strategies' names for argparse's ``choices``, read from the registry only when argparse
    looks (a ``--strategy`` value to check, ``--help``): a command's other usage errors come back without
    importing torch and the decoding stack (1.4 s)."""

    def __contains__(self, name) -> bool:
        return name in decoding_strategies()

    def __iter__(self):
        return iter(decoding_strategies())

    def __len__(self) -> int:
        return len(decoding_strategies())


@dataclass
class DecodingConfig:
    strategy: str = _help("A registered decoding strategy: 'greedy', 'beam' (LLM only), 'ctc' (encoder only), 'joint' "
                          "(LLM beam + CTC prefix score), 'rescore' (the CTC and LLM n-best lists rescored with both), "
                          "'fusion' (CTC prefix beam + LLM shallow fusion) or 'lexicon' (phoneme CTC + pronunciation "
                          "lexicon + LLM and word CTC word scores); see decoding/strategies.py.", "beam")
    num_beams: int = _help("Beam width of every search (beam, joint, rescore, ctc, fusion, lexicon).", 4)
    ctc_weight: float = _help("Joint and rescore decoding: weight of the CTC score (0 = LLM beam, 1 = CTC prefix "
                              "beam); lexicon decoding: weight of the word CTC head's prefix score.", 0.5)
    length_penalty: float = _help("Length penalty for beam search (the score is divided by length ** "
                                  "length_penalty).", 1.0)
    lm_weight: float = _help("Fusion and lexicon decoding: weight of the LLM score added to the CTC score (0 = "
                             "the same search without the LLM).", 0.3)
    length_bonus: float = _help("Fusion decoding: added to the score per emitted token; lexicon decoding: per word "
                                "(insertion bonus; negative = penalty).", 0.0)
    repetition_penalty: float = _help("Repetition penalty for LLM decoding (1 = none).", 1.0)

    def __post_init__(self):
        names = tuple(decoding_strategies())
        if self.strategy not in names:
            raise ConfigError(f"decoding.strategy must be one of {', '.join(names)}, got {self.strategy!r}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ConfigError("decoding.ctc_weight must be in [0, 1]")
        if self.lm_weight < 0:
            raise ConfigError("decoding.lm_weight must be >= 0")
        if self.num_beams < 1:
            raise ConfigError("decoding.num_beams must be >= 1")
        if not self.repetition_penalty > 0:
            raise ConfigError(f"decoding.repetition_penalty must be > 0, got {self.repetition_penalty}")
