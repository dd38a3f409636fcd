"""Validation of a saved model directory: every file in it is input, checked before anything is built.

A model directory is what users download and share, so it gets the validation a recording gets.
:func:`validate_model_dir` is the one place that reads it; :func:`~brain2text.models.serialization.load_model`
(inference, evaluation, the distillation teacher) and ``brain2text check-model`` call it. It checks, in order:

* the files: a symlink resolving outside the directory is refused (a shared model must not read arbitrary
  files), and so is any pickle-capable file (``*.bin``, ``*.pt``, ...); unknown files (a ``README.md`` model
  card, evaluation results) are listed and otherwise ignored;
* ``brain2text_config.json``: its ``format``, ``version``, ``decoder_base`` and ``n_tokens``, and its
  ``config`` through the same strict validation as a YAML config (unknown keys, wrong types, non-positive
  sizes); top-level keys it does not know are ignored (later versions may add some);
* the base decoder named by ``decoder_base`` (present, and its shape from its ``config.json``);
* ``tokenizer/``: loads, and its size is the ``n_tokens`` the model was trained with;
* ``brain2text.safetensors``: every tensor the config describes is there, nothing else, with the shape and
  dtype of the MEG side built from the config on the meta device (no weights allocated), and finite;
* ``adapter/``: peft's ``adapter_config.json`` agrees with the config (``r``, ``lora_alpha``,
  ``target_modules``) and its tensors have the shapes LoRA on this base needs (an adapter trained on another
  base has others); ``decoder.safetensors`` (a fully trained decoder), when present, fits the base;
* ``preprocessing.json`` (optional): :func:`check_preprocessing`;
* ``training_info.json`` (optional): a JSON object.

A bad file is a :class:`~brain2text.errors.ModelError` (or ``ConfigError``) naming the file and the field;
nothing is ever written. The :class:`ModelDirReport` says what the directory holds and carries what was
read (config, tensors, tokenizer), so loading does not read the files twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig

from ..config import Config, config_from_dict
from ..constants import ADAPTER_DIR, MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, PREPROCESSING_FILE, TOKENIZER_DIR
from ..data.tokenizer import load_tokenizer
from ..errors import ModelError
from ..registry import DECODER_WEIGHTS_FILE, PARTS
from .decoder import build_decoder_on_meta, check_decoder_path, offline
from .files import read_json, read_safetensors, safetensors_header
from .gguf import is_gguf
from .meg_side import meg_modules
from .preprocessing_record import check_preprocessing
from .units import CTCUnits

FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAINING_INFO_FILE = "training_info.json"
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # what a LoRA adapter may be stored in


@dataclass
class ModelDirReport:
    """What a valid model directory holds (:meth:`summary` for people), and what was read from it."""

    path: Path
    format_version: int
    config: Config  # validated; decoder.model_name_or_path is the resolved decoder_base
    decoder_base: str
    base_present: bool
    n_tokens: int
    params: dict[str, int]  # values stored per part (the decoder's only when its base is present)
    adapter: dict[str, Any]  # base_model_name_or_path, r, lora_alpha, target_modules
    preprocessing: dict[str, Any]  # the validated record ({} when the directory has none)
    training_info: dict[str, Any] | None
    files: list[dict[str, Any]]  # {"path": relative, "bytes": size}
    decoder_weights: Path | None = None  # decoder.safetensors when a phase trained the whole decoder
    state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # brain2text.safetensors
    tokenizer: Any = field(default=None, repr=False)
    units: CTCUnits | None = field(default=None, repr=False)  # the CTC head's classes (brain2text_config.json)
    lexicon_words: list[str] | None = None  # the lexicon decoder's words (brain2text_config.json)

    def summary(self) -> dict[str, Any]:
        """A JSON-able description (``brain2text check-model --json``)."""
        cfg, rec = self.config, self.preprocessing
        return {
            "path": str(self.path), "format_version": self.format_version,
            "decoder_base": self.decoder_base, "decoder_base_present": self.base_present,
            "config": {"encoder": f"{cfg.encoder.n_layers} layers x {cfg.encoder.d_model} ({cfg.encoder.n_heads} "
                                  f"heads), spatial attention {'on' if cfg.encoder.spatial_attention else 'off'}",
                       "rvq": f"{cfg.rvq.n_codebooks} x {cfg.rvq.codebook_size} x {cfg.rvq.dim}"
                              + ("" if cfg.rvq.enabled else " (disabled)"),
                       "projector": cfg.projector.type, "decoder_dtype": cfg.decoder.dtype,
                       "decoding": cfg.decoding.strategy},
            "n_tokens": self.n_tokens, "params": self.params, "adapter": self.adapter,
            "decoder_trained": self.decoder_weights is not None,
            "preprocessing": {"sfreq": rec.get("sfreq"), "n_channels": len(rec.get("ch_names") or []),
                              "subjects": list(rec.get("subjects") or []), "scalers": sorted(rec.get("scalers") or {}),
                              "synthetic": bool(rec.get("synthetic", False))} if rec else None,
            "training_info": self.training_info, "files": self.files,
        }


# --------------------------------------------------------------------------------------- files
def _files(root: Path) -> list[dict[str, Any]]:
    """Every file under ``root`` (relative path, size); symlinks out of ``root`` and pickles are refused."""
    out, real = [], root.resolve()
    for folder, dirs, names in os.walk(root):
        for name in sorted(dirs + names):
            p = Path(folder) / name
            if p.is_symlink() and not p.resolve().is_relative_to(real):
                raise ModelError(f"symlink to {os.readlink(p)!r}, outside the model directory: a model directory "
                                 "must hold its own files (copy the file in; name a base decoder by its real path in "
                                 f"'decoder_base' of {MODEL_CONFIG_FILE})", p)
            if p.suffix.lower() in PICKLE_SUFFIXES:
                raise ModelError("refusing to load a pickle-capable file (only safetensors and JSON are loaded)", p)
            if name in names and p.is_file():
                out.append({"path": str(p.relative_to(root)), "bytes": p.stat().st_size})
        dirs.sort()
    return sorted(out, key=lambda f: f["path"])


# ------------------------------------------------------------------------- brain2text_config.json
def _read_meta(root: Path) -> tuple[dict, Config]:
    path = root / MODEL_CONFIG_FILE
    meta = read_json(path)
    if meta.get("format") != "brain2text" or "config" not in meta or "decoder_base" not in meta:
        raise ModelError("not a brain2text model config (needs format, config and decoder_base)", path)
    version = meta.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelError(f"'version' must be a positive integer, got {version!r}", path)
    if version > FORMAT_VERSION:
        raise ModelError(f"format version {version} was written by a newer brain2text (this one reads up to "
                         f"{FORMAT_VERSION}): upgrade brain2text", path)
    base = meta["decoder_base"]
    if not isinstance(base, str) or not base.strip():
        raise ModelError(f"'decoder_base' must name a directory or hub id, got {base!r}", path)
    n_tokens = meta.get("n_tokens")
    if n_tokens is not None and (isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens <= 0):
        raise ModelError(f"'n_tokens' must be a positive integer, got {n_tokens!r}", path)
    if not isinstance(meta["config"], dict):
        raise ModelError(f"'config' must be a mapping, got {type(meta['config']).__name__}", path)
    return meta, config_from_dict(meta["config"], source=str(path))  # ConfigError names the file and the key


def _resolve_base(root: Path, base: str) -> str:
    """``decoder_base`` as loading uses it: a relative one is tried against the model directory first."""
    if not Path(base).is_absolute() and (root / base).exists():  # a base (folder or .gguf) beside/inside the model
        return str((root / base).resolve())
    return base


def _base_config(base: str, root: Path, required: bool):
    """The base decoder's HF config (its shape), or None when it is absent and not ``required``."""
    try:
        check_decoder_path(base)
        if is_gguf(base):
            return AutoConfig.from_pretrained(str(Path(base).parent), gguf_file=Path(base).name)
        return AutoConfig.from_pretrained(base, local_files_only=offline() or Path(base).is_dir())
    except ModelError:
        problem = "is not there"
    except (OSError, ValueError, KeyError) as exc:
        problem = f"has no usable config.json ({' '.join(str(exc).split())[:120]})"
    if required:
        raise ModelError(f"the base decoder this model was trained on ({base!r}) {problem}; put it back there or "
                         f"edit 'decoder_base' in {MODEL_CONFIG_FILE}", root / MODEL_CONFIG_FILE)
    return None


