import json

import mne
import numpy as np
import pytest

from brain2text.data.readers import meg_picks, read_recording, sensor_positions_2d
from brain2text.errors import DataError

REAL = {  # file -> (sfreq, n_times, number of MEG channels picked as mag/grad)
    "kit/test.sqd": (1000.0, 2000, 157),
    "kit/test_bin_raw.fif": (1000.0, 2000, 157),
    "kit/test_umd-raw.sqd": (1000.0, 100, 157),
    "ctf/test_ctf_comp_raw.fif": (480.0, 241, 274),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_every_real_recording_reads(shared_data, name):
    sfreq, n_times, n_meg = REAL[name]
    raw = read_recording(shared_data / "meg" / name)
    assert raw.info["sfreq"] == sfreq and raw.n_times == n_times
    picks = meg_picks(raw, ["mag", "grad"])
    assert len(picks) == n_meg
    assert not any(raw.get_channel_types()[p] in ("ref_meg", "stim", "misc") for p in picks)
    data = raw.get_data(picks=picks[:5])
    assert np.isfinite(data).all() and data.std() > 0
    xy = sensor_positions_2d(raw, picks)
    assert xy.shape == (n_meg, 2) and xy.min() >= 0 and xy.max() <= 1 + 1e-9
    assert len(np.unique(xy.round(5), axis=0)) == n_meg  # real positions: all distinct


def test_kit_with_markers_equals_plain_read_and_fif_copy(shared_data):
    kit = shared_data / "meg" / "kit"
    ours = read_recording(kit / "test.sqd")
    with_markers = mne.io.read_raw_kit(kit / "test.sqd", mrk=kit / "test_mrk.sqd", elp=kit / "test_elp.txt",
                                       hsp=kit / "test_hsp.txt", stim=list(range(167, 159, -1)), slope="+",
                                       stimthresh=1, verbose="error")
    picks = meg_picks(ours, ["mag"])
    np.testing.assert_array_equal(ours.get_data(picks=picks), with_markers.get_data(picks=picks))
    events = mne.find_events(with_markers, verbose="error")
    assert events[:, 0].tolist() == [269, 1552]
    fif = read_recording(kit / "test_bin_raw.fif")
    np.testing.assert_allclose(fif.get_data(picks=meg_picks(fif, ["mag"])), ours.get_data(picks=picks),
                               rtol=1e-5, atol=1e-16)


def test_npy_with_sidecar_and_flag(tmp_path):
    x = np.random.default_rng(0).standard_normal((6, 500)).astype(np.float32)
    np.save(tmp_path / "rec.npy", x)
    (tmp_path / "rec.json").write_text(json.dumps({"sfreq": 250, "ch_names": [f"c{i}" for i in range(6)]}))
    raw = read_recording(tmp_path / "rec.npy")
    assert raw.info["sfreq"] == 250 and raw.ch_names[0] == "c0"
    assert not raw.preload  # read lazily from a memory map, like MNE's own readers
    np.testing.assert_allclose(raw.get_data(picks=[4, 1], start=7, stop=300), x[[4, 1], 7:300], rtol=1e-6)
    np.testing.assert_allclose(raw.get_data(), x, rtol=1e-6)
    assert read_recording(tmp_path / "rec.npy", sfreq=100.0).info["sfreq"] == 100.0
    np.save(tmp_path / "bare.npy", x.astype(np.int16))
    raw = read_recording(tmp_path / "bare.npy", sfreq=100)
    assert meg_picks(raw, ["mag"]) == list(range(6))
    assert sensor_positions_2d(raw, list(range(6))).shape == (6, 2)  # no positions: grid fallback


def _npy(tmp_path, array, name="bad.npy", **kw):
    path = tmp_path / name
    np.save(path, array, **kw)
    return path


def _header_only(tmp_path, shape):
    path = tmp_path / "absurd.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": shape})
        fh.write(b"\0" * 64)
    return path


