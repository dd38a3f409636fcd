"""Small BIDS datasets in MEG-MASC's layout, written into tmp_path for data-layer tests.

Random MEG (a few channels, 200 Hz) plus a slice of the real cable_spool_fort events with onsets
shifted to start near 1 s, in the original dict-literal ``events.tsv`` layout.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import mne
import numpy as np
import pandas as pd

REAL_EVENTS = Path("meg_masc") / "cable_spool_fort_events.tsv"


def real_events_slice(shared_data: Path, t_from: float, t_to: float, shift_to: float = 1.0) -> pd.DataFrame:
    """Rows of the real events file with t_from <= onset < t_to, onsets moved to start at ``shift_to``."""
    table = pd.read_csv(shared_data / REAL_EVENTS, sep="\t")
    part = table[(table.onset >= t_from) & (table.onset < t_to)].copy()
    part["onset"] = (part.onset - t_from + shift_to).round(4)
    part["sample"] = (part.onset * 1000).round().astype(int)
    return part


def make_raw(n_chans: int, seconds: float, sfreq: float, seed: int) -> mne.io.RawArray:
    rng = np.random.default_rng(seed)
    names = [f"MEG {i + 1:03d}" for i in range(n_chans)]
    info = mne.create_info(names, sfreq, "mag", verbose=False)
    raw = mne.io.RawArray(rng.standard_normal((n_chans, int(seconds * sfreq))) * 1e-12, info, verbose=False)
    # Sensor positions on a half sphere so the 2-D layout code has something real to project.
    theta = np.linspace(0.2, 1.3, n_chans)
    phi = np.linspace(0, 6 * np.pi, n_chans)
    for ch, t, p in zip(raw.info["chs"], theta, phi):
        ch["loc"][:3] = 0.1 * np.array([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)])
    return raw


def make_bids(root: Path, shared_data: Path, subjects=("01", "02"), sessions=("0",), tasks=("1",),
              seconds: float = 24.0, n_chans: int = 12, sfreq: float = 200.0, synthetic: bool = False,
              t_from: float = 29.0) -> Path:
    """Write a tiny MEG-MASC-layout BIDS dataset under ``root`` and return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    desc = {"Name": "tiny test dataset" + (" (synthetic)" if synthetic else ""), "BIDSVersion": "1.8.0"}
    if synthetic:
        desc["Synthetic"] = True
    (root / "dataset_description.json").write_text(json.dumps(desc))
    (root / "participants.tsv").write_text("participant_id\n" + "".join(f"sub-{s}\n" for s in subjects))
    events = real_events_slice(shared_data, t_from, t_from + seconds - 4.0)
    seed = 0
    for sub in subjects:
        for ses in sessions:
            for task in tasks:
                meg = root / f"sub-{sub}" / f"ses-{ses}" / "meg"
                meg.mkdir(parents=True, exist_ok=True)
                base = f"sub-{sub}_ses-{ses}_task-{task}"
                make_raw(n_chans, seconds, sfreq, seed).save(meg / f"{base}_meg.fif", overwrite=True, verbose=False)
                events.to_csv(meg / f"{base}_events.tsv", sep="\t", index=False)
                seed += 1
    return root


def flatten_events(src: Path, dst: Path) -> None:
    """Rewrite an original-layout events.tsv in the flattened layout (dict keys as columns)."""
    table = pd.read_csv(src, sep="\t")
    flat = pd.DataFrame([ast.literal_eval(t) for t in table["trial_type"]])
    out = table[["onset", "duration"]].copy()
    out["trial_type"] = flat["kind"]
    out["value"], out["sample"] = table["value"], table["sample"]
    out = pd.concat([out, flat.drop(columns=["kind"])], axis=1)
    out.insert(3, "kind", flat["kind"])
    out.to_csv(dst, sep="\t", index=False, na_rep="n/a")
