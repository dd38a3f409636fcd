"""Decode raw recordings to text with a trained model (``brain2text infer`` / ``python inference.py``).

For each recording (``.fif``, ``.npy`` + rate, anything MNE reads, a CTF ``.ds`` folder, or a BIDS
recording with its ``events.tsv`` beside it):

1. read it (``data.readers.read_recording``, which rejects malformed files with one clear line);
2. pick the model's channel types and match the channels to the model: any montage when the encoder
   has spatial attention (mapped by sensor position), otherwise by name (or by count) with a clear
   ``expected N channels, found M`` error;
3. preprocess exactly as the model's training data (``data.preprocessing``: notch, band-pass,
   resample with the stored data config), then robust-scale: with the model's stored scaler when the
   BIDS subject and montage match one it was trained on, else with the recording's own statistics
   (the data layer's rule for unseen subjects);
4. cut windows: one per sentence when word events are beside the file (the reference text included),
   else sliding windows of ``window`` s every ``stride`` s;
5. decode the windows in batches (free-running ``model.generate``), with a progress bar.

Step 1 is :func:`prepare_recording`'s alone; :func:`prepare_raw` does steps 2-4 on any MNE Raw (a file
just read, or one a user holds in memory: :class:`brain2text.Decoder` takes both). The output of one
recording is ``{input_file, model_path, n_channels, sfreq, ..., segments: [{start, end, text,
reference?}]}`` (times in seconds from the recording's first sample); for several recordings it is a
list of such objects, in input order.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import torch
from mne_bids import get_entities_from_fname
from tqdm import tqdm

from ..config import DataConfig, DecodingConfig
from ..constants import PREPROCESSING_FILE
from ..data.batch import MEGBatch
from ..data.bids import events_path_for
from ..data.cache import scaler_key
from ..data.events import extract_sentences, parse_events, read_events
from ..data.examples import sentence_window, sliding_windows
from ..data.preprocessing import apply_robust_scaler, fit_robust_scaler, preprocess_raw
from ..data.readers import meg_picks, read_recording, recording_name, sensor_positions_2d
from ..errors import Brain2TextError, DataError, ModelError, warn_user
from .model_view import ModelView


@dataclass
class InferenceOptions:
    window: float | None = None  # seconds; None = the model's data.window_length
    stride: float | None = None  # seconds; None = the model's data.window_stride
    sfreq: float | None = None  # sampling rate of .npy inputs without a sidecar
    batch_size: int = 8
    subject: str | None = None  # a subject the model was trained on (BIDS label) for the subject layer
    use_events: bool = True  # one window per sentence when events.tsv is beside the recording
    decoding: DecodingConfig | None = None
    progress: bool = True


@dataclass(frozen=True)
class Segment:
    """One decoded stretch of a recording: ``start`` and ``end`` in seconds from the recording's first
    sample (to 0.1 ms), the decoded ``text``, and the sentence's ``reference`` text when word events
    gave the window (else None)."""

    start: float
    end: float
    text: str
    reference: str | None = None

    def to_dict(self) -> dict:
        """``{"start", "end", "text"}`` plus ``"reference"`` when known: a segment of the results JSON."""
        out = {"start": self.start, "end": self.end, "text": self.text}
        if self.reference is not None:
            out["reference"] = self.reference
        return out


@dataclass
class Prepared:
    """One recording, preprocessed and cut into windows."""

    path: Path | None  # the file it was read from (None: a Raw or an array in memory)
    meg: np.ndarray  # (C, T) float32 at the model's rate, scaled and clamped
    positions: np.ndarray  # (C, 2)
    n_channels: int
    sfreq: float  # the recording's own rate
    windows: list[tuple[int, int]]
    references: list[str | None]
    subject_index: int
    notes: dict = field(default_factory=dict)
    name: str = ""  # what progress bars and errors call it

    def segments(self, texts: list[str], sfreq: float) -> list[Segment]:
        """The decoded ``texts`` (one per window) as segments, windows converted from samples at ``sfreq``."""
        return [Segment(round(s / sfreq, 4), round(e / sfreq, 4), text, ref)
                for (s, e), text, ref in zip(self.windows, texts, self.references)]


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Files named or matched by glob patterns, in order, without duplicates."""
    out: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise DataError("no file matches this pattern", pattern)
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(pattern))
    seen, unique = set(), []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def _bids_subject(path: Path) -> str | None:
    return get_entities_from_fname(path.name, on_error="ignore").get("subject")


