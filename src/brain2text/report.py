"""Write the report's tables and numbers from metrics JSON files, and build the PDF.

Every number in ``report/main.tex`` comes from a file this module generates under
``report/generated/``; nothing is typed by hand. Inputs are the JSON files that ``brain2text
evaluate`` writes (one per evaluation, e.g. held-out sentences and held-out story) and, optionally,
the decoding-strategy table of the demo.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

from .errors import Brain2TextError
from .evaluation.bootstrap import verdict
from .evaluation.report_table import interval_text, p_text, signed_pp
from .utils.atomic import atomic_write_text

# (key in metrics JSON, column header, scale, lower_is_better)
COLUMNS = [
    ("wer", "WER (\\%)", 100.0, True),
    ("bleu1", "BLEU-1", 100.0, False),
    ("bleu4", "BLEU-4", 100.0, False),
    ("rougeL_f", "ROUGE-L F", 100.0, False),
    ("bertscore_f1", "BERTScore F1", 100.0, False),
    ("top1", "Top-1 (\\%)", 100.0, False),
]
CONDITIONS = [("meg", "MEG"), ("noise", "noise"), ("surrogate", "surrogate MEG"), ("shuffled", "shuffled MEG"),
              ("no_meg", "no MEG")]


def _fmt(value, scale: float = 100.0, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    return f"{value * scale:.{digits}f}"


def _tex_escape(text: str) -> str:
    table = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
             "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}
    return "".join(table.get(c, c) for c in text)


def _macro_name(*parts: str) -> str:
    """A LaTeX macro name from parts: letters only (digits spelled out)."""
    digits = {"0": "Zero", "1": "One", "2": "Two", "3": "Three", "4": "Four", "5": "Five", "6": "Six",
              "7": "Seven", "8": "Eight", "9": "Nine"}
    out = ""
    for part in parts:
        for word in re.split(r"[^A-Za-z0-9]+", part):
            word = "".join(digits.get(c, c) for c in word)
            out += word[:1].upper() + word[1:]
    return out


def load_metrics(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Brain2TextError("metrics file not found (run `make demo` first)", path) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise Brain2TextError(f"cannot read metrics JSON ({exc})", path) from None
    for key in ("metrics", "controls", "differences", "n_sentences"):
        if key not in data:
            raise Brain2TextError(f"not a `brain2text evaluate` output: missing key '{key}'", path)
    return data


def condition_metrics(data: dict, condition: str) -> dict:
    return data["metrics"] if condition == "meg" else data["controls"].get(condition, {})


def _controls(data: dict) -> list[tuple[str, str]]:
    """The controls this metrics file has, in the report's order (files from before the surrogate lack it)."""
    return [(c, n) for c, n in CONDITIONS[1:] if c in data["differences"]]


def _p_cell(d: dict | None, key: str) -> str:
    if not d:
        return "--"
    p = d.get("p_value")
    return (f"{p_text(p).replace('<', '$<$')}, " if p is not None else "") + verdict(d, key)


# wide tables (an interval and a verdict per cell) are scaled down to the text width, never past it
FIT_OPEN, FIT_CLOSE = r"\resizebox{\textwidth}{!}{%", "}"


def results_table(data: dict, caption: str, label: str) -> str:
    """A LaTeX table: rows MEG and controls, columns metrics; then MEG minus control with 95% intervals
    (percentage points, bounds to 2 decimals or more where needed for the sign); then p and verdict."""
    cols = "l" + "r" * len(COLUMNS)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", FIT_OPEN, rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             "input & " + " & ".join(h for _, h, _, _ in COLUMNS) + r" \\", r"\midrule"]
    for cond, name in CONDITIONS:
        m = condition_metrics(data, cond)
        if not m:
            continue
        lines.append(f"{name} & " + " & ".join(_fmt(m.get(k), s) for k, _, s, _ in COLUMNS) + r" \\")
    lines.append(r"\midrule")
    for cond, name in _controls(data):
        diffs = data["differences"][cond]
        cells = []
        for key, _, scale, _ in COLUMNS:
            d = diffs.get(key)
            if not d:
                cells.append("--")
                continue
            lo, hi = d["ci95"]
            cells.append(f"{signed_pp(d['delta'], 1)} [{signed_pp(lo)}, {signed_pp(hi)}]")
        lines.append(f"MEG $-$ {name} & " + " & ".join(cells) + r" \\")
    lines.append(r"\midrule")
    for cond, name in _controls(data):
        diffs = data["differences"][cond]
        lines.append(f"p, verdict vs {name} & " + " & ".join(_p_cell(diffs.get(k), k) for k, *_ in COLUMNS) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", FIT_CLOSE, rf"\caption{{{caption}}}", rf"\label{{{label}}}",
              r"\end{table}", ""]
    return "\n".join(lines)


