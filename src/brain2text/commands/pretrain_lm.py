"""``brain2text pretrain-lm``: train the small story tokenizer and LLaMA decoder used by the default config.

The output directory (default: ``decoder.model_name_or_path`` of the config) loads with
``from_pretrained`` like any LLaMA directory. Only training-split sentences are used (issue 10); a
directory built from the same corpus and settings is reused unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (its data section decides the split; default: built-in defaults)")
    p.add_argument("--out", default=None, help="output directory (default: the config's decoder.model_name_or_path)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default 300)")
    p.add_argument("--tokenizer", choices=["bpe", "word"], default=None,
                   help="bpe: byte-level BPE, any word encodable; word: one id per training word, others <unk> "
                        "(default: the config's decoder.pretrain_tokenizer)")
    p.add_argument("--vocab-size", type=int, default=None, help="tokenizer vocabulary size (default 600 for bpe)")
    p.add_argument("--text-dir", default=None, help="folder of the story texts (default: as `brain2text synth`)")
    p.add_argument("--force", action="store_true", help="retrain even if the output is up to date")
    p.add_argument("--json", action="store_true", help="print the training record as JSON")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. data.split=story")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ..config import load_config
    from ..errors import ConfigError

    cfg = load_config(args.config, args.overrides)
    if args.vocab_size is not None and args.vocab_size < 1:
        raise ConfigError(f"--vocab-size must be >= 1, got {args.vocab_size}")
    out = args.out or cfg.decoder.model_name_or_path
    if args.out is None and not out.startswith((".", "/", "~")) and not os.path.isdir(out):
        raise ConfigError(f"decoder.model_name_or_path ({out!r}) looks like a hub id, not a local folder to write the "
                          "default decoder into; pass --out DIR or a config such as configs/demo.yaml", args.config)
    # after the checks: torch and transformers take seconds to import
    from ..training.lm_pretrain import LMSettings, pretrain_lm  # noqa: PLC0415 -- usage errors come back at once

    settings = LMSettings()
    if args.steps is not None:
        settings.steps = max(1, args.steps)
    settings.tokenizer = args.tokenizer or cfg.decoder.pretrain_tokenizer
    if settings.tokenizer == "word" and args.vocab_size is None:
        settings.vocab_size = 8000  # every training word
    if args.vocab_size is not None:
        settings.vocab_size = args.vocab_size
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    record = pretrain_lm(cfg, out, settings, text_dir=args.text_dir, force=args.force, log=log)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(f"decoder in {out}: {record['n_parameters']:,} parameters, {record['n_sentences']} training sentences, "
              f"held-out (val) perplexity {record['heldout_val_perplexity']}, "
              f"trained in {record['training_seconds']} s")
    return 0
