"""``brain2text lm-headroom``: how much could a language model add to a trained model's CTC search?

Fuses n-gram LMs into the model's CTC prefix beam search (``--search lexicon``: into the phoneme lexicon
search): one fitted on the training sentences, and an oracle fitted on the decoded split's own sentences too
(a reference point, never a result, and not a bound); settings are chosen on ``--tune_split``. Writes
``--output_file`` (JSON) and ``<stem>.md`` beside it, atomically, and prints the table.
See :mod:`brain2text.evaluation.headroom`.
"""

from __future__ import annotations

import argparse
import sys


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def default_bonuses(search: str) -> tuple[float, ...]:
    """headroom.LENGTH_BONUSES (fusion, per token) or LEXICON_BONUSES (lexicon, per word), without torch."""
    return (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0) if search == "lexicon" else (1.0, 2.0, 3.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import DefaultsHelpFormatter

    p.formatter_class = DefaultsHelpFormatter
    p.add_argument("--model_path", required=True, help="a trained model directory (output_dir/best_model)")
    p.add_argument("--config", default=None,
                   help="YAML whose data/decoding/eval sections are used (default: the model's saved config)")
    p.add_argument("--split", default="test", choices=["val", "test"], help="split decoded and scored")
    p.add_argument("--tune_split", default="val", choices=["val", "test"],
                   help="split on which each LM's lm_weight and length_bonus are chosen")
    p.add_argument("--search", default="fusion", choices=["fusion", "lexicon"],
                   help="the search the n-grams join: the word CTC prefix beam search (the default strategy's), or "
                        "the phoneme lexicon search (needs a model with encoder.phoneme_head; its oracle also gets "
                        "the decoded words in its lexicon)")
    p.add_argument("--ctc_weight", type=float, default=0.0,
                   help="lexicon search only: weight of the word CTC head's word scores in every lexicon system (as "
                        "decoding.ctc_weight in the lexicon strategy; 0: the phoneme posteriors alone)")
    p.add_argument("--order", type=int, default=3, help="n-gram order")
    p.add_argument("--lm_weights", type=_floats, default=(0.3, 0.5, 1.0), help="lm_weight grid (comma-separated)")
    p.add_argument("--length_bonuses", type=_floats, default=None,
                   help="length_bonus grid (per token for fusion, per word for lexicon; default: 1,2,3 for fusion, "
                        "-3,...,3 for lexicon)")
    # the defaults are headroom.ORDER, LM_WEIGHTS, LENGTH_BONUSES and LEXICON_BONUSES (a test checks), written
    # out here so that `--help` needs no torch import
    p.add_argument("--output_file", required=True, help="headroom JSON (the .md table goes beside it)")
    p.add_argument("--threads", default="auto", help="CPU threads for torch: a number or 'auto' (as evaluate)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. decoding.num_beams=16 data.bids_root=DIR")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..api import Decoder
    from ..data.cache import build_cache
    from ..errors import Brain2TextError
    from ..evaluation.evaluate import evaluation_config
    from ..evaluation.headroom import check_model, check_settings, headroom_markdown, lm_headroom
    from ..utils.atomic import atomic_write_json, atomic_write_text
    from ..utils.preflight import check_output_path
    from ..utils.threads import decode_threads, parse_threads, torch_threads

    out = Path(args.output_file)
    for path in (out, out.with_suffix(".md")):
        check_output_path(path, what="--output_file")
    if out.suffix.lower() == ".md":
        raise Brain2TextError("--output_file is the headroom JSON; the .md table is written beside it", out)
    bonuses = default_bonuses(args.search) if args.length_bonuses is None else args.length_bonuses
    check_settings(args.split, args.tune_split, args.order, args.lm_weights, bonuses, args.search, args.ctc_weight)
    threads = parse_threads(args.threads)
    decoder = Decoder.from_pretrained(args.model_path, threads=threads)
    check_model(decoder.model, args.search, decoder.model_path)  # before the data are read
    cfg = evaluation_config(decoder.view, args.config, args.overrides)
    example_set = build_cache(cfg.data, progress=True)
    with torch_threads(decode_threads(decoder.model, threads)):
        result = lm_headroom(decoder.model, example_set, cfg, args.split, args.tune_split, args.order,
                             args.lm_weights, bonuses,
                             progress=lambda message: print(message, file=sys.stderr, flush=True),
                             search=args.search, ctc_weight=args.ctc_weight)
    result = {"model_path": str(decoder.model_path), **result}
    markdown = headroom_markdown(result)
    atomic_write_text(out.with_suffix(".md"), markdown)
    atomic_write_json(out, result)
    print(markdown, end="")
    print(f"wrote {out}, {out.with_suffix('.md')}")
    return 0
