"""The report's tables are generated from metrics JSON, and match it."""

import json
import re
from pathlib import Path

import pytest

from brain2text.evaluation.bootstrap import verdict
from brain2text.report import COLUMNS, CONDITIONS, beats_all_controls, headroom_table, strategies_table, write_generated

REPO = Path(__file__).resolve().parents[1]
CONTROLS = ("noise", "surrogate", "shuffled", "no_meg")


def fake_metrics(seed: int = 0) -> dict:
    import random

    rng = random.Random(seed)
    keys = [k for k, *_ in COLUMNS] + ["bleu2", "bleu3", "top10"]

    def m():
        return {k: rng.random() for k in keys}

    return {
        "split": {"mode": "sentence"},
        "n_sentences": 37,
        "metrics": m(),
        "controls": {c: m() for c in CONTROLS},
        "differences": {c: {k: {"delta": rng.uniform(-1, 1), "ci95": sorted([rng.uniform(-1, 1), rng.uniform(-1, 1)]),
                                "p_value": rng.choice([0.0001, 0.03, 0.2])}
                            for k in keys} for c in CONTROLS},
        "bertscore_backbone": "all-MiniLM-L6-v2 (layer 6)",
        "synthetic": True,
    }


def _table_rows(tex: str) -> dict[str, list[str]]:
    rows = {}
    for line in tex.splitlines():
        if line.endswith(r"\\") and "&" in line:
            cells = [c.strip() for c in line[:-2].split("&")]
            rows[cells[0]] = cells[1:]
    return rows


def check_generated_matches(data: dict, out: Path, name: str):
    rows = _table_rows((out / f"results_{name}.tex").read_text())
    # old files: no surrogate
    conditions = [(c, label) for c, label in CONDITIONS if c == "meg" or c in data["controls"]]
    for cond, label in conditions:
        m = data["metrics"] if cond == "meg" else data["controls"][cond]
        for (key, _, scale, _), cell in zip(COLUMNS, rows[label]):
            if m.get(key) is None:  # e.g. retrieval without MEG for a strategy that cannot score it
                assert cell == "--", (cond, key)
                continue
            assert float(cell) == pytest.approx(m[key] * scale, abs=0.051), (cond, key)
    for cond, label in conditions[1:]:
        for (key, _, scale, _), cell in zip(COLUMNS, rows[f"MEG $-$ {label}"]):
            if data["differences"][cond].get(key) is None:
                assert cell == "--", (cond, key)
                continue
            nums = [float(x) for x in re.findall(r"[-+]?\d+\.\d+", cell)]
            d = data["differences"][cond][key]
            assert nums == pytest.approx([d["delta"] * scale, d["ci95"][0] * scale, d["ci95"][1] * scale], abs=0.051)
        p_row = rows.get(f"p, verdict vs {label}")
        if p_row is None:  # generated before p-values existed
            continue
        for (key, *_), cell in zip(COLUMNS, p_row):
            d = data["differences"][cond].get(key)
            assert cell == "--" if d is None else cell.endswith(verdict(d, key)), (cond, key, cell)
    macros = (out / "numbers.tex").read_text()
    cap = name.capitalize()
    assert rf"\newcommand{{\{cap}N}}{{{data['n_sentences']}}}" in macros
    wer = f"{data['metrics']['wer'] * 100:.1f}"
    assert rf"\newcommand{{\{cap}MegWer}}{{{wer}}}" in macros


def test_generated_tables_match_metrics(tmp_path):
    paths = {}
    datas = {}
    for i, name in enumerate(("sentence", "story")):
        datas[name] = fake_metrics(i)
        paths[name] = tmp_path / f"metrics_{name}.json"
        paths[name].write_text(json.dumps(datas[name]))
    out = tmp_path / "generated"
    write_generated(paths, out)
    for name in datas:
        check_generated_matches(datas[name], out, name)


def test_each_splits_strategies_table_names_its_rows_and_split(tmp_path):
    paths, strategies = {}, {}
    for i, split in enumerate(("sentence", "story")):
        paths[split] = tmp_path / f"metrics_{split}.json"
        paths[split].write_text(json.dumps(fake_metrics(i)))
        rows = []
        for name in ("fusion", "ctc", "fusion_no_llm"):
            data = fake_metrics(i + len(rows) + 10)
            rows.append({"name": name, "strategy": name.removesuffix("_no_llm"), "metrics": data["metrics"],
                         "controls": data["controls"]})
        strategies[split] = tmp_path / f"strategies_{split}.json"
        strategies[split].write_text(json.dumps({"split": split, "strategies": rows}))
    write_generated(paths, tmp_path / "generated", strategies)
    sentence = (tmp_path / "generated" / "strategies.tex").read_text()
    story = (tmp_path / "generated" / "strategies_story.tex").read_text()
    assert r"\label{tab:strategies}" in sentence and "held-out sentences" in sentence
    assert r"\label{tab:strategies_story}" in story and "held-out story" in story
    # LaTeX: an underscore outside math and labels must be escaped (pdflatex stops at "Missing $ inserted")
    for tex in (sentence, story):
        assert not re.search(r"(?<!\\)_", re.sub(r"\\label\{[^}]*\}", "", tex)), tex
    wer = json.loads(strategies["story"].read_text())["strategies"][2]["metrics"]["wer"]
    assert rf"fusion\_no\_llm & {100 * wer:.1f} &" in story
    assert not (tmp_path / "generated" / "headroom.tex").exists()  # no strategies file holds a headroom
    (tmp_path / "generated" / "headroom.tex").write_text("stale")
    write_generated(paths, tmp_path / "generated", strategies)
    assert not (tmp_path / "generated" / "headroom.tex").exists()  # an old table does not outlive its data


