"""Fixtures of the data-layer tests: tiny MEG-MASC-layout BIDS datasets written into tmp folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bids_helpers import make_bids
from brain2text.config import DataConfig

REAL_EVENTS = Path("meg_masc") / "cable_spool_fort_events.tsv"


@pytest.fixture(scope="session")
def real_events_path(shared_data) -> Path:
    path = shared_data / REAL_EVENTS
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def tiny_bids_master(tmp_path_factory, shared_data) -> Path:
    """Two subjects x two sessions x one task, 24 s each, 12 channels at 200 Hz (built once)."""
    return make_bids(tmp_path_factory.mktemp("bids") / "tiny", shared_data, subjects=("01", "02"), sessions=("0", "1"))


@pytest.fixture
def tiny_bids(tiny_bids_master, tmp_path) -> Path:
    """A private copy of the tiny dataset that a test may change."""
    return Path(shutil.copytree(tiny_bids_master, tmp_path / "tiny"))


@pytest.fixture
def tiny_cfg(tiny_bids, tmp_path) -> DataConfig:
    return DataConfig(bids_root=str(tiny_bids), cache_dir=str(tmp_path / "cache"), val_fraction=0.2, test_fraction=0.2)
