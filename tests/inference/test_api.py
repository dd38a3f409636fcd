"""The Python API (``from brain2text import Decoder``): every input kind, annotations, errors, evaluation,
the README's example, and a light ``import brain2text``."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import mne
import numpy as np
import pandas as pd
import pytest
import torch

from brain2text import Decoder, Segment
from brain2text.api import annotation_text
from brain2text.cli import main
from brain2text.config import parse_overrides
from brain2text.errors import Brain2TextError, ConfigError, DataError
from brain2text.inference.model_view import view_of
from brain2text.models.build import build_model
from eval_helpers import tiny_eval_setup

REPO_README = "README.md"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tiny_eval_setup(tmp_path_factory)


@pytest.fixture(scope="module")
def decoder(setup):
    return Decoder.from_pretrained(setup.model_dir, progress=False)


@pytest.fixture(scope="module")
def recording(setup):
    return next(setup.bids_root.glob("sub-01/ses-0/meg/*_meg.fif"))


@pytest.fixture(scope="module")
def fixed_montage(setup):
    """A decoder whose model has no spatial attention: exactly 16 channels, in the trained order."""
    torch.manual_seed(0)
    model = build_model(setup.config(["encoder.spatial_attention=false", "encoder.n_chans=16"])).eval()
    return Decoder(model, view_of(model, "in-memory"), progress=False)


def _events_path(recording):
    return next(recording.parent.glob("*_events.tsv"))


def test_a_path_and_the_same_raw_in_memory_decode_alike(decoder, recording):
    raw = mne.io.read_raw_fif(recording, preload=True, verbose="error")
    by_path = decoder.decode(recording, events=False, window=2.0, stride=2.0)
    by_raw = decoder.decode(raw, window=2.0, stride=2.0)  # a Raw: sliding windows unless events= is given
    assert by_path and all(isinstance(s, Segment) for s in by_path)
    assert by_raw == by_path  # same windows, same scaler (the BIDS subject of its file name), same texts
    assert [(s.start, s.end) for s in by_raw[:3]] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    assert all(s.reference is None and isinstance(s.text, str) for s in by_raw)
    assert not raw.annotations or len(raw.annotations) == len(mne.io.read_raw_fif(recording, verbose="error")
                                                              .annotations)  # the Raw is only read


def test_an_array_decodes_as_the_same_samples_in_a_npy_file(decoder, recording, tmp_path):
    raw = mne.io.read_raw_fif(recording, verbose="error")
    data = raw.get_data(picks="meg").astype(np.float32)
    np.save(tmp_path / "rec.npy", data)
    (tmp_path / "rec.json").write_text(json.dumps({"sfreq": raw.info["sfreq"]}))
    from_array = decoder.decode(data, sfreq=raw.info["sfreq"], window=3.0, stride=3.0)
    from_file = decoder.decode(tmp_path / "rec.npy", window=3.0, stride=3.0)
    assert from_array == from_file and len(from_array) >= int(raw.times[-1] // 3)
    np.save(tmp_path / "bare.npy", data)  # no sidecar: sfreq= gives the rate, as --sfreq does
    assert decoder.decode(tmp_path / "bare.npy", sfreq=raw.info["sfreq"], window=3.0, stride=3.0) == from_file


def test_a_bids_recording_gives_one_segment_per_sentence_with_its_reference(decoder, recording):
    segments = decoder.decode(recording)
    assert len(segments) >= 5 and all(s.reference for s in segments)
    assert all(0 <= s.start < s.end for s in segments) and segments == sorted(segments, key=lambda s: s.start)
    raw = mne.io.read_raw_fif(recording, preload=True, verbose="error")
    events = _events_path(recording)
    assert decoder.decode(raw, events=events) == segments  # the same events given explicitly, for a Raw
    assert decoder.decode(raw, events=pd.read_csv(events, sep="\t")) == segments  # or as a DataFrame
    assert all(s.reference is None for s in decoder.decode(recording, events=False))


def test_the_command_line_writes_what_the_api_decodes(decoder, setup, recording, tmp_path):
    out = tmp_path / "results.json"
    assert main(["infer", "--model_path", str(setup.model_dir), "--input_file", str(recording),
                 "--output_file", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["segments"] == [s.to_dict() for s in decoder.decode(recording)]
    assert result == decoder.decode_files(recording)
    assert {"input_file", "model_path", "n_channels", "sfreq", "model_sfreq", "events_file", "subject",
            "scaler"} <= set(result)


def test_segment_is_a_frozen_dataclass_whose_dict_omits_an_unknown_reference():
    seg = Segment(1.0, 2.5, "the fort")
    assert seg.to_dict() == {"start": 1.0, "end": 2.5, "text": "the fort"}
    assert Segment(0.0, 1.0, "a", "b").to_dict()["reference"] == "b"
    with pytest.raises(AttributeError):
        seg.text = "changed"


@pytest.mark.parametrize("meas_date", [None, "file"])
def test_annotate_puts_each_segment_on_a_copy_of_the_raw_first_samp_included(decoder, recording, meas_date):
    raw = mne.io.read_raw_fif(recording, preload=True, verbose="error").crop(tmin=4.0)
    if meas_date is None:
        raw.set_meas_date(None)
    assert raw.first_samp > 0
    before = raw.annotations.copy()
    segments = decoder.decode(raw, window=2.0, stride=2.0)
    annotated = decoder.annotate(raw, window=2.0, stride=2.0)
    assert annotated is not raw and len(raw.annotations) == len(before)  # the user's Raw is not modified
    assert list(raw.annotations.description) == list(before.description)
    new = annotated.annotations[len(before):]
    assert len(new) == len(segments)  # every segment, an empty text too
    assert list(new.description) == [annotation_text(s.text) for s in segments]
    assert np.allclose(new.duration, [s.end - s.start for s in segments])
    # MNE's own reading of the onsets: samples counted from the measurement start, first_samp included
    ids = {d: i + 1 for i, d in enumerate(dict.fromkeys(new.description))}
    events, _ = mne.events_from_annotations(annotated, event_id=ids, verbose="error")
    found = sorted((events[:, 0] - annotated.first_samp) / annotated.info["sfreq"])
    assert np.allclose(found, sorted(s.start for s in segments), atol=1.5 / annotated.info["sfreq"])


def test_annotate_keeps_empty_texts_and_never_marks_data_bad(decoder, monkeypatch):
    raw = mne.io.RawArray(np.random.default_rng(0).standard_normal((4, 1000)),
                          mne.create_info(4, 100.0, "mag"), first_samp=300, verbose="error")
    fixed = [Segment(1.0, 2.0, "Bad luck for roy"), Segment(2.0, 3.0, ""), Segment(3.0, 4.0, "edges", "ref"),
             Segment(4.0, 5.0, "the edge")]
    monkeypatch.setattr(decoder, "decode", lambda raw, **kw: fixed)
    annotated = decoder.annotate(raw)
    assert list(annotated.annotations.description) == [" Bad luck for roy", "", " edges", "the edge"]
    assert annotated.annotations.extras[2]["reference"] == "ref" and "reference" not in annotated.annotations.extras[0]
    assert annotated.get_data(reject_by_annotation="omit").shape == raw.get_data().shape  # nothing rejected
    assert np.allclose(annotated.annotations.onset - annotated.first_time, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(Brain2TextError, match="annotate.. takes an mne.io.Raw"):
        decoder.annotate(np.zeros((4, 100)))


def test_annotate_with_events_carries_the_references(decoder, recording):
    raw = mne.io.read_raw_fif(recording, preload=True, verbose="error")
    annotated = decoder.annotate(raw, events=_events_path(recording))
    segments = decoder.decode(recording)
    new = annotated.annotations[len(raw.annotations):]
    assert [e["reference"] for e in new.extras] == [s.reference for s in segments]


def test_a_wrong_channel_count_is_one_line_naming_expected_and_found(fixed_montage, shared_data, recording):
    assert fixed_montage.n_channels == 16 and fixed_montage.decode(recording, events=False)  # 16 channels fit
    cases = [(np.random.default_rng(0).standard_normal((10, 500)), {"sfreq": 100.0}, "10", "<array>"),
             (shared_data / "meg" / "kit" / "test.sqd", {}, "157", "test.sqd")]
    for x, kwargs, found, name in cases:
        with pytest.raises(DataError, match=rf"expected 16 channels, found {found}") as err:
            fixed_montage.decode(x, **kwargs)
        assert "\n" not in str(err.value) and name in str(err.value)
    assert fixed_montage.decode(np.random.default_rng(0).standard_normal((16, 300)), sfreq=100.0)


def test_a_missing_file_and_other_bad_inputs_are_one_line_errors(decoder, tmp_path, recording):
    missing = tmp_path / "missing_meg.fif"
    cases = [
        (lambda: decoder.decode(missing), DataError, "file not found", str(missing)),
        (lambda: decoder.decode(str(missing)), DataError, "file not found", str(missing)),
        (lambda: decoder.decode(np.zeros((4, 100))), DataError, "sampling rate unknown", "<array>"),
        (lambda: decoder.decode(np.zeros((2, 3, 4)), sfreq=100), DataError, "2-D array", "<array>"),
        (lambda: decoder.decode(np.full((4, 300), np.nan), sfreq=100), DataError, "NaN", "<array>"),
        (lambda: decoder.decode({"meg": 1}), Brain2TextError, "takes an mne.io.Raw, a file path", "dict"),
        (lambda: decoder.decode(recording, window=-1), Brain2TextError, "window must be a number > 0", "-1"),
        (lambda: decoder.decode(recording, window=0.01), Brain2TextError, "receptive field", "window"),
        (lambda: decoder.decode(recording, strategy="nope"), ConfigError, "decoding.strategy must be", "nope"),
        (lambda: decoder.decode(recording, events=tmp_path / "none.tsv"), DataError, "events file not found",
         "none.tsv"),
        (lambda: Decoder.from_pretrained(tmp_path / "no_model"), Brain2TextError, "model directory not found",
         "no_model"),
        (lambda: Decoder.from_pretrained(tmp_path, threads=0), Brain2TextError, "threads must be", "0"),
    ]
    for call, kind, problem, named in cases:
        with pytest.raises(kind, match=problem) as err:
            call()
        assert "\n" not in str(err.value) and named in str(err.value), str(err.value)


def test_events_outside_the_recording_are_an_error_when_asked_for(decoder, recording):
    table = pd.read_csv(_events_path(recording), sep="\t")
    table["onset"] += 10_000.0
    with pytest.raises(DataError, match="none of the .* sentences .* lies inside the recording"):
        decoder.decode(recording, events=table)


def test_threads_are_applied_while_decoding_and_restored(setup, recording, monkeypatch):
    seen = []
    before = torch.get_num_threads()
    one = Decoder.from_pretrained(setup.model_dir, threads=1, progress=False)
    real = one.model.generate

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(one.model, "generate", spy)
    one.decode(recording, events=False, window=6.0, stride=6.0)
    assert seen and set(seen) == {1} and torch.get_num_threads() == before
    assert "any montage" in repr(one) and one.sfreq == 100.0 and one.n_channels is None


def test_evaluate_returns_what_the_evaluate_command_writes(decoder, setup, tmp_path):
    settings = [f"data.cache_dir={setup.cache_dir}", "eval.n_bootstrap=50", "eval.n_permutations=50",
                "eval.batch_size=4", "eval.bertscore_model=none", "eval.controls=[noise, no_meg]"]
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--model_path", str(setup.model_dir), "--output_file", str(out), "--strategy",
                 "greedy", "--no_model_card", *settings]) == 0
    written = json.loads(out.read_text())
    overrides = dict(parse_overrides(settings))  # typed values: {"eval.n_bootstrap": 50, ...}
    result = decoder.evaluate(setup.bids_root, strategy="greedy", overrides=overrides)
    assert json.loads(json.dumps(result)) == written
    assert set(written["controls"]) == {"noise", "no_meg"} and written["strategy"] == "greedy"


def _readme_example() -> str:
    text = (pytest.importorskip("pathlib").Path(__file__).resolve().parents[2] / REPO_README).read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert blocks, "README's Python API section has no python block"
    return blocks[0]


def test_the_readme_example_runs(setup, recording, tmp_path, capsys):
    code = _readme_example()
    paths = re.findall(r'"((?:outputs/demo|\.cache/synthetic-demo)/[^"]+)"', code)
    assert any(p.endswith("best_model") for p in paths) and any(p.endswith("_meg.fif") for p in paths)
    for p in paths:
        target = setup.model_dir if p.endswith("best_model") else recording
        code = code.replace(f'"{p}"', repr(str(target)))
    namespace: dict = {}
    exec(compile(code, REPO_README, "exec"), namespace)  # the README's own code, paths swapped for tiny ones
    assert isinstance(namespace["segments"][0], Segment) and namespace["segments"][0].reference
    assert len(namespace["annotated"].annotations) >= len(namespace["segments"])
    assert "reference:" in capsys.readouterr().out


def test_import_brain2text_stays_light_and_exposes_the_api_lazily():
    code = ("import sys, brain2text, brain2text.cli; assert 'torch' not in sys.modules and 'mne' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mne'))[:5]; "
            "assert 'Decoder' in dir(brain2text) and brain2text.__version__; "
            "from brain2text import Decoder; import brain2text.api as api; assert Decoder is api.Decoder; "
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        import brain2text

        _ = brain2text.Nope