def _headroom(oracle_delta: float) -> dict:
    systems = {name: {"lm": name, "lm_weight": w, "length_bonus": b, "wer": wer}
               for name, w, b, wer in (("ctc", 0.0, 0.0, 0.7), ("no_lm", 0.0, 1.0, 0.69), ("ngram", 0.3, 2.0, 0.7),
                                       ("oracle", 0.5, 3.0, 0.7 + oracle_delta))}
    diff = {"delta": oracle_delta, "ci95": [oracle_delta - 0.01, oracle_delta + 0.012], "p_value": 0.01,
            "verdict": "beats"}
    return {"unwritable_token_share": 0.366, "systems": systems,
            "wer_differences": {f"{n} - ctc": dict(diff, delta=systems[n]["wer"] - 0.7) for n in systems if n != "ctc"}}


def test_headroom_table_has_every_split_and_the_oracles_interval(tmp_path):
    paths, strategies = {}, {}
    for i, split in enumerate(("sentence", "story")):
        paths[split] = tmp_path / f"metrics_{split}.json"
        paths[split].write_text(json.dumps(fake_metrics(i)))
        data = fake_metrics(i + 10)
        rows = [{"name": "fusion", "strategy": "fusion", "metrics": data["metrics"], "controls": data["controls"]}]
        strategies[split] = tmp_path / f"strategies_{split}.json"
        strategies[split].write_text(json.dumps({"split": split, "strategies": rows,
                                                 "lm_headroom": _headroom(-0.025 if i == 0 else -0.009)}))
    write_generated(paths, tmp_path / "generated", strategies)
    tex = (tmp_path / "generated" / "headroom.tex").read_text()
    assert r"\label{tab:headroom}" in tex and "held-out sentences (36.6\\% not units)" in tex
    assert "held-out story (36.6" in tex and "a reference point, not a result" in tex
    assert not re.search(r"(?<!\\)_", re.sub(r"\\label\{[^}]*\}", "", tex))
    assert "oracle n-gram (has memorised the test sentences) & 0.5 / 3 & 67.5 & $-2.5 [-3.50, -1.30]$ beats" in tex
    assert "& 69.1 & $-0.9 [-1.90, +0.30]$ beats" in tex and tex.count("encoder alone (CTC) & 0 / 0 & 70.0 & --") == 2


def test_verdict_requires_every_interval_to_exclude_zero_and_p_below_005():
    data = fake_metrics()
    for c in CONTROLS:
        data["differences"][c]["wer"] = {"delta": -0.3, "ci95": [-0.4, -0.2], "p_value": 0.001}
    assert beats_all_controls(data, "wer", lower_is_better=True)
    data["differences"]["surrogate"]["wer"]["p_value"] = 0.08
    assert not beats_all_controls(data, "wer", lower_is_better=True)
    data["differences"]["surrogate"]["wer"]["p_value"] = 0.001
    data["differences"]["shuffled"]["wer"] = {"delta": -0.1, "ci95": [-0.2, 0.01], "p_value": 0.001}
    assert not beats_all_controls(data, "wer", lower_is_better=True)


def test_metrics_from_before_the_surrogate_and_p_values_still_make_tables(tmp_path):
    data = fake_metrics(3)
    del data["controls"]["surrogate"], data["differences"]["surrogate"]
    for diffs in data["differences"].values():
        for d in diffs.values():
            del d["p_value"]
    path = tmp_path / "metrics_sentence.json"
    path.write_text(json.dumps(data))
    write_generated({"sentence": path}, tmp_path / "generated")
    tex = (tmp_path / "generated" / "results_sentence.tex").read_text()
    assert "surrogate" not in tex and "p, verdict vs noise" in tex
    check_generated_matches(data, tmp_path / "generated", "sentence")


def test_committed_report_tables_match_committed_metrics(tmp_path):
    """If the repository ships generated tables, they are exactly what its metrics JSON gives."""
    gen = REPO / "report" / "generated"
    jsons = {n: gen / f"metrics_{n}.json" for n in ("sentence", "story")}
    if not all(p.is_file() for p in jsons.values()):
        pytest.skip("no committed demo metrics in report/generated")
    for name, p in jsons.items():
        check_generated_matches(json.loads(p.read_text()), gen, name)
    headroom = {}
    for split, tex in (("sentence", "strategies.tex"), ("story", "strategies_story.tex")):
        summary = json.loads((gen / f"strategies_{split}.json").read_text())
        assert (gen / tex).read_text() == strategies_table(summary["strategies"], split)
        if summary.get("lm_headroom"):
            headroom[split] = summary["lm_headroom"]
    if headroom:
        assert (gen / "headroom.tex").read_text() == headroom_table(headroom)


def test_report_fails_clearly_without_metrics(tmp_path):
    from brain2text.cli import main

    (tmp_path / "main.tex").write_text("x")
    assert main(["report", "--demo_dir", str(tmp_path / "none"), "--report_dir", str(tmp_path), "--no-pdf"]) == 2
