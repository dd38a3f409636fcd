"""Run ``brain2text train ARGS...`` and write a SHA-256 of the trained parameters of this process
to ``HASH_DIR/rank<RANK>.txt`` (for the DDP test: ``torchrun ... train_and_hash.py HASH_DIR ...``)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import brain2text.training.run as run_mod
from brain2text.cli import main

built = []
_default = run_mod.build_model


def _capture(cfg, **kwargs):
    model = _default(cfg, **kwargs)
    built.append(model)
    return model


def digest(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):  # parameters and buffers (RVQ codebooks, EMA)
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    run_mod.build_model = _capture
    code = main(["train", *sys.argv[2:]])
    if code == 0:
        Path(sys.argv[1], f"rank{os.environ.get('RANK', '0')}.txt").write_text(digest(built[0]))
    sys.exit(code)
