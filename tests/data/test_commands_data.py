"""``brain2text inspect`` and ``brain2text prepare`` through the real command line entry."""

import json

import numpy as np
import pytest

from brain2text.cli import main


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_inspect_bids_json(tiny_bids, capsys):
    rc, out, err = _run(capsys, "inspect", str(tiny_bids), "--json")
    assert rc == 0
    info = json.loads(out)
    assert info["n_subjects"] == 2 and info["n_recordings"] == 4 and info["stories"] == ["cable_spool_fort"]
    assert info["n_words"] == 4 * 50 and info["n_sentences"] == 4 * 6 and info["skipped"] == []
    assert info["n_chans"] == [12] and info["sfreq"] == [200.0] and info["duration"] == pytest.approx(96.0)
    assert info["sessions"] == ["0", "1"] and info["synthetic"] is False


def test_inspect_bids_reports_unreadable_files_as_skipped(tiny_bids, capsys):
    bad = tiny_bids / "sub-02" / "ses-1" / "meg" / "sub-02_ses-1_task-1_meg.fif"
    bad.write_bytes(b"\x00garbage" * 100)
    rc, out, _ = _run(capsys, "inspect", str(tiny_bids))
    assert rc == 0 and "skipped: 1" in out and str(bad) in out and "recordings: 3" in out


def test_inspect_real_recording_and_npy(shared_data, tmp_path, capsys):
    rc, out, _ = _run(capsys, "inspect", str(shared_data / "meg" / "kit" / "test.sqd"), "--json")
    info = json.loads(out)
    assert rc == 0 and info["n_recordings"] == 1 and info["channel_types"]["mag"] == 157
    assert info["sfreq"] == [1000.0] and info["duration"] == 2.0 and info["n_words"] == 0
    np.save(tmp_path / "x.npy", np.ones((4, 300), np.float32))
    rc, out, _ = _run(capsys, "inspect", str(tmp_path / "x.npy"), "--sfreq", "150", "--json")
    assert rc == 0 and json.loads(out)["duration"] == 2.0


@pytest.mark.parametrize("content", [b"", b"\x00junk" * 40])
def test_inspect_unreadable_single_file_is_exit_2_one_line(tmp_path, capsys, content):
    path = tmp_path / "broken_raw.fif"
    path.write_bytes(content)
    rc, out, err = _run(capsys, "inspect", str(path))
    assert rc == 2 and out == "" and err.startswith(f"error: {path}: ") and err.count("\n") == 1


def test_inspect_npy_errors(tmp_path, capsys):
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    rc, _, err = _run(capsys, "inspect", str(tmp_path / "nan.npy"), "--sfreq", "100")
    assert rc == 2 and "NaN or Inf" in err and err.count("\n") == 1
    np.save(tmp_path / "ok.npy", np.ones((2, 5)))
    rc, _, err = _run(capsys, "inspect", str(tmp_path / "ok.npy"))
    assert rc == 2 and "sampling rate unknown" in err


def test_prepare_builds_then_hits(tiny_bids, tmp_path, capsys):
    argv = ["prepare", f"data.bids_root={tiny_bids}", f"data.cache_dir={tmp_path / 'c'}", "--quiet"]
    rc, out, _ = _run(capsys, *argv)
    assert rc == 0 and "(built)" in out and "train" in out and "test" in out
    rc, out, _ = _run(capsys, *argv, "--json")
    info = json.loads(out)
    assert rc == 0 and info["status"] == "hit" and info["n_examples"] == 24
    assert sum(v["examples"] for v in info["splits"].values()) == 24
    rc, _, err = _run(capsys, "prepare", f"data.bids_root={tmp_path / 'missing'}")
    assert rc == 2 and err.startswith("error: ") and "BIDS root not found" in err


def test_inspect_single_bids_recording_finds_its_events(tiny_bids, capsys):
    path = tiny_bids / "sub-02" / "ses-1" / "meg" / "sub-02_ses-1_task-1_meg.fif"
    rc, out, _ = _run(capsys, "inspect", str(path), "--json")
    info = json.loads(out)
    assert rc == 0 and info["n_subjects"] == 1 and info["subjects"] == ["02"] and info["sessions"] == ["1"]
    assert info["n_words"] == 50 and info["n_sentences"] == 6 and info["events"].endswith("_events.tsv")
