import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import brain2text.data.cache as cache_mod
from bids_helpers import flatten_events
from brain2text.data.cache import MANIFEST, build_cache, load_cache
from brain2text.errors import DataError


def _complete_caches(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.iterdir() if (p / MANIFEST).is_file()] if cache_dir.is_dir() else []


def test_build_then_hit_reads_only(tiny_cfg, monkeypatch):
    built = build_cache(tiny_cfg, progress=False)
    assert not built.hit and len(built) == 4 * 6  # 4 recordings x 6 sentences of the events slice
    assert built.sfreq == 100.0 and built.ch_names[:2] == ["MEG 001", "MEG 002"] and built.positions.shape == (12, 2)
    assert built.subjects == ["01", "02"] and not built.synthetic and built.skipped == []

    def boom(*a, **k):
        raise AssertionError("a cache hit must not preprocess")

    monkeypatch.setattr(cache_mod, "preprocess_raw", boom)
    monkeypatch.setattr(cache_mod, "read_recording", boom)
    hit = build_cache(tiny_cfg, progress=False)
    assert hit.hit and hit.path == built.path and hit.examples == built.examples
    np.testing.assert_array_equal(hit.get_meg(3), built.get_meg(3))


def test_examples_windows_and_scaling(tiny_cfg):
    es = build_cache(tiny_cfg, progress=False)
    texts_by_split = {}
    for i, ex in enumerate(es.examples):
        meg = es.get_meg(i)
        assert meg.shape == (ex["n_chans"], ex["n_times"]) == (12, ex["end"] - ex["start"]) and meg.dtype == np.float32
        assert np.abs(meg).max() <= tiny_cfg.clamp
        # first word's response sits margin_before into the window (within one sample)
        assert abs(ex["word_onsets"][0] - tiny_cfg.margin_before) <= 1.0 / es.sfreq
        assert ex["word_onsets"] == sorted(ex["word_onsets"]) and ex["word_onsets"][-1] < ex["n_times"] / es.sfreq
        assert ex["subject_index"] == es.subjects.index(ex["subject"])
        texts_by_split.setdefault(ex["split"], set()).add(ex["text"])
    assert not (texts_by_split.get("test", set()) & texts_by_split.get("train", set()))
    # robust scaling fitted on the train windows: there, each channel's median ~0 and IQR ~1
    sc = es.scalers
    assert {v["source"] for v in sc.values()} == {"train_windows"} and len(sc) == 2
    train = np.concatenate([es.get_meg(i) for i in es.indices("train") if es.examples[i]["subject"] == "01"], axis=1)
    np.testing.assert_allclose(np.median(train, axis=1), 0.0, atol=0.15)
    q25, q75 = np.percentile(train, [25, 75], axis=1)
    np.testing.assert_allclose(q75 - q25, 1.0, atol=0.2)


def test_changed_parameter_or_file_rebuilds(tiny_cfg):
    first = build_cache(tiny_cfg, progress=False)
    other = build_cache(dataclasses.replace(tiny_cfg, h_freq=30.0), progress=False)
    assert not other.hit and other.path != first.path
    assert not np.allclose(other.get_meg(0), first.get_meg(0))
    assert (build_cache(dataclasses.replace(tiny_cfg, meg_delay=0.1), progress=False).path
            not in (first.path, other.path))
    events = Path(tiny_cfg.bids_root) / "sub-01" / "ses-0" / "meg" / "sub-01_ses-0_task-1_events.tsv"
    os.utime(events, (time.time() + 5, time.time() + 5))
    touched = build_cache(tiny_cfg, progress=False)
    assert not touched.hit and touched.path != first.path
    assert build_cache(tiny_cfg, progress=False).hit


def test_interrupted_build_leaves_no_complete_cache(tiny_cfg, monkeypatch):
    calls = []
    real = cache_mod.preprocess_raw

    def fail_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash mid-build")
        return real(*a, **k)

    monkeypatch.setattr(cache_mod, "preprocess_raw", fail_on_second)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_cache(tiny_cfg, progress=False)
    cache_dir = Path(tiny_cfg.cache_dir)
    assert _complete_caches(cache_dir) == [] and [p for p in cache_dir.iterdir() if not p.name.startswith(".")] == []
    monkeypatch.setattr(cache_mod, "preprocess_raw", real)
    es = build_cache(tiny_cfg, progress=False)
    assert not es.hit and len(es) == 24 and len(_complete_caches(cache_dir)) == 1


