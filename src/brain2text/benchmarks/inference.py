"""B8: ``brain2text infer`` end to end on a 5-minute synthetic recording (208 channels, 1 kHz) with a
demo-shaped model saved to disk: load the model, read, preprocess, window by sentence, decode
(the demo's default, fusion, and greedy), write the JSON. Baseline: the recording's duration.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import mne
import torch

from ..cli import main
from ..data.cache import build_cache
from ..models.serialization import save_model
from ..training.data import preprocessing_record
from .common import Result, Settings
from .fixtures import DEMO_MODEL, recording_of
from .generation import demo_model


def _model_dir(s: Settings) -> tuple[Path, Path]:
    work = Path(s.workdir)
    out = work / f"demo-shaped-model-{'quick' if s.quick else 'full'}"
    model, cfg = demo_model(s, s.pick(40, 8))
    if not (out / "preprocessing.json").is_file():
        save_model(model, out, preprocessing_record(build_cache(cfg.data, progress=False), cfg))
    return out, recording_of(Path(cfg.data.bids_root))


def _infer(model_dir: Path, rec: Path, out: Path, strategy: str, threads: str) -> tuple[float, dict]:
    start = time.perf_counter()
    rc = main(["infer", "--model_path", str(model_dir), "--input_file", str(rec), "--output_file", str(out),
               "--strategy", strategy, "--batch_size", "8", "--threads", threads])
    seconds = time.perf_counter() - start
    if rc != 0:
        raise RuntimeError(f"brain2text infer exited with {rc}")
    return seconds, json.loads(out.read_text(encoding="utf-8"))


def bench_b8(s: Settings) -> list[Result]:
    model_dir, rec = _model_dir(s)
    duration = float(mne.io.read_raw_fif(rec, preload=False, verbose="error").times[-1])
    out = Path(s.workdir) / "b8-infer.json"
    threads = torch.get_num_threads()
    runs = {}
    default = DEMO_MODEL["decoding"]["strategy"]  # the demo's decoding strategy
    # the default (--threads auto: one thread for this small model) for the default strategy and greedy,
    # then the default strategy on all of torch's threads as the diagnostic that motivates --threads auto
    for name, strategy, n_threads in ((default, default, "auto"), ("greedy", "greedy", "auto"),
                                      ("all_threads", default, str(threads))):
        seconds, result = _infer(model_dir, rec, out, strategy, n_threads)
        runs[name] = {"seconds": round(seconds, 2), "x_real_time": float(duration / seconds),
                      "segments": len(result["segments"]), "threads": n_threads, "strategy": strategy}
    main = runs[default]
    return [Result("B8", f"inference end to end, {duration / 60:.1f}-min recording ({default} decoding)",
                   main["x_real_time"],
                   "x", 10.0, measured=f"{main['seconds']:.1f} s for {duration:.0f} s of MEG ({main['segments']} "
                                       "sentences); "
                   f"greedy {runs['greedy']['seconds']:.1f} s ({runs['greedy']['x_real_time']:.1f}x); {default} on "
                   f"{threads} "
                   f"threads {runs['all_threads']['seconds']:.1f} s ({runs['all_threads']['x_real_time']:.1f}x)",
                   baseline="real time", details={"runs": runs, "recording": str(rec), "recording_s": duration,
                                                  "includes": "model load, read, preprocess, windows, decode, JSON "
                                                              "write",
                                                  "threads": "--threads auto (1 for this model) unless named"})]
