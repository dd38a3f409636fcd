"""``brain2text report``: generate the report's tables from the demo's metrics, then build the PDF."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import Brain2TextError
from ..report import build_pdf, write_generated


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo_dir", default="outputs/demo", help="where `brain2text demo` wrote its metrics")
    p.add_argument("--report_dir", default="report", help="folder holding main.tex")
    p.add_argument("--no-pdf", action="store_true", help="only write report/generated/*.tex")


def run(args: argparse.Namespace) -> int:
    demo = Path(args.demo_dir)
    report_dir = Path(args.report_dir)
    if not (report_dir / "main.tex").is_file():
        raise Brain2TextError("no main.tex here", report_dir)
    evaluations = {"sentence": demo / "metrics_sentence.json", "story": demo / "metrics_story.json"}
    strategies = {split: demo / f"strategies_{split}.json" for split in evaluations}
    written = write_generated(evaluations, report_dir / "generated",
                              {split: p for split, p in strategies.items() if p.is_file()})
    for p in written:
        print(f"wrote {p}")
    if not args.no_pdf:
        pdf = build_pdf(report_dir)
        print(f"built {pdf}")
    return 0