def _truncated(tmp_path):
    path = _npy(tmp_path, np.zeros((4, 1000), np.float32), "trunc.npy")
    path.write_bytes(path.read_bytes()[:2000])
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda p: _npy(p, np.zeros(100, np.float32)), "expected a 2-D array"),
    (lambda p: _npy(p, np.zeros((2, 3, 4), np.float32)), "expected a 2-D array"),
    (lambda p: _npy(p, np.zeros((4, 0), np.float32)), "zero-length"),
    (lambda p: _npy(p, np.array([[None, 1]], dtype=object), allow_pickle=True), "Python objects"),
    (lambda p: _npy(p, np.array([["a", "b"]])), "non-numeric dtype"),
    (lambda p: _npy(p, np.array([[1.0, np.nan]], np.float32)), "NaN or Inf"),
    (lambda p: _npy(p, np.array([[1.0, np.inf]])), "NaN or Inf"),
    (lambda p: _npy(p, np.zeros((5000, 10), np.float32)), "looks transposed"),
    (lambda p: _header_only(p, (10**9, 10**9)), "truncated"),
    (_truncated, "truncated"),
    (lambda p: (p / "junk.npy").write_bytes(b"not numpy at all") and p / "junk.npy", "not a valid .npy"),
    (lambda p: (p / "empty.fif").write_bytes(b"") or p / "empty.fif", "file is empty"),
    (lambda p: (p / "junk.fif").write_bytes(b"\x00garbage" * 50) and p / "junk.fif", "cannot read as a recording"),
    (lambda p: (p / "junk.sqd").write_bytes(b"\x01" * 300) and p / "junk.sqd", "cannot read as a recording"),
    (lambda p: p / "missing.fif", "file not found"),
    (lambda p: p, "is a directory"),
])
def test_bad_inputs_give_one_line_errors(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(DataError) as exc:
        read_recording(path, sfreq=100.0)
    message = str(exc.value)
    assert needle in message and "\n" not in message and str(path) in message


@pytest.mark.parametrize("sidecar, sfreq, needle", [
    (None, None, "sampling rate unknown"),
    ({"sfreq": 0}, None, "must be a positive number"),
    ({"sfreq": 100}, -5.0, "must be a positive number"),
    ({"sfreq": "fast"}, None, "must be a positive number"),
    ({"sfreq": 100, "ch_names": ["a"]}, None, "ch_names must list 3"),
    ({"sfreq": 100, "ch_names": ["a", "a", "b"]}, None, "unique"),
    ("{not json", None, "invalid sidecar JSON"),
    ({"sfreq": 100, "ch_types": "misc"}, None, "no MEG/EEG channels"),
])
def test_npy_sidecar_errors(tmp_path, sidecar, sfreq, needle):
    path = _npy(tmp_path, np.ones((3, 50), np.float32), "rec.npy")
    if sidecar is not None:
        (tmp_path / "rec.json").write_text(sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
    with pytest.raises(DataError, match=needle):
        read_recording(path, sfreq=sfreq)


def test_truncated_real_fif(shared_data, tmp_path):
    src = shared_data / "meg" / "kit" / "test_bin_raw.fif"
    path = tmp_path / "cut_raw.fif"
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(DataError) as exc:
        read_recording(path)
    assert str(path) in str(exc.value)


def test_fif_without_meg_channels(tmp_path):
    info = mne.create_info(["STI 001", "MISC 001"], 100.0, ["stim", "misc"])
    path = tmp_path / "nomeg_raw.fif"
    mne.io.RawArray(np.zeros((2, 200)), info, verbose=False).save(path, verbose=False)
    with pytest.raises(DataError, match="no MEG/EEG channels"):
        read_recording(path)


def test_meg_picks_skips_bads_and_errors_when_none(shared_data):
    raw = read_recording(shared_data / "meg" / "kit" / "test_bin_raw.fif")
    raw.info["bads"] = [raw.ch_names[0]]
    assert 0 not in meg_picks(raw, ["mag"])
    with pytest.raises(DataError, match="no good channels of type"):
        meg_picks(raw, ["eeg"])
