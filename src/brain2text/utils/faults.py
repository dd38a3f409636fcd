"""Fault injection for the robustness tests, in one place: named points where a test can make this
process die like a crashed node (SIGKILL: no cleanup, no atexit, no finally).

A point fires when its environment variable holds the current step number:

- ``after_step``: ``BRAIN2TEXT_TEST_KILL_AT_STEP=N``, right after optimizer step N;
- ``in_checkpoint``: ``BRAIN2TEXT_TEST_KILL_IN_CHECKPOINT=N``, half-way through writing checkpoint N
  (to prove a half-written checkpoint is never used).

Unset (every real run), a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = {"after_step": "BRAIN2TEXT_TEST_KILL_AT_STEP", "in_checkpoint": "BRAIN2TEXT_TEST_KILL_IN_CHECKPOINT"}


def fault_point(name: str, step: int) -> None:
    """SIGKILL this process if the test asked for a crash at point ``name`` at ``step``."""
    if os.environ.get(POINTS[name]) == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
