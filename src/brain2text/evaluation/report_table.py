"""Human-readable results: a Markdown table with the verdict in words, and a PNG figure.

The table lists the system (MEG) beside each control and the paired-bootstrap difference with its
95% interval; below it, one sentence per metric and control the system does NOT beat, e.g.
"MEG does not beat the noise control on WER (interval includes 0)." A reader never has to work out
from the numbers whether the decoder uses the MEG.
"""

from __future__ import annotations

import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from ..utils.atomic import atomic_path
from .bootstrap import beats
from .metrics import LOWER_IS_BETTER

LABELS = {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4", "rougeL_f": "ROUGE-L F",
          "bertscore_f1": "BERTScore F1", "wer": "WER", "top1": "top-1 retrieval", "top10": "top-10 retrieval"}


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _diff(d: dict | None) -> str:
    if d is None:
        return "n/a"
    lo, hi = d["ci95"]
    return f"{d['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _keys(columns: dict[str, dict]) -> list[str]:
    first = next(iter(columns.values()))
    return [k for k in first if first[k] is not None or any(c.get(k) is not None for c in columns.values())]


def verdicts(differences: dict[str, dict], system: str = "MEG", suffix: str = " control",
             names: dict[str, str] | None = None) -> list[str]:
    """One sentence per (comparison, metric) the system does not beat."""
    names = names or {}
    lines = []
    for name, diffs in differences.items():
        for key, d in diffs.items():
            if beats(d, key):
                continue
            lo, hi = d["ci95"]
            worse = (lo > 0) if key in LOWER_IS_BETTER else (hi < 0)
            other = names.get(name, f"the {name}{suffix}")
            why = f"{other} is better, interval excludes 0" if worse else "interval includes 0"
            lines.append(f"{system} does not beat {other} on {LABELS.get(key, key)} ({why}).")
    return lines


def comparison_table(columns: dict[str, dict], differences: dict[str, dict], system: str = "MEG",
                     suffix: str = " control", names: dict[str, str] | None = None) -> str:
    """Markdown: metrics as rows; each system/control a column; then system - X with 95% interval."""
    systems = list(columns)
    keys = _keys(columns)
    head = ["metric", *systems, *[f"{system} - {n} [95% CI]" for n in differences]]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in keys:
        label = LABELS.get(key, key) + (" (lower is better)" if key in LOWER_IS_BETTER else "")
        cells = [label, *[_fmt(columns[n].get(key)) for n in systems],
                 *[_diff(differences[n].get(key)) for n in differences]]
        rows.append("| " + " | ".join(cells) + " |")
    lines = verdicts(differences, system, suffix, names)
    if differences and not lines:
        lines = [f"{system} beats {'every control' if suffix else ', '.join((names or {}).values()) or 'it'} "
                 "on every metric (95% intervals exclude 0)."]
    return "\n".join(rows) + ("\n\n" + "\n".join(f"- {line}" for line in lines) if lines else "") + "\n"


def format_score_table(result: dict) -> str:
    """The table printed by ``brain2text score``."""
    columns = {"predictions": result["metrics"]}
    if "against_metrics" in result:
        columns["against"] = result["against_metrics"]
    def label(key: str) -> str:
        field = result.get(f"{key}_field")
        return f"{result.get(key)}" + (f"[{field}]" if field else "")

    return comparison_table(columns, result.get("differences", {}), system=label("predictions"), suffix="",
                            names={"against": label("against")})


def evaluation_markdown(result: dict) -> str:
    """The Markdown report beside ``metrics.json``."""
    split = result.get("split", {})
    head = [f"# brain2text evaluation: {result.get('model_path', '')}", "",
            f"- split: {split.get('mode')} ({split.get('which')}), {result['n_sentences']} sentences"
            + ("; SYNTHETIC data" if result.get("synthetic") else ""),
            f"- decoding: {result.get('strategy')}, free-running",
            f"- BLEU tokenizer: {result.get('bleu_tokenizer')}; BERTScore: {result.get('bertscore_backbone')}",
            f"- intervals: paired bootstrap, {result.get('n_bootstrap')} resamples, seed {result.get('bootstrap_seed')}", ""]
    columns = {"MEG": result["metrics"], **result.get("controls", {})}
    return "\n".join(head) + comparison_table(columns, result.get("differences", {}))


def write_figure(result: dict, per_sentence_wer: dict[str, list[float]], path: str | os.PathLike) -> None:
    """PNG: metric bars (MEG and controls, with the control's interval mapped onto its bar), WER histogram."""
    matplotlib.use("Agg")

    columns = {"MEG": result["metrics"], **result.get("controls", {})}
    keys = [k for k in _keys(columns) if columns["MEG"].get(k) is not None]
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / len(columns)
    x = np.arange(len(keys))
    for j, (name, values) in enumerate(columns.items()):
        heights = np.array([values.get(k) or 0.0 for k in keys])
        err = None
        if name != "MEG":
            # the control values compatible with the MEG - control interval: [MEG - hi, MEG - lo]
            diffs = result.get("differences", {}).get(name, {})
            err = np.array([[abs(diffs[k]["ci95"][1] - diffs[k]["delta"]) if k in diffs else 0.0 for k in keys],
                            [abs(diffs[k]["delta"] - diffs[k]["ci95"][0]) if k in diffs else 0.0 for k in keys]])
        ax.bar(x + (j - (len(columns) - 1) / 2) * width, heights, width, label=name, yerr=err, capsize=2)
    ax.set_xticks(x, [LABELS.get(k, k) for k in keys], rotation=30, ha="right")
    ax.set_title("MEG vs controls (error bars: 95% paired-bootstrap CI of MEG - control)")
    ax.legend(fontsize=8)
    bins = np.linspace(0, max([1.0] + [max(v, default=0) for v in per_sentence_wer.values()]), 21)
    for name, values in per_sentence_wer.items():
        hx.hist(values, bins=bins, histtype="step", label=name, linewidth=1.5)
    hx.set_xlabel("per-sentence WER")
    hx.set_ylabel("sentences")
    hx.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
