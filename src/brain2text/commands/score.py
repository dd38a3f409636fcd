"""``brain2text score``: score any predictions against references (same metrics as ``evaluate``)."""

from __future__ import annotations

import argparse

from ..config import EvalConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--references", required=True,
                   help="references: one sentence per line, or a JSON written by infer/evaluate ('reference' fields)")
    p.add_argument("--predictions", required=True,
                   help="predictions: one sentence per line, or a JSON written by infer ('text') / evaluate "
                        "('prediction')")
    p.add_argument("--against", help="a second system's predictions on the same references: paired bootstrap of P - P2")
    p.add_argument("--predictions_field", help="JSON only: the key read from each segment/sentence (e.g. noise)")
    p.add_argument("--against_field", help="JSON only: the key read for --against (e.g. noise, shuffled, no_meg)")
    p.add_argument("--output_file", required=True, help="score JSON (written atomically; nothing written on error)")
    defaults = EvalConfig()
    p.add_argument("--n_bootstrap", type=int, default=defaults.n_bootstrap, help="paired bootstrap resamples")
    p.add_argument("--seed", type=int, default=defaults.bootstrap_seed, help="bootstrap seed")
    p.add_argument("--bertscore_model", default=defaults.bertscore_model,
                   help="'minilm' (offline default), a local model folder, a name such as roberta-large, or 'none'")
    p.add_argument("--bertscore_num_layers", type=int, default=0, help="layer of the BERTScore backbone (0 = default)")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.report_table import format_score_table
    from ..evaluation.score import score_files
    from ..utils.atomic import atomic_write_json

    cfg = EvalConfig(n_bootstrap=args.n_bootstrap, bootstrap_seed=args.seed, bertscore_model=args.bertscore_model,
                     bertscore_num_layers=args.bertscore_num_layers)
    result = score_files(args.references, args.predictions, args.against, cfg,
                         args.predictions_field, args.against_field)
    atomic_write_json(args.output_file, result)
    print(format_score_table(result))
    print(f"wrote {args.output_file}")
    return 0
