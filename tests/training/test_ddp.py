"""Two processes on CPU through Accelerate (torchrun, gloo): the same weights on both ranks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("training_standins.py")


@pytest.mark.slow
def test_two_process_ddp_gives_identical_weights_on_both_ranks(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not found")
    hashes = tmp_path / "hashes"
    hashes.mkdir()
    env = {**os.environ, "BRAIN2TEXT_TEST_HASH_DIR": str(hashes), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([torchrun, "--standalone", "--nproc_per_node", "2", str(SCRIPT), str(tmp_path / "run"),
                             "multi_phase"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        proc.communicate()
        pytest.fail("two-process run timed out")
    assert proc.returncode == 0, err[-3000:]
    digests = [(hashes / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert (tmp_path / "run" / "final_model" / "brain2text.safetensors").is_file()
    # each process saw its own half of every global batch: the stream advanced by 2 x batch_size per step
    import json

    state = json.loads(next((tmp_path / "run" / "checkpoints").glob("step-*/state.json")).read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert state["data"]["offset"] == state["global_step"] * 2 * 2
