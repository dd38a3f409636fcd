import logging
import shutil

import pytest

from brain2text.config import DataConfig
from brain2text.data.bids import find_recordings, is_synthetic
from brain2text.errors import DataError


def test_finds_all_recordings(tiny_bids):
    recs, skipped = find_recordings(tiny_bids, DataConfig())
    assert [r.id for r in recs] == ["sub-01_ses-0_task-1", "sub-01_ses-1_task-1", "sub-02_ses-0_task-1",
                                    "sub-02_ses-1_task-1"]
    assert skipped == []
    assert all(r.events_path is not None and r.events_path.name.endswith("_events.tsv") for r in recs)
    assert not is_synthetic(tiny_bids)


def test_missing_session_run_and_empty_file_are_skipped_with_warning(tiny_bids, caplog):
    shutil.rmtree(tiny_bids / "sub-02" / "ses-1")
    (tiny_bids / "sub-01" / "ses-1" / "meg" / "sub-01_ses-1_task-1_meg.fif").write_bytes(b"")
    extra = tiny_bids / "sub-01" / "ses-0" / "meg"
    shutil.copy(extra / "sub-01_ses-0_task-1_meg.fif", extra / "sub-01_ses-0_task-2_meg.fif")
    (extra / "sub-01_ses-0_task-1_events.tsv").unlink()
    with caplog.at_level(logging.WARNING):
        recs, skipped = find_recordings(tiny_bids, DataConfig())
    reasons = {(s.path.split("tiny/")[-1], s.reason) for s in skipped}
    assert ("sub-02/ses-1", "missing session ses-1") in reasons
    assert ("sub-02/ses-0", "missing recording task-2") in reasons
    assert ("sub-01/ses-1/meg/sub-01_ses-1_task-1_meg.fif", "empty file") in reasons
    assert len(skipped) == len(reasons) and all(s.path in caplog.text for s in skipped)
    no_events = [r for r in recs if r.events_path is None]
    assert [r.id for r in no_events] == ["sub-01_ses-0_task-1", "sub-01_ses-0_task-2"]


def test_subject_filter(tiny_bids):
    recs, skipped = find_recordings(tiny_bids, DataConfig(subjects=["02", "sub-07"]))
    assert {r.subject for r in recs} == {"02"}
    assert [s.reason for s in skipped] == ["subject requested in data.subjects but not found"]


def test_empty_or_missing_root_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no subjects here"):
        find_recordings(tmp_path, DataConfig())
    with pytest.raises(DataError, match="BIDS root not found"):
        find_recordings(tmp_path / "nope", DataConfig())
    (tmp_path / "sub-01").mkdir()
    recs, skipped = find_recordings(tmp_path, DataConfig())
    assert recs == [] and "no MEG/EEG recording" in skipped[0].reason
