"""Fixtures for model tests: a tiny LLaMA saved locally once per session (nothing trained)."""

from __future__ import annotations

import pytest

from helpers import make_tiny_model_dir, tiny_config


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def tiny_cfg(tiny_lm_dir):
    return tiny_config(tiny_lm_dir)
