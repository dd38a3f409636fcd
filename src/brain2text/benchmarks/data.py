"""B5 and B6: the data layer.

B5 reads training examples through the cache (``MEGDataset`` over a built ``ExampleSet``: a
memory-mapped slice per example) and, as the baseline, reads and preprocesses the very same
windows from the raw FIF file with MNE per window (open, crop, load, notch, band-pass, resample,
robust-scale with the cache's scaler). It also runs a short demo-sized training loop on the cache
through the trainer's own loader and reports the share of step time spent waiting for data.

B6 preprocesses one long recording (60 minutes, 208 channels, 1 kHz) the way the cache builder
does (lazy read, channel chunks, MNE notch + band-pass + polyphase resample into a memory-mapped
output, robust scaler fitted and applied in chunks) in a child process, and reports the speed
against real time and the child's own peak RSS (``VmHWM`` from ``/proc``: the measured process alone).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..data.cache import build_cache, scaler_key
from ..data.dataset import MEGDataset, collate_examples
from ..data.preprocessing import (
    apply_robust_scaler,
    fit_robust_scaler,
    output_length,
    preprocess_array,
    preprocess_raw,
)
from ..data.readers import meg_picks, read_recording
from ..models.build import build_model
from ..training.data import TrainingData, train_loader
from ..training.objective import TrainingObjective
from .common import Result, Settings, compare
from .fixtures import bench_bids, demo_config, demo_lm_dir, long_npy, recording_of


def _mne_window(raw_path: Path, ex: dict, example_set, cfg) -> np.ndarray:
    """The baseline: one example from the raw file with MNE, preprocessed as the cache does."""
    raw = read_recording(raw_path)
    sfreq = float(raw.info["sfreq"])
    tmin, tmax = ex["start"] / cfg.sfreq, (ex["end"] - 1) / cfg.sfreq
    raw.crop(tmin, min(tmax, raw.times[-1])).load_data(verbose="error")
    picks = meg_picks(raw, cfg.channel_types)
    x = preprocess_array(raw.get_data(picks=picks), sfreq, cfg)[:, : ex["end"] - ex["start"]]
    sc = example_set.scalers[scaler_key(example_set.recordings[ex["recording"]]["subject"],
                                        example_set.recordings[ex["recording"]]["ch_names"])]
    return apply_robust_scaler(x, np.asarray(sc["median"], np.float32), np.asarray(sc["iqr"], np.float32), cfg.clamp)


def _setup(s: Settings):
    work = Path(s.workdir)
    bids = bench_bids(s)
    cfg = demo_config(work, bids, demo_lm_dir(work, bids))
    start = time.perf_counter()
    example_set = build_cache(cfg.data, progress=False)
    return bids, cfg, example_set, time.perf_counter() - start


def bench_b5(s: Settings) -> list[Result]:
    bids, cfg, example_set, build_s = _setup(s)
    dataset = MEGDataset(example_set, "all")
    raw_path = recording_of(bids)
    n_base = min(len(dataset), s.pick(8, 2))

    def ours():
        for i in range(len(dataset)):
            dataset[i]

    def baseline():
        for i in range(n_base):
            _mne_window(raw_path, example_set.examples[i], example_set, cfg.data)

    t = compare({"cache": ours, "mne": baseline}, s.pick(3, 2), 1)
    rate = len(dataset) / t["cache"]["median_s"]
    base_rate = n_base / t["mne"]["median_s"]
    wait = _data_wait(cfg, example_set, s)
    return [Result("B5", "reading training examples (cache vs MNE per window)", rate / base_rate, "x", 500.0,
                   measured=f"{rate:,.0f} examples/s from the cache; data wait {wait['wait_pct']:.2f}% of step time",
                   baseline=f"MNE read + preprocess per window {base_rate:.1f} examples/s",
                   details={"examples": len(dataset), "mne_examples_timed": n_base, "timings": t,
                            "cache_build_s": round(build_s, 2), "training_data_wait": wait},
                   extra=[{"label": "data wait % of step", "figure": wait["wait_pct"], "target": 5.0,
                           "comparison": "<="}])]


def _data_wait(cfg, example_set, s: Settings) -> dict:
    """A demo-sized phase-3 (end-to-end) training run through the trainer's loader: time in next(batch)."""
    torch.manual_seed(0)
    model = build_model(cfg).train()
    phase = cfg.train.multi_phase[-1]
    model.set_trainable(phase.trainable)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    data = TrainingData(train=MEGDataset(example_set, "train"), val=[], collate=collate_examples,
                        tokenizer=model.tokenizer)
    objective = TrainingObjective(model)
    loader = train_loader(data, cfg.train.batch_size, seed=0, offset=0, rank=0, world_size=1,
                          num_workers=cfg.train.num_workers)
    steps = s.pick(6, 1)
    waits, totals = [], []
    for step in range(steps + 1):  # step 0 is warm-up (k-means init of the codebooks)
        t0 = time.perf_counter()
        batch = next(loader)
        t1 = time.perf_counter()
        objective(batch, phase.losses)["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step:
            waits.append(t1 - t0)
            totals.append(time.perf_counter() - t0)
    return {"phase": phase.name, "losses": phase.losses, "batch_size": cfg.train.batch_size, "steps": steps,
            "num_workers": cfg.train.num_workers, "median_step_s": round(float(np.median(totals)), 4),
            "median_wait_s": round(float(np.median(waits)), 5), "wait_pct": 100 * sum(waits) / sum(totals)}


# ------------------------------------------------------------------------------------------- B6
def preprocess_file(path: str) -> dict:
    """What the cache builder does to one recording (run in a child process by :func:`bench_b6`)."""
    cfg = DataConfig()
    start = time.perf_counter()
    raw = read_recording(path)
    picks = meg_picks(raw, cfg.channel_types)
    n_out = output_length(raw.n_times, float(raw.info["sfreq"]), cfg.sfreq)
    out_path = Path(path).with_suffix(".preprocessed.npy")
    out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32, shape=(len(picks), n_out))
    preprocess_raw(raw, picks, cfg, out=out)
    median, iqr = fit_robust_scaler([out])
    for t in range(0, n_out, 200_000):
        block = out[:, t:t + 200_000]
        apply_robust_scaler(block, median, iqr, cfg.clamp, out=block)
    out.flush()
    seconds = time.perf_counter() - start
    del out
    out_path.unlink(missing_ok=True)
    return {"seconds": seconds, "recording_s": raw.n_times / float(raw.info["sfreq"]), "vm_hwm_gb": _vm_hwm_gb()}