# ------------------------------------------------------------------------------------- tokenizer
def _check_tokenizer(root: Path, meta: dict):
    tokenizer = load_tokenizer(root / TOKENIZER_DIR)
    saved = meta.get("n_tokens")
    if saved is not None and saved != len(tokenizer):
        raise ModelError(f"has {len(tokenizer)} tokens but the model was trained with {saved} ('n_tokens' in "
                         f"{MODEL_CONFIG_FILE}): this is not the model's tokenizer", root / TOKENIZER_DIR)
    return tokenizer


def _check_units(root: Path, meta: dict, n_tokens: int) -> CTCUnits:
    """The CTC units: ``ctc_units`` (distinct token ids below the tokenizer's size) or, absent, every token."""
    value = meta.get("ctc_units")
    if value is not None and (not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                                      for i in value)):
        raise ModelError("'ctc_units' must be a list of token ids or null", root / MODEL_CONFIG_FILE)
    try:
        return CTCUnits.from_json(value, n_tokens)
    except ModelError as exc:
        raise ModelError(f"'ctc_units': {exc}", root / MODEL_CONFIG_FILE) from None


def _check_lexicon(root: Path, meta: dict, cfg: Config) -> list[str] | None:
    """``lexicon_words``: null, or (with ``encoder.phoneme_head``) a list of distinct single words."""
    value = meta.get("lexicon_words")
    if value is None:
        return None
    if not cfg.encoder.phoneme_head:
        raise ModelError("'lexicon_words' is set but encoder.phoneme_head is off", root / MODEL_CONFIG_FILE)
    if not isinstance(value, list) or not all(isinstance(w, str) and w and not any(c.isspace() for c in w)
                                              for w in value) or len(set(value)) != len(value):
        raise ModelError("'lexicon_words' must be a list of distinct words without spaces, or null",
                         root / MODEL_CONFIG_FILE)
    return value


