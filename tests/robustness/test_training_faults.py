"""Faults during training (issue 9), on the training engineer's stand-in model (same interface as
Brain2Text, milliseconds per step; tests/training/training_standins.py):

* a full disk while a checkpoint or best_model is being written: one clear error, the previous
  checkpoint and best_model byte-identical, no temporary left, and the rerun ends bit-identical to an
  uninterrupted run;
* a corrupted newest checkpoint: the run falls back to the previous good one with a warning (the
  broken one is kept aside, never deleted) and still ends bit-identical; when every checkpoint is
  corrupt it stops with a clear error and touches neither best_model nor final_model;
* SIGINT: a clean checkpoint, then exit (SIGTERM and SIGKILL at seeded points: tests/training/test_resume.py).
"""

from __future__ import annotations

import errno
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from brain2text.errors import Brain2TextError  # noqa: E402
from brain2text.training import checkpoint as ck  # noqa: E402
from brain2text.training.trainer import Trainer, TrainingInterrupted  # noqa: E402
from robust_helpers import diff_snapshots, snapshot  # noqa: E402
from training_standins import StandInModel, run_standin  # noqa: E402

MODE = "multi_phase"
# Three phases of 2 + 1 + 3 steps; checkpoints at steps 2, 3, 4, 6 (every 2 steps and at phase ends), the
# newest 2 kept; validation at steps 2, 3, 4, 6, best_model chosen in the last phase only (steps 4 and 6).
OVR = ["train.multi_phase=[{name: encoder_pretrain, steps: 2, trainable: [subject, encoder], losses: {mae: 1.0}, lr: "
       "1.0e-2},"
       " {name: rvq, steps: 1, trainable: [rvq], losses: {commit: 1.0}, lr: 1.0e-2},"
       " {name: end_to_end, steps: 3, trainable: [encoder, rvq, projector, lora, ctc_head],"
       " losses: {lm: 1.0, commit: 0.25, ctc: 0.3}, lr: 1.0e-2, warmup_steps: 1}]",
       "train.save_every=2", "train.eval_every=2", "train.keep_last=2"]


def _train(out: Path, extra: list[str] | None = None):
    return run_standin(out, MODE, [*OVR, *(extra or [])])


def _bytes(out: Path, name: str) -> bytes:
    return (out / name / "brain2text.safetensors").read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    _train(out)
    return out


def _stop_at(monkeypatch, step: int) -> None:
    """Make the trainer behave as if SIGTERM arrived during ``step`` (checkpoint, then TrainingInterrupted)."""
    real = Trainer._stop_requested

    def fake(self):
        return signal.SIGTERM if self.global_step == step else real(self)

    monkeypatch.setattr(Trainer, "_stop_requested", fake)


def _assert_same_as_reference(out: Path, reference: Path) -> None:
    assert _bytes(out, "final_model") == _bytes(reference, "final_model")
    assert _bytes(out, "best_model") == _bytes(reference, "best_model")
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob(".*.old-*"))


def test_full_disk_while_writing_a_checkpoint(tmp_path, monkeypatch, reference):
    out = tmp_path / "run"
    real_save = ck.save_file
    seen = {}

    def disk_full(tensors, filename, *a, **k):
        if "step-0000006" in str(Path(filename).parent.name):  # write half the file, then ENOSPC
            real_save(tensors, filename, *a, **k)
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[: len(data) // 2])
            seen["before"] = {p: v for p, v in snapshot(out).items() if ".step-0000006" not in p}
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, filename, *a, **k)

    monkeypatch.setattr(ck, "save_file", disk_full)
    with pytest.raises(Brain2TextError, match="No space left on device") as info:
        _train(out)
    assert "step-0000006" in str(info.value)
    after = snapshot(out)
    # nothing that existed when the disk filled up was changed; the half-written checkpoint is gone
    assert not diff_snapshots(seen["before"], after), diff_snapshots(seen["before"], after)
    assert [s for s, _ in ck.list_checkpoints(out / "checkpoints")] == [4, 3]
    assert (out / "best_model").is_dir()  # exported at step 4, kept
    monkeypatch.setattr(ck, "save_file", real_save)  # space freed: the same command continues
    result = _train(out)
    assert result.global_step == 6
    _assert_same_as_reference(out, reference)