def beats_all_controls(data: dict, key: str, lower_is_better: bool) -> bool:
    """True when MEG beats every control of the file on ``key`` (:func:`~brain2text.evaluation.bootstrap.verdict`:
    the 95% interval excludes zero in MEG's favour and, where the file has p-values, p < 0.05)."""
    controls = _controls(data)
    if not controls:
        return False
    for cond, _ in controls:
        d = data["differences"][cond].get(key)
        if not d or verdict(d, "wer" if lower_is_better else key) != "beats":
            return False
    return True


def number_macros(name: str, data: dict) -> str:
    """``\\newcommand`` macros for numbers quoted in the text (e.g. ``\\SentenceMegWer``)."""
    out = [f"% generated from the {name} metrics JSON; do not edit"]
    out.append(rf"\newcommand{{\{_macro_name(name, 'N')}}}{{{int(data['n_sentences'])}}}")
    for cond, _ in CONDITIONS:
        m = condition_metrics(data, cond)
        for key, _, scale, _ in COLUMNS:
            if key in m:
                out.append(rf"\newcommand{{\{_macro_name(name, cond, key)}}}{{{_fmt(m[key], scale)}}}")
    for key, _, _, lower in COLUMNS:
        word = "beats every control" if beats_all_controls(data, key, lower) else "does not beat every control"
        out.append(rf"\newcommand{{\{_macro_name(name, 'verdict', key)}}}{{{word}}}")
    split = data.get("split", {})
    split_text = split.get("mode", "") if isinstance(split, dict) else str(split)
    out.append(rf"\newcommand{{\{_macro_name(name, 'split')}}}{{{_tex_escape(split_text)}}}")
    out.append(rf"\newcommand{{\{_macro_name(name, 'backbone')}}}"
               rf"{{{_tex_escape(str(data.get('bertscore_backbone', '')))}}}")
    return "\n".join(out) + "\n"


def strategies_table(rows: list[dict], split: str = "sentence") -> str:
    """Decoding strategies (rows) x inputs (columns: WER and BLEU-4 for MEG and each control any row has)."""
    present = [(c, n) for c, n in CONDITIONS if c == "meg" or any(c in row["controls"] for row in rows)]
    conds = [c for c, _ in present]
    lines = [r"\begin{table}[t]", r"\centering", r"\small", FIT_OPEN, r"\begin{tabular}{l" + "rr" * len(conds) + "}",
             r"\toprule",
             " & " + " & ".join(rf"\multicolumn{{2}}{{c}}{{{n}}}" for _, n in present) + r" \\",
             "strategy & " + " & ".join(["WER", "BLEU-4"] * len(conds)) + r" \\", r"\midrule"]
    for row in rows:
        cells = []
        for c in conds:
            m = row["metrics"] if c == "meg" else row["controls"].get(c, {})
            cells += [_fmt(m.get("wer")), _fmt(m.get("bleu4"))]
        lines.append(_tex_escape(row.get("name", row["strategy"])) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", FIT_CLOSE,
              rf"\caption{{Decoding strategies on the {SPLIT_NAMES.get(split, split)} of the synthetic benchmark (WER "
              r"and BLEU-4 in \%; \texttt{\_no\_llm}: the default search with \texttt{lm\_weight} 0).}",
              r"\label{tab:strategies" + ("" if split == "sentence" else f"_{split}") + "}", r"\end{table}", ""]
    return "\n".join(lines)


HEADROOM_SYSTEMS = (("ctc", "encoder alone (CTC)"), ("no_lm", "no LM, length bonus only"),
                    ("ngram", "n-gram of the training sentences"),
                    ("oracle", "oracle n-gram (has memorised the test sentences)"))