def _vm_hwm_gb() -> float:
    """This process's own peak RSS: ``VmHWM`` (Linux), else ``getrusage(RUSAGE_SELF)`` (also this process
    alone; ``RUSAGE_CHILDREN`` in the parent would be the maximum over every child it ever ran)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def bench_b6(s: Settings) -> list[Result]:
    minutes = s.pick(60, 1)
    n_chans = s.pick(208, 32)
    path = long_npy(Path(s.workdir), minutes, n_chans)
    code = ("import json, sys; from brain2text.benchmarks.data import preprocess_file; "
            "print(json.dumps(preprocess_file(sys.argv[1])))")
    wall = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - wall
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return [Result("B6", "preprocessing a long recording", None, "x", 50.0, error=f"child failed: {tail}")]
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = child["vm_hwm_gb"]  # the measured process's own peak (not RUSAGE_CHILDREN: that counted the fixtures)
    speed = child["recording_s"] / child["seconds"]
    return [Result("B6", f"preprocessing {minutes:g} min x {n_chans} ch x 1 kHz", speed, "x", 50.0,
                   measured=f"{child['seconds']:.1f} s for {child['recording_s']:.0f} s of MEG; peak RSS {peak:.2f} GB",
                   baseline="real time", details={"child": child, "child_wall_s": round(wall, 2),
                                                  "steps": "read (.npy, lazy) + band-pass 0.5-40 Hz + resample to 100 "
                                                           "Hz "
                                                           "+ robust scaler fit/apply (the 50 Hz notch is skipped: at "
                                                           "100 Hz out, 50 Hz is the Nyquist the resampler removes)"},
                   extra=[{"label": "peak RSS GB", "figure": peak, "target": 4.0, "comparison": "<="}])]