def match_channels(path: Path, ch_names: list[str], view: ModelView) -> list[int] | None:
    """Rows of the picked channels to feed the model, in the model's order (None = all, as they are)."""
    if view.spatial_attention:
        return None  # mapped by sensor position inside the encoder
    expected = view.ch_names
    if expected and set(expected) <= set(ch_names):
        return [ch_names.index(n) for n in expected]
    if len(ch_names) == view.n_chans:
        return None
    raise DataError(f"channel mismatch: expected {view.n_chans} channels, found {len(ch_names)} "
                    f"(of types {view.data.channel_types}); this model has no spatial attention to map other montages",
                    path)


def _scale(path: Path, x: np.ndarray, ch_names: list[str], subject: str | None,
           view: ModelView) -> tuple[np.ndarray, str]:
    key = scaler_key(subject, ch_names) if subject is not None else None
    stored = view.scalers.get(key) if key is not None else None
    if stored is not None:
        median, iqr = np.asarray(stored["median"], np.float32), np.asarray(stored["iqr"], np.float32)
        if len(iqr) != x.shape[0]:
            raise ModelError(f"scalers[{key!r}] has {len(iqr)} channels but the montage it is keyed by has "
                             f"{x.shape[0]} ({path.name})", view.model_path / PREPROCESSING_FILE)
        source = f"model (subject {subject})"
    else:
        median, iqr = fit_robust_scaler([x])
        source = "own recording"
    return apply_robust_scaler(x, median, iqr, view.data.clamp), source


def _windows(source, n_samples: int, data: DataConfig, opts: InferenceOptions, events: pd.DataFrame | None,
             events_source: str | None, required: bool) -> tuple[list, list, dict]:
    """One window per sentence of ``events`` inside the recording, else sliding windows; ``required``:
    the events were asked for explicitly, so none inside the recording is an error, not a fallback."""
    if events is not None:
        sentences = extract_sentences(events, data.include_word_lists)
        windows, refs = [], []
        for s in sentences:
            start, end = sentence_window(s, data.sfreq, data)
            if 0 <= start < end <= n_samples:
                windows.append((start, end))
                refs.append(s.text)
        outside = len(sentences) - len(windows)
        if outside:
            then = "" if windows or required else "; sliding windows are decoded instead"
            warn_user(f"{outside} of {len(sentences)} sentence(s) fall outside the recording (0-"
                      f"{n_samples / data.sfreq:.1f} s: before its start or past its end) and were skipped{then}",
                      events_source)
        if windows:
            return windows, refs, {"events_file": events_source, "sentences_outside_recording": outside}
        if required:
            raise DataError(f"none of the {len(sentences)} sentences of the events ({events_source}) lies inside "
                            f"the recording ({n_samples / data.sfreq:g} s)", source)
    length = opts.window or data.window_length
    stride = opts.stride or data.window_stride
    windows = sliding_windows(n_samples, data.sfreq, length, stride)
    return windows, [None] * len(windows), {"window": length, "stride": stride}


