"""Human-readable results: Markdown tables with a verdict word per metric, and a PNG figure.

The first table lists the system (MEG) beside each control (scores in %). The second gives, per metric
and control, the paired difference in percentage points with its 95% interval, the permutation p-value
and one verdict word: beats, worse or not established (:func:`~brain2text.evaluation.bootstrap.verdict`,
the same rule everywhere). Below it, for each control one line saying where the system beats it and
where not, and one sentence for every metric it does not beat, e.g. "MEG does not beat the noise
control on WER: not established (the interval includes 0; p = 0.21)." A reader never has to work out
from the numbers, or from a missing line, whether the decoder uses the MEG.

Figures: scores with 1 decimal; differences in percentage points, bounds with 2 decimals, more where a
non-zero bound would round to zero (so its sign always shows: +0.0003 on the 0-1 scale prints +0.03).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from ..utils.atomic import atomic_path
from .bootstrap import near_edge, verdict
from .metrics import LOWER_IS_BETTER

LABELS = {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4", "rouge1_f": "ROUGE-1 F",
          "rouge2_f": "ROUGE-2 F", "rougeL_f": "ROUGE-L F", "bertscore_f1": "BERTScore F1", "wer": "WER",
          "top1": "top-1 retrieval", "top10": "top-10 retrieval"}
MINUS = "\u2212"  # the minus sign of a "A − B" header


def pct(value) -> str:
    """A score in % with 1 decimal ("n/a" for None)."""
    return "n/a" if value is None else f"{100 * value:.1f}"


def signed_pp(value: float, digits: int = 2) -> str:
    """``value`` (0-1 scale) in signed percentage points; more decimals where a non-zero value would
    round to 0, so that its sign shows (up to 6; exact zero prints 0.00)."""
    v = 100 * float(value)
    if v == 0:
        return f"{0:.{digits}f}"
    while round(abs(v), digits) == 0 and digits < 6:
        digits += 1
    return f"{v:+.{digits}f}"


def p_text(p) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3g}"


def interval_text(d: dict) -> str:
    """``+24.3 [+21.05, +27.60]``: the difference and its 95% interval in percentage points."""
    lo, hi = d["ci95"]
    return f"{signed_pp(d['delta'], 1)} [{signed_pp(lo)}, {signed_pp(hi)}]"


def _edge(d: dict, key: str) -> bool:
    return bool(d.get("verdict_near_edge", near_edge(d, key)))


def difference_cell(d: dict | None, key: str) -> str:
    """``+24.3 [+21.05, +27.60], p <0.001: beats`` (``near the edge`` appended where it is)."""
    if d is None:
        return "n/a"
    edge = " (near the edge)" if _edge(d, key) else ""
    return f"{interval_text(d)}, p {p_text(d.get('p_value'))}: {verdict(d, key)}{edge}"


def _keys(columns: dict[str, dict]) -> list[str]:
    first = next(iter(columns.values()))
    return [k for k in first if first[k] is not None or any(c.get(k) is not None for c in columns.values())]


def _why(d: dict, key: str, system: str) -> str:
    lo, hi = d["ci95"]
    p = d.get("p_value")
    p_part = "" if p is None else f"; p = {p_text(p)}"
    word = verdict(d, key)
    if word == "worse":
        return f"it is worse (the interval excludes 0 against {system}{p_part})"
    excludes = (hi < 0 or lo > 0)
    if excludes and p is not None:
        return f"not established (the interval excludes 0 but p = {p_text(p)} is not below 0.05)"
    return f"not established (the interval includes 0{p_part})"


def verdicts(differences: dict[str, dict], system: str = "MEG", suffix: str = " control",
             names: dict[str, str] | None = None) -> list[str]:
    """One sentence per (comparison, metric) the system does not beat, or beats only near the edge."""
    names = names or {}
    lines = []
    for name, diffs in differences.items():
        other = names.get(name, f"the {name}{suffix}")
        for key, d in diffs.items():
            label = LABELS.get(key, key)
            if verdict(d, key) != "beats":
                lines.append(f"{system} does not beat {other} on {label}: {_why(d, key, system)}.")
            elif _edge(d, key):
                lines.append(f"{system} beats {other} on {label}, but near the edge: within 3 Monte-Carlo errors "
                             "of the threshold (rerun with more resamples to settle it).")
    return lines


def summaries(differences: dict[str, dict], system: str = "MEG", suffix: str = " control",
              names: dict[str, str] | None = None) -> list[str]:
    """Per comparison, either way: whether the system beats it on every metric, on none, or on which."""
    names = names or {}
    out = []
    for name, diffs in differences.items():
        other = names.get(name, f"the {name}{suffix}")
        missed = [LABELS.get(k, k) for k, d in diffs.items() if verdict(d, k) != "beats"]
        n = len(diffs)
        if not missed:
            out.append(f"{system} beats {other} on every metric ({n}).")
        elif len(missed) == n:
            out.append(f"{system} does NOT beat {other} on any metric ({n}).")
        else:
            out.append(f"{system} beats {other} on {n - len(missed)} of {n} metrics, not on: {', '.join(missed)}.")
    return out


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def comparison_table(columns: dict[str, dict], differences: dict[str, dict], system: str = "MEG",
                     suffix: str = " control", names: dict[str, str] | None = None) -> str:
    """Markdown: metrics as rows, each system a column (%); then system − X per metric (percentage points,
    95% interval, p, verdict); then the verdicts in words."""
    systems = list(columns)
    keys = _keys(columns)
    label = {k: LABELS.get(k, k) + (" (lower is better)" if k in LOWER_IS_BETTER else "") for k in keys}
    rows = [_row(["metric (%)", *systems]), "|---|" + "---:|" * len(systems)]
    rows += [_row([label[k], *[pct(columns[n].get(k)) for n in systems]]) for k in keys]
    if differences:
        head = [f"{system} {MINUS} {names.get(n, n) if names else n}" for n in differences]
        rows += ["", f"{system} minus each, in percentage points: difference [95% interval], permutation p: "
                     "verdict", "",
                 _row(["metric", *head]), "|---|" + "---|" * len(head)]
        rows += [_row([label[k], *[difference_cell(differences[n].get(k), k) for n in differences]])
                 for k in keys if any(k in differences[n] for n in differences)]
    lines = summaries(differences, system, suffix, names) + verdicts(differences, system, suffix, names)
    return "\n".join(rows) + ("\n\n" + "\n".join(f"- {line}" for line in lines) if lines else "") + "\n"


def _label(result: dict, key: str, other: str) -> str:
    """A file's base name (with its field), the full path where both files would read the same."""
    def name(k, full):
        field = result.get(f"{k}_field")
        path = str(result.get(k)) if full else Path(str(result.get(k))).name
        return path + (f"[{field}]" if field else "")

    return name(key, name(key, False) == name(other, False))


