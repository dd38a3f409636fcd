import tracemalloc

import mne
import numpy as np
import pytest

from brain2text.config import DataConfig
from brain2text.data.preprocessing import (
    CHUNK_BUDGET_BYTES,
    apply_robust_scaler,
    bandpass,
    chunk_channels_for,
    fit_robust_scaler,
    notch,
    output_length,
    preprocess_array,
    preprocess_raw,
    resample,
)
from brain2text.errors import DataError


def _sines(freqs, sfreq=1000.0, seconds=10.0):
    t = np.arange(int(sfreq * seconds)) / sfreq
    return np.stack([np.sin(2 * np.pi * f * t) for f in freqs])


def _amp(x, f, sfreq):
    spec = np.abs(np.fft.rfft(x, axis=-1)) / (x.shape[-1] / 2)
    return spec[..., int(round(f * x.shape[-1] / sfreq))]


def test_bandpass_keeps_band_and_removes_outside():
    x = _sines([0.05, 10.0, 150.0]).sum(0, keepdims=True)
    y = bandpass(x.copy(), 1000.0, 0.5, 40.0)
    mid = slice(2000, 8000)  # away from edge effects
    assert _amp(y[:, mid], 10.0, 1000.0)[0] == pytest.approx(1.0, abs=0.05)
    assert _amp(y[:, mid], 150.0, 1000.0)[0] < 0.01
    assert abs(np.polyfit(np.arange(6000), y[0, mid], 1)[0]) * 6000 < 0.1  # slow drift gone


def test_notch_removes_line_noise_only():
    x = _sines([50.0, 13.0]).sum(0, keepdims=True)
    y = notch(x.copy(), 1000.0, [50.0, 800.0])  # 800 Hz is above Nyquist: ignored
    mid = slice(2000, 8000)
    assert _amp(y[:, mid], 50.0, 1000.0)[0] < 0.02
    assert _amp(y[:, mid], 13.0, 1000.0)[0] == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("h_freq, new_sfreq, notched",
                         [(40.0, 100.0, False), (20.0, 200.0, False), (40.0, 200.0, True)])
def test_line_noise_is_removed_whether_or_not_the_notch_runs(monkeypatch, h_freq, new_sfreq, notched):
    from brain2text.data import preprocessing

    t = np.arange(20000) / 1000.0
    x = (5 * np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 13 * t + 0.3))[None]  # line 5x the signal
    cfg = DataConfig(notch_freqs=[50.0], l_freq=0.5, h_freq=h_freq, sfreq=new_sfreq)
    calls = []
    real = preprocessing.notch
    monkeypatch.setattr(preprocessing, "notch", lambda x, sfreq, freqs: calls.append(freqs) or real(x, sfreq, freqs))
    y = preprocessing.preprocess_array(x, 1000.0, cfg)[0]
    assert calls == [[50.0] if notched else []]
    n = len(y)
    mid, tt = slice(n // 5, -n // 5), np.arange(n) / new_sfreq
    amp = lambda f: 2 * abs(np.mean(y[mid] * np.exp(-2j * np.pi * f * tt[mid])))  # noqa: E731
    if new_sfreq > 100.0:
        assert amp(50.0) < 5 * 10 ** (-60 / 20)  # at least 60 dB down
    else:  # 50 Hz is the output's Nyquist: the signal must be the 13 Hz sine alone
        np.testing.assert_allclose(y[mid], amp(13.0) * np.sin(2 * np.pi * 13 * tt[mid] + 0.3), atol=1e-3)
    assert amp(13.0) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("sfreq, n", [(1000.0, 10000), (480.0, 241), (1200.0, 999), (100.0, 300)])
def test_resample_length_and_content(sfreq, n):
    t = np.arange(n) / sfreq
    x = np.sin(2 * np.pi * 3.0 * t)[None]
    y = resample(x, sfreq, 100.0)
    assert y.shape == (1, output_length(n, sfreq, 100.0))
    t2 = np.arange(y.shape[1]) / 100.0
    inner = slice(y.shape[1] // 5, -y.shape[1] // 5 or None)
    np.testing.assert_allclose(y[0, inner], np.sin(2 * np.pi * 3.0 * t2)[inner], atol=0.05)


def test_preprocess_array_defaults():
    y = preprocess_array(np.random.default_rng(0).standard_normal((3, 5000)), 1000.0, DataConfig())
    assert y.shape == (3, 500) and y.dtype == np.float32


def test_robust_scaler_fit_and_apply():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 20000)) * np.array([[1.0], [10.0], [0.1], [0.0]]) + 5.0
    x[:, :10] = 1e6  # outliers barely move median/IQR
    median, iqr = fit_robust_scaler([x[:, :8000], x[:, 8000:]], max_samples=5000)
    assert median.shape == iqr.shape == (4,) and iqr[3] == 1.0  # flat channel: no division by zero
    y = apply_robust_scaler(x, median, iqr, clamp=20.0)
    assert y.dtype == np.float32 and np.abs(y).max() <= 20.0
    np.testing.assert_allclose(np.median(y[:3, 10:], axis=1), 0.0, atol=0.05)
    q = np.percentile(y[:3, 10:], [25, 75], axis=1)
    np.testing.assert_allclose(q[1] - q[0], 1.0, atol=0.05)
    with pytest.raises(ValueError, match="scaler has 4 channels, data has 2"):
        apply_robust_scaler(x[:2], median, iqr, 20.0)


def _raw_file(tmp_path, n_chans, seconds, sfreq=1000.0, nan=False):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((n_chans, int(seconds * sfreq))) * 1e-12
    if nan:
        data[2, 100] = np.nan
    info = mne.create_info([f"MEG {i:03d}" for i in range(n_chans)], sfreq, "mag")
    path = tmp_path / "rec_raw.fif"
    mne.io.RawArray(data, info, verbose=False).save(path, verbose=False)
    return mne.io.read_raw_fif(path, preload=False, verbose="error")


def test_chunked_equals_whole_and_bounded_memory(tmp_path):
    raw = _raw_file(tmp_path, n_chans=48, seconds=40.0)
    cfg = DataConfig()
    picks = list(range(48))
    whole = preprocess_raw(raw, picks, cfg, chunk_channels=48)
    tracemalloc.start()
    chunked = preprocess_raw(raw, picks, cfg, chunk_channels=4)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-18)
    full_float64 = 48 * 40_000 * 8
    # Peak grows with the chunk, not the recording: well under one float64 copy of the whole file.
    assert peak < 0.5 * full_float64, (peak, full_float64)


def test_nan_in_recording_is_a_data_error(tmp_path):
    raw = _raw_file(tmp_path, n_chans=4, seconds=2.0, nan=True)
    with pytest.raises(DataError, match="NaN or Inf"):
        preprocess_raw(raw, [0, 1, 2, 3], DataConfig())


def test_chunk_size_bounds_memory_for_long_recordings():
    one_hour = 3_600_000
    assert chunk_channels_for(one_hour) * one_hour * 8 * 3 <= CHUNK_BUDGET_BYTES
    assert chunk_channels_for(10 * one_hour) == 1 and chunk_channels_for(1000) == 64
