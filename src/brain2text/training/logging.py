"""Training logs: TensorBoard (``output_dir/logs``), a JSON-lines history (``metrics.jsonl``) and, at
the end, PNG plots of the loss curves per phase and of codebook use (``output_dir/*.png``).

Only the main process writes. On resume, history beyond the resumed step is dropped (JSON lines
rewritten atomically, TensorBoard ``purge_step``), so a killed-and-resumed run logs each step once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from ..registry import LOSS_NAMES
from ..utils.atomic import atomic_path, atomic_write_text

HISTORY_FILE = "metrics.jsonl"


def read_history(path: Path) -> list[dict[str, Any]]:
    """Records of a history file; a torn last line (killed mid-write) is ignored."""
    records = []
    if not Path(path).exists():
        return records
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "step" in rec:
            records.append(rec)
    return records


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}


class MetricsLogger:
    def __init__(self, output_dir: Path, resume_step: int | None, enabled: bool = True):
        self.output_dir = Path(output_dir)
        self.history = self.output_dir / HISTORY_FILE
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        kept = [r for r in read_history(self.history) if resume_step is not None and r["step"] <= resume_step]
        atomic_write_text(self.history, "".join(json.dumps(r) + "\n" for r in kept))

        purge = None if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(log_dir=str(self.output_dir / "logs"), purge_step=purge)

    def log(self, step: int, phase: str, kind: str, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                tag = name if "/" in name else f"{kind}/{name}"
                self.writer.add_scalar(tag, value, step)
        record = {"step": step, "phase": phase, "kind": kind, **_finite(metrics)}
        with open(self.history, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, allow_nan=False) + "\n")

    def log_text(self, step: int, tag: str, text: str) -> None:
        if self.enabled:
            self.writer.add_text(tag, text, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)  # tight_layout has fitted it


def plot_history(output_dir: Path) -> list[Path]:
    """Write ``loss_curves.png`` (one panel per phase) and ``codebook_usage.png``; return their paths."""
    import matplotlib  # noqa: PLC0415 -- plots come at the end of a run: its start (and a killed run) skips 0.25 s

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 -- as above, after choosing the Agg backend

    records = read_history(Path(output_dir) / HISTORY_FILE)
    if not records:
        return []
    phases = list(dict.fromkeys(r["phase"] for r in records))
    written = []
    fig, axes = plt.subplots(1, len(phases), figsize=(4.5 * len(phases), 3.4), squeeze=False)
    for ax, phase in zip(axes[0], phases):
        rows = [r for r in records if r["phase"] == phase]
        for kind, key_filter in (("train", lambda k: k == "loss" or k in LOSS_NAMES),
                                 ("val", lambda k: k == "val_loss")):
            sel = [r for r in rows if r["kind"] == kind]
            keys = sorted({k for r in sel for k in r if key_filter(k) and isinstance(r[k], (int, float))})
            for key in keys:
                pts = [(r["step"], r[key]) for r in sel if isinstance(r.get(key), (int, float))]
                ax.plot(*zip(*pts), marker="o" if kind == "val" else None, markersize=3, label=f"{kind} {key}")
        ax.set_title(phase)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save_figure(fig, Path(output_dir) / "loss_curves.png")
    written.append(Path(output_dir) / "loss_curves.png")
    plt.close(fig)
    val = [r for r in records if r["kind"] == "val"]
    levels = sorted({k for r in val for k in r if k.startswith("rvq/") and k.endswith("_usage")})
    if levels:
        fig, (ax_u, ax_p) = plt.subplots(1, 2, figsize=(9, 3.4))
        for key in levels:
            pts = [(r["step"], r[key]) for r in val if isinstance(r.get(key), (int, float))]
            ax_u.plot(*zip(*pts), marker="o", markersize=3, label=key.split("/")[1].replace("_usage", ""))
            pkey = key.replace("_usage", "_perplexity")
            ppts = [(r["step"], r[pkey]) for r in val if isinstance(r.get(pkey), (int, float))]
            if ppts:
                ax_p.plot(*zip(*ppts), marker="o", markersize=3, label=key.split("/")[1].replace("_usage", ""))
        ax_u.set_title("share of codes used (validation)")
        ax_p.set_title("codebook perplexity (validation)")
        for ax in (ax_u, ax_p):
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
        fig.tight_layout()
        _save_figure(fig, Path(output_dir) / "codebook_usage.png")
        written.append(Path(output_dir) / "codebook_usage.png")
        plt.close(fig)
    return written