def headroom_table(summaries: dict[str, dict]) -> str:
    """The LM headroom of each split's CTC search (``lm_headroom`` of the strategies files): WER of each
    fused n-gram and its paired difference from the encoder alone."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small", FIT_OPEN, r"\begin{tabular}{llrrl}", r"\toprule",
             r"split & LM fused into the CTC search & \texttt{lm\_weight} / bonus & WER & minus CTC, 95\% interval \\",
             r"\midrule"]
    for split, h in summaries.items():
        name = f"{SPLIT_NAMES.get(split, split)} ({_fmt(h['unwritable_token_share'])}\\% not units)"
        for system, label in HEADROOM_SYSTEMS:
            row, d = h["systems"][system], h["wer_differences"].get(f"{system} - ctc")
            diff = "--" if d is None else f"${interval_text(d)}$ {d['verdict']}"
            lines.append(f"{name} & {label} & {row['lm_weight']:g} / {row['length_bonus']:g} & {_fmt(row['wer'])} & "
                         f"{diff} \\\\")
            name = ""
        lines.append(r"\midrule" if split != list(summaries)[-1] else r"\bottomrule")
    lines += [r"\end{tabular}", FIT_CLOSE,
              r"\caption{How much could a language model add to the CTC search? n-gram LMs fused in the LLM's place, "
              r"settings chosen on the validation split; the oracle's n-gram also holds the test sentences, so its "
              r"gain is a reference point, not a result. WER in \%, differences in percentage points "
              r"(sentence-clustered paired bootstrap). \emph{not units}: test tokens the word CTC head cannot write.}",
              r"\label{tab:headroom}", r"\end{table}", ""]
    return "\n".join(lines)


_METHOD = ("Scores in \\%; middle rows: MEG minus control in percentage points with paired 95\\% intervals that "
           "resample sentences (all subjects' examples of a sentence together); bottom rows: paired permutation "
           "p-value and verdict (beats / worse: interval excludes 0 and $p < 0.05$; else not established).")


SPLIT_NAMES = {"sentence": "held-out sentences", "story": "held-out story"}


def write_generated(evaluations: dict[str, Path], out_dir: Path,
                    strategies: dict[str, Path] | None = None) -> list[Path]:
    """Write ``results_<name>.tex`` and ``numbers_<name>.tex`` per evaluation, plus one strategies table per
    split of ``strategies`` (``strategies.tex`` for the sentence split, ``strategies_<split>.tex`` else) and,
    where those files hold the LM headroom, ``headroom.tex`` with every split's."""
    written = []
    captions = {
        "sentence": "Held-out sentences (sentence-hash split) of the \\emph{synthetic} MEG-MASC benchmark. " + _METHOD,
        "story": "Held-out story of the \\emph{synthetic} MEG-MASC benchmark. " + _METHOD,
    }
    macros = []
    for name, path in evaluations.items():
        data = load_metrics(path)
        p = out_dir / f"results_{name}.tex"
        atomic_write_text(p, results_table(data, captions.get(name, f"Evaluation {name}."), f"tab:{name}"))
        written.append(p)
        macros.append(number_macros(name, data))
    p = out_dir / "numbers.tex"
    atomic_write_text(p, "\n".join(macros))
    written.append(p)
    headroom = {}
    for split, path in (strategies or {}).items():
        try:
            summary = json.loads(Path(path).read_text(encoding="utf-8"))
            rows = summary["strategies"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise Brain2TextError(f"cannot read the strategies table ({exc})", path) from None
        p = out_dir / ("strategies.tex" if split == "sentence" else f"strategies_{split}.tex")
        atomic_write_text(p, strategies_table(rows, split))
        written.append(p)
        if summary.get("lm_headroom"):
            headroom[split] = summary["lm_headroom"]
    p = out_dir / "headroom.tex"
    if headroom:
        atomic_write_text(p, headroom_table(headroom))
        written.append(p)
    else:  # main.tex includes the file where it exists: an old one must not outlive its data
        p.unlink(missing_ok=True)
    return written


def build_pdf(report_dir: Path) -> Path:
    """pdflatex + bibtex + pdflatex x2 in ``report_dir``; returns the PDF path."""
    if shutil.which("pdflatex") is None or shutil.which("bibtex") is None:
        raise Brain2TextError("pdflatex/bibtex not found: install Debian's texlive-latex-base, "
                              "texlive-latex-recommended and texlive-fonts-recommended (`make report` does)")
    steps = [["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], ["bibtex", "main"],
             ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
             ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"]]
    for cmd in steps:
        proc = subprocess.run(cmd, cwd=report_dir, capture_output=True, text=True)
        if proc.returncode > (1 if cmd[0] == "bibtex" else 0):  # bibtex exits 1 on mere warnings
            tail = [line for line in proc.stdout.splitlines() if line.startswith("!")][:1]
            raise Brain2TextError(f"{cmd[0]} failed: {tail[0] if tail else 'see main.log'}", report_dir / "main.tex")
    return report_dir / "main.pdf"
