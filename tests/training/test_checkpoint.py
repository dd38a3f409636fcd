"""Checkpoints: atomic, verified, corrupted ones skipped (and kept), never a half-written one used."""

from __future__ import annotations

import pytest
import torch

from brain2text.errors import Brain2TextError
from brain2text.training import checkpoint as ck


def _save(root, step, value=1.0):
    model = {"w": torch.full((3, 2), value), "buf": torch.arange(4)}
    opt = {"state.0.exp_avg": torch.ones(3, 2) * value}
    return ck.save_checkpoint(root, step, model, opt, {"global_step": step, "x": [1, 2]})


def test_roundtrip_and_newest_first(tmp_path):
    _save(tmp_path, 2, 2.0)
    _save(tmp_path, 4, 4.0)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [4, 2]
    c = ck.latest_checkpoint(tmp_path)
    assert c.step == 4 and torch.equal(c.model["w"], torch.full((3, 2), 4.0)) and c.state["x"] == [1, 2]
    assert torch.equal(c.optimizer["state.0.exp_avg"], torch.full((3, 2), 4.0))


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest", "state"])
def test_corrupt_checkpoint_falls_back_with_warning_and_is_kept(tmp_path, damage):
    _save(tmp_path, 2, 2.0)
    path = _save(tmp_path, 4, 4.0)
    f = path / ck.MODEL_FILE
    if damage == "flip":
        data = bytearray(f.read_bytes())
        data[-1] ^= 0xFF
        f.write_bytes(bytes(data))
    elif damage == "truncate":
        f.write_bytes(f.read_bytes()[:20])
    elif damage == "manifest":
        (path / ck.MANIFEST_FILE).unlink()
    else:
        (path / ck.STATE_FILE).write_text("{not json")
    with pytest.warns(UserWarning, match="unusable"):
        c = ck.latest_checkpoint(tmp_path)
    assert c.step == 2
    assert (tmp_path / "step-0000004.corrupt").is_dir()  # kept for inspection, not deleted


def test_all_corrupt_is_a_clear_error(tmp_path):
    path = _save(tmp_path, 2)
    (path / ck.MODEL_FILE).write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(Brain2TextError, match="no usable checkpoint"):
        ck.latest_checkpoint(tmp_path)


def test_prune_keeps_last_k_and_stale_temporaries_removed(tmp_path):
    for s in (1, 2, 3, 4):
        _save(tmp_path, s)
    ck.prune_checkpoints(tmp_path, 2)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [4, 3]
    (tmp_path / ".step-0000005.abc.tmp").mkdir()
    with pytest.warns(UserWarning, match="half-written"):
        ck.remove_stale_temporaries(tmp_path)
    assert not (tmp_path / ".step-0000005.abc.tmp").exists()
    assert ck.latest_checkpoint(tmp_path).step == 4


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    _save(tmp_path, 2)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(Brain2TextError, match="No space left"):
        _save(tmp_path, 4)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [2]
    assert not list(tmp_path.glob(".step-*"))
    assert ck.latest_checkpoint(tmp_path).step == 2
