"""``brain2text synth``: write a synthetic MEG-MASC dataset (BIDS) whose MEG depends on the words heard."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..constants import MEG_MASC_STORIES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output BIDS root (written atomically: whole or not at all)")
    p.add_argument("--subjects", type=int, default=2, help="number of subjects (sub-01 ...); default 2")
    p.add_argument("--stories", nargs="+", default=list(MEG_MASC_STORIES), choices=MEG_MASC_STORIES,
                   metavar="STORY", help=f"stories to include (default all: {' '.join(MEG_MASC_STORIES)})")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="cut each recording after this many seconds (whole sentences); default: full story")
    p.add_argument("--snr", type=float, default=1.0,
                   help="evoked power / background noise power per channel in 0.5-40 Hz; default 1.0")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed = identical files); default 0")
    p.add_argument("--sfreq", type=float, default=1000.0, help="sampling rate in Hz; default 1000 (MEG-MASC's)")
    p.add_argument("--n-chans", type=int, default=208, help="MEG channels; default 208 (MEG-MASC's)")
    p.add_argument("--text-dir", default=None,
                   help="folder of the story texts (<story>.txt); default $BRAIN2TEXT_SHARED_DATA/meg_masc/"
                        "stimuli_text or ../shared/data/meg_masc/stimuli_text beside the repository")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic import SynthParams, generate_dataset
    from ..utils.preflight import check_output_path

    check_output_path(args.out, directory=True, what="--out")
    params = SynthParams(subjects=args.subjects, stories=list(args.stories), max_seconds=args.max_seconds,
                         snr=args.snr, seed=args.seed, sfreq=args.sfreq, n_chans=args.n_chans)
    start = time.perf_counter()

    def progress(rec: dict) -> None:
        if not args.json:
            print(f"  sub-{rec['subject']} task-{rec['task']} ({rec['story']}): {rec['seconds']:.0f} s",
                  file=sys.stderr)

    summary = generate_dataset(args.out, params, text_dir=args.text_dir, progress=progress)
    summary["generation_seconds"] = round(time.perf_counter() - start, 2)
    summary["out"] = str(args.out)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote SYNTHETIC MEG-MASC to {args.out}: {summary['recordings']} recordings, "
              f"{summary['subjects']} subjects, {summary['seconds']:.0f} s of MEG in "
              f"{summary['generation_seconds']:.1f} s")
    return 0
