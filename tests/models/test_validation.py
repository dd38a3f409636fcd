"""Model-directory validation (models/validation.py): what a valid directory reports, what it tolerates
(unknown files and keys, symlinks that stay inside), and the preprocessing record's schema field by field.
The corrupted directories themselves are the corpus in tests/robustness/test_model_corpus.py."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from brain2text.config import ConfigError
from brain2text.data.cache import scaler_key
from brain2text.errors import ModelError
from brain2text.models.build import build_model
from brain2text.models.preprocessing_record import check_preprocessing
from brain2text.models.serialization import load_model, save_model
from brain2text.models.validation import validate_model_dir
from helpers import make_batch, tiny_config

CH = [f"MEG {i:03d}" for i in range(16)]


def record(n: int = 16, subjects=("01", "02"), ch_names=CH) -> dict:
    key = scaler_key("01", list(ch_names))
    return {"data": {"sfreq": 100.0}, "sfreq": 100.0, "subjects": list(subjects), "ch_names": list(ch_names),
            "scalers": {key: {"median": [0.0] * n, "iqr": [1.0] * n, "source": "train"}}, "synthetic": True}


@pytest.fixture(scope="module")
def saved(tiny_lm_dir, tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(tiny_config(tiny_lm_dir))
    with torch.no_grad():
        for n, p in model.decoder.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("valid") / "model"
    save_model(model.eval(), path, preprocessing=record())
    return model, path


def _copy(path, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(path, dst)
    return dst


def test_report_says_what_the_directory_holds(saved):
    model, path = saved
    report = validate_model_dir(path)
    assert report.base_present and report.format_version == 1 and report.decoder_weights is None
    assert report.n_tokens == len(model.tokenizer) == report.state["ctc_head.weight"].shape[0] - 1
    numel = {name: sum(p.numel() for p in params) for name, params in model.parameter_groups().items()}
    for part in ("projector", "ctc_head", "word_head", "lora", "subject"):
        assert report.params[part] == numel[part], part
    assert report.params["decoder"] == numel["decoder"]
    assert report.adapter == {"base_model_name_or_path": str(model.decoder_base), "r": 4, "lora_alpha": 8,
                              "target_modules": ["q_proj", "v_proj"], "params": numel["lora"]}
    summary = json.loads(json.dumps(report.summary()))  # JSON-able
    assert summary["preprocessing"]["subjects"] == ["01", "02"] and summary["preprocessing"]["n_channels"] == 16
    assert {"brain2text.safetensors", "adapter/adapter_model.safetensors", "tokenizer/tokenizer.json"} <= \
        {f["path"] for f in summary["files"]}


def test_unknown_files_keys_and_inner_symlinks_are_tolerated(saved, tmp_path):
    model, path = saved
    path = _copy(path, tmp_path)
    (path / "README.md").write_text("# model card\n")
    (path / "evaluation").mkdir()
    (path / "evaluation" / "eval.json").write_text("{}")
    (path / "card-link.md").symlink_to(path / "README.md")
    meta = json.loads((path / "brain2text_config.json").read_text())
    meta["tokenizer_notes"] = ["a", "b"]  # a key a later version may add: ignored, not refused
    (path / "brain2text_config.json").write_text(json.dumps(meta))
    again = load_model(path)
    batch = make_batch(tokenizer=model.tokenizer)
    torch.testing.assert_close(again.lm_logits(batch)[0], model.lm_logits(batch)[0], atol=0, rtol=0)
    assert "README.md" in {f["path"] for f in validate_model_dir(path).files}


def test_a_whole_trained_decoder_round_trips(tiny_lm_dir, tmp_path):
    torch.manual_seed(1)
    model = build_model(tiny_config(tiny_lm_dir))
    model.set_trainable(["decoder"])
    with torch.no_grad():
        model.decoder.get_input_embeddings().weight.add_(0.1)
    save_model(model.eval(), tmp_path / "m", preprocessing={})
    report = validate_model_dir(tmp_path / "m")
    assert report.decoder_weights is not None and report.preprocessing == {}
    again = load_model(tmp_path / "m")
    batch = make_batch(tokenizer=model.tokenizer)
    assert again.decoder_trained
    torch.testing.assert_close(again.lm_logits(batch)[0], model.lm_logits(batch)[0], atol=0, rtol=0)


def test_without_its_base_a_directory_is_still_checked(saved, tmp_path):
    path = _copy(saved[1], tmp_path)
    meta = json.loads((path / "brain2text_config.json").read_text())
    meta["decoder_base"] = str(tmp_path / "gone")
    (path / "brain2text_config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="is not there"):
        validate_model_dir(path)
    report = validate_model_dir(path, require_base=False)
    assert not report.base_present and "decoder" not in report.params
    acfg = json.loads((path / "adapter" / "adapter_config.json").read_text())
    acfg["r"] = 8
    (path / "adapter" / "adapter_config.json").write_text(json.dumps(acfg))
    with pytest.raises(ModelError, match=r"adapter_config.json: 'r' is 8"):
        validate_model_dir(path, require_base=False)


def test_a_symlinked_model_directory_is_fine(saved, tmp_path):
    (tmp_path / "link").symlink_to(saved[1], target_is_directory=True)
    assert validate_model_dir(tmp_path / "link").base_present


# ----------------------------------------------------------------------------------- the record
def _cfg(tiny_lm_dir, *overrides):
    return tiny_config(tiny_lm_dir, list(overrides))


@pytest.mark.parametrize("change, overrides, msg", [
    (lambda r: r.update(ch_names=CH[:8]), ["encoder.spatial_attention=false", "encoder.n_chans=16"],
     "'ch_names' lists 8 channels but the model takes encoder.n_chans=16"),
    (lambda r: None, ["encoder.spatial_attention=false", "encoder.n_chans=20"], "'ch_names' lists 16 channels"),
    (lambda r: r.update(subjects=[f"{i:02d}" for i in range(9)]), [], "9 subjects but the subject layer has"),
    (lambda r: r.update(ch_names=[*CH[:15], CH[0]]), [], "'ch_names' names 'MEG 000' twice"),
    (lambda r: r.update(subjects="01"), [], "'subjects' must be a list of non-empty strings"),
    (lambda r: r.update(sfreq=200.0), [], r"'sfreq' \(200.0 Hz\) disagrees with data.sfreq \(100.0 Hz\)"),
    (lambda r: r.update(sfreq=-1), [], "'sfreq' must be a positive number"),
    (lambda r: r.update(synthetic="yes"), [], "'synthetic' must be true or false"),
    (lambda r: r.update(scalers={"01": record()["scalers"][scaler_key("01", CH)]}), [], "keys are 'subject|montage'"),
    (lambda r: r.update(scalers={scaler_key("07", CH): record()["scalers"][scaler_key("01", CH)]}), [],
     "with a subject of 'subjects'"),
    (lambda r: r.update(scalers=[]), [], "'scalers' must be an object"),
    (lambda r: next(iter(r["scalers"].values())).update(iqr=[1.0] * 15), [], "has 16 medians but 15 IQRs"),
    (lambda r: next(iter(r["scalers"].values())).update(iqr=[1.0] * 15 + [-2.0]), [], r"\[15\] = -2.0"),
    (lambda r: next(iter(r["scalers"].values())).update(median=[]), [], "non-empty list of numbers"),
    (lambda r: next(iter(r["scalers"].values())).update(median=[True] * 16), [], "not finite numbers"),
], ids=["fewer_names_than_n_chans", "n_chans_differs", "too_many_subjects", "duplicate_channel", "subjects_a_string",
        "sfreq_disagrees", "sfreq_negative", "synthetic_not_bool", "key_without_montage", "key_unknown_subject",
        "scalers_a_list", "iqr_count_differs", "iqr_negative", "median_empty", "median_bools"])
def test_preprocessing_schema(tiny_lm_dir, tmp_path, change, overrides, msg):
    rec = record()
    change(rec)
    with pytest.raises(ModelError, match=msg) as exc:
        check_preprocessing(rec, _cfg(tiny_lm_dir, *overrides), tmp_path / "preprocessing.json")
    assert str(exc.value).startswith(str(tmp_path / "preprocessing.json"))


def test_the_records_training_writes_pass(tiny_lm_dir, tmp_path):
    cfg = _cfg(tiny_lm_dir, "encoder.spatial_attention=false", "encoder.n_chans=16")
    assert check_preprocessing(record(), cfg, tmp_path / "p.json") == record()
    assert check_preprocessing({}, cfg, tmp_path / "p.json") == {}
    with pytest.raises(ConfigError, match=r"p.json: data.clamp must be > 0"):
        check_preprocessing({"data": {"clamp": 0}}, cfg, tmp_path / "p.json")


def test_view_of_no_longer_ignores_a_bad_record(tiny_lm_dir):
    """inference/model_view used to fall back to the config's data settings when the record's were invalid."""
    from brain2text.inference.model_view import view_of

    model = build_model(tiny_config(tiny_lm_dir))
    model.preprocessing = {"data": {"sfreq": 200.0, "h_freq": 30.0}, "sfreq": 200.0}
    assert view_of(model, "m").data.sfreq == 200.0  # the record's settings are the ones used
    model.preprocessing = {"data": "x", "sfreq": "abc"}
    with pytest.raises(ConfigError, match=r"m/preprocessing.json: key 'data' must be a mapping"):
        view_of(model, "m")
    model.preprocessing = {"data": {"sfreq": "fast"}}
    with pytest.raises(ConfigError, match=r"key 'data.sfreq' must be a number"):
        view_of(model, "m")


def test_weights_saved_in_16_bits_load_widened(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    path = _copy(saved[1], tmp_path)
    state = load_file(str(path / "brain2text.safetensors"))
    state["projector.net.0.weight"] = state["projector.net.0.weight"].half()
    save_file(state, str(path / "brain2text.safetensors"))
    weight = load_model(path).projector.net[0].weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, state["projector.net.0.weight"].float(), atol=0, rtol=0)


@pytest.mark.parametrize("units, problem", [(["a", "b"], "must be a list of token ids"), ([3, 3], "distinct token ids"),
                                            ([10**6], "distinct token ids below")])
def test_bad_ctc_units_are_refused_naming_the_key(saved, tmp_path, units, problem):
    _, path = saved
    path = _copy(path, tmp_path)
    meta = json.loads((path / "brain2text_config.json").read_text())
    meta["ctc_units"] = units
    (path / "brain2text_config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=f"brain2text_config.json: 'ctc_units'.*{problem}"):
        validate_model_dir(path)


def test_ctc_units_that_disagree_with_the_ctc_head_are_refused(saved, tmp_path):
    _, path = saved
    path = _copy(path, tmp_path)
    meta = json.loads((path / "brain2text_config.json").read_text())
    meta["ctc_units"] = [0, 1, 2]  # the head was trained over every token id
    (path / "brain2text_config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="'ctc_units' lists 3"):
        validate_model_dir(path)
