"""Faults during training: SIGKILL at seeded points across the phases (and in the middle of writing a
checkpoint), SIGTERM; every resumed run ends bit-identical to an uninterrupted one (CPU). Each run is a
new process, forked from a ``multiprocessing`` forkserver that imported the training stack once."""

from __future__ import annotations

import functools
import multiprocessing
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from brain2text.training.checkpoint import list_checkpoints, load_checkpoint

TOTAL_STEPS = 12  # multi_phase of the stand-in config: 4 + 3 + 5


@functools.cache
def _forkserver():
    """A ``multiprocessing`` forkserver with the training stack imported once (3.5 s per process here)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["brain2text.training.run", "training_standins"])
    return ctx


def _start(out: Path, mode: str = "multi_phase", env: dict | None = None, args: list[str] | None = None):
    """Start one stand-in run in a new process, forked from a server that has imported the training stack
    but run nothing: signals and SIGKILLs are real, and no state of an earlier run is in the child. Its
    stdout and stderr go to a log beside ``out``."""
    from training_standins import main_in_child

    log = out.parent / f"{out.name}.{len(list(out.parent.glob(out.name + '.*.log')))}.log"
    proc = _forkserver().Process(target=main_in_child,
                                 args=([str(out), mode, *(args or [])], {"OMP_NUM_THREADS": "1", **(env or {})},
                                       str(log)))
    proc.start()
    return proc, log


def _finished(proc, log: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Wait for ``proc``; the result reads like ``subprocess.run``'s (stdout and stderr together in ``stderr``)."""
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        pytest.fail(f"stand-in run ({log.name}) timed out")
    output = log.read_text(encoding="utf-8") if log.is_file() else f"(the child wrote no {log.name})"
    return subprocess.CompletedProcess([log.name], proc.exitcode, "", output)


def _run(out: Path, mode: str = "multi_phase", env: dict | None = None, args: list[str] | None = None):
    return _finished(*_start(out, mode, env, args))


def _final_bytes(out: Path) -> bytes:
    return (out / "final_model" / "brain2text.safetensors").read_bytes()


@pytest.mark.slow
def test_sigkill_at_five_seeded_points_then_resume_is_bit_identical(tmp_path):
    reference = tmp_path / "reference"
    assert _run(reference).returncode == 0
    kills = sorted(random.Random(2026).sample(range(1, TOTAL_STEPS), 5))  # points across all three phases
    out = tmp_path / "killed"
    for step in kills:
        res = _run(out, env={"BRAIN2TEXT_TEST_KILL_AT_STEP": str(step)})
        assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
        for _, path in list_checkpoints(out / "checkpoints"):
            load_checkpoint(path)  # every step-* directory that exists loads cleanly
    # die half-way through writing the last checkpoint: the half-written one must be ignored
    res = _run(out, env={"BRAIN2TEXT_TEST_KILL_IN_CHECKPOINT": str(TOTAL_STEPS)})
    assert res.returncode == -signal.SIGKILL
    assert list((out / "checkpoints").glob(".step-*.tmp"))
    res = _run(out)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "half-written" in res.stderr and "resuming from" in res.stderr
    assert _final_bytes(out) == _final_bytes(reference)
    last = f"checkpoints/step-{TOTAL_STEPS:07d}/model.safetensors"
    assert (out / last).read_bytes() == (reference / last).read_bytes()
    ref_hist = [line.split('"lr"')[0] for line in (reference / "metrics.jsonl").read_text().splitlines()]
    our_hist = [line.split('"lr"')[0] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert our_hist == ref_hist  # each step logged once, with the same losses


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_writes_a_clean_checkpoint_and_exits_nonzero(tmp_path, sig):
    """SIGINT and SIGTERM share one handler: a clean checkpoint, then exit 2 without a traceback."""
    out = tmp_path / "run"
    args = ["train.full=[{name: full, steps: 100000, trainable: [encoder], losses: {mae: 1.0}, lr: 1.0e-3}]",
            "train.save_every=100000", "train.eval_every=100000"]
    proc, log = _start(out, "full", args=args)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(proc.pid, sig)
    res = _finished(proc, log, 120)
    err = res.stderr
    assert res.returncode == 2 and f"stopped by {sig.name}" in err, err[-2000:]
    assert "Traceback" not in err
    found = list_checkpoints(out / "checkpoints")
    assert len(found) == 1 and not list((out / "checkpoints").glob(".step-*"))
    ckpt = load_checkpoint(found[0][1])
    assert 0 < ckpt.step < 100000 and ckpt.state["optimizer"] is not None
