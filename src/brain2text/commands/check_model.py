"""``brain2text check-model PATH [--json]``: validate a model directory and show what it holds.

For someone who has just downloaded or been sent a model: every file is checked as loading checks it
(:func:`brain2text.models.validation.validate_model_dir`), nothing is built or written, and the summary
says what the directory holds: format, config, parameters per part, tokenizer, adapter, the base decoder
(and whether it is here), the preprocessing record and the training info. Exit 0 for a valid directory
(a missing base decoder is reported, not refused: the directory is fine, the base must be fetched),
2 with one line ``error: <file>: <problem>`` otherwise.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a model directory (output_dir/best_model, or one you downloaded)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _print_text(info: dict) -> None:
    print(f"model: {info['path']}  (brain2text format {info['format_version']}): valid")
    cfg = info["config"]
    print(f"  encoder: {cfg['encoder']}")
    print(f"  rvq: {cfg['rvq']}   projector: {cfg['projector']}   decoding: {cfg['decoding']}")
    present = "present" if info["decoder_base_present"] else "NOT FOUND: needed to load the model"
    print(f"  decoder base: {info['decoder_base']} ({present})   dtype: {cfg['decoder_dtype']}"
          + ("   whole decoder trained" if info["decoder_trained"] else ""))
    a = info["adapter"]
    print(f"  adapter: LoRA r={a['r']} alpha={a['lora_alpha']} on {', '.join(a['target_modules'])}"
          f" (trained on {a['base_model_name_or_path']})")
    print(f"  tokenizer: {info['n_tokens']} tokens")
    print("  parameters: " + ", ".join(f"{k} {v:,}" for k, v in info["params"].items() if v))
    rec = info["preprocessing"]
    if rec is None:
        print("  preprocessing: none (the config's data settings; each recording scaled by its own statistics)")
    else:
        print(f"  preprocessing: {rec['sfreq']} Hz, {rec['n_channels']} channels, subjects "
              f"{' '.join(rec['subjects']) or '-'}, {len(rec['scalers'])} scaler(s)"
              + ("  [SYNTHETIC DATA]" if rec["synthetic"] else ""))
    if info["training_info"] is not None:
        print(f"  training: {json.dumps(info['training_info'])}")
    print(f"  files ({len(info['files'])}, {sum(f['bytes'] for f in info['files']) / 1e6:.1f} MB):")
    for f in info["files"]:
        print(f"    {f['path']}  {f['bytes']:,} B")


def run(args: argparse.Namespace) -> int:
    import warnings

    from transformers.utils import logging as hf_logging

    from ..models.validation import validate_model_dir

    hf_logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # library deprecation notices are not the user's business
        info = validate_model_dir(args.path, require_base=False).summary()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_text(info)
    return 0
