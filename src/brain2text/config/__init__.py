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

from ..errors import ConfigError
from ..registry import LOSS_NAMES, TRAINABLE_NAMES
from .loading import config_from_dict, field_help, load_config, parse_overrides, section_from_dict
from .sections import (
                       DataConfig,
                       DecoderConfig,
                       DecodingConfig,
                       EncoderConfig,
                       ProjectorConfig,
                       RVQConfig,
                       StrategyNames,
                       decoding_strategies,
)
from .training import Config, EvalConfig, PhaseConfig, TrainConfig

__all__ = ["Config", "ConfigError", "DataConfig", "DecoderConfig", "DecodingConfig", "EncoderConfig", "EvalConfig",
           "LOSS_NAMES", "PhaseConfig", "ProjectorConfig", "RVQConfig", "StrategyNames", "TRAINABLE_NAMES",
           "TrainConfig", "config_from_dict", "decoding_strategies", "field_help", "load_config", "parse_overrides",
           "section_from_dict"]
