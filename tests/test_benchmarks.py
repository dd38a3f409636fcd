"""The benchmark suite runs (``--quick``) and writes valid results; ``benchmarks/gpu.py --tiny`` runs on the CPU.

Benchmarks are not tests: nothing here checks a speed, only that every benchmark ran without error
and that the JSON and Markdown hold what the README's table is made from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IDS = ["B1", "B10", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9"]


def _run(args: list[str], tmp_path: Path, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_quick_suite_writes_results_json_and_markdown(tmp_path):
    out = tmp_path / "results.json"
    proc = _run(["-m", "benchmarks", "--quick", "--out", str(out), "--workdir", str(tmp_path / "work")], tmp_path, 600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["quick"] is True
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]
    assert record["versions"]["torch"] and record["versions"]["mne"]
    rows = {r["id"]: r for r in record["results"]}
    assert sorted(set(rows)) == sorted(IDS)
    for r in record["results"]:
        assert r["error"] is None, (r["id"], r["error"])
        assert isinstance(r["figure"], float) and r["figure"] > 0, r
        assert r["measured"] and r["baseline"]
        assert (r["passed"] in (True, False) and r["target"] > 0) or (r["comparison"] == "report"
                                                                     and r["id"] in ("B9", "B10"))
    assert rows["B1"]["details"]["index_agreement_pct"] == 100.0  # same codebooks => same codes
    peers = [r for r in record["results"] if r["id"] == "B10"]
    assert len(peers) == 3 and all(0 <= r["details"]["agreement_pct"] <= 100 for r in peers)
    assert rows["B6"]["details"]["child"]["vm_hwm_gb"] > 0
    assert "rusage_children_maxrss_gb" not in rows["B6"]["details"]  # the peak is the measured child's own
    # every real-time figure carries the host's speed, measured just before it
    for rid in ("B6", "B8"):
        assert rows[rid]["details"]["host_mm_gflops_before"] > 0
        table = out.with_suffix(".md").read_text()
        assert "GFLOP/s" in next(line for line in table.splitlines() if line.startswith(f"| {rid} "))
    memory = record["full_size_memory"]["memory_gb"]
    assert memory["inference"] > 10 and "multi_phase/end_to_end" in memory
    table = out.with_suffix(".md").read_text()
    assert table.count("\n| B") == len(record["results"]) and "| inference |" in table


def test_only_selects_benchmarks_and_unknown_ids_are_one_line_errors(tmp_path):
    out = tmp_path / "r.json"
    proc = _run(["-m", "benchmarks", "--quick", "--only", "B3", "--out", str(out), "--workdir", str(tmp_path)],
                tmp_path, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert [r["id"] for r in record["results"]] == ["B3"] and "full_size_memory" not in record
    bad = tmp_path / "bad.json"
    proc = _run(["-m", "benchmarks", "--only", "B3,B99", "--out", str(bad)], tmp_path, 120)
    assert proc.returncode == 2 and not bad.exists()
    assert proc.stderr.strip().splitlines() == ["error: --only: unknown benchmark(s) B99; known: B1, B2, B3, B4, B5, "
                                                "B6, B7, B8, B9, B10, memory"]


def test_merge_reruns_some_rows_and_keeps_the_others(tmp_path):
    out = tmp_path / "r.json"
    proc = _run(["-m", "benchmarks", "--quick", "--only", "B3", "--merge", "--out", str(out),
                 "--workdir", str(tmp_path)], tmp_path, 120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and not out.exists()
    old = {"quick": True, "started": "T0", "versions": {"torch": "x"},
           "machine": {"cpu": "c", "cores": 2, "torch_threads": 2, "ram_gb": 1, "load_average_start": [1],
                       "load_average_end": [1]},
           "results": [{"id": i, "name": i, "figure": 1.0, "unit": "x", "target": 1.0, "comparison": ">=", "extra": [],
                        "passed": True, "measured": "old", "baseline": "b", "error": None} for i in ("B2", "B3", "B4")]}
    out.write_text(json.dumps(old))
    proc = _run(["-m", "benchmarks", "--quick", "--only", "B3", "--merge", "--out", str(out),
                 "--workdir", str(tmp_path)], tmp_path, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert [r["id"] for r in record["results"]] == ["B2", "B3", "B4"]
    assert [r["measured"] == "old" for r in record["results"]] == [True, False, True]
    assert record["started"] == "T0" and record["reruns"][0]["ids"] == ["B3"]
    assert "B3 rerun alone" in out.with_suffix(".md").read_text()
    proc = _run(["-m", "benchmarks", "--only", "B3", "--merge", "--out", str(out)], tmp_path, 120)
    assert proc.returncode == 2 and "--quick" in proc.stderr  # quick and full-size rows never mix


def test_merge_replaces_every_row_of_a_rerun_id():
    """B4 and B10 have several rows under one id: a rerun replaces all of them, in place, with all its own."""
    from brain2text.benchmarks.suite import merge_records

    row = lambda i, m: {"id": i, "measured": m}  # noqa: E731
    machine = {"load_average_start": [1], "load_average_end": [1]}
    old = {"results": [row("B4", "old a"), row("B4", "old b"), row("B8", "old"), row("B10", "old")]}
    new = {"results": [row("B4", "new a"), row("B4", "new b"), row("B10", "new a"), row("B10", "new b"),
                       row("B11", "new")], "started": "T1", "machine": machine, "versions": {}}
    merged = merge_records(old, new)["results"]
    assert [(r["id"], r["measured"]) for r in merged] == [
        ("B4", "new a"), ("B4", "new b"), ("B8", "old"), ("B10", "new a"), ("B10", "new b"), ("B11", "new")]


def test_gpu_script_tiny_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    proc = _run(["benchmarks/gpu.py", "--tiny", "--out", str(out)], tmp_path, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["tiny"] is True and record["device"] == "cpu"
    phase3, enc = record["results"]
    assert phase3["decoder_tokens_per_step"] > phase3["meg_tokens_per_step"] > 0
    assert phase3["flops_per_step"] > 0 and phase3["peak_tflops_used"] == 989.0 and 0 < phase3["mfu_pct"] < 100
    assert enc["meg_tokens_per_s"] > 0


def test_readme_shows_the_committed_benchmark_table():
    """The README's benchmark table is the committed results.md's, row for row (regenerate both together)."""
    results = (REPO / "benchmarks" / "results.md").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = [line for line in results.splitlines() if line.startswith("| B")]
    assert len(rows) >= 8
    missing = [row for row in rows if row not in readme]
    assert not missing, f"README.md lacks these rows of benchmarks/results.md: {missing[:2]}"


def test_demo_shaped_benchmark_model_is_the_demo_config():
    """B4, B7 and B8 time the demo's model: their settings must be configs/demo.yaml's."""
    from brain2text.benchmarks.fixtures import DEMO_MODEL
    from brain2text.config import load_config

    demo = load_config(REPO / "configs" / "demo.yaml")
    for section, values in DEMO_MODEL.items():
        for key, value in values.items():
            assert getattr(getattr(demo, section), key) == value, (section, key)


def test_b9_times_the_demo_end_to_end_phase():
    """B9 times one step of configs/demo.yaml's end_to_end phase: the same trainable parts and losses."""
    from brain2text.benchmarks.lm_training import PHASE
    from brain2text.config import load_config

    demo = next(p for p in load_config(REPO / "configs" / "demo.yaml").train.multi_phase if p.name == "end_to_end")
    assert sorted(PHASE.trainable) == sorted(demo.trainable) and PHASE.losses == demo.losses