KILL_SCRIPT = """
import sys, time
from pathlib import Path
import brain2text.data.cache as c
from brain2text.config import DataConfig
real = c._apply_scalers
def slow(*a, **k):
    real(*a, **k)
    Path(sys.argv[3]).write_text("in the middle")
    time.sleep(60)
c._apply_scalers = slow
c.build_cache(DataConfig(bids_root=sys.argv[1], cache_dir=sys.argv[2], val_fraction=0.2, test_fraction=0.2),
              progress=False)
"""


def test_killed_build_is_recovered(tiny_cfg, tmp_path):
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, tiny_cfg.bids_root, tiny_cfg.cache_dir, str(marker)])
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), "the build never reached the kill point"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    cache_dir = Path(tiny_cfg.cache_dir)
    assert _complete_caches(cache_dir) == []
    assert any(p.name.endswith(".tmp") for p in cache_dir.iterdir())  # the dead build's leftovers stay hidden
    es = build_cache(tiny_cfg, progress=False)
    assert not es.hit and len(es) == 24


def test_unreadable_recording_is_skipped(tiny_cfg, caplog):
    bad = Path(tiny_cfg.bids_root) / "sub-02" / "ses-1" / "meg" / "sub-02_ses-1_task-1_meg.fif"
    bad.write_bytes(b"\x00garbage" * 100)
    bad_events = Path(tiny_cfg.bids_root) / "sub-02" / "ses-0" / "meg" / "sub-02_ses-0_task-1_events.tsv"
    bad_events.write_text(bad_events.read_text() + "99.0\t0\t{'kind': oops}\t1\t1\n")
    es = build_cache(tiny_cfg, progress=False)
    assert len(es) == 12 and {ex["subject"] for ex in es.examples} == {"01"}
    reasons = {s.path: s.reason for s in es.skipped}
    assert "cannot read as a recording" in reasons[str(bad)]
    assert "not a Python dict literal" in reasons[str(bad_events)]
    assert str(bad) in caplog.text and str(bad_events) in caplog.text  # warned, not silent


def test_subject_without_train_data_scales_on_own_recordings(tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, split="story", test_stories=["cable_spool_fort"], val_stories=[])
    es = build_cache(cfg, progress=False)
    assert {ex["split"] for ex in es.examples} == {"test"}
    assert {v["source"] for v in es.scalers.values()} == {"own_recordings"}


def test_synthetic_flag_and_no_examples_error(tiny_cfg):
    desc = Path(tiny_cfg.bids_root) / "dataset_description.json"
    desc.write_text(json.dumps({"Name": "synthetic MEG-MASC", "Synthetic": True}))
    assert build_cache(tiny_cfg, progress=False).synthetic
    with pytest.raises(DataError, match="no usable sentence examples"):
        build_cache(dataclasses.replace(tiny_cfg, stories=["lw1"]), progress=False)


def test_load_cache_rejects_incomplete(tmp_path):
    with pytest.raises(DataError, match="not a complete brain2text cache"):
        load_cache(tmp_path)


def test_concurrent_build_keeps_the_first_finished_cache(tiny_cfg, monkeypatch):
    first = build_cache(tiny_cfg, progress=False)
    marker = first.path / "marker"
    marker.write_text("first")
    real_build = cache_mod._build
    # Pretend the cache was not there when this process looked, but appears before it finishes.
    monkeypatch.setattr(cache_mod, "MANIFEST", "manifest-not-yet.json")

    def build_and_restore(*a, **k):
        out = real_build(*a, **k)
        monkeypatch.setattr(cache_mod, "MANIFEST", MANIFEST)
        return out

    monkeypatch.setattr(cache_mod, "_build", build_and_restore)
    again = build_cache(tiny_cfg, progress=False)
    assert again.hit and marker.read_text() == "first"
    assert [p.name for p in Path(tiny_cfg.cache_dir).iterdir()] == [first.path.name]


def test_flattened_events_give_identical_examples(tiny_cfg, tmp_path):
    original = build_cache(tiny_cfg, progress=False)
    for events in Path(tiny_cfg.bids_root).rglob("*_events.tsv"):
        flatten_events(events, events)
        assert "{" not in events.read_text()
    flat = build_cache(tiny_cfg, progress=False)
    assert not flat.hit and flat.path != original.path
    assert flat.examples == original.examples
    np.testing.assert_array_equal(flat.get_meg(5), original.get_meg(5))
