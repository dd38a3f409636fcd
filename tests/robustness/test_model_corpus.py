"""The corrupted-model corpus: a model directory is input too (issue 20).

One tiny *trained* model (the evaluation setup's model with its LoRA perturbed, so the adapter matters)
is copied once per case and damaged in one file: the preprocessing record, the config, the weights, the
tokenizer, the adapter, a symlink. Each copy goes through ``brain2text infer`` (in-process, a few through a
real ``inference.py`` subprocess) and ``brain2text check-model``: exit 2, exactly one stderr line ``error:``
naming the file and the field, no traceback, no output file, and the model directory left as it was.
The undamaged model is the control: it checks and decodes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from brain2text.cli import main
from robust_helpers import assert_clean_error, diff_snapshots, run_subprocess, snapshot

CONFIG, WEIGHTS, RECORD = "brain2text_config.json", "brain2text.safetensors", "preprocessing.json"
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter/adapter_config.json", "adapter/adapter_model.safetensors"


@dataclass
class ModelCase:
    expect: list[str]  # substrings of the one error line: the file, the field, the problem
    sub: bool = False  # also through a real inference.py subprocess
    check_model_ok: bool = False  # check-model reports it (exit 0) instead of refusing: a missing base


CASES: dict[str, Callable[[Path, Path], ModelCase]] = {}


def case(fn):
    CASES[fn.__name__.removeprefix("m_")] = fn
    return fn


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def edit_tensors(path: Path, change: Callable[[dict], object]) -> None:
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def first_scaler(record: dict) -> dict:
    return next(iter(record["scalers"].values()))


# ------------------------------------------------------------------------------- preprocessing.json
@case
def m_record_iqrs_all_zero(model, w):
    edit_json(model / RECORD, lambda r: [s.update(iqr=[0.0] * len(s["iqr"])) for s in r["scalers"].values()])
    return ModelCase([RECORD, ".iqr:", "16 of 16 entries are not positive finite numbers"], sub=True)


@case
def m_record_nan_strings(model, w):
    edit_json(model / RECORD, lambda r: [s.update(median=["NaN"] * len(s["median"]), iqr=["NaN"] * len(s["iqr"]))
                                         for s in r["scalers"].values()])
    return ModelCase([RECORD, ".median:", "not finite numbers", "'NaN'"])


@case
def m_record_nan_literals(model, w):
    edit_json(model / RECORD, lambda r: first_scaler(r)["median"].__setitem__(3, float("nan")))  # JSON NaN
    return ModelCase([RECORD, ".median:", "1 of 16", "[3] = nan"])


@case
def m_record_wrong_types(model, w):
    (model / RECORD).write_text('{"data": "x", "sfreq": "abc"}')
    return ModelCase([RECORD, "key 'data' must be a mapping"])


@case
def m_record_sfreq_not_a_number(model, w):
    edit_json(model / RECORD, lambda r: r.update(sfreq="abc"))
    return ModelCase([RECORD, "'sfreq' must be a positive number", "'abc'"])


@case
def m_record_bad_data_setting(model, w):
    edit_json(model / RECORD, lambda r: r["data"].update(clamp=-1))
    return ModelCase([RECORD, "data.clamp must be > 0"])


@case
def m_record_scaler_too_few_channels(model, w):  # the issue's "100 channels for a 208-channel model"
    edit_json(model / RECORD, lambda r: first_scaler(r).update(median=first_scaler(r)["median"][:10],
                                                              iqr=first_scaler(r)["iqr"][:10]))
    return ModelCase([RECORD, "has 10 channels but 'ch_names' (its montage) has 16"])


@case
def m_record_other_channel_set(model, w):
    edit_json(model / RECORD, lambda r: r.update(ch_names=[f"EEG {i:03d}" for i in range(8)]))
    return ModelCase([RECORD, "'ch_names' (8 channels) match none of the scalers' montages", "another channel set"])


@case
def m_record_not_an_object(model, w):
    (model / RECORD).write_text("[1, 2, 3]\n")
    return ModelCase([RECORD, "expected a JSON object"])


# ------------------------------------------------------------------------------ brain2text_config.json
@case
def m_config_negative_codebooks(model, w):
    edit_json(model / CONFIG, lambda m: m["config"]["rvq"].update(n_codebooks=-3))
    return ModelCase([CONFIG, "rvq.n_codebooks must be > 0, got -3"])


@case
def m_config_unknown_key(model, w):
    edit_json(model / CONFIG, lambda m: m["config"]["encoder"].update(layers=4))
    return ModelCase([CONFIG, "unknown key 'encoder.layers'"])


@case
def m_config_wrong_type(model, w):
    edit_json(model / CONFIG, lambda m: m["config"]["decoder"].update(lora_r="four"))
    return ModelCase([CONFIG, "'decoder.lora_r' must be an integer"])


@case
def m_config_disagrees_with_weights(model, w):
    edit_json(model / CONFIG, lambda m: m["config"]["rvq"].update(codebook_size=64))
    return ModelCase([WEIGHTS, "'rvq.codebooks' has shape [2, 32, 16]", f"that {CONFIG} describes needs [2, 64, 16]"])


@case
def m_config_newer_format(model, w):
    edit_json(model / CONFIG, lambda m: m.update(version=7))
    return ModelCase([CONFIG, "format version 7", "newer brain2text"])


@case
def m_config_lexicon_without_phoneme_head(model, w):  # a lexicon for a head the model does not have
    edit_json(model / CONFIG, lambda m: m.update(lexicon_words=["roy", "fort"]))
    return ModelCase([CONFIG, "'lexicon_words' is set but encoder.phoneme_head is off"])


@case
def m_config_missing_base(model, w):  # already handled before issue 20; check-model reports it instead
    edit_json(model / CONFIG, lambda m: m.update(decoder_base=str(w / "gone" / "llama")))
    return ModelCase([CONFIG, "base decoder", "is not there", "decoder_base"], check_model_ok=True)


# ------------------------------------------------------------------------------ brain2text.safetensors
@case
def m_weights_float64(model, w):
    edit_tensors(model / WEIGHTS, lambda t: t.update({"projector.net.0.weight": t["projector.net.0.weight"].double()}))
    return ModelCase([WEIGHTS, "'projector.net.0.weight' is float64", "needs float32"], sub=True)


@case
def m_weights_int(model, w):
    edit_tensors(model / WEIGHTS, lambda t: t.update({"ctc_head.bias": t["ctc_head.bias"].to(torch.int32)}))
    return ModelCase([WEIGHTS, "'ctc_head.bias' is int32", "needs float32"])


@case
def m_weights_missing_tensors(model, w):
    edit_tensors(model / WEIGHTS, lambda t: [t.pop(k) for k in ("word_head.weight", "word_head.bias")])
    return ModelCase([WEIGHTS, "missing 2 tensor(s) 'word_head.bias', 'word_head.weight'"])


@case
def m_weights_extra_tensor(model, w):
    edit_tensors(model / WEIGHTS, lambda t: t.update({"encoder.backdoor.weight": torch.zeros(3, 3)}))
    return ModelCase([WEIGHTS, "1 unexpected tensor(s) 'encoder.backdoor.weight'"])


@case
def m_weights_nan(model, w):
    def poison(t):
        t["encoder.mask_value"][0] = float("nan")

    edit_tensors(model / WEIGHTS, poison)
    return ModelCase([WEIGHTS, "'encoder.mask_value' holds NaN or Inf"])


# --------------------------------------------------------------------------------------- tokenizer
def _other_tokenizer(model: Path, vocab_size: int) -> int:
    from brain2text.data.tokenizer import train_bpe_tokenizer
    from helpers import SENTENCES

    shutil.rmtree(model / "tokenizer")
    tok = train_bpe_tokenizer(SENTENCES[:2], vocab_size=vocab_size)
    tok.save_pretrained(str(model / "tokenizer"))
    return len(tok)


@case
def m_tokenizer_wrong_size(model, w):
    n = _other_tokenizer(model, 280)
    return ModelCase(["tokenizer", f"has {n} tokens but the model was trained with"])


@case
def m_tokenizer_wrong_size_old_format(model, w):  # a model saved before n_tokens was recorded: the CTC head says
    _other_tokenizer(model, 280)
    edit_json(model / CONFIG, lambda m: m.pop("n_tokens"))
    return ModelCase(["tokenizer", "the CTC head predicts", "not the one this model was trained with"])


# ----------------------------------------------------------------------------------------- adapter
@case
def m_adapter_for_another_base(model, w):  # LoRA trained on a 48-wide LLaMA, not the 32-wide base
    def widen(t):
        for k in list(t):
            t[k] = torch.randn(4, 48) if ".lora_A." in k else torch.randn(48, 4)

    edit_tensors(model / ADAPTER_WEIGHTS, widen)
    edit_json(model / ADAPTER_CONFIG, lambda a: a.update(base_model_name_or_path="someone/llama-48"))
    return ModelCase(["adapter_model.safetensors", "has shape [4, 48]", "needs [4, 32]", "'someone/llama-48'"])


@case
def m_adapter_rank_differs(model, w):
    edit_json(model / ADAPTER_CONFIG, lambda a: a.update(r=8))
    return ModelCase(["adapter_config.json", "'r' is 8", "decoder.lora_r=4"])


@case
def m_adapter_other_targets(model, w):
    edit_json(model / ADAPTER_CONFIG, lambda a: a.update(target_modules=["k_proj", "o_proj"]))
    return ModelCase(["adapter_config.json", "'target_modules'", "decoder.lora_target_modules=['q_proj', 'v_proj']"])


@case
def m_adapter_missing_tensor(model, w):
    edit_tensors(model / ADAPTER_WEIGHTS, lambda t: t.pop(sorted(k for k in t if "lora_B" in k)[0]))
    return ModelCase(["adapter_model.safetensors", "missing 1 tensor(s)", "lora_B"])


@case
def m_adapter_int_tensors(model, w):
    edit_tensors(model / ADAPTER_WEIGHTS, lambda t: t.update({k: v.to(torch.int64) for k, v in t.items()}))
    return ModelCase(["adapter_model.safetensors", "is int64", "LoRA weights are float32"])


@case
def m_decoder_weights_other_vocabulary(model, w):  # a fully trained decoder, saved with a 500-token embedding
    from brain2text.models.serialization import load_model

    weights = {k: v.detach().clone() for k, v in load_model(model).decoder.named_parameters() if "lora_" not in k}
    key = "base_model.model.model.embed_tokens.weight"
    weights[key] = torch.zeros(500, weights[key].shape[1])
    save_file(weights, str(model / "decoder.safetensors"))
    return ModelCase(["decoder.safetensors", f"'{key}' has shape [500, 32]", "the base decoder needs ["])


# ----------------------------------------------------------------------------------- other files
@case
def m_symlink_file_outside(model, w):
    secret = w / "outside.json"
    secret.write_text((model / RECORD).read_text())
    (model / RECORD).unlink()
    (model / RECORD).symlink_to(secret)
    return ModelCase([RECORD, "symlink to", "outside the model directory"], sub=True)


@case
def m_symlink_folder_outside(model, w):
    shutil.move(str(model / "tokenizer"), str(w / "tokenizer-elsewhere"))
    (model / "tokenizer").symlink_to(w / "tokenizer-elsewhere", target_is_directory=True)
    return ModelCase(["tokenizer", "symlink to", "outside the model directory"])


@case
def m_training_info_not_an_object(model, w):
    (model / "training_info.json").write_text('["step", 12]')
    return ModelCase(["training_info.json", "expected a JSON object, got list"])


# -------------------------------------------------------------------------------------- the runner
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, object]:
    """(a tiny model directory whose LoRA is not a no-op, the evaluation setup it was made from)."""
    from eval_helpers import tiny_eval_setup

    setup = tiny_eval_setup(tmp_path_factory)
    model = tmp_path_factory.mktemp("trained") / "model"
    shutil.copytree(setup.model_dir, model)
    gen = torch.Generator().manual_seed(0)
    edit_tensors(model / ADAPTER_WEIGHTS, lambda t: t.update({k: torch.randn(v.shape, generator=gen) * 0.5
                                                              for k, v in t.items() if "lora_B" in k}))
    (model / "training_info.json").write_text('{"step": 12, "metric": "val_loss", "value": 5.1}\n')
    (model / "README.md").write_text("# a model card: an extra file the validation must tolerate\n")
    return model, setup


@pytest.fixture
def recording(tmp_path) -> Path:
    path = tmp_path / "rec.npy"
    np.save(path, np.random.default_rng(0).standard_normal((16, 1000)).astype(np.float32))
    return path


def _infer(model: Path, recording: Path, out: Path) -> list[str]:
    return ["--model_path", str(model), "--input_file", str(recording), "--output_file", str(out), "--sfreq", "200"]


def test_the_undamaged_model_checks_and_decodes(trained, recording, tmp_path, capsys):
    model, setup = trained
    assert main(["check-model", str(model)]) == 0
    text = capsys.readouterr().out
    assert "valid" in text and "(present)" in text and "adapter: LoRA r=4 alpha=8 on q_proj, v_proj" in text
    assert "subjects 01 02, 2 scaler(s)" in text and "README.md" in text
    assert main(["check-model", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["decoder_base_present"] and info["adapter"]["r"] == 4 and info["n_tokens"] > 0
    assert {"README.md", "training_info.json", RECORD}.issubset({f["path"] for f in info["files"]})
    assert info["preprocessing"]["subjects"] == ["01", "02"] and info["training_info"]["step"] == 12
    rec = next(setup.bids_root.glob("sub-01/ses-0/meg/*_meg.fif"))
    out = tmp_path / "out.json"
    assert main(["infer", "--model_path", str(model), "--input_file", str(rec), "--output_file", str(out)]) == 0
    texts = [s["text"] for s in json.loads(out.read_text())["segments"]]
    assert texts and any(texts), "the perturbed LoRA should make the tiny decoder say something"


@pytest.mark.parametrize("name", sorted(CASES))
def test_corrupted_model_is_refused_in_one_line(name, trained, recording, tmp_path, capsys):
    w = tmp_path / "case"
    w.mkdir()
    model = w / "model"
    shutil.copytree(trained[0], model)
    spec = CASES[name](model, w)
    out = w / "results.json"
    before = snapshot(w)
    capsys.readouterr()
    rc = main(["infer", *_infer(model, recording, out)])
    assert_clean_error(rc, capsys.readouterr().err, spec.expect)
    rc = main(["check-model", str(model)])
    captured = capsys.readouterr()
    if spec.check_model_ok:
        assert rc == 0 and "NOT FOUND" in captured.out and not captured.err.strip(), captured
    else:
        assert_clean_error(rc, captured.err, spec.expect)
        assert not captured.out
    if spec.sub:
        rc, err = run_subprocess(["inference.py", *_infer(model, recording, out)], cwd=w)
        assert_clean_error(rc, err, spec.expect)
    assert not out.exists()
    assert not diff_snapshots(before, snapshot(w)), diff_snapshots(before, snapshot(w))


def test_the_corpus_covers_every_case_the_issue_names():
    assert len(CASES) >= 15
    for needed in ("record_iqrs_all_zero", "record_nan_strings", "record_wrong_types", "record_scaler_too_few_channels",
                   "config_negative_codebooks", "weights_float64", "weights_missing_tensors", "weights_extra_tensor",
                   "config_disagrees_with_weights", "tokenizer_wrong_size", "adapter_for_another_base",
                   "record_other_channel_set", "symlink_file_outside"):
        assert needed in CASES
