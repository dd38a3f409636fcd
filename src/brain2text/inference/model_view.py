"""What inference and evaluation need to know about a loaded model, in one place.

A trained model directory holds the full :class:`~brain2text.config.Config` and a preprocessing
record (``preprocessing.json``, written by training: ``data`` settings, ``sfreq``, ``subjects``,
``scalers``, ``ch_names``, ``synthetic``). :class:`ModelView` reads both, preferring the record's
data settings (they are what the model was trained on). The record is checked
(:func:`~brain2text.models.preprocessing_record.check_preprocessing`): a bad one is an error, never ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import Config, DataConfig, DecodingConfig, config_from_dict
from ..constants import PREPROCESSING_FILE
from ..errors import ModelError
from ..models.preprocessing_record import check_preprocessing, data_settings


@dataclass
class ModelView:
    model_path: Path
    config: Config
    data: DataConfig
    decoding: DecodingConfig
    spatial_attention: bool
    n_chans: int
    ch_names: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    scalers: dict = field(default_factory=dict)
    synthetic: bool = False
    device: torch.device = torch.device("cpu")


def model_config(model) -> Config:
    for name in ("cfg", "config"):
        value = getattr(model, name, None)
        if isinstance(value, Config):
            return value
    raise ModelError("the loaded model carries no brain2text Config (expected model.cfg)")


def view_of(model, model_path: str | os.PathLike) -> ModelView:
    """Collect the model's config and preprocessing record (``model.preprocessing``)."""
    cfg = model_config(model)
    record = getattr(model, "preprocessing", None) or {}
    source = Path(model_path) / PREPROCESSING_FILE
    check_preprocessing(record, cfg, source)  # a bad record is an error naming its field, never silently ignored
    data = data_settings(record, cfg.data, source)
    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        device = torch.device("cpu")
    return ModelView(model_path=Path(model_path), config=cfg, data=data, decoding=cfg.decoding,
                     spatial_attention=bool(cfg.encoder.spatial_attention), n_chans=int(cfg.encoder.n_chans),
                     ch_names=list(record.get("ch_names") or []), subjects=list(record.get("subjects") or []),
                     scalers=dict(record.get("scalers") or {}), synthetic=bool(record.get("synthetic", False)),
                     device=device)


def config_with(cfg: Config, overrides: list[tuple[str, object]]) -> Config:
    """``cfg`` with dotted ``(key, value)`` overrides applied and validated again."""
    tree = cfg.to_dict()
    for key, value in overrides:
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return config_from_dict(tree, "<model config + overrides>")
