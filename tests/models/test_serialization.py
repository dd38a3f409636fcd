import json

import pytest
import torch

from brain2text.config import DecodingConfig
from brain2text.errors import ModelError
from brain2text.models.build import build_model
from brain2text.models.serialization import load_model, save_model
from helpers import make_batch, tiny_config


@pytest.fixture(scope="module")
def saved(tiny_lm_dir, tmp_path_factory):
    torch.manual_seed(0)
    m = build_model(tiny_config(tiny_lm_dir))
    m.train()
    m(make_batch(), {"commit": 1.0})  # codebooks initialised from data
    with torch.no_grad():  # a fresh LoRA is a no-op: perturb it so the adapter matters
        for n, p in m.decoder.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    m.eval()
    path = tmp_path_factory.mktemp("saved") / "model"
    save_model(m, path, preprocessing={"sfreq": 100.0, "scaler": {"center": [0.0, 1.0]}})
    return m, path


def test_reload_gives_identical_outputs(saved):
    model, path = saved
    again = load_model(path)
    batch = make_batch(lengths=(110, 70), tokenizer=model.tokenizer)
    torch.testing.assert_close(again.lm_logits(batch)[0], model.lm_logits(batch)[0], atol=0, rtol=0)
    assert torch.equal(again.encode(batch).codes, model.encode(batch).codes)
    dec = DecodingConfig(strategy="greedy")
    assert again.generate(batch, dec) == model.generate(batch, dec)
    assert again.preprocessing == {"sfreq": 100.0, "scaler": {"center": [0.0, 1.0]}}
    meta = json.loads((path / "brain2text_config.json").read_text())
    assert meta["decoder_base"] == str(model.decoder_base)
    assert (path / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(path.rglob("*.bin")) and not list(path.rglob("*.pt"))


def _copy(path, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(path, dst)
    return dst


@pytest.mark.parametrize("name", ["pytorch_model.bin", "adapter/extra.pt", "state.pkl"])
def test_loading_refuses_pickle(saved, tmp_path, name):
    path = _copy(saved[1], tmp_path)
    (path / name).write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelError, match="pickle") as exc:
        load_model(path)
    assert name.split("/")[-1] in str(exc.value)


@pytest.mark.parametrize("name", ["brain2text.safetensors", "adapter/adapter_model.safetensors"])
def test_truncated_safetensors_is_a_clear_error(saved, tmp_path, name):
    path = _copy(saved[1], tmp_path)
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="safetensors") as exc:
        load_model(path)
    assert name.split("/")[-1] in str(exc.value)


def test_missing_base_and_missing_files(saved, tmp_path):
    path = _copy(saved[1], tmp_path)
    meta = json.loads((path / "brain2text_config.json").read_text())
    meta["decoder_base"] = str(tmp_path / "gone")
    (path / "brain2text_config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="base decoder"):
        load_model(path)
    (path / "brain2text_config.json").unlink()
    with pytest.raises(ModelError, match="brain2text_config.json"):
        load_model(path)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nowhere")


def test_relative_decoder_base_next_to_the_model(saved, tmp_path, tiny_lm_dir):
    import shutil

    path = _copy(saved[1], tmp_path)
    shutil.copytree(tiny_lm_dir, path / "base")
    meta = json.loads((path / "brain2text_config.json").read_text())
    meta["decoder_base"] = "base"
    (path / "brain2text_config.json").write_text(json.dumps(meta))
    again = load_model(path)
    batch = make_batch(tokenizer=again.tokenizer)
    torch.testing.assert_close(again.lm_logits(batch)[0], saved[0].lm_logits(batch)[0], atol=0, rtol=0)
