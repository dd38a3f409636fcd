"""The language-model decoder: any Hugging Face causal LM, LoRA-adapted with peft (Hu et al. 2021).

* Loaded with ``AutoModelForCausalLM.from_pretrained`` (``local_files_only`` when ``HF_HUB_OFFLINE``),
  in the configured dtype, optionally 8-/4-bit through bitsandbytes (a clear error when it is absent).
  Never ``trust_remote_code``.
* The tokenizer gets the MEG special tokens; the embeddings are resized and the new rows set to the
  mean of the old ones (deterministic, so a saved model reloads identically). ``<meg>`` positions get
  projected MEG vectors, so only ``<meg_start>``/``<meg_end>`` use these rows; they stay fixed unless a
  phase trains the whole ``decoder``.
* The base LM is frozen; only LoRA parameters train (``lora`` part).
* :func:`build_decoder_on_meta` builds the same structure without allocating weights (``brain2text
  info``); for LLaMA-2 7B not present locally it uses LLaMA-2 7B's published shape.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from accelerate import init_empty_weights
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    BitsAndBytesConfig,
)

from ..config import DecoderConfig
from ..errors import ModelError
from .gguf import is_gguf, load_gguf_lm

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LLAMA2_7B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                 intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _quantization(cfg: DecoderConfig):
    if not (cfg.load_in_8bit or cfg.load_in_4bit):
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("decoder.load_in_8bit/load_in_4bit need the bitsandbytes package (pip install bitsandbytes)")

    if cfg.load_in_4bit:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=DTYPES[cfg.dtype])
    return BitsAndBytesConfig(load_in_8bit=True)


def check_decoder_path(path: str) -> None:
    """Refuse early (one line) when offline and ``path`` is not a local model directory (or GGUF file)."""
    if is_gguf(path):
        if not Path(path).is_file():
            raise ModelError("GGUF decoder file not found", path)
        return
    if not Path(path).is_dir() and (offline() or Path(path).is_absolute() or path.startswith(".")):
        raise ModelError("decoder model directory not found (HF_HUB_OFFLINE is set or the path is local); "
                         "set decoder.model_name_or_path to a directory holding a Hugging Face causal LM", path)


def load_base_lm(cfg: DecoderConfig, path: str | None = None):
    """The frozen base causal LM from ``path`` (default ``cfg.model_name_or_path``)."""
    path = path or cfg.model_name_or_path
    check_decoder_path(path)
    if is_gguf(path):
        return _frozen(load_gguf_lm(path, DTYPES[cfg.dtype]))
    kwargs = dict(dtype=DTYPES[cfg.dtype], local_files_only=offline(), use_safetensors=True)  # never unpickle
    quant = _quantization(cfg)
    if quant is not None:
        kwargs["quantization_config"] = quant
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the decoder ({' '.join(str(exc).split())[:200]})", path) from None
    return _frozen(model)


def _frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def resize_for_tokenizer(model, n_tokens: int) -> None:
    """Grow embeddings to ``n_tokens``; new rows = mean of the old rows (input and output)."""
    old = model.get_input_embeddings().weight.shape[0]
    if n_tokens <= old:  # never shrink: some checkpoints pad their vocabulary beyond the tokenizer
        return
    model.resize_token_embeddings(n_tokens, mean_resizing=False)
    if n_tokens > old:
        with torch.no_grad():
            for emb in {id(e): e for e in (model.get_input_embeddings(), model.get_output_embeddings())
                        if e is not None}.values():
                emb.weight[old:] = emb.weight[:old].float().mean(0).to(emb.weight.dtype)


def lora_config(cfg: DecoderConfig):
    from peft import LoraConfig  # noqa: PLC0415 -- peft (2.5 s) loads with the decoder, after the data checks

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_target_modules), bias="none", task_type="CAUSAL_LM")


def apply_lora(model, cfg: DecoderConfig, adapter_dir: str | os.PathLike | None = None):
    """Wrap ``model`` with a fresh LoRA adapter, or the one saved in ``adapter_dir`` (peft format)."""
    from peft import PeftModel, get_peft_model  # noqa: PLC0415 -- peft (2.5 s) loads with the decoder, after the data checks

    if cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    try:
        return get_peft_model(model, lora_config(cfg))
    except ValueError as exc:
        raise ModelError(f"decoder.lora_target_modules {cfg.lora_target_modules} do not fit the decoder "
                         f"({exc})") from None


def build_decoder(cfg: DecoderConfig, n_tokens: int, base_path: str | None = None, adapter_dir=None):
    """Base LM (frozen) + resized embeddings + LoRA: a peft ``PeftModelForCausalLM``."""
    model = load_base_lm(cfg, base_path)
    resize_for_tokenizer(model, n_tokens)
    return apply_lora(model, cfg, adapter_dir)


def decoder_config_on_meta(cfg: DecoderConfig):
    """The HF config of the decoder: from a local directory, else LLaMA-2 7B's shape."""
    path = cfg.model_name_or_path
    if Path(path).is_dir():
        return AutoConfig.from_pretrained(path, local_files_only=True)
    if is_gguf(path) and Path(path).is_file():
        return AutoConfig.from_pretrained(str(Path(path).parent), gguf_file=Path(path).name)
    if "llama-2-7b" not in path.lower():
        raise ModelError("decoder not present locally and not LLaMA-2 7B: cannot infer its shape offline", path)
    from transformers import LlamaConfig  # noqa: PLC0415 -- its import takes 1.3 s; only this fallback needs it

    return LlamaConfig(**LLAMA2_7B)


def build_decoder_on_meta(cfg: DecoderConfig, n_added_tokens: int = 4, hf_cfg=None):
    """(peft model on the meta device, base vocabulary size): structure only, no weights allocated.

    ``hf_cfg`` is the base's HF config (default: :func:`decoder_config_on_meta`)."""
    from peft import get_peft_model  # noqa: PLC0415 -- peft (2.5 s) loads with the decoder, after the data checks

    hf_cfg = hf_cfg if hf_cfg is not None else decoder_config_on_meta(cfg)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(hf_cfg, dtype=DTYPES[cfg.dtype])
        model.resize_token_embeddings(hf_cfg.vocab_size + n_added_tokens, mean_resizing=False)
        model = get_peft_model(model, lora_config(cfg))
    return model, hf_cfg.vocab_size