def format_score_table(result: dict) -> str:
    """The table printed by ``brain2text score``: warnings, how rows were grouped, then the tables."""
    system = _label(result, "predictions", "against")
    columns = {system: result["metrics"]}
    names = {}
    if "against_metrics" in result:
        names["against"] = _label(result, "against", "predictions")
        if names["against"] == system:  # a file scored against itself
            names["against"] += " (against)"
        columns[names["against"]] = result["against_metrics"]
    warnings = [f"WARNING: {w}" for w in result.get("warnings", [])]
    head = list(warnings)
    if result.get("grouping"):
        head.append(f"{result['n_sentences']} sentences; {result['grouping']}; {result.get('n_bootstrap')} bootstrap "
                    f"resamples, {result.get('n_permutations')} permutations, seed {result.get('bootstrap_seed')}")
    table = comparison_table(columns, result.get("differences", {}), system=system, suffix="", names=names)
    tail = "\n" + "\n".join(warnings) + "\n" if warnings else ""  # said again below the table
    return "\n".join(head) + ("\n\n" if head else "") + table + tail


def intervals_line(result: dict) -> str:
    """How the intervals and p-values were computed (old results: resamples and seed only)."""
    b = result.get("bootstrap")
    if not b:
        return f"paired bootstrap, {result.get('n_bootstrap')} resamples, seed {result.get('bootstrap_seed')}"
    unit = {"sentence": "sentences", "subject_sentence": "sentences x subjects (two-way)",
            "row": "rows"}[b["bootstrap_unit"]]
    clusters = "" if b["bootstrap_unit"] == "row" else f" in {b['n_clusters']} sentence clusters"
    subjects = f", {b['n_subjects']} subjects" if b.get("n_subjects") else ""
    return (f"paired bootstrap over {unit} ({b['n_rows']} rows{clusters}{subjects}), {b['n_bootstrap']} resamples; "
            f"paired permutation test, {b['n_permutations']} permutations; seed {b['bootstrap_seed']}")


def evaluation_markdown(result: dict) -> str:
    """The Markdown report beside ``metrics.json``."""
    split = result.get("split", {})
    head = [f"# brain2text evaluation: {result.get('model_path', '')}", "",
            f"- split: {split.get('mode')} ({split.get('which')}), {result['n_sentences']} sentences"
            + ("; SYNTHETIC data" if result.get("synthetic") else ""),
            f"- decoding: {result.get('strategy')}, free-running",
            f"- BLEU tokenizer: {result.get('bleu_tokenizer')}; BERTScore: {result.get('bertscore_backbone')}",
            f"- intervals: {intervals_line(result)}",
            "- verdict: beats / worse when the 95% interval excludes 0 and p < 0.05, else not established", "", ""]
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
