"""Training the real Brain2Text (configs/tiny.yaml) on tiny synthetic MEG-MASC: every mode end to end,
what each phase may change, exact resume after SIGKILL, two DDP processes, distillation checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from brain2text.config import load_config
from brain2text.errors import ConfigError
from brain2text.training.checkpoint import list_checkpoints, load_checkpoint
from brain2text.training.run import train

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def _cfg(tiny_yaml, overrides, extra=()):
    return load_config(tiny_yaml, [*overrides, *extra])


def _changed(a: dict, b: dict, prefix: str) -> bool:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(a[k], b[k]) for k in keys)


def test_multi_phase_end_to_end_on_the_real_model(tiny_yaml, real_overrides, tmp_path):
    from brain2text.models.serialization import load_model

    out = tmp_path / "run"
    result = train(_cfg(tiny_yaml, real_overrides, ["train.keep_last=10"]), "multi_phase", out)
    assert result.global_step == 6 and set(result.steps_per_second) == {"encoder_pretrain", "rvq", "end_to_end"}
    p1, p2, p3 = (load_checkpoint(out / "checkpoints" / f"step-{s:07d}").model for s in (2, 4, 6))
    # phase 2 trains the RVQ only: encoder, subject layer, projector and LoRA unchanged
    assert not _changed(p1, p2, "model.encoder.") and not _changed(p1, p2, "model.projector.")
    assert not _changed(p1, p2, "model.decoder.") and _changed(p1, p2, "model.rvq.")
    # phase 1 never touches the decoder side; phase 3 trains encoder, projector and LoRA
    assert not _changed(p3, p3, "model.projector.") and _changed(p2, p3, "model.projector.")
    assert _changed(p2, p3, "model.encoder.") and any("lora_" in k for k in p3)
    assert not any(k.startswith("model.decoder.") and "lora_" not in k for k in p3)  # frozen base not in checkpoints
    model = load_model(out / "best_model")
    assert model.preprocessing["scalers"] and model.preprocessing["sfreq"] == 100.0
    final = load_file(str(out / "final_model" / "brain2text.safetensors"))
    assert torch.equal(final["projector." + next(k for k in final if k.startswith("projector."))[10:]],
                       p3["model.projector." + next(k for k in final if k.startswith("projector."))[10:]])
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"]
    assert len(val) == 3 and "rvq/level1_perplexity" in val[-1] and "val_lm" in val[-1]
    assert (out / "loss_curves.png").is_file() and (out / "codebook_usage.png").is_file()
    info = json.loads((out / "final_model" / "training_info.json").read_text())
    assert [(p["name"], p["steps"]) for p in info["phases"]] == [("encoder_pretrain", 2), ("rvq", 2), ("end_to_end", 2)]
    for name in ("best_model", "final_model"):  # each exported model carries its card, with the run's phases
        card = (out / name / "README.md").read_text()
        assert "Mode `multi_phase`, 6 optimizer steps in 3 phase(s)" in card and "| rvq | 2 | rvq | commit 1" in card
        assert f"Decoder.from_pretrained({json.dumps(str(out / name))})" in card and ".tmp" not in card
    assert "This model is the one at step 6 (the end of training)" in (out / "final_model" / "README.md").read_text()
    assert "the best validation val_loss" in (out / "best_model" / "README.md").read_text()


def test_phase1_loss_falls_on_a_repeated_batch(tiny_yaml, real_overrides):
    from brain2text.config import PhaseConfig
    from brain2text.models.build import build_model
    from brain2text.training.data import build_training_data
    from brain2text.training.optim import build_optimizer

    cfg = _cfg(tiny_yaml, real_overrides)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.set_trainable(["subject", "encoder"])
    data = build_training_data(cfg)
    batch = data.collate([data.train[i] for i in range(4)])
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], PhaseConfig(steps=12, lr=1e-2), 0.0)
    losses = []
    for _ in range(12):
        torch.manual_seed(123)  # the same batch and the same masked spans every step
        loss = model(batch, {"mae": 1.0})["mae"]
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0], losses
    assert sum(b > a for a, b in zip(losses, losses[1:])) <= 2, losses  # falls (almost) every step


@pytest.mark.slow
def test_full_then_distill_into_a_narrower_student(tiny_yaml, real_overrides, tmp_path):
    teacher = tmp_path / "teacher"
    train(_cfg(tiny_yaml, real_overrides), "full", teacher)
    student = ["encoder.d_model=16", "encoder.stem_channels=16", "encoder.n_spatial=16", "rvq.dim=8"]
    result = train(_cfg(tiny_yaml, real_overrides, student), "distill", tmp_path / "student",
                   teacher_dir=str(teacher / "final_model"))
    assert result.global_step == 2
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "student" / "checkpoints")[0][1])
    assert ckpt.model["matcher.proj.weight"].shape == (32, 16)  # learned map student 16 -> teacher 32
    records = [json.loads(x) for x in (tmp_path / "student" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in records if r["kind"] == "train"]
    assert all(r["kd"] > 0 and r["feature"] > 0 and r["lm"] > 0 for r in train_rows)


def test_teacher_with_another_tokenizer_stops_before_any_work(tiny_yaml, real_overrides, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from brain2text.data.tokenizer import train_bpe_tokenizer
    from brain2text.models.build import build_model
    from brain2text.models.serialization import save_model

    other = tmp_path / "other-llama"
    tok = train_bpe_tokenizer(["a completely different corpus of words", "with other merges entirely"] * 4,
                              vocab_size=280)
    LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                 intermediate_size=64, vocab_size=len(tok))).save_pretrained(other)
    tok.save_pretrained(other)
    save_model(build_model(_cfg(tiny_yaml, real_overrides, [f"decoder.model_name_or_path={other}"])),
               tmp_path / "teacher")
    with pytest.raises(ConfigError, match="tokenizer differs"):
        train(_cfg(tiny_yaml, real_overrides), "distill", tmp_path / "run", teacher_dir=str(tmp_path / "teacher"))
    assert not (tmp_path / "run").exists()


def _cli(out: Path, overrides: list[str], env: dict | None = None, mode: str = "multi_phase"):
    cmd = [sys.executable, str(REPO / "train.py"), "--config", str(REPO / "configs" / "tiny.yaml"), "--mode", mode,
           "--output_dir", str(out), *overrides]
    return subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600)


def _weights(model_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(model_dir)): p.read_bytes() for p in sorted(model_dir.rglob("*.safetensors"))}


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_bit_identical_on_the_real_model(real_overrides, tmp_path):
    overrides = [*real_overrides, "train.save_every=1"]
    assert _cli(tmp_path / "reference", overrides).returncode == 0
    out = tmp_path / "killed"
    # killed after the last step, before its checkpoint: the resumed run restarts inside the end-to-end
    # phase (optimizer, scheduler, LoRA, RVQ EMA state, RNG and data position all restored)
    res = _cli(out, overrides, {"BRAIN2TEXT_TEST_KILL_AT_STEP": "6"})
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    res = _cli(out, overrides)
    assert res.returncode == 0 and "resuming from" in res.stderr and "step-0000005" in res.stderr, res.stderr[-2000:]
    reference = _weights(tmp_path / "reference" / "final_model")
    assert reference and _weights(out / "final_model") == reference


def _launcher(name: str) -> list[str]:
    import shutil
    import socket

    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"{name} not found")
    if name == "torchrun":
        return [exe, "--standalone", "--nproc_per_node", "2"]
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = REPO / "configs" / "accelerate" / "two_processes.yaml"  # the config file README points users to
    return [exe, "launch", "--config_file", str(config), "--main_process_port", str(port)]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_process_ddp_on_cpu_gives_identical_weights(real_overrides, tmp_path, launcher):
    hashes = tmp_path / "hashes"
    hashes.mkdir()
    cmd = [*_launcher(launcher), str(HERE / "train_and_hash.py"), str(hashes),
           "--config", str(REPO / "configs" / "tiny.yaml"), "--mode", "multi_phase",
           "--output_dir", str(tmp_path / "run"), *real_overrides]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("two-process run timed out")
    assert proc.returncode == 0, err[-3000:]
    digests = [(hashes / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-0000006" / "state.json").read_text())
    assert state["world_size"] == 2 and state["data"]["offset"] == 6 * 4 * 2
