"""``brain2text score``: score any predictions against references (same metrics and intervals as ``evaluate``)."""

from __future__ import annotations

import argparse

from ..config import EvalConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import DefaultsHelpFormatter

    p.formatter_class = DefaultsHelpFormatter
    p.add_argument("--references", default=None,
                   help="references: one sentence per line, a JSON written by infer/evaluate ('reference' fields), "
                        "or an EEG-To-Text results file (its 'target string' lines; may be the --predictions file, "
                        "and may then be left out)")
    p.add_argument("--predictions", required=True,
                   help="predictions: one sentence per line, a JSON written by infer ('text') / evaluate "
                        "('prediction'), or an EEG-To-Text results file (its free-running 'predicted string' lines)")
    p.add_argument("--against", help="a second system's predictions on the same references: paired differences P - P2 "
                                     "with interval, permutation p-value and verdict")
    p.add_argument("--format", dest="fmt", default="auto", choices=["auto", "text", "json", "eegtotext"],
                   help="input format of every file; auto: a file starting with 'target string:' is EEG-To-Text, "
                        "a .json file JSON, anything else one sentence per line")
    p.add_argument("--predictions_field",
                   help="JSON: the key read from each segment/sentence (e.g. noise); EEG-To-Text: 'free' (the "
                        "default: free-running) or 'tf' (teacher-forced, not generation: the output then says so)")
    p.add_argument("--against_field", help="the same for --against (e.g. noise, surrogate, shuffled, no_meg, tf)")
    p.add_argument("--groups", help="one group id per line (one line per sentence): rows resampled and swapped "
                                    "together (default: rows with identical references)")
    p.add_argument("--output_file", required=True, help="score JSON (written atomically; nothing written on error)")
    defaults = EvalConfig()
    p.add_argument("--bootstrap_unit", default="sentence", choices=["sentence", "row"],
                   help="resample sentence clusters (see --groups) or rows "
                        "(only right when no two rows share a sentence)")
    p.add_argument("--n_bootstrap", type=int, default=defaults.n_bootstrap, help="paired bootstrap resamples")
    p.add_argument("--n_permutations", type=int, default=defaults.n_permutations,
                   help="paired permutation test resamples (0 = no p-values)")
    p.add_argument("--seed", type=int, default=defaults.bootstrap_seed,
                   help="seed of the bootstrap and the permutations")
    p.add_argument("--wer_normalization", "--wer-normalization", default=defaults.wer_normalization,
                   choices=["default", "none"],
                   help="WER on lowercased text without punctuation ('default') or on the text as written, whitespace "
                        "collapsed only ('none')")
    p.add_argument("--bertscore_model", default=defaults.bertscore_model,
                   help="'minilm' (offline default), a local model folder, a name such as roberta-large, or 'none'")
    p.add_argument("--bertscore_num_layers", type=int, default=0, help="layer of the BERTScore backbone (0 = default)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..errors import Brain2TextError
    from ..evaluation.report_table import format_score_table
    from ..evaluation.score import score_files
    from ..utils.atomic import atomic_write_json

    try:
        cfg = EvalConfig(n_bootstrap=args.n_bootstrap, n_permutations=args.n_permutations, bootstrap_seed=args.seed,
                         bertscore_model=args.bertscore_model, bertscore_num_layers=args.bertscore_num_layers,
                         wer_normalization=args.wer_normalization)
    except Brain2TextError as exc:
        raise Brain2TextError(str(exc).replace("eval.", "--")) from None
    cfg = dataclasses.replace(cfg, bootstrap_unit=args.bootstrap_unit)
    result = score_files(args.references, args.predictions, args.against, cfg, args.predictions_field,
                         args.against_field, fmt=args.fmt, groups=args.groups, progress=True)
    atomic_write_json(args.output_file, result)
    print(format_score_table(result))
    print(f"wrote {args.output_file}")
    return 0
