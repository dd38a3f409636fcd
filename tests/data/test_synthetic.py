"""Synthetic MEG-MASC: MEG-MASC's layout, determinism, and the MEG really depends on the words heard."""

from __future__ import annotations

import ast
import collections
import json
import subprocess
import sys

import numpy as np
import pytest

from brain2text.data.events import extract_sentences, read_events
from brain2text.data.synthetic import SynthParams, dataset_hash, generate_dataset
from brain2text.data.synthetic.stimuli import Event, split_sentences, story_events
from brain2text.data.synthetic.writer import events_tsv

REAL_KEYS_WORD = ["story", "story_uid", "sound_id", "kind", "start", "sound", "word", "sequence_id", "condition",
                  "word_index", "speech_rate", "voice", "pronounced"]


@pytest.fixture(scope="module")
def text_dir(shared_data):
    return shared_data / "meg_masc" / "stimuli_text"


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory, text_dir):
    """1 subject, 2 stories (one with real timings), 150 s each at 200 Hz: ~5 s to write."""
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate_dataset(out, SynthParams(subjects=1, stories=["lw1", "cable_spool_fort"], max_seconds=150, sfreq=200),
                     text_dir=text_dir)
    return out


def test_sentences_mirror_real_events():
    toks = 'He wished Roy would n\'t fall for that gag , " get me a rock . " Roy stooped . It \'s fine !'.split()
    assert split_sentences(toks) == [["He", "wished", "Roy", "fall", "for", "that", "gag", "get", "me", "a", "rock"],
                                     ["Roy", "stooped"], ["fine"]]


def test_events_layout_like_meg_masc(text_dir):
    events = story_events("lw1", text_dir, seed=0, max_seconds=None)
    words = [e.info for e in events if e.info["kind"] == "word"]
    assert list(words[0]) == REAL_KEYS_WORD
    assert all(any(c.isalnum() for c in w["word"]) and w["word"] != "-NONE-" for w in words)
    conds = collections.Counter(w["condition"] for w in words)
    assert 0 < conds["word_list"] < 0.2 * conds["sentence"]  # a few word lists, as in MEG-MASC
    rates = [60.0 / np.mean(np.diff([e.onset for e in events if e.info["kind"] == "word"
                                     and e.info["sequence_id"] == s][:])) for s in (3.0, 4.0)]
    assert all(120 < r < 260 for r in rates)
    phon = [e.info["phoneme"] for e in events if e.info["kind"] == "phoneme"]
    assert all(p.rsplit("_", 1)[1] in "BIES" for p in phon)
    onsets = [e.onset for e in events]
    assert onsets == sorted(onsets)


def test_real_timings_reused(text_dir, shared_data):
    events = story_events("cable_spool_fort", text_dir, seed=3, max_seconds=None)
    words = [e for e in events if e.info["kind"] == "word"]
    assert len(words) == 1503 and words[1].info["word"] == "Cable"
    assert words[1].onset - words[0].onset == pytest.approx(29.19 - 29.06, abs=1e-6)


def test_events_tsv_python_repr_quoting():
    info = {"story": "lw1", "kind": "word", "word": "o'clock"}
    text = events_tsv([Event(1.5, 0.25, info)], sfreq=1000.0)
    header, row = text.splitlines()
    assert header == "onset\tduration\ttrial_type\tvalue\tsample"
    assert row == "1.5\t0.25\t{'story': 'lw1', 'kind': 'word', 'word': \"o'clock\"}\t1\t1500"
    assert ast.literal_eval(row.split("\t")[2]) == info


def test_layout_and_synthetic_flag(small_ds):
    desc = json.loads((small_ds / "dataset_description.json").read_text())
    assert desc["Synthetic"] is True and "synthetic" in desc["Name"].lower()
    assert desc["SyntheticParameters"]["snr"] == 1.0
    meg = small_ds / "sub-01" / "ses-0" / "meg"
    for task in (0, 1):  # task = story index: 0 lw1, 1 cable_spool_fort
        assert (meg / f"sub-01_ses-0_task-{task}_meg.fif").is_file()
        assert (meg / f"sub-01_ses-0_task-{task}_events.tsv").is_file()
    assert (small_ds / "participants.tsv").read_text().splitlines()[1].startswith("sub-01")
    assert not list(small_ds.rglob(".chunks-*"))


def test_same_seed_same_bytes(tmp_path, text_dir):
    params = dict(subjects=1, stories=["lw1"], max_seconds=25, sfreq=100, n_chans=16)
    hashes = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate_dataset(tmp_path / name, SynthParams(seed=seed, **params), text_dir=text_dir)
        hashes.append(dataset_hash(tmp_path / name))
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


def _preprocessed(root, noise_rng=None):
    """[(MEG preprocessed by the data layer: notch, 0.5-40 Hz, 100 Hz, robust scaling; event dicts with onsets)]."""
    import mne

    from brain2text.config import DataConfig
    from brain2text.data.preprocessing import apply_robust_scaler, fit_robust_scaler, preprocess_array

    cfg = DataConfig()
    out = []
    for fif in sorted(root.rglob("*_meg.fif")):
        raw = mne.io.read_raw_fif(fif, preload=True, verbose=False)
        x = raw.get_data()
        if noise_rng is not None:  # same per-channel mean and sd, no content
            x = noise_rng.standard_normal(x.shape) * x.std(1, keepdims=True) + x.mean(1, keepdims=True)
        x = preprocess_array(x, raw.info["sfreq"], cfg)
        x = apply_robust_scaler(x, *fit_robust_scaler([x]), clamp=cfg.clamp)
        events = []
        for line in fif.with_name(fif.name.replace("_meg.fif", "_events.tsv")).read_text().splitlines()[1:]:
            onset, _, trial = line.split("\t")[:3]
            events.append({**ast.literal_eval(trial), "sample": int(round(float(onset) * cfg.sfreq))})
        out.append((x, events))
    return out


