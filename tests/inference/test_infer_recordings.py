"""Inference without a language model: real recordings, BIDS events, .npy, malformed inputs, output shape."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
import torch

from brain2text.config import Config
from brain2text.errors import DataError
from brain2text.inference.infer import InferenceOptions, infer_files
from brain2text.inference.model_view import ModelView

RECORDINGS = ["kit/test.sqd", "kit/test_bin_raw.fif", "kit/test_umd-raw.sqd", "ctf/test_ctf_comp_raw.fif"]


class ShapeModel(torch.nn.Module):
    """Says what it was given: lets the tests check windows, channels and padding."""

    def generate(self, batch, decoding=None, meg_mode="meg"):
        assert batch.texts == [] and meg_mode == "meg"
        return [f"{batch.meg.shape[1]} channels {int(m.sum())} samples" for m in batch.meg_mask]


def _view(spatial=True, n_chans=208, ch_names=(), scalers=None, subjects=()):
    cfg = Config()
    return ModelView(Path("model-dir"), cfg, cfg.data, cfg.decoding, spatial, n_chans, list(ch_names),
                     list(subjects), dict(scalers or {}))


OPTS = InferenceOptions(window=1.0, stride=0.5, batch_size=2, progress=False)


@pytest.mark.parametrize("name", RECORDINGS)
def test_real_recordings_give_segments_or_the_channel_mismatch_error(shared_data, name):
    path = shared_data / "meg" / name
    out = infer_files(ShapeModel(), _view(spatial=True), [str(path)], OPTS)
    assert out["input_file"] == str(path) and out["n_channels"] > 100 and out["sfreq"] > 0 and out["segments"]
    for seg in out["segments"]:
        assert 0 <= seg["start"] < seg["end"] and seg["text"].startswith(f"{out['n_channels']} channels")
        assert "reference" not in seg
    json.dumps(out, allow_nan=False)
    with pytest.raises(DataError, match=rf"expected 208 channels, found {out['n_channels']}") as err:
        infer_files(ShapeModel(), _view(spatial=False), [str(path)], OPTS)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_channels_are_matched_by_name_without_spatial_attention(shared_data):
    path = shared_data / "meg" / "kit" / "test_bin_raw.fif"
    names = mne.io.read_raw_fif(path, verbose="error").copy().pick("mag").ch_names
    view = _view(spatial=False, n_chans=20, ch_names=names[:20][::-1])
    out = infer_files(ShapeModel(), view, [str(path)], OPTS)
    assert out["n_channels"] == 20 and out["segments"][0]["text"].startswith("20 channels")


def test_sliding_windows_cover_the_recording(shared_data):
    out = infer_files(ShapeModel(), _view(), [str(shared_data / "meg" / "kit" / "test.sqd")], OPTS)
    # 2 s at the model's 100 Hz: windows of 1 s every 0.5 s
    assert [(s["start"], s["end"]) for s in out["segments"]] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
    assert all(s["text"] == "157 channels 100 samples" for s in out["segments"])


def _bids_recording(root: Path, shared_data: Path, seconds: float = 14.0) -> Path:
    table = pd.read_csv(shared_data / "meg_masc" / "cable_spool_fort_events.tsv", sep="\t")
    part = table[(table.onset >= 29.0) & (table.onset < 29.0 + seconds - 4)].copy()
    part["onset"] = (part.onset - 28.0).round(4)
    meg = root / "sub-01" / "ses-0" / "meg"
    meg.mkdir(parents=True)
    info = mne.create_info([f"MEG {i:03d}" for i in range(6)], 200.0, "mag", verbose=False)
    raw = mne.io.RawArray(np.random.default_rng(0).standard_normal((6, int(seconds * 200))) * 1e-12, info,
                          verbose=False)
    path = meg / "sub-01_ses-0_task-0_meg.fif"
    raw.save(path, verbose=False)
    part.to_csv(meg / "sub-01_ses-0_task-0_events.tsv", sep="\t", index=False)
    return path


def test_bids_recording_with_events_gives_one_window_per_sentence(tmp_path, shared_data):
    path = _bids_recording(tmp_path, shared_data)
    out = infer_files(ShapeModel(), _view(), [str(path)], OPTS)
    refs = [s["reference"] for s in out["segments"]]
    assert len(refs) >= 2 and refs[0].startswith("The")  # MEG-MASC's first sentence of cable_spool_fort
    assert out["events_file"].endswith("_events.tsv") and out["subject"] is None  # sub-01 unknown to the model
    ends = [s["end"] for s in out["segments"]]
    assert all(e <= 14.0 for e in ends)
    no_events = infer_files(ShapeModel(), _view(), [str(path)], InferenceOptions(window=4.0, stride=4.0, progress=False,
                                                                              use_events=False))
    assert all("reference" not in s for s in no_events["segments"]) and len(no_events["segments"]) == 4


def test_known_subject_uses_the_models_scaler_and_slot(tmp_path, shared_data):
    import hashlib

    path = _bids_recording(tmp_path, shared_data)
    names = [f"MEG {i:03d}" for i in range(6)]
    key = "01|" + hashlib.sha1("\n".join(names).encode()).hexdigest()[:8]
    view = _view(scalers={key: {"median": [0.0] * 6, "iqr": [1e-12] * 6}}, subjects=["00", "01"])
    out = infer_files(ShapeModel(), view, [str(path)], OPTS)
    assert out["scaler"] == "model (subject 01)" and out["subject"] == "01"


def test_npy_with_sidecar_and_glob_gives_a_list(tmp_path):
    for k in range(2):
        np.save(tmp_path / f"rec{k}.npy", np.random.default_rng(k).standard_normal((5, 3000)).astype(np.float32))
        (tmp_path / f"rec{k}.json").write_text(json.dumps({"sfreq": 1000}))
    out = infer_files(ShapeModel(), _view(), [str(tmp_path / "rec*.npy")], OPTS)
    assert isinstance(out, list) and [Path(o["input_file"]).name for o in out] == ["rec0.npy", "rec1.npy"]
    assert all(o["sfreq"] == 1000.0 and len(o["segments"]) == 5 for o in out)


def _write(path: Path, content) -> Path:
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("name, content, problem", [
    ("missing.fif", None, "file not found"),
    ("empty.fif", b"", "file is empty"),
    ("garbage.fif", b"not a fif file at all" * 10, "cannot read as a recording"),
    ("nosfreq.npy", np.zeros((4, 100), np.float32), "sampling rate unknown"),
    ("nan.npy", np.full((4, 100), np.nan, np.float32), "NaN"),
    ("cube.npy", np.zeros((2, 3, 4), np.float32), "2-D array"),
    ("nomatch*.fif", None, "no file matches"),
])
def test_malformed_inputs_give_one_line_errors(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is not None:
        _write(path, content)
    with pytest.raises(DataError, match=problem) as err:
        infer_files(ShapeModel(), _view(), [str(path)], OPTS)
    assert "\n" not in str(err.value) and name.split("*")[0] in str(err.value)


def test_kit_marker_file_is_not_a_recording(shared_data):
    path = shared_data / "meg" / "kit" / "test_mrk.sqd"
    with pytest.raises(DataError, match="cannot read as a recording") as err:
        infer_files(ShapeModel(), _view(), [str(path)], OPTS)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
