"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is set before anything imports HF."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real recordings and annotations written by others live beside the checkout (never copied in).
SHARED_DATA = Path(os.environ.get("BRAIN2TEXT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (set BRAIN2TEXT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


if not SHARED_DATA.is_dir():
    # Real data is absent (a checkout without ../shared beside it): every test that needs it, directly
    # or through the synthetic generator (which reads the real story texts), is skipped with this reason
    # instead of erroring. With the data present this hook does nothing, so it can hide no failure.
    _MISSING = f"real test data not found at {SHARED_DATA} (set BRAIN2TEXT_SHARED_DATA)"

    _seen: set[str] = set()  # a session fixture that failed for want of data re-raises the same error later

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        if call.excinfo is not None and report.failed:
            key = (f"{call.excinfo.type.__name__}: {call.excinfo.value}@{call.excinfo.traceback[-1].path}:"
                   f"{call.excinfo.traceback[-1].lineno}")
            text = str(call.excinfo.getrepr(style="short")) + report.capstderr + report.capstdout
            if str(SHARED_DATA) in text or "story texts not found" in text or "/shared/data" in text or key in _seen:
                _seen.add(key)
                report.outcome = "skipped"
                report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {_MISSING}")