@pytest.fixture(scope="module")
def prepped(small_ds):
    return {"meg": _preprocessed(small_ds), "noise": _preprocessed(small_ds, np.random.default_rng(0))}


def _windows(prepped, kind, n_bins, bin_len, label):
    """Features: the MEG after each ``kind`` event, averaged in ``n_bins`` bins of ``bin_len`` samples."""
    feats, labels = [], []
    for x, events in prepped:
        for e in events:
            s, n = e["sample"], n_bins * bin_len
            if e["kind"] == kind and e.get("condition") == "sentence" and s + n <= x.shape[1] and label(e):
                feats.append(x[:, s:s + n].reshape(x.shape[0], n_bins, bin_len).mean(2).ravel())
                labels.append(label(e))
    return np.array(feats), np.array(labels)


def _word_windows(prepped):
    return _windows(prepped, "word", 5, 10, lambda e: e["word"].lower())


def _ridge_accuracy(x, y, classes, lam=100.0):
    test = np.arange(len(y)) % 3 == 0  # held-out occurrences
    mu, sd = x[~test].mean(0), x[~test].std(0) + 1e-9
    z = (x - mu) / sd
    onehot = (y[:, None] == np.array(classes)[None, :]).astype(float)
    a = z[~test]
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ onehot[~test])
    pred = np.array(classes)[(z[test] @ w).argmax(1)]
    majority = collections.Counter(y[test]).most_common(1)[0][1] / test.sum()
    return float((pred == y[test]).mean()), majority


def test_word_identity_decodable_and_noise_is_not(prepped):
    x, y = _word_windows(prepped["meg"])
    classes = [w for w, _ in collections.Counter(y).most_common(10)]
    keep = np.isin(y, classes)
    acc, majority = _ridge_accuracy(x[keep], y[keep], classes)
    assert keep.sum() > 120
    assert acc > max(0.6, majority + 0.3), (acc, majority)
    xn, yn = _word_windows(prepped["noise"])
    keep = np.isin(yn, classes)
    acc_noise, majority = _ridge_accuracy(xn[keep], yn[keep], classes)
    assert acc_noise < majority + 0.1, (acc_noise, majority)


def test_phonation_decodable_and_noise_is_not(prepped, shared_data):
    """Voiced vs unvoiced phonemes (phoneme_info.csv), 0-200 ms after each phoneme onset: ROC AUC."""
    import csv

    with open(shared_data / "meg_masc" / "phoneme_info.csv", newline="") as fh:
        voicing = {r["phoneme"]: r["phonation"] for r in csv.DictReader(fh)}

    def auc(prep):
        x, y = _windows(prep, "phoneme", 4, 5, lambda e: voicing.get(e["phoneme"].split("_")[0], ""))
        test = np.arange(len(y)) % 3 == 0
        mu, sd = x[~test].mean(0), x[~test].std(0) + 1e-9
        z, target = (x - mu) / sd, np.where(y == "v", 1.0, -1.0)
        w = np.linalg.solve(z[~test].T @ z[~test] + 1000 * np.eye(z.shape[1]), z[~test].T @ target[~test])
        score, pos = z[test] @ w, target[test] > 0
        return float((score[pos][:, None] > score[~pos][None, :]).mean())

    assert auc(prepped["meg"]) > 0.8
    assert abs(auc(prepped["noise"]) - 0.5) < 0.08


def test_data_layer_reads_it(small_ds):
    path = small_ds / "sub-01" / "ses-0" / "meg" / "sub-01_ses-0_task-1_events.tsv"
    events = read_events(path)
    sentences = extract_sentences(events)
    assert sentences and sentences[0].text.startswith("The Cable Fort by Bill Glover")
    assert all(s.story == "cable_spool_fort" and s.condition == "sentence" for s in sentences)
    with_lists = extract_sentences(events, include_word_lists=True)
    assert any(s.condition == "word_list" for s in with_lists)  # the loader's filtering is exercised


def test_cli_missing_texts_is_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "brain2text", "synth", "--out", str(tmp_path / "x"),
                           "--text-dir", str(tmp_path / "none")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "story texts not found" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_inspect_round_trip(small_ds):
    proc = subprocess.run([sys.executable, "-m", "brain2text", "inspect", str(small_ds), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    n_words = sum(p.read_text().count("'kind': 'word'") for p in small_ds.rglob("*_events.tsv"))
    assert summary["n_subjects"] == 1 and summary["n_recordings"] == 2
    assert sorted(summary["stories"]) == ["cable_spool_fort", "lw1"]
    assert summary["n_words"] == n_words
    assert summary["n_chans"] == [208] and summary["sfreq"] == [200.0]
    assert summary["skipped"] == []


def test_cli_writes_dataset(tmp_path, text_dir):
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "brain2text", "synth", "--out", str(out), "--subjects", "2",
                           "--stories", "lw1", "--max-seconds", "15", "--sfreq", "100", "--n-chans", "8",
                           "--text-dir", str(text_dir), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["recordings"] == 2 and summary["subjects"] == 2
    assert sorted(p.name for p in out.rglob("*_meg.fif")) == ["sub-01_ses-0_task-0_meg.fif",
                                                              "sub-02_ses-0_task-0_meg.fif"]
