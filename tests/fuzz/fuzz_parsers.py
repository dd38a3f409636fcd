"""Coverage-guided fuzzing of the three user-facing parsers with atheris (libFuzzer), run by hand:

    .venv/bin/pip install atheris==3.0.0
    .venv/bin/python tests/fuzz/fuzz_parsers.py events  -atheris_runs=200000 [CORPUS_DIR]
    .venv/bin/python tests/fuzz/fuzz_parsers.py npy     -max_total_time=600
    .venv/bin/python tests/fuzz/fuzz_parsers.py config  -max_total_time=600

The property is the one of tests/robustness/test_fuzz.py: every input parses or raises the package's
own error (DataError / ConfigError). Any other exception is a crash: libFuzzer stops and writes the
input as ``crash-*``; turn it into an ``@example`` of the hypothesis test and fix the parser.
Not collected by pytest (the bounded hypothesis version runs in the suite).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["brain2text"]):
    from brain2text.config import load_config
    from brain2text.data.events import extract_sentences, read_events
    from brain2text.data.readers import read_recording
    from brain2text.errors import ConfigError, DataError

WORK = Path(tempfile.mkdtemp(prefix="b2t-fuzz-"))
MARKER = WORK / "CODE_RAN"


def _events(data: bytes) -> None:
    path = WORK / "events.tsv"
    path.write_bytes(b"onset\tduration\ttrial_type\tvalue\tsample\n" + data)
    try:
        events = read_events(path)
        extract_sentences(events, include_word_lists=True)
    except DataError:
        pass
    assert not MARKER.exists()


def _npy(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    sidecar = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 80))
    sfreq = fdp.PickValueInList([None, 100.0, 0.0, -1.0, float("nan")])
    path = WORK / "x.npy"
    path.write_bytes(b"\x93NUMPY" + fdp.ConsumeBytes(fdp.remaining_bytes()))
    side = path.with_suffix(".json")
    if sidecar:
        side.write_text(sidecar)
    elif side.exists():
        side.unlink()
    try:
        read_recording(path, sfreq).get_data()
    except DataError:
        pass


def _config(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    path = WORK / "c.yaml"
    path.write_text(fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 400)))
    overrides = [fdp.ConsumeUnicodeNoSurrogates(24) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    try:
        load_config(path, overrides)
    except ConfigError:
        pass


TARGETS = {"events": _events, "npy": _npy, "config": _config}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [libFuzzer options]")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
