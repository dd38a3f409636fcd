"""``brain2text infer`` / ``python inference.py``: decode recordings to JSON."""

from __future__ import annotations

import argparse

from ..config import StrategyNames


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model_path", required=True, help="a trained model directory (output_dir/best_model)")
    p.add_argument("--input_file", required=True, nargs="+",
                   help=".fif, .npy, any MNE-readable recording, a CTF .ds folder, or a glob (quoted); a BIDS "
                        "recording's events.tsv beside it gives one window per sentence with the reference text")
    p.add_argument("--output_file", required=True,
                   help="results JSON, written atomically: one object for one file, a list for several files or a glob")
    p.add_argument("--window", type=float, default=None, help="window length in s without events (default: model's "
                                                              "data.window_length)")
    p.add_argument("--stride", type=float, default=None, help="window stride in s without events (default: model's "
                                                              "data.window_stride)")
    p.add_argument("--sfreq", type=float, default=None, help="sampling rate of .npy inputs (else their sidecar JSON)")
    p.add_argument("--batch_size", type=int, default=8, help="windows decoded at once")
    p.add_argument("--subject", default=None, help="a subject label the model was trained on (default: the BIDS sub- "
                                                   "entity)")
    p.add_argument("--no_events", action="store_true", help="ignore events.tsv and cut sliding windows")
    p.add_argument("--strategy", choices=StrategyNames(), default=None, metavar="STRATEGY",
                   help="decoding strategy: %(choices)s (default: the model's decoding.strategy)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", default="auto",
                   help="CPU threads for torch: a number, or 'auto' (default: 1 for models under 50M parameters on "
                        "the CPU, where thread synchronisation costs more than it saves; else torch's default)")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..api import Decoder
    from ..errors import Brain2TextError
    from ..utils.atomic import atomic_write_json
    from ..utils.preflight import check_output_path, check_window
    from ..utils.threads import parse_threads

    check_output_path(args.output_file, what="--output_file")
    for name in ("window", "stride", "sfreq"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise Brain2TextError(f"--{name} must be > 0, got {value}")
    threads = parse_threads(args.threads)
    if args.batch_size < 1:
        raise Brain2TextError(f"--batch_size must be >= 1, got {args.batch_size}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    decoder = Decoder.from_pretrained(args.model_path, device=device, threads=threads, batch_size=args.batch_size)
    if args.window is not None:
        check_window(args.window, decoder.sfreq, decoder.config.encoder)
    result = decoder.decode_files(args.input_file, sfreq=args.sfreq, use_events=not args.no_events,
                                  window=args.window, stride=args.stride, strategy=args.strategy,
                                  subject=args.subject)
    atomic_write_json(args.output_file, result)
    n = sum(len(r["segments"]) for r in (result if isinstance(result, list) else [result]))
    print(f"wrote {args.output_file}: {n} segment(s)")
    return 0