def load_events(events: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(event table, what it is called) from an ``events.tsv`` path or a DataFrame in either MEG-MASC layout."""
    if isinstance(events, pd.DataFrame):
        return parse_events(events), "<DataFrame>"
    if isinstance(events, (str, os.PathLike)):
        return read_events(events), str(events)
    raise DataError(f"events must be an events.tsv path or a pandas DataFrame, got {type(events).__name__}")


def _subject_index(subject: str | None, view: ModelView) -> tuple[int, dict]:
    if subject is not None and subject in view.subjects:
        return view.subjects.index(subject), {"subject": subject}
    return 0, {"subject": None, "subject_layer": f"subject {subject!r} unknown to the model: its slot 0 is used"
               if subject else "no subject given: the model's slot 0 is used"}


def prepare_raw(raw: mne.io.BaseRaw, view: ModelView, opts: InferenceOptions, path: Path | None = None,
                events: str | os.PathLike | pd.DataFrame | None = None, events_fallback: bool = False) -> Prepared:
    """Check channels, preprocess, scale and window one Raw (steps 2-4 of the module doc).

    ``path``: the file ``raw`` was read from, if any (its BIDS subject picks the stored scaler; errors name
    it). ``events``: an ``events.tsv`` path or a DataFrame (either MEG-MASC layout) whose onsets are seconds
    from the Raw's first sample: one window per sentence inside the recording; none inside is an error,
    or, with ``events_fallback``, sliding windows. Without events, sliding windows. The Raw is only read.
    """
    source = path if path is not None else recording_name(raw)
    data = view.data
    picks = meg_picks(raw, data.channel_types)
    names = [raw.ch_names[p] for p in picks]
    order = match_channels(source, names, view)
    if order is not None:
        picks, names = [picks[i] for i in order], [names[i] for i in order]
    positions = sensor_positions_2d(raw, picks).astype(np.float32)
    x = preprocess_raw(raw, picks, data)  # (C, T') at data.sfreq
    subject = opts.subject or _bids_subject(Path(source))
    x, scaler = _scale(source, x, names, subject, view)
    table, events_source = load_events(events) if events is not None else (None, None)
    windows, refs, notes = _windows(source, x.shape[1], data, opts, table, events_source,
                                    required=not events_fallback)
    if not windows:
        raise DataError("recording too short to cut a single window", source)
    index, subject_notes = _subject_index(subject, view)
    notes.update(subject_notes, scaler=scaler)
    return Prepared(path, x, positions, len(picks), float(raw.info["sfreq"]), windows, refs, index, notes,
                    name=Path(str(source)).name)


def prepare_recording(path: Path, view: ModelView, opts: InferenceOptions,
                      events: str | os.PathLike | pd.DataFrame | None = None) -> Prepared:
    """Read one recording file (step 1), then :func:`prepare_raw`. Without ``events``, the BIDS
    ``events.tsv`` beside the file gives the sentences, unless ``opts.use_events`` is off (sliding windows
    where it gives none inside the recording)."""
    path = Path(path)
    raw = read_recording(path, opts.sfreq)
    if events is not None:
        return prepare_raw(raw, view, opts, path, events)
    beside = events_path_for(path) if opts.use_events and path.is_file() else None
    return prepare_raw(raw, view, opts, path, beside, events_fallback=True)


def _batch(rec: Prepared, windows: list[tuple[int, int]], sfreq: float) -> MEGBatch:
    n_times = max(e - s for s, e in windows)
    b, c = len(windows), rec.meg.shape[0]
    meg = torch.zeros(b, c, n_times)
    mask = torch.zeros(b, n_times, dtype=torch.bool)
    for k, (s, e) in enumerate(windows):
        meg[k, :, :e - s] = torch.from_numpy(rec.meg[:, s:e])
        mask[k, :e - s] = True
    return MEGBatch(meg=meg, meg_mask=mask, subject_index=torch.full((b,), rec.subject_index, dtype=torch.long),
                    channel_mask=torch.ones(b, c, dtype=torch.bool),
                    sensor_positions=torch.from_numpy(rec.positions)[None].expand(b, c, 2).clone(), sfreq=sfreq)


def decode_recording(model, rec: Prepared, view: ModelView, opts: InferenceOptions) -> list[str]:
    """The decoded text of each of ``rec``'s windows, in order (free-running ``model.generate``, batched)."""
    texts: list[str] = []
    size = max(1, opts.batch_size)
    chunks = [rec.windows[i:i + size] for i in range(0, len(rec.windows), size)]
    device = view.device
    for chunk in tqdm(chunks, desc=f"decoding {rec.name}", unit="batch", disable=not opts.progress):
        batch = _batch(rec, chunk, view.data.sfreq).to(device)
        with torch.inference_mode():
            texts.extend(str(t) for t in model.generate(batch, opts.decoding or view.decoding, meg_mode="meg"))
    return texts


def decode_segments(model, rec: Prepared, view: ModelView, opts: InferenceOptions) -> list[Segment]:
    """:func:`decode_recording` as :class:`Segment` objects (times in seconds, references attached)."""
    return rec.segments(decode_recording(model, rec, view, opts), view.data.sfreq)


def recording_result(rec: Prepared, segments: list[Segment], view: ModelView) -> dict:
    """The results JSON of one decoded recording (module doc)."""
    return {"input_file": str(rec.path), "model_path": str(view.model_path), "n_channels": rec.n_channels,
            "sfreq": rec.sfreq, "model_sfreq": view.data.sfreq, **rec.notes,
            "segments": [seg.to_dict() for seg in segments]}


def infer_recording(model, view: ModelView, path: Path, opts: InferenceOptions) -> dict:
    rec = prepare_recording(path, view, opts)
    return recording_result(rec, decode_segments(model, rec, view, opts), view)


def infer_files(model, view: ModelView, inputs: list[str], opts: InferenceOptions) -> dict | list[dict]:
    """Decode every input (files or globs); one object for one recording, a list for several."""
    paths = expand_inputs(inputs)
    if not paths:
        raise Brain2TextError("no input files given")
    model.eval()
    results = [infer_recording(model, view, p, opts) for p in paths]
    return results[0] if len(results) == 1 and len(inputs) == 1 and not glob.has_magic(inputs[0]) else results