def test_full_disk_while_replacing_best_model(tmp_path, monkeypatch, reference):
    out = tmp_path / "run"
    real_save = StandInModel.save_pretrained
    exports = []

    def disk_full(self, path):
        exports.append(Path(path).name)
        if Path(path).name.startswith(".best_model.") and (out / "best_model").is_dir():
            seen["best"] = snapshot(out / "best_model")
            (Path(path) / "brain2text.safetensors").write_bytes(b"\0" * 10)  # a partial write...
            raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full
        return real_save(self, path)

    seen = {}
    monkeypatch.setattr(StandInModel, "save_pretrained", disk_full)
    _stop_at(monkeypatch, 5)  # best_model exists from step 4
    with pytest.raises(TrainingInterrupted):
        _train(out)
    with pytest.raises(Brain2TextError, match="No space left on device"):
        _train(out, ["train.eval_every=1"])  # validation every step: a better model at some step
    assert "best" in seen, f"no best_model replacement was attempted: {exports}"
    assert not diff_snapshots(seen["best"], snapshot(out / "best_model"))  # the previous best_model, intact
    assert not list(out.glob(".best_model*"))


def test_corrupted_newest_checkpoint_falls_back_and_ends_identical(tmp_path, monkeypatch, reference):
    out = tmp_path / "run"
    _stop_at(monkeypatch, 5)
    with pytest.raises(TrainingInterrupted, match="SIGTERM"):
        _train(out)
    monkeypatch.undo()
    newest = out / "checkpoints" / "step-0000005"
    weights = newest / ck.MODEL_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x55  # one flipped bit pattern inside the tensors
    weights.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="unusable"):
        result = _train(out)
    assert result.global_step == 6
    assert (out / "checkpoints" / "step-0000005.corrupt" / ck.MODEL_FILE).read_bytes() == bytes(data)  # kept aside
    _assert_same_as_reference(out, reference)


def test_every_checkpoint_corrupt_is_a_clear_error_and_touches_no_model(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _stop_at(monkeypatch, 5)
    with pytest.raises(TrainingInterrupted):
        _train(out)
    monkeypatch.undo()
    for _, path in ck.list_checkpoints(out / "checkpoints"):
        (path / ck.STATE_FILE).write_text("{truncated")
    models = snapshot(out / "best_model")
    with pytest.warns(UserWarning, match="unusable"), pytest.raises(Brain2TextError, match="no usable checkpoint"):
        _train(out)
    assert not diff_snapshots(models, snapshot(out / "best_model"))
    assert not (out / "final_model").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000004.corrupt", "step-0000005.corrupt"]


def test_kill_between_the_renames_of_best_model_is_repaired(tmp_path, monkeypatch, reference):
    """The on-disk state a SIGKILL leaves inside ``atomic_directory`` while replacing best_model: the old
    copy moved aside (``.best_model.old-PID``), the new one still a temporary. The rerun brings the old
    one back with a warning, drops the temporary, and ends bit-identical."""
    out = tmp_path / "run"
    _stop_at(monkeypatch, 5)
    with pytest.raises(TrainingInterrupted):
        _train(out)
    monkeypatch.undo()
    old_bytes = _bytes(out, "best_model")
    (out / "best_model").rename(out / ".best_model.old-4242")
    half = out / ".best_model.k1ll3d.tmp"
    half.mkdir()
    (half / "brain2text.safetensors").write_bytes(b"\0" * 7)
    real_export = Trainer._export
    seen = {}

    def export(self, name, info):  # look at best_model just before the run first replaces it
        seen.setdefault("best", _bytes(out, "best_model") if (out / "best_model").is_dir() else None)
        return real_export(self, name, info)

    monkeypatch.setattr(Trainer, "_export", export)
    with pytest.warns(UserWarning) as caught:
        _train(out)
    messages = [str(w.message) for w in caught]
    assert any("restoring best_model from .best_model.old-4242" in m for m in messages), messages
    assert any("removing .best_model.k1ll3d.tmp" in m for m in messages), messages
    assert seen["best"] == old_bytes  # restored whole before anything else touched it
    _assert_same_as_reference(out, reference)
