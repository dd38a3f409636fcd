"""``brain2text train`` / ``train.py``: bad settings stop before any work with one clear line."""

from __future__ import annotations

import pytest

from brain2text.cli import main

TINY = "configs/tiny.yaml"


@pytest.mark.parametrize("extra, match", [
    (["--mode", "multi_phaze"], "unknown training mode 'multi_phaze'"),
    (["--mode", "distill"], "needs --teacher_checkpoint"),
    (["--mode", "distill", "--teacher_checkpoint", "/nonexistent/teacher"], "teacher model directory not found"),
    (["--mode", "full", "train.full=[{name: f, steps: -3}]"], "steps must be > 0"),
    (["--mode", "full", "train.nonsense=1"], "unknown key 'train.nonsense'"),
    (["--mode", "full", "--resume"], "--resume"),
    (["--mode", "full", "train.best_metric=val_bleu"], "train.best_metric must be one of"),
])
def test_bad_settings_give_one_line_and_no_output(repo_root, tmp_path, capsys, monkeypatch, extra, match):
    monkeypatch.chdir(repo_root)
    out = tmp_path / "out"
    code = main(["train", "--config", TINY, "--output_dir", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and match in err[0]
    assert not out.exists()


def test_output_dir_with_someone_elses_files(repo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)
    (tmp_path / "notes.txt").write_text("keep me")
    code = main(["train", "--config", TINY, "--mode", "full", "--output_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a brain2text training run" in err[0] and str(tmp_path) in err[0]
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
