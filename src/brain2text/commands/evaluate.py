"""``brain2text evaluate``: free-running evaluation with controls and bootstrap intervals.

Writes ``--output_file`` (JSON), and beside it ``<stem>.md`` (table, verdict in words) and
``<stem>.png`` (metric bars with intervals, per-sentence WER histogram), each atomically; then the
evaluation section of the model directory's card (``README.md``), unless ``--no_model_card``.
The evaluation itself is :meth:`brain2text.Decoder.evaluate`'s.
"""

from __future__ import annotations

import argparse

from ..config import StrategyNames


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import DefaultsHelpFormatter

    p.formatter_class = DefaultsHelpFormatter
    p.add_argument("--model_path", required=True, help="a trained model directory (output_dir/best_model)")
    p.add_argument("--config", default=None,
                   help="YAML whose data/decoding/eval sections are used (default: the model's saved config "
                        "and the data settings it was trained with); the architecture always comes from the model")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to evaluate (default test)")
    p.add_argument("--strategy", choices=StrategyNames(), default=None, metavar="STRATEGY",
                   help="decoding strategy: %(choices)s (default: decoding.strategy of the config)")
    p.add_argument("--output_file", required=True, help="metrics JSON (the .md table and .png figure go beside it)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", default="auto",
                   help="CPU threads for torch: a number, or 'auto' (default: 1 for models under 50M parameters on "
                        "the CPU, where thread synchronisation costs more than it saves; else torch's default)")
    p.add_argument("--no_model_card", action="store_true",
                   help="do not record this evaluation in the model directory's card (README.md); without it, a "
                        "model directory that is not writable is skipped with a note")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.max_sentences=50 data.bids_root=DIR")


def _update_model_card(decoder, result: dict, metrics_file) -> str | None:
    """Record ``result`` in the model directory's card; the card's path, or None (a note on stderr) when the
    directory cannot be written: the evaluation itself succeeded and its files are written."""
    import os
    import sys

    from ..errors import Brain2TextError
    from ..models.model_card import write_model_card

    directory = decoder.model_path
    if not os.access(directory, os.W_OK):
        print(f"note: {directory} is not writable: its model card was not updated", file=sys.stderr)
        return None
    try:
        return str(write_model_card(directory, decoder.model, evaluation=result, model_path=directory,
                                    metrics_file=metrics_file))
    except Brain2TextError as exc:
        print(f"note: model card not updated ({exc})", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from ..api import Decoder
    from ..errors import Brain2TextError
    from ..evaluation.report_table import evaluation_markdown, write_figure
    from ..utils.atomic import atomic_write_json, atomic_write_text
    from ..utils.preflight import check_output_path
    from ..utils.threads import parse_threads

    out = Path(args.output_file)
    for path in (out, out.with_suffix(".md"), out.with_suffix(".png")):
        check_output_path(path, what="--output_file")
    if out.suffix.lower() in (".md", ".png"):
        raise Brain2TextError("--output_file is the metrics JSON; the .md and .png are written beside it", out)
    threads = parse_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    decoder = Decoder.from_pretrained(args.model_path, device=device, threads=threads)
    result, per_sentence_wer = decoder.evaluate(split=args.split, strategy=args.strategy, config=args.config,
                                                overrides=args.overrides, return_per_sentence_wer=True)
    markdown = evaluation_markdown(result)
    write_figure(result, per_sentence_wer, out.with_suffix(".png"))
    atomic_write_text(out.with_suffix(".md"), markdown)
    atomic_write_json(out, result)
    card = None if args.no_model_card else _update_model_card(decoder, result, out)
    print(markdown, end="")
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}"
          + (f"; the evaluation is in the model card {card}" if card else ""))
    return 0
