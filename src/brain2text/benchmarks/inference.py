"""B8: ``brain2text infer`` end to end on a 5-minute synthetic recording (208 channels, 1 kHz) with a
demo-shaped model saved to disk: load the model, read, preprocess, window by sentence, decode
(the demo's joint CTC/LLM beam search, and greedy), write the JSON. Baseline: the recording's duration.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .common import Result, Settings
from .fixtures import recording_of
from .generation import demo_model


def _model_dir(s: Settings) -> tuple[Path, Path]:
    from ..data.cache import build_cache
    from ..training.data import preprocessing_record

    work = Path(s.workdir)
    out = work / f"demo-shaped-model-{'quick' if s.quick else 'full'}"
    model, cfg = demo_model(s, s.pick(40, 8))
    if not (out / "preprocessing.json").is_file():
        model.save_pretrained(out, preprocessing_record(build_cache(cfg.data, progress=False), cfg))
    return out, recording_of(Path(cfg.data.bids_root))


def _infer(model_dir: Path, rec: Path, out: Path, strategy: str) -> tuple[float, dict]:
    from ..cli import main

    start = time.perf_counter()
    rc = main(["infer", "--model_path", str(model_dir), "--input_file", str(rec), "--output_file", str(out),
               "--strategy", strategy, "--batch_size", "8"])
    seconds = time.perf_counter() - start
    if rc != 0:
        raise RuntimeError(f"brain2text infer exited with {rc}")
    return seconds, json.loads(out.read_text(encoding="utf-8"))


def bench_b8(s: Settings) -> list[Result]:
    import mne

    model_dir, rec = _model_dir(s)
    duration = float(mne.io.read_raw_fif(rec, preload=False, verbose="error").times[-1])
    out = Path(s.workdir) / "b8-infer.json"
    threads = torch.get_num_threads()
    runs = {}
    # the last run is a diagnostic: the same command on one torch thread (decoding is thousands of tiny
    # ops; on a shared 2-core machine two threads mostly wait for each other)
    for name, strategy, n_threads in (("joint", "joint", threads), ("greedy", "greedy", threads),
                                      ("joint_1_thread", "joint", 1)):
        torch.set_num_threads(n_threads)
        try:
            seconds, result = _infer(model_dir, rec, out, strategy)
        finally:
            torch.set_num_threads(threads)
        runs[name] = {"seconds": round(seconds, 2), "x_real_time": float(duration / seconds),
                      "segments": len(result["segments"]), "torch_threads": n_threads}
    joint = runs["joint"]
    return [Result("B8", f"inference end to end, {duration / 60:.1f}-min recording (joint decoding)", joint["x_real_time"],
                   "x", 10.0, measured=f"{joint['seconds']:.1f} s for {duration:.0f} s of MEG ({joint['segments']} sentences); "
                   f"greedy {runs['greedy']['seconds']:.1f} s ({runs['greedy']['x_real_time']:.1f}x); joint on 1 thread "
                   f"{runs['joint_1_thread']['seconds']:.1f} s ({runs['joint_1_thread']['x_real_time']:.1f}x)",
                   baseline="real time", details={"runs": runs, "recording": str(rec), "recording_s": duration,
                                                  "includes": "model load, read, preprocess, windows, decode, JSON write"})]
