"""Fixtures for training tests on the real model: tiny synthetic MEG-MASC (2 subjects, 30 s per story,
32 channels) and a tiny untrained LLaMA, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_tiny_model_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def train_lm_dir(tmp_path_factory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("train-llama"))


@pytest.fixture(scope="session")
def train_synth_dir(tmp_path_factory, shared_data) -> Path:
    from brain2text.cli import main

    out = tmp_path_factory.mktemp("train-synth") / "bids"
    code = main(["synth", "--out", str(out), "--subjects", "2", "--max-seconds", "30", "--sfreq", "200",
                 "--n-chans", "32", "--text-dir", str(shared_data / "meg_masc" / "stimuli_text")])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def real_overrides(train_synth_dir, train_lm_dir, tmp_path_factory) -> list[str]:
    """configs/tiny.yaml overrides: the tiny data and LLaMA, a validation split that is not empty."""
    cache = tmp_path_factory.mktemp("train-cache")
    return [f"data.bids_root={train_synth_dir}", f"data.cache_dir={cache}",
            f"decoder.model_name_or_path={train_lm_dir}", "data.val_fraction=0.3", "train.val_batches=1"]


@pytest.fixture(scope="session")
def tiny_yaml() -> Path:
    return REPO / "configs" / "tiny.yaml"
