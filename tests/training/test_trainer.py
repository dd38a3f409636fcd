"""The training loop end to end on a stand-in model (same interface as Brain2Text, milliseconds per
step): every mode, what each phase may change, validation, best/final models, logs and plots."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from brain2text.errors import Brain2TextError, ConfigError
from brain2text.training.checkpoint import list_checkpoints, load_checkpoint
from training_standins import StandInModel, StandInTokenizer, run_standin


def _ckpt_model(out, step):
    return load_checkpoint(out / "checkpoints" / f"step-{step:07d}").model


def test_multi_phase_end_to_end_and_what_each_phase_changes(tmp_path):
    out = tmp_path / "run"
    result = run_standin(out, "multi_phase", ["train.keep_last=20"])
    assert result.global_step == 12 and set(result.steps_per_second) == {"encoder_pretrain", "rvq", "end_to_end"}
    steps = sorted(s for s, _ in list_checkpoints(out / "checkpoints"))
    assert {4, 7, 12} <= set(steps)  # every phase ends with a checkpoint
    p1, p2, p3 = _ckpt_model(out, 4), _ckpt_model(out, 7), _ckpt_model(out, 12)

    def changed(a, b, prefix):
        return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))

    # phase 2 (rvq) leaves the encoder and everything else but the RVQ unchanged
    assert not changed(p1, p2, "model.encoder.") and not changed(p1, p2, "model.subject.")
    assert not changed(p1, p2, "model.projector.") and changed(p1, p2, "model.rvq_scale")
    # phase 3 trains encoder/projector but not the subject layer (not in its trainable list)
    assert (changed(p2, p3, "model.encoder.") and changed(p2, p3, "model.projector.")
            and not changed(p2, p3, "model.subject."))
    # the frozen base decoder is never saved in checkpoints
    assert not any(k.startswith("model.decoder.") for k in p3)
    for name in ("best_model", "final_model"):
        assert (out / name / "brain2text.safetensors").is_file()
        assert json.loads((out / name / "preprocessing.json").read_text())["standin"] is True
    final = load_file(str(out / "final_model" / "brain2text.safetensors"))
    assert torch.equal(final["encoder.0.weight"], p3["model.encoder.0.weight"])
    info = json.loads((out / "best_model" / "training_info.json").read_text())
    assert info["metric"] == "val_loss" and info["step"] in (9, 12)  # best is taken in the last phase only
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 13))
    val = [r for r in records if r["kind"] == "val"]
    assert val and all("rvq/level0_perplexity" in r and "val_loss" in r for r in val)
    assert (out / "loss_curves.png").stat().st_size > 1000 and (out / "codebook_usage.png").is_file()
    assert list((out / "logs").glob("events.out.tfevents.*"))


def test_full_mode_bf16_accumulation_workers_and_rerun_of_a_finished_run(tmp_path):
    out = tmp_path / "run"
    overrides = ["train.mixed_precision=bf16", "train.grad_accum=2", "train.num_workers=1", "train.deterministic=false"]
    run_standin(out, "full", overrides)
    state = load_checkpoint(list_checkpoints(out / "checkpoints")[0][1]).state
    assert state["data"]["offset"] == 3 * 2 * 2  # steps x batch_size x grad_accum examples consumed
    assert not torch.are_deterministic_algorithms_enabled()  # the global flag is restored after training
    before = (out / "final_model" / "brain2text.safetensors").read_bytes()
    result = run_standin(out, "full", overrides)  # same command again: already complete
    assert result.global_step == 3
    assert (out / "final_model" / "brain2text.safetensors").read_bytes() == before


def test_distill_mode_with_wider_teacher(tmp_path):
    teacher = StandInModel(d_model=12)
    (tmp_path / "teacher" / "tokenizer").mkdir(parents=True)
    import brain2text.training.run as run_mod

    orig = run_mod.load_teacher_tokenizer
    run_mod.load_teacher_tokenizer = lambda d: StandInTokenizer()
    try:
        result = run_standin(tmp_path / "run", "distill", teacher_dir=str(tmp_path / "teacher"), teacher=teacher)
        ckpt = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[0][1])
        assert ckpt.model["matcher.proj.weight"].shape == (12, 8)  # a learned map 8 -> 12
        records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert all(r["kd"] >= 0 and r["feature"] > 0 for r in records if r["kind"] == "train")
        assert result.global_step == 3
        # another tokenizer: a clear error before any work
        run_mod.load_teacher_tokenizer = lambda d: StandInTokenizer(extra=2)
        with pytest.raises(ConfigError, match="tokenizer differs"):
            run_standin(tmp_path / "run2", "distill", teacher_dir=str(tmp_path / "teacher"), teacher=teacher)
        assert not (tmp_path / "run2").exists()
    finally:
        run_mod.load_teacher_tokenizer = orig


@pytest.mark.parametrize("mode, kwargs, overrides, match", [
    ("nonsense", {}, [], "unknown training mode"),
    ("distill", {}, [], "needs --teacher_checkpoint"),
    ("distill", {"teacher_dir": "/nonexistent/teacher"}, [], "teacher model directory not found"),
    ("multi_phase", {}, ["train.multi_phase=[{name: a, steps: 0}]"], "steps must be > 0"),
    ("full", {}, ["train.full=[{name: a, steps: 2, losses: {kd: 1.0}}]"], "need --mode distill"),
])
def test_bad_settings_stop_before_any_work(tmp_path, mode, kwargs, overrides, match):
    with pytest.raises(Brain2TextError, match=match):
        run_standin(tmp_path / "run", mode, overrides, **kwargs)
    assert not (tmp_path / "run").exists()


def test_foreign_or_other_run_output_dir_is_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(Brain2TextError, match="not a brain2text training run"):
        run_standin(foreign, "full")
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]
    run_standin(tmp_path / "run", "full")
    with pytest.raises(Brain2TextError, match="another config"):
        run_standin(tmp_path / "run", "full", ["train.seed=1"])
    with pytest.raises(Brain2TextError, match="--resume"):
        run_standin(tmp_path / "empty", "full", resume=True)


def test_all_checkpoints_corrupt_is_a_clear_error_and_nothing_is_overwritten(tmp_path):
    out = tmp_path / "run"
    run_standin(out, "full", ["train.save_every=1", "train.keep_last=2"])
    best = (out / "best_model" / "brain2text.safetensors").read_bytes()
    for _, path in list_checkpoints(out / "checkpoints"):
        (path / "model.safetensors").write_bytes(b"\0" * 16)
    with pytest.warns(UserWarning, match="unusable"), pytest.raises(Brain2TextError, match="no usable checkpoint"):
        run_standin(out, "full", ["train.save_every=1", "train.keep_last=2"])
    with pytest.raises(Brain2TextError, match="every checkpoint of this run is corrupt"):  # no silent restart later
        run_standin(out, "full", ["train.save_every=1", "train.keep_last=2"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002.corrupt", "step-0000003.corrupt"]
    assert (out / "best_model" / "brain2text.safetensors").read_bytes() == best
