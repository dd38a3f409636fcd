"""``brain2text evaluate``: free-running evaluation with controls and bootstrap intervals.

Writes ``--output_file`` (JSON), and beside it ``<stem>.md`` (table, verdict in words) and
``<stem>.png`` (metric bars with intervals, per-sentence WER histogram), each atomically.
"""

from __future__ import annotations

import argparse

from ..config import decoding_strategies


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import DefaultsHelpFormatter

    p.formatter_class = DefaultsHelpFormatter
    p.add_argument("--model_path", required=True, help="a trained model directory (output_dir/best_model)")
    p.add_argument("--config", default=None,
                   help="YAML whose data/decoding/eval sections are used (default: the model's saved config "
                        "and the data settings it was trained with); the architecture always comes from the model")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to evaluate (default test)")
    p.add_argument("--strategy", choices=tuple(decoding_strategies()), default=None,
                   help="decoding strategy (default: decoding.strategy of the config)")
    p.add_argument("--output_file", required=True, help="metrics JSON (the .md table and .png figure go beside it)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", default="auto",
                   help="CPU threads for torch: a number, or 'auto' (default: 1 for models under 50M parameters on "
                        "the CPU, where thread synchronisation costs more than it saves; else torch's default)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.max_sentences=50 data.bids_root=DIR")


def _config(args, view):
    import dataclasses

    from ..config import load_config, parse_overrides
    from ..inference.model_view import config_with

    base = view.config
    if args.config:
        user = load_config(args.config, args.overrides)
        cfg = dataclasses.replace(base, data=user.data, decoding=user.decoding, eval=user.eval)
    else:
        cfg = config_with(dataclasses.replace(base, data=view.data), parse_overrides(args.overrides))
    if args.strategy:
        cfg = dataclasses.replace(cfg, decoding=dataclasses.replace(cfg.decoding, strategy=args.strategy))
    return cfg


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from ..data.cache import build_cache
    from ..errors import Brain2TextError
    from ..evaluation.evaluate import evaluate_examples
    from ..evaluation.report_table import evaluation_markdown, write_figure
    from ..inference.loading import load_model
    from ..inference.model_view import view_of
    from ..utils.atomic import atomic_write_json, atomic_write_text
    from ..utils.preflight import check_output_path
    from ..utils.threads import decode_threads, parse_threads, torch_threads

    out = Path(args.output_file)
    for path in (out, out.with_suffix(".md"), out.with_suffix(".png")):
        check_output_path(path, what="--output_file")
    if out.suffix.lower() in (".md", ".png"):
        raise Brain2TextError("--output_file is the metrics JSON; the .md and .png are written beside it", out)
    threads = parse_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.model_path, device)
    view = view_of(model, args.model_path)
    cfg = _config(args, view)
    example_set = build_cache(cfg.data)
    with torch_threads(decode_threads(model, threads, device)):
        result, per_sentence_wer = evaluate_examples(model, example_set, args.split, cfg)
    result = {"model_path": str(args.model_path), **result}
    markdown = evaluation_markdown(result)
    write_figure(result, per_sentence_wer, out.with_suffix(".png"))
    atomic_write_text(out.with_suffix(".md"), markdown)
    atomic_write_json(out, result)
    print(markdown, end="")
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return 0
