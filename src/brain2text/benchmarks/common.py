"""Shared pieces of the benchmark suite: timing, machine and library records, result rows.

Every figure is a ratio of two things measured in the same process, interleaved (A, B, A, B, ...)
after warm-up, so that load from other processes hits both sides alike; the median of the repeats
is kept. A result row records the measured values, the baseline, the ratio, the target and
whether it was met.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from ..utils.threads import torch_threads

LIBRARIES = ("torch", "numpy", "scipy", "mne", "transformers", "peft", "accelerate", "vector-quantize-pytorch",
             "brain2text")


@dataclass
class Settings:
    """Sizes of one suite run: ``quick`` shrinks everything to run in about a minute."""

    quick: bool = False
    workdir: str = ".cache/bench"  # generated recordings, caches and tiny models (reused between runs)
    repeats: int = 5
    warmup: int = 1

    def pick(self, full, quick):
        return quick if self.quick else full


@dataclass
class Result:
    id: str
    name: str
    figure: float | None  # the ratio the target is about
    unit: str  # "x" (ratio) or "%" (fraction in percent) or "s" etc.
    target: float | None
    comparison: str = ">="  # ">=" or "<=" (figure vs target); "report" = no pass/fail
    measured: str = ""  # human-readable: what we measured
    baseline: str = ""  # human-readable: what we compared with
    details: dict = field(default_factory=dict)
    extra: list = field(default_factory=list)  # further (figure, target, label) checks of the same benchmark
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool | None:
        if self.error is not None:
            return False
        checks = [(self.figure, self.target, self.comparison)] + [(e["figure"], e["target"], e.get("comparison", ">="))
                                                                   for e in self.extra]
        verdicts = [_meets(f, t, c) for f, t, c in checks if c != "report"]
        return None if not verdicts else all(verdicts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def _meets(figure, target, comparison) -> bool:
    if figure is None or target is None:
        return False
    return figure >= target if comparison == ">=" else figure <= target


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, dict]:
    """Time each callable ``repeats`` times, interleaved, after ``warmup`` untimed rounds.

    Returns ``{name: {"median_s", "min_s", "times_s"}}``.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "times_s": [round(x, 6) for x in t]}
            for name, t in times.items()}


def single_thread_cpu(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median process CPU seconds of each callable on one torch thread (after one warm-up call).

    A diagnostic beside the two-thread wall-clock figures: other processes barely move it, whereas on
    a busy 2-core machine two threads spend much of their time waiting for each other.
    """
    with torch_threads(1):
        for fn in fns.values():
            fn()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(max(1, repeats)):
            for name, fn in fns.items():
                start = time.process_time()
                fn()
                times[name].append(time.process_time() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) * 1024 / 1e9, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def host_mm_gflops(n: int = 1024, repeats: int = 5) -> float:
    """The host's speed right now: median GFLOP/s of ``torch.mm`` on ``n x n`` float32 (2 n^3 FLOP), with
    torch's threads. Written beside every figure measured against real time, which moves with the host."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return round(2 * n**3 / statistics.median(times) / 1e9, 1)


def machine() -> dict:
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "ram_gb": _ram_gb(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average_start": load_average()}


def versions() -> dict:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def optional_import(name: str):
    """The module, or None when it is not installed (a benchmark then reports itself skipped)."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None
