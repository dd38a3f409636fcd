"""Helpers of the malformed-input corpus: hostile files written into tmp_path, a snapshot of every file
under a folder (to prove nothing was created or modified), and the "clean error" assertion.

A clean error is: non-zero exit, stderr exactly one non-empty line ``error: ...`` naming the file and
the problem, no ``Traceback``.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SQD = Path(os.environ.get("BRAIN2TEXT_SHARED_DATA", REPO.parent / "shared" / "data")) / "meg" / "kit" / "test.sqd"
SUBPROCESS_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                  "OMP_NUM_THREADS": "1", "BRAIN2TEXT_DEBUG": "0"}


# ------------------------------------------------------------------------------- observations
def snapshot(*roots: Path) -> dict[str, tuple[int, int, str]]:
    """path -> (size, mtime_ns, sha1) of every file (hidden and temporary ones included) under ``roots``."""
    out = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        for p in sorted([root, *root.rglob("*")]):
            if p.is_file():
                st = p.stat()
                out[str(p)] = (st.st_size, st.st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
            elif p.is_dir():
                out[str(p) + "/"] = (0, 0, "dir")
    return out


def diff_snapshots(before: dict, after: dict) -> list[str]:
    """Files created, removed or modified; folders created, except an empty, non-hidden one (an output or
    cache folder made before the error was found holds nothing; a leftover temporary is always reported)."""
    created = sorted(p for p in set(after) - set(before)
                     if not (p.endswith("/") and not Path(p).name.startswith(".") and not any(Path(p).iterdir())))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k] and not k.endswith("/"))
    return [f"created {p}" for p in created] + [f"removed {p}" for p in removed] + [f"modified {p}" for p in changed]


PROGRESS = re.compile(r"^[\w .-]*:\s+\d+%\|")  # a tqdm bar: "preprocessing: 100%|####| 1/1 ..."


def assert_clean_error(rc, stderr: str, expect: list[str], progress_ok: bool = False) -> None:
    """Non-zero exit, one line ``error: ...`` holding every string of ``expect``, no traceback.

    ``progress_ok``: the error comes after real work that shows a progress bar (e.g. preprocessing a
    dataset); the bar's lines are then allowed before the error line.
    """
    lines = [line for line in stderr.splitlines() if line.strip()]
    if progress_ok:
        lines = [line for line in lines if not PROGRESS.match(line.strip())]
    assert rc not in (0, None), f"exit status {rc}; stderr: {stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr[-3000:]}"
    assert lines[0].startswith("error: "), lines[0]
    assert "internal error" not in lines[0], lines[0]
    for text in expect:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"


def run_subprocess(argv: list[str], cwd: Path, timeout: int = 240) -> tuple[int, str]:
    """``python -m brain2text ARGV`` or ``python train.py|inference.py ARGV`` (argv[0] ends in .py)."""
    if argv[0].endswith(".py"):
        cmd = [sys.executable, str(REPO / argv[0]), *argv[1:]]
    else:
        cmd = [sys.executable, "-m", "brain2text", *argv]
    res = subprocess.run(cmd, cwd=cwd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=timeout)
    return res.returncode, res.stderr


# ---------------------------------------------------------------------------- hostile payloads
class TouchOnUnpickle:
    """An object whose unpickling creates ``marker``: loading it would prove code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def object_npy(path: Path, marker: Path, shape=(2, 3)) -> Path:
    """A ``.npy`` of dtype object whose cells unpickle by running ``touch marker``."""
    arr = np.empty(shape, dtype=object)
    arr.flat[0] = TouchOnUnpickle(marker)
    np.save(path, arr, allow_pickle=True)
    return path


def npy_with_header(path: Path, header: str, payload: bytes = b"\0" * 64) -> Path:
    """A .npy v1.0 file whose header dict is ``header`` verbatim (e.g. an absurd shape)."""
    raw = header.encode("latin1")
    raw += b" " * ((64 - (10 + len(raw) + 1) % 64) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(raw).to_bytes(2, "little") + raw + payload)
    return path


def small_fif(path: Path, n_chans: int = 4, n_times: int = 2000, sfreq: float = 1000.0, seed: int = 0) -> Path:
    import mne

    rng = np.random.default_rng(seed)
    info = mne.create_info([f"MEG {i + 1:03d}" for i in range(n_chans)], sfreq, "mag", verbose=False)
    mne.io.RawArray(rng.standard_normal((n_chans, n_times)) * 1e-12, info, verbose=False).save(
        path, overwrite=True, verbose=False)
    return path


def truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = Path(src).read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


EVENTS_HEADER = "onset\tduration\ttrial_type\tvalue\tsample\n"


def events_row(onset: float, trial_type: str) -> str:
    return f"{onset}\t0.3\t{trial_type}\t1\t{int(onset * 1000)}\n"


def word_trial_type(word: str, sequence_id: int = 0) -> str:
    return repr({"story": "lw1", "sound_id": 0, "kind": "word", "word": word, "sequence_id": sequence_id,
                 "condition": "sentence", "word_index": 0, "pronounced": 1.0})


def recording_with_events(folder: Path, rows: list[str]) -> Path:
    """``sub-01_task-0_meg.fif`` (4 channels, 10 s) with ``sub-01_task-0_events.tsv`` holding ``rows``."""
    folder.mkdir(parents=True, exist_ok=True)
    rec = small_fif(folder / "sub-01_task-0_meg.fif", n_times=10_000)
    (folder / "sub-01_task-0_events.tsv").write_text(EVENTS_HEADER + "".join(rows))
    return rec


def immutable_dir(path: Path) -> bool:
    """Make ``path`` a folder no one can write into; False when impossible here.

    Tests run as root, which ignores permission bits (chmod 555 blocks nothing), so the folder is made
    immutable with ``chattr +i`` when available; otherwise chmod works for a non-root user.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        return True
    try:
        ok = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False
    return ok and not os.access(path, os.W_OK)


def release_dir(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o755)
    else:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