# ------------------------------------------------------------------------------------- tensors
def _few(names: list[str], n: int = 3) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(repr(k) for k in names[:n]) + more


def compare_tensors(found: dict[str, tuple[tuple[int, ...], Any]], expected: dict[str, tuple[tuple[int, ...], Any]],
                    source: Path, describes: str) -> None:
    """``found`` name -> (shape, dtype) must be exactly ``expected`` (dtype: one, a tuple of those allowed, or
    None = not checked); the first difference is a ModelError naming ``source``, a few tensors and what
    ``describes`` the expectation."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        parts = ([f"missing {len(missing)} tensor(s) {_few(missing)}"] if missing else []) + \
                ([f"{len(extra)} unexpected tensor(s) {_few(extra)}"] if extra else [])
        raise ModelError(f"{'; '.join(parts)}: the weights do not fit {describes}", source)
    for name, (shape, dtype) in expected.items():
        if tuple(found[name][0]) != tuple(shape):
            raise ModelError(f"tensor '{name}' has shape {list(found[name][0])} but {describes} needs {list(shape)}",
                             source)
        allowed = dtype if isinstance(dtype, tuple) else (dtype,)
        if dtype is not None and found[name][1] not in allowed:
            raise ModelError(f"tensor '{name}' is {_dtype_name(found[name][1])} but {describes} needs "
                             f"{' or '.join(_dtype_name(d) for d in allowed)}", source)


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _storable(dtype: torch.dtype) -> tuple[torch.dtype, ...] | torch.dtype:
    """The dtypes a tensor of the module's ``dtype`` may be saved in: a float32 weight also in 16 bits (loading
    widens it exactly); float64 and integers are refused (not what any writer of this format saves)."""
    return FLOAT_DTYPES if dtype == torch.float32 else dtype


def _check_finite(tensors: dict[str, torch.Tensor], source: Path) -> None:
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelError(f"tensor '{name}' holds NaN or Inf values: the weights are damaged", source)


def _meg_expected(cfg: Config, n_classes: int, hidden: int, source: Path) -> dict:
    """name -> (shape, dtype) of every tensor of brain2text.safetensors, from the MEG side built on meta."""
    try:
        with torch.device("meta"):
            modules = meg_modules(cfg, n_classes, hidden)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"cannot build the model this config describes ({' '.join(str(exc).split())[:160]})",
                         source) from None
    return {f"{name}.{k}": (tuple(v.shape), _storable(v.dtype)) for name, m in modules.items()
            for k, v in m.state_dict().items()}


def _check_meg_weights(root: Path, cfg: Config, units: CTCUnits, hidden: int | None) -> dict[str, torch.Tensor]:
    path = root / MODEL_WEIGHTS_FILE
    state = read_safetensors(path)
    if hidden is None:  # no base to ask: the word head's width is the decoder's
        head = state.get("word_head.weight")
        hidden = head.shape[0] if head is not None and head.ndim == 2 else 1
    expected = _meg_expected(cfg, units.n_classes, hidden, root / MODEL_CONFIG_FILE)
    ctc = state.get("ctc_head.weight")
    if ctc is not None and ctc.ndim == 2 and "ctc_head.weight" in expected and \
            ctc.shape[0] != expected["ctc_head.weight"][0][0]:
        what = f"the tokenizer has {units.n_tokens}" if units.identity else f"'ctc_units' lists {len(units)}"
        raise ModelError(f"the CTC head predicts {ctc.shape[0] - 1} units (+ blank) but {what}: the tokenizer is "
                         "not the one this model was trained with", root / TOKENIZER_DIR)
    compare_tensors({k: (tuple(v.shape), v.dtype) for k, v in state.items()}, expected, path,
                    f"the model that {MODEL_CONFIG_FILE} describes")
    _check_finite(state, path)
    return state


def _decoder_on_meta(cfg: Config, hf_cfg, n_tokens: int, root: Path):
    """The LoRA-wrapped base decoder on the meta device (structure and shapes, no weights)."""
    try:
        model, _ = build_decoder_on_meta(cfg.decoder, n_added_tokens=max(0, n_tokens - hf_cfg.vocab_size),
                                         hf_cfg=hf_cfg)
    except ValueError as exc:
        raise ModelError(f"decoder.lora_target_modules {cfg.decoder.lora_target_modules} do not fit the base decoder "
                         f"({' '.join(str(exc).split())[:160]})", root / MODEL_CONFIG_FILE) from None
    except (KeyError, RuntimeError, TypeError) as exc:
        raise ModelError(f"cannot build the base decoder from its config ({' '.join(str(exc).split())[:160]})",
                         cfg.decoder.model_name_or_path) from None
    return model


# --------------------------------------------------------------------------------------- adapter
def _adapter_settings(path: Path, cfg: Config) -> dict[str, Any]:
    """peft's adapter_config.json, which must describe the LoRA of the model's config."""
    acfg = read_json(path, missing="missing LoRA adapter config")
    dec = cfg.decoder
    if acfg.get("peft_type") != "LORA":
        raise ModelError(f"'peft_type' is {acfg.get('peft_type')!r}: brain2text models carry a LORA adapter", path)
    targets = acfg.get("target_modules")
    targets = [targets] if isinstance(targets, str) else targets
    if not isinstance(targets, list) or set(targets) != set(dec.lora_target_modules):
        raise ModelError(f"'target_modules' is {acfg.get('target_modules')!r} but {MODEL_CONFIG_FILE} has "
                         f"decoder.lora_target_modules={dec.lora_target_modules}", path)
    for key, ours, want in (("r", "lora_r", dec.lora_r), ("lora_alpha", "lora_alpha", dec.lora_alpha)):
        if isinstance(acfg.get(key), bool) or acfg.get(key) != want:
            raise ModelError(f"'{key}' is {acfg.get(key)!r} but {MODEL_CONFIG_FILE} has decoder.{ours}={want}: the "
                             "adapter was not saved with this model", path)
    return {"base_model_name_or_path": acfg.get("base_model_name_or_path"), "r": dec.lora_r,
            "lora_alpha": dec.lora_alpha, "target_modules": sorted(targets)}


def _lora_expected(decoder) -> dict[str, tuple[tuple[int, ...], None]]:
    """name -> (shape, None) of the LoRA tensors peft saves for ``decoder`` (the adapter name left out)."""
    return {k.replace(".default.", "."): (tuple(v.shape), None) for k, v in decoder.state_dict().items()
            if "lora_" in k}


def _check_adapter(root: Path, cfg: Config, decoder, base: str) -> dict[str, Any]:
    """adapter/: settings as the config says, float tensors, finite, shaped for LoRA on this base."""
    folder = root / ADAPTER_DIR
    info = _adapter_settings(folder / ADAPTER_CONFIG, cfg)
    path = folder / ADAPTER_WEIGHTS
    tensors = read_safetensors(path)
    for name, t in tensors.items():
        if t.dtype not in FLOAT_DTYPES:
            raise ModelError(f"tensor '{name}' is {_dtype_name(t.dtype)}: LoRA weights are float32, bfloat16 or "
                             "float16", path)
    _check_finite(tensors, path)
    found = {k: (tuple(v.shape), None) for k, v in tensors.items()}
    if decoder is not None:
        named = info["base_model_name_or_path"]
        compare_tensors(found, _lora_expected(decoder), path, f"LoRA (r={cfg.decoder.lora_r}) on the base decoder "
                        f"at {base!r} (the adapter names {named!r} as its base: was it trained on another one?)")
    else:  # no base to compare with: the rank at least
        for name, (shape, _) in found.items():
            rank = shape[0] if ".lora_A." in name else shape[-1] if ".lora_B." in name else cfg.decoder.lora_r
            if len(shape) != 2 or rank != cfg.decoder.lora_r:
                raise ModelError(f"tensor '{name}' has shape {list(shape)}: not LoRA of rank {cfg.decoder.lora_r}",
                                 path)
    info["params"] = sum(t.numel() for t in tensors.values())
    return info


def _check_decoder_weights(root: Path, cfg: Config, decoder) -> Path | None:
    """decoder.safetensors (a phase trained the whole decoder): its header against the base, when present."""
    path = root / DECODER_WEIGHTS_FILE
    if not path.exists():
        return None
    header = safetensors_header(path)
    bad = [k for k, (_, dtype) in header.items() if dtype not in ("F32", "BF16", "F16")]
    if bad:
        raise ModelError(f"tensor '{bad[0]}' is {header[bad[0]][1]}: decoder weights are float32, bfloat16 or "
                         "float16", path)
    if decoder is not None and not (cfg.decoder.load_in_8bit or cfg.decoder.load_in_4bit):
        expected = {k: (tuple(v.shape), None) for k, v in decoder.named_parameters() if "lora_" not in k}
        compare_tensors(header, expected, path, "the base decoder")
    return path


# ------------------------------------------------------------------------------------ the whole
def _param_counts(state: dict[str, torch.Tensor], adapter: dict, decoder) -> dict[str, int]:
    """Values stored per part of :data:`~brain2text.registry.PARTS` (EMA codebooks counted with rvq)."""
    counts, claimed = {}, set()
    for part in PARTS.values():
        if part.saved_in == MODEL_WEIGHTS_FILE:
            keys = {k for k in state if k.startswith(part.module + ".")} - claimed
            claimed |= keys
            counts[part.name] = sum(state[k].numel() for k in keys)
    counts["lora"] = adapter["params"]
    if decoder is not None:
        counts["decoder"] = sum(p.numel() for n, p in decoder.named_parameters() if "lora_" not in n)
    return counts


def validate_model_dir(path: str | os.PathLike, require_base: bool = True) -> ModelDirReport:
    """Check every file of the model directory ``path`` (see module doc) and say what it holds.

    ``require_base=False`` (``check-model``) reports a missing base decoder instead of refusing; the checks
    that need its shape (LoRA tensors, the decoder's width) are then made against the directory alone.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelError("model directory not found", root)
    files = _files(root)
    meta, cfg = _read_meta(root)
    base = _resolve_base(root, meta["decoder_base"])
    cfg.decoder.model_name_or_path = base
    hf_cfg = _base_config(base, root, require_base)
    tokenizer = _check_tokenizer(root, meta)
    units = _check_units(root, meta, len(tokenizer))
    decoder = _decoder_on_meta(cfg, hf_cfg, len(tokenizer), root) if hf_cfg is not None else None
    hidden = decoder.get_input_embeddings().weight.shape[1] if decoder is not None else None
    state = _check_meg_weights(root, cfg, units, hidden)
    adapter = _check_adapter(root, cfg, decoder, base)
    decoder_weights = _check_decoder_weights(root, cfg, decoder)
    record = {}
    if (root / PREPROCESSING_FILE).exists():
        record = check_preprocessing(read_json(root / PREPROCESSING_FILE), cfg, root / PREPROCESSING_FILE)
    info = read_json(root / TRAINING_INFO_FILE) if (root / TRAINING_INFO_FILE).exists() else None
    return ModelDirReport(root, meta.get("version", FORMAT_VERSION), cfg, base, hf_cfg is not None, len(tokenizer),
                          _param_counts(state, adapter, decoder), adapter, record, info, files, decoder_weights,
                          state, tokenizer, units, _check_lexicon(root, meta, cfg))
