"""``preprocessing.json``, the record of how a model's training data were preprocessed, checked against its schema.

Inference preprocesses a raw recording exactly as the training data were, from this record: the data
settings (filters, rate, clamp, delay), the robust scalers (median and IQR per channel, keyed by subject and
montage), the channel names and the subject slots. A bad record would decode garbage without a word (IQRs of
0, NaN medians, a scaler for another channel set), so every field is checked and a bad one is a one-line
:class:`ModelError` naming the field (:func:`check_preprocessing`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..config import Config, DataConfig, section_from_dict
from ..data.cache import scaler_key
from ..errors import ModelError


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _strings(record: dict, key: str, source: Path) -> list[str]:
    values = record.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ModelError(f"'{key}' must be a list of non-empty strings", source)
    if len(set(values)) != len(values):
        dup = next(v for v in values if values.count(v) > 1)
        raise ModelError(f"'{key}' names {dup!r} twice", source)
    return values


def _check_scaler(key: str, scaler: Any, source: Path) -> int:
    """One robust scaler: finite medians and positive finite IQRs, one of each per channel. Returns the count."""
    where = f"scalers[{key!r}]"
    if not isinstance(scaler, dict):
        raise ModelError(f"{where} must be an object with 'median' and 'iqr'", source)
    for name in ("median", "iqr"):
        values = scaler.get(name)
        if not isinstance(values, list) or not values:
            raise ModelError(f"{where}.{name} must be a non-empty list of numbers, one per channel", source)
        bad = [i for i, v in enumerate(values) if not _number(v) or (name == "iqr" and not v > 0)]
        if bad:
            rule = "positive finite numbers (a flat channel is stored as 1)" if name == "iqr" else "finite numbers"
            raise ModelError(f"{where}.{name}: {len(bad)} of {len(values)} entries are not {rule} (first: "
                             f"[{bad[0]}] = {values[bad[0]]!r})", source)
    if len(scaler["median"]) != len(scaler["iqr"]):
        raise ModelError(f"{where} has {len(scaler['median'])} medians but {len(scaler['iqr'])} IQRs", source)
    return len(scaler["iqr"])


def _check_scalers(record: dict, ch_names: list[str], subjects: list[str], cfg: Config, source: Path) -> None:
    scalers = record.get("scalers", {})
    if not isinstance(scalers, dict):
        raise ModelError(f"'scalers' must be an object (subject|montage -> scaler), got {type(scalers).__name__}",
                         source)
    own = scaler_key("", ch_names).partition("|")[2] if ch_names else None  # the montage part of a key
    for key, scaler in scalers.items():
        n = _check_scaler(key, scaler, source)
        subject, _, montage = key.partition("|")
        if not montage or (subjects and subject not in subjects):
            raise ModelError(f"scalers[{key!r}]: keys are 'subject|montage' with a subject of 'subjects'", source)
        if montage == own and n != len(ch_names):
            raise ModelError(f"scalers[{key!r}] has {n} channels but 'ch_names' (its montage) has {len(ch_names)}",
                             source)
        if not cfg.encoder.spatial_attention and n != cfg.encoder.n_chans:
            raise ModelError(f"scalers[{key!r}] has {n} channels but the model takes encoder.n_chans="
                             f"{cfg.encoder.n_chans}", source)
    if own is not None and scalers and not any(k.partition("|")[2] == own for k in scalers):
        raise ModelError(f"'ch_names' ({len(ch_names)} channels) match none of the scalers' montages: the record is "
                         "for another channel set", source)


def check_preprocessing(record: Any, cfg: Config, source: Path) -> dict:
    """A preprocessing record (``preprocessing.json``) for the model of ``cfg``; a bad field is a ModelError (or
    ConfigError, for ``data``) naming ``source`` and the field. Returns ``record``; unknown keys are left alone.

    ``data``: valid data settings (strictly, as a config's); ``sfreq``: positive and ``data.sfreq``;
    ``subjects``/``ch_names``: distinct names, no more subjects than the subject layer has slots, as many
    channels as ``encoder.n_chans`` without spatial attention; ``scalers``: see :func:`_check_scalers`.
    """
    if not isinstance(record, dict):
        raise ModelError(f"expected a JSON object, got {type(record).__name__}", source)
    data = data_settings(record, cfg.data, source)
    if "sfreq" in record:
        sfreq = record["sfreq"]
        if not _number(sfreq) or not sfreq > 0:
            raise ModelError(f"'sfreq' must be a positive number, got {sfreq!r}", source)
        if abs(sfreq - data.sfreq) > 1e-6:
            raise ModelError(f"'sfreq' ({sfreq} Hz) disagrees with data.sfreq ({data.sfreq} Hz)", source)
    subjects, ch_names = _strings(record, "subjects", source), _strings(record, "ch_names", source)
    if cfg.encoder.subject_layer and len(subjects) > cfg.encoder.n_subjects:
        raise ModelError(f"'subjects' lists {len(subjects)} subjects but the subject layer has encoder.n_subjects="
                         f"{cfg.encoder.n_subjects} slots", source)
    if ch_names and not cfg.encoder.spatial_attention and len(ch_names) != cfg.encoder.n_chans:
        raise ModelError(f"'ch_names' lists {len(ch_names)} channels but the model takes encoder.n_chans="
                         f"{cfg.encoder.n_chans} (no spatial attention)", source)
    _check_scalers(record, ch_names, subjects, cfg, source)
    if not isinstance(record.get("synthetic", False), bool):
        raise ModelError(f"'synthetic' must be true or false, got {record['synthetic']!r}", source)
    return record


def data_settings(record: dict, fallback: DataConfig, source: Path) -> DataConfig:
    """The record's ``data`` settings (what the model was trained on), strictly; ``fallback`` without any."""
    if "data" not in record:
        return fallback
    return section_from_dict(DataConfig, record["data"], "data", str(source))
