"""Run the benchmarks, write ``results.json`` and ``results.md``.

``python -m benchmarks [--quick] [--only B1,B5 [--merge]] [--out benchmarks/results.json]`` (repository
root) and ``brain2text bench`` call :func:`main`. Each benchmark runs in this process; one that fails is
recorded with its error and the others still run. ``--merge`` reruns the ``--only`` benchmarks into an
existing results file: their rows are replaced, the others kept, and the header says what was rerun when.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..config import load_config
from ..errors import Brain2TextError
from ..utils.atomic import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from .common import Result, Settings

TITLE = {"B1": "RVQ encode", "B2": "RVQ training step", "B3": "RVQ search FLOP/s", "B4": "encoder fwd+bwd roofline",
         "B5": "cache reads + data wait", "B6": "preprocessing speed + RSS", "B7": "batched generation",
         "B8": "inference end to end", "B9": "SmolLM2 training step", "B10": "CTC decoders people use"}


# Each row names its module and function; the module is imported when the row runs, so that a usage error
# (an unknown --only id, a bad --merge) is reported without first importing torch, transformers and peft.
REGISTRY: list[tuple[tuple[str, ...], str, str]] = [
    (("B1", "B3"), "rvq", "bench_b1_b3"), (("B2",), "rvq", "bench_b2"), (("B4",), "encoder", "bench_b4"),
    (("B5",), "data", "bench_b5"), (("B6",), "data", "bench_b6"), (("B7",), "generation", "bench_b7"),
    (("B8",), "inference", "bench_b8"), (("B9",), "lm_training", "bench_b9"), (("B10",), "ctc_peers", "bench_b10")]


def _bench(module: str, name: str) -> Callable[[Settings], list[Result]]:
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def full_size_memory() -> dict:
    """``brain2text info`` for the built-in full-size configuration (meta device, no weights)."""
    from ..models.info import model_info  # noqa: PLC0415 -- torch, transformers, peft: only when the row runs

    info = model_info(load_config(None))
    return {"memory_gb": info["memory_gb"], "trainable": info["trainable"], "params": info["params"],
            "assumptions": info["assumptions"], "source": "brain2text info --config configs/default_config.yaml --json"}


def run_suite(settings: Settings, only: set[str] | None = None, log=print) -> dict:
    from .common import Result, host_mm_gflops, load_average, machine, versions  # noqa: PLC0415 -- torch: after the
    # arguments are checked, so that a usage error (--only B99, a bad --merge) comes back without it
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")

    from transformers.utils import logging as hf_logging  # noqa: PLC0415 -- off the usage-error path

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    Path(settings.workdir).mkdir(parents=True, exist_ok=True)
    record = {"quick": settings.quick, "machine": machine(), "versions": versions(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": []}
    for ids, module, name in REGISTRY:
        if only and not (set(ids) & only):
            continue
        fn = _bench(module, name)
        log(f"running {', '.join(ids)} ...")
        load, host = load_average(), host_mm_gflops()
        start = time.perf_counter()
        try:
            results = fn(settings)
        except Exception as exc:  # one broken benchmark must not hide the others
            results = [Result(i, TITLE[i], None, "", None, error=f"{type(exc).__name__}: {exc}") for i in ids]
            log(traceback.format_exc())
        took = time.perf_counter() - start
        for r in results:
            if only and r.id not in only:
                continue
            r.seconds = round(took / len(results), 2)
            r.details["load_average_before"] = load
            r.details["host_mm_gflops_before"] = host
            record["results"].append(r.to_dict())
            log(f"  {r.id} {_figure(r.to_dict())} (target {_target(r.to_dict())}): {r.measured} vs {r.baseline}")
    if not only or "memory" in only:
        try:
            record["full_size_memory"] = full_size_memory()
        except Exception as exc:
            record["full_size_memory"] = {"error": f"{type(exc).__name__}: {exc}"}
    record["machine"]["load_average_end"] = load_average()
    return record


def merge_records(old: dict, new: dict) -> dict:
    """``old`` with the rows of ``new`` in place of those with the same id (an id may have several rows: B4,
    B10; new ids go last) and a note of the rerun (:func:`run` has checked, before running, that both are
    --quick or both full size)."""
    fresh: dict[str, list[dict]] = {}
    for r in new["results"]:
        fresh.setdefault(r["id"], []).append(r)
    results, placed = [], set()
    for r in old["results"]:
        if r["id"] not in fresh:
            results.append(r)
        elif r["id"] not in placed:  # the first old row of a rerun id brings all its new rows
            results.extend(fresh[r["id"]])
            placed.add(r["id"])
    results += [r for i, rows in fresh.items() if i not in placed for r in rows]  # ids new to the record
    rerun = {"ids": sorted({r["id"] for r in new["results"]}), "started": new["started"],
             "load_average_start": new["machine"]["load_average_start"],
             "load_average_end": new["machine"].get("load_average_end"), "versions": new["versions"]}
    merged = dict(old, results=results, reruns=[*old.get("reruns", []), rerun])
    if "full_size_memory" in new:
        merged["full_size_memory"] = new["full_size_memory"]
    return merged


def _figure(r: dict) -> str:
    if r["error"]:
        return "error"
    f = r["figure"]
    return f"{f:.1f}{'%' if r['unit'] == '%' else r['unit']}" if f is not None else "-"


def _target(r: dict) -> str:
    if r["target"] is None:
        return "-"
    sign = "≥" if r["comparison"] == ">=" else "≤"
    unit = "%" if r["unit"] == "%" else r["unit"]
    parts = [f"{sign} {r['target']:g}{unit}"]
    for e in r["extra"]:
        parts.append(f"{e['label']} {'≥' if e.get('comparison', '>=') == '>=' else '≤'} {e['target']:g}")
    return "; ".join(parts)


def markdown(record: dict) -> str:
    m = record["machine"]
    lines = [f"Measured {record['started']} on {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
             f"{m['ram_gb']} GB RAM; load average {m['load_average_start']} at start, {m.get('load_average_end')} at "
             "end"
             f"{' (--quick sizes: not the documented figures)' if record['quick'] else ''}. "
             f"torch {record['versions'].get('torch')}, mne {record['versions'].get('mne')}, "
             f"transformers {record['versions'].get('transformers')}, vector-quantize-pytorch "
             f"{record['versions'].get('vector-quantize-pytorch')}."]
    for rerun in record.get("reruns", []):
        lines[0] += (f" {', '.join(rerun['ids'])} rerun alone {rerun['started']} (load average "
                     f"{rerun['load_average_start']} at start, {rerun['load_average_end']} at end).")
    lines += ["",
             "| # | benchmark | brain2text | baseline (same run) | figure | target | met |",
             "|---|---|---|---|---|---|---|"]
    for r in record["results"]:
        met = {True: "yes", False: "**no**", None: "report"}[r["passed"]]
        measured = r["measured"] if not r["error"] else f"error: {r['error']}"
        host = r.get("details", {}).get("host_mm_gflops_before")
        if r["baseline"] == "real time" and host and not r["error"]:  # real-time figures move with the host
            measured += f" (host: torch.mm {host:.0f} GFLOP/s)"
        lines.append(f"| {r['id']} | {r['name']} | {measured} | {r['baseline']} | {_figure(r)} | {_target(r)} "
                     f"| {met} |")
    mem = record.get("full_size_memory", {}).get("memory_gb")
    if mem:
        lines += ["", "Full-size configuration (LLaMA-2-7B + LoRA r=8, encoder 12 x 768, RVQ 8 x 8192 x 256), "
                  "estimated memory per process (`brain2text info`, GB = 1e9 B):", "",
                  "| phase | memory (GB) |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in mem.items()]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="brain2text benchmark suite (B1-B8)")
    add_arguments(p)
    return p.parse_args(argv)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small sizes: the whole suite in about a minute (a smoke test)")
    p.add_argument("--only", default="", help="comma-separated benchmark ids, e.g. B1,B5 (and 'memory')")
    p.add_argument("--out", default="benchmarks/results.json", help="results JSON; the Markdown table goes beside it "
                                                                    "(.md)")
    p.add_argument("--workdir", default=".cache/bench", help="generated recordings and models (reused between runs)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 5, quick 2)")
    p.add_argument("--merge", action="store_true",
                   help="with --only: replace those rows in the existing --out file and keep the others")


def run(args: argparse.Namespace) -> int:
    only = {x.strip().upper() if x.strip().lower() != "memory" else "memory" for x in args.only.split(",") if x.strip()}
    unknown = sorted(only - set(TITLE) - {"memory"})
    if unknown:
        raise Brain2TextError(f"--only: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(TITLE)}, memory")
    out = Path(args.out)
    if args.merge and not only:
        raise Brain2TextError("--merge needs --only: which benchmarks to rerun")
    old = None
    if args.merge:
        if not out.is_file():
            raise Brain2TextError(f"--merge: {out} does not exist (run the whole suite first)")
        old = json.loads(out.read_text(encoding="utf-8"))
        if bool(old.get("quick")) != bool(args.quick):
            raise Brain2TextError("--merge: cannot mix --quick and full-size results")
    from .common import Settings  # noqa: PLC0415 -- torch, once the arguments are checked (see run_suite)

    settings = Settings(quick=args.quick, workdir=args.workdir, repeats=args.repeats or (2 if args.quick else 5))
    record = run_suite(settings, only or None, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    if old is not None:
        record = merge_records(old, record)
    atomic_write_json(out, record)
    atomic_write_text(out.with_suffix(".md"), markdown(record))
    print(markdown(record))
    print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except Brain2TextError as exc:  # one line, as the brain2text CLI prints it
        print(f"error: {exc}", file=sys.stderr)
        return 2
