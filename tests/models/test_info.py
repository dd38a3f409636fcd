import json

from brain2text.cli import main
from brain2text.config import load_config
from brain2text.models.info import model_info


def test_full_size_counts_on_meta_without_allocating(repo_root, capsys):
    cfg = load_config(repo_root / "configs" / "default_config.yaml")
    info = model_info(cfg)
    p = info["params"]
    assert p["encoder"] == 101_820_650
    assert p["rvq_codebook_entries"] == 8 * 8192 * 256 == 16_777_216
    assert p["rvq"] == 16_777_216 + 768 * 256 + 256
    assert p["projector"] == 256 * 4096 + 4096 + 4096 * 4096 + 4096 == 17_833_984
    assert p["lora"] == 4_194_304  # r=8 on q_proj and v_proj of 32 layers: 32 * 2 * 8 * (4096 + 4096)
    assert p["decoder"] == 6_738_415_616 + 4 * 4096 * 2  # LLaMA-2 7B + 4 added token rows (in and out)
    assert info["meg_tokens_per_second"] == 12.5
    assert info["trainable"]["multi_phase/rvq"] == 768 * 256 + 256
    mem = info["memory_gb"]
    assert 13 < mem["inference"] < 40 and mem["multi_phase/end_to_end"] > mem["multi_phase/rvq"] > 13
    assert main(["info", "--config", str(repo_root / "configs" / "default_config.yaml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(isinstance(out["params"][k], int) for k in ("encoder", "rvq", "projector", "decoder", "lora"))
    assert "memory_gb" in out


def test_info_on_tiny_local_decoder(tiny_cfg, tmp_path, capsys):
    info = model_info(tiny_cfg)
    from brain2text.models.build import build_model

    real = build_model(tiny_cfg)
    groups = {k: sum(p.numel() for p in v) for k, v in real.parameter_groups().items()}
    assert info["params"]["lora"] == groups["lora"] and info["params"]["decoder"] == groups["decoder"]
    assert info["params"]["projector"] == groups["projector"]
    assert info["params"]["encoder"] == groups["encoder"] + groups["subject"]
