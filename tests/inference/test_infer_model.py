"""``brain2text infer`` / ``inference.py`` with a tiny saved model on real and synthetic recordings."""

from __future__ import annotations

import json

import pytest

from brain2text.cli import main, run_script
from eval_helpers import tiny_eval_setup

RECORDINGS = ["kit/test.sqd", "kit/test_bin_raw.fif", "kit/test_umd-raw.sqd", "ctf/test_ctf_comp_raw.fif"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tiny_eval_setup(tmp_path_factory)


def test_infer_every_real_recording_with_a_spatial_attention_model(setup, shared_data, tmp_path):
    out = tmp_path / "results.json"
    files = [str(shared_data / "meg" / r) for r in RECORDINGS]
    rc = run_script("infer", ["--model_path", str(setup.model_dir), "--input_file", *files, "--output_file", str(out),
                              "--window", "1", "--stride", "1"])
    assert rc == 0
    results = json.loads(out.read_text())
    assert [r["input_file"] for r in results] == files  # several files: a list, in input order
    for r in results:
        assert r["model_path"] == str(setup.model_dir) and r["n_channels"] > 100 and r["sfreq"] > 0
        assert r["segments"] and all(isinstance(s["text"], str) and s["end"] > s["start"] for s in r["segments"])


def test_infer_bids_recording_with_events_gives_references(setup, tmp_path):
    rec = next(setup.bids_root.glob("sub-01/ses-0/meg/*_meg.fif"))
    out = tmp_path / "one.json"
    assert main(["infer", "--model_path", str(setup.model_dir), "--input_file", str(rec),
                 "--output_file", str(out)]) == 0
    result = json.loads(out.read_text())
    assert isinstance(result, dict) and result["n_channels"] == 16 and result["subject"] == "01"
    assert result["scaler"] == "model (subject 01)"  # the scaler fitted at training is reused
    refs = [s["reference"] for s in result["segments"]]
    assert len(refs) >= 5 and all(refs)


def test_model_without_spatial_attention_gives_the_channel_mismatch_error(setup, shared_data):
    import torch

    from brain2text.errors import DataError
    from brain2text.inference.infer import InferenceOptions, infer_files
    from brain2text.inference.model_view import view_of
    from brain2text.models.build import build_model

    torch.manual_seed(0)
    model = build_model(setup.config(["encoder.spatial_attention=false", "encoder.n_chans=16"])).eval()
    view = view_of(model, "in-memory")
    opts = InferenceOptions(window=1.0, stride=1.0, progress=False)
    rec = next(setup.bids_root.glob("sub-02/ses-0/meg/*_meg.fif"))
    assert infer_files(model, view, [str(rec)], opts)["segments"]  # 16 channels: fits
    for name in RECORDINGS:
        with pytest.raises(DataError, match=r"expected 16 channels, found \d+"):
            infer_files(model, view, [str(shared_data / "meg" / name)], opts)


def test_infer_errors_are_one_line_and_write_nothing(setup, tmp_path, capsys):
    out = tmp_path / "results.json"
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    for argv, problem in [
        (["--model_path", str(tmp_path / "none"), "--input_file", str(bad)], "model directory not found"),
        (["--model_path", str(setup.model_dir), "--input_file", str(bad)], "not a valid .npy file"),
        (["--model_path", str(setup.model_dir), "--input_file", str(tmp_path / "*.fif")], "no file matches"),
        (["--model_path", str(setup.model_dir), "--input_file", str(bad), "--window", "-1"], "--window must be > 0"),
        (["--model_path", str(setup.model_dir), "--input_file", str(bad), "--threads", "0"], "--threads must be"),
    ]:
        assert main(["infer", *argv, "--output_file", str(out)]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and problem in errors[0], errors
    assert not out.exists()


def test_threads_change_speed_not_results_and_are_restored(setup, tmp_path):
    import torch

    rec = next(setup.bids_root.glob("sub-01/ses-0/meg/*_meg.fif"))
    before = torch.get_num_threads()
    texts = {}
    for threads in ("auto", "1", "2"):
        out = tmp_path / f"t{threads}.json"
        assert main(["infer", "--model_path", str(setup.model_dir), "--input_file", str(rec), "--output_file", str(out),
                     "--strategy", "joint", "--threads", threads]) == 0
        texts[threads] = [s["text"] for s in json.loads(out.read_text())["segments"]]
        assert torch.get_num_threads() == before
    assert texts["auto"] == texts["1"] == texts["2"]


def test_auto_threads_is_one_for_small_models_on_cpu_only():
    import torch

    from brain2text.utils.threads import SMALL_MODEL_PARAMS, decode_threads

    small = torch.nn.Linear(10, 10)
    assert decode_threads(small, None, "cpu") == 1
    assert decode_threads(small, 3, "cpu") == 3
    assert decode_threads(small, None, "cuda") == torch.get_num_threads()
    big = torch.nn.Linear(1, 1)
    big.weight = torch.nn.Parameter(torch.empty(SMALL_MODEL_PARAMS, 1, device="meta"))
    assert decode_threads(big, None, "cpu") == torch.get_num_threads()
