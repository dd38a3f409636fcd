"""A tiny trained-shape model directory and synthetic BIDS dataset for evaluation and inference tests.

Built once per test session (module-level cache) whichever test folder asks first:
``tiny_eval_setup(tmp_path_factory)`` returns a :class:`TinySetup` with the BIDS root (``brain2text
synth``: 2 subjects, story lw1, 60 s, 16 channels at 200 Hz), the config used, and a model directory
written by ``save_pretrained`` (tiny random LLaMA + tiny encoder, untrained) with the preprocessing
record that training saves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_CACHE: dict[str, "TinySetup"] = {}


@dataclass
class TinySetup:
    bids_root: Path
    cache_dir: Path
    model_dir: Path
    lm_dir: Path
    overrides: list[str]

    def config(self, extra: list[str] | None = None):
        from helpers import tiny_config

        return tiny_config(self.lm_dir, self.overrides + list(extra or []))


def tiny_eval_setup(tmp_path_factory) -> TinySetup:
    if "setup" in _CACHE:
        return _CACHE["setup"]
    import torch

    from brain2text.cli import main
    from brain2text.data.cache import build_cache
    from brain2text.models.build import build_model
    from brain2text.models.serialization import save_model
    from brain2text.training.data import preprocessing_record
    from helpers import make_tiny_model_dir

    base = tmp_path_factory.mktemp("eval-setup")
    bids = base / "bids"
    assert main(["synth", "--out", str(bids), "--subjects", "2", "--stories", "lw1", "--max-seconds", "60",
                 "--sfreq", "200", "--n-chans", "16"]) == 0
    lm_dir = make_tiny_model_dir(base / "tiny-llama")
    overrides = [f"data.bids_root={bids}", f"data.cache_dir={base / 'cache'}", "data.val_fraction=0.1",
                 "data.test_fraction=0.5", "eval.n_bootstrap=100", "eval.batch_size=4"]
    setup = TinySetup(bids, base / "cache", base / "model", lm_dir, overrides)
    cfg = setup.config()
    example_set = build_cache(cfg.data, progress=False)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.preprocessing = preprocessing_record(example_set, cfg)
    save_model(model, setup.model_dir)
    _CACHE["setup"] = setup
    return setup
