"""The Python API: decode MEG to text from a notebook or an MNE session, with one object.

::

    from brain2text import Decoder

    decoder = Decoder.from_pretrained("outputs/demo/run_story/best_model")
    segments = decoder.decode(raw)                    # an mne.io.Raw in memory
    segments = decoder.decode("sub-01_task-0_meg.fif")  # a file (its BIDS events.tsv gives the sentences)
    segments = decoder.decode(array, sfreq=1000.0)    # an (n_channels, n_times) array
    annotated = decoder.annotate(raw)                 # a copy of the Raw, the decoded text as annotations
    metrics = decoder.evaluate("path/to/bids_root")   # what `brain2text evaluate` writes, as a dict

``brain2text infer`` and ``python inference.py`` run through :meth:`Decoder.decode_files`, so the command
line and this API decode the same way: the model's own preprocessing, channel matching, scaling and
windows (:mod:`brain2text.inference.infer`). Problems with the inputs raise
:class:`~brain2text.errors.Brain2TextError` with a one-line message naming the file (or ``<array>``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import mne
import numpy as np
import pandas as pd

from .config import Config
from .data.readers import raw_from_array
from .errors import Brain2TextError
from .evaluation.evaluate import evaluate_model, evaluation_config
from .inference.infer import (
    InferenceOptions,
    Prepared,
    Segment,
    decode_segments,
    infer_files,
    prepare_raw,
    prepare_recording,
)
from .inference.loading import load_model
from .inference.model_view import ModelView, view_of
from .utils.preflight import check_window
from .utils.threads import decode_threads, torch_threads

__all__ = ["Decoder", "Segment"]

# MNE treats annotations whose description starts with these (any case) as bad or edge segments:
# epoching with reject_by_annotation would drop them.
_MNE_RESERVED_PREFIXES = ("bad", "edge")

Events = str | os.PathLike | pd.DataFrame


def _threads_setting(threads) -> int | None:
    """``"auto"``/None (the auto rule of utils/threads.py) or a positive integer."""
    if threads is None or threads == "auto":
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, str)) or not str(threads).isdigit() \
            or int(threads) < 1:
        raise Brain2TextError(f"threads must be 'auto' or a positive integer, got {threads!r}")
    return int(threads)


def _positive(name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0:
        raise Brain2TextError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def annotation_text(text: str) -> str:
    """The annotation description of a decoded ``text``: the text itself, with a leading space when MNE
    would otherwise read it as a bad or edge segment ("Bad luck ..." would be rejected when epoching)."""
    return f" {text}" if text.lower().startswith(_MNE_RESERVED_PREFIXES) else text


class Decoder:
    """A trained brain2text model ready to decode recordings (see the module docstring).

    Build it with :meth:`from_pretrained`. ``threads`` is the number of CPU threads torch uses while this
    decoder decodes or evaluates (``"auto"``: one for models under 50M parameters on the CPU, where more
    threads cost more than they save; torch's default otherwise); torch's own setting is restored after
    each call. ``batch_size`` windows are decoded at once; ``progress`` shows progress bars.
    """

    def __init__(self, model, view: ModelView, *, threads: int | str | None = "auto", batch_size: int = 8,
                 progress: bool = True):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise Brain2TextError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.model = model
        self.view = view
        self.threads = _threads_setting(threads)
        self.batch_size = batch_size
        self.progress = progress

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "cpu", threads: int | str | None = "auto", *,
                        batch_size: int = 8, progress: bool = True) -> "Decoder":
        """Load a model directory (``output_dir/best_model``, safetensors and JSON only) on ``device``.

        The decoder base named in the directory's ``brain2text_config.json`` is loaded from where it
        says; a missing directory or base is a :class:`~brain2text.errors.ModelError`.
        """
        threads = _threads_setting(threads)  # checked before minutes of loading, not after
        model = load_model(path, device)
        return cls(model, view_of(model, path), threads=threads, batch_size=batch_size, progress=progress)

    # ------------------------------------------------------------------------------- what it is
    @property
    def model_path(self) -> Path:
        return self.view.model_path

    @property
    def config(self) -> Config:
        """The full configuration the model was trained with (architecture, data, decoding, ...)."""
        return self.view.config

    @property
    def sfreq(self) -> float:
        """The sampling rate (Hz) the model works at; any input is resampled to it."""
        return float(self.view.data.sfreq)

    @property
    def strategy(self) -> str:
        """The default decoding strategy (``decode(..., strategy=)`` picks another)."""
        return self.view.decoding.strategy

    @property
    def n_channels(self) -> int | None:
        """Channels the model expects, or None when its spatial attention maps any montage."""
        return None if self.view.spatial_attention else self.view.n_chans

    def __repr__(self) -> str:
        chans = "any montage" if self.n_channels is None else f"{self.n_channels} channels"
        return (f"Decoder({str(self.model_path)!r}, {chans}, {self.sfreq:g} Hz, strategy={self.strategy!r}, "
                f"device={str(self.view.device)!r})")

    # --------------------------------------------------------------------------------- decoding
    def decode(self, x, *, sfreq: float | None = None, events: Events | bool | None = None,
               window: float | None = None, stride: float | None = None, strategy: str | None = None,
               subject: str | None = None) -> list[Segment]:
        """Decode one recording into text segments, in time order.

        ``x``: an :class:`mne.io.BaseRaw`; a path to anything ``inference.py`` reads (``.fif``, ``.npy``,
        ``.con``/``.sqd``, a CTF ``.ds`` folder, ...); or an ``(n_channels, n_times)`` array with ``sfreq``
        (its rows taken as the model's channels in its order; no sensor positions). ``sfreq`` also serves a
        ``.npy`` path without a sidecar.

        ``events``: an ``events.tsv`` path or a DataFrame in either MEG-MASC layout, onsets in seconds from
        the recording's first sample: one segment per sentence, with its ``reference`` text. Default: for a
        path, the BIDS ``events.tsv`` beside it when there is one; for a Raw or an array, none. ``False``:
        sliding windows even with an ``events.tsv`` beside the file. Without events, windows of ``window``
        seconds every ``stride`` seconds (default: the model's ``data.window_length`` / ``window_stride``).

        ``strategy``: a registered decoding strategy (default: the model's). ``subject``: a BIDS subject
        label the model was trained on (its scaler and subject slot; default: the file name's ``sub-``).

        Segment times are seconds from the recording's first sample (``raw.times``), to 0.1 ms.
        """
        opts = self._options(sfreq, window, stride, strategy, subject, use_events=events is not False)
        rec = self._prepare(x, opts, None if isinstance(events, bool) else events)
        with self._threads():
            return decode_segments(self.model, rec, self.view, opts)

    def decode_files(self, inputs: str | os.PathLike | Sequence[str | os.PathLike], *, sfreq: float | None = None,
                     use_events: bool = True, window: float | None = None, stride: float | None = None,
                     strategy: str | None = None, subject: str | None = None) -> dict | list[dict]:
        """The results JSON of ``brain2text infer``: files or glob patterns decoded as :meth:`decode` does
        (``use_events=False``: ignore the ``events.tsv`` beside them); one object for one file, a list,
        in input order, for several files or a pattern. Each has ``input_file``, ``model_path``,
        ``n_channels``, ``sfreq`` (the file's), ``model_sfreq``, notes on windows, subject and scaler, and
        ``segments`` (:meth:`Segment.to_dict`)."""
        patterns = [str(inputs)] if isinstance(inputs, (str, os.PathLike)) else [str(p) for p in inputs]
        opts = self._options(sfreq, window, stride, strategy, subject, use_events)
        with self._threads():
            return infer_files(self.model, self.view, patterns, opts)

    def annotate(self, raw: mne.io.BaseRaw, **decode_kwargs) -> mne.io.BaseRaw:
        """A copy of ``raw`` with one annotation per decoded segment appended to its annotations
        (``onset``/``duration`` = the segment's, ``description`` = its text), so that ``raw.plot()`` shows
        what was decoded where. The Raw given is not modified.

        Every segment is annotated, an empty text too (description ``""``: the model decoded nothing
        there), so the annotations and :meth:`decode`'s segments correspond one to one; a reference text,
        when events gave one, is in the annotation's ``extras["reference"]``. A text MNE would read as a
        bad or edge segment (starting with "bad" or "edge", any case) gets a leading space.
        ``decode_kwargs`` are :meth:`decode`'s (``events=``, ``window=``, ``strategy=``, ...).
        """
        if not isinstance(raw, mne.io.BaseRaw):
            raise Brain2TextError(f"annotate() takes an mne.io.Raw, got {type(raw).__name__} (decode() takes paths "
                                  "and arrays)")
        segments = self.decode(raw, **decode_kwargs)
        out = raw.copy()
        # annotation onsets count from the measurement start (sample 0), segments from the first sample kept
        out.annotations.append([s.start + out.first_time for s in segments], [s.end - s.start for s in segments],
                               [annotation_text(s.text) for s in segments],
                               extras=[{"reference": s.reference} if s.reference is not None else {}
                                       for s in segments])
        return out

    # ------------------------------------------------------------------------------- evaluation
    def evaluate(self, bids_root: str | os.PathLike | None = None, split: str = "test", *, strategy: str | None = None,
                 config: str | os.PathLike | None = None, overrides: Sequence[str] | Mapping[str, object] | None = None,
                 return_per_sentence_wer: bool = False):
        """Free-running evaluation beside the noise, surrogate, shuffled and no-MEG controls, with paired
        bootstrap intervals, permutation p-values and verdicts: the dict ``brain2text evaluate`` writes to
        its ``--output_file`` (the same function makes both). It may take minutes.

        ``bids_root``: the dataset (default: the one the model was trained on); ``split``: train, val or
        test; ``strategy``: a decoding strategy; ``config``: a YAML whose data/decoding/eval sections
        replace the model's; ``overrides``: settings such as ``{"eval.max_sentences": 50}`` or
        ``["eval.max_sentences=50"]``. With ``return_per_sentence_wer``, returns ``(result, per-sentence WER
        by system)``.
        """
        if split not in ("train", "val", "test"):
            raise Brain2TextError(f"split must be train, val or test, got {split!r}")
        cfg = evaluation_config(self.view, config, overrides, strategy, bids_root=bids_root)
        with self._threads():
            result, per_sentence_wer = evaluate_model(self.model, self.view, split, cfg, self.progress)
        return (result, per_sentence_wer) if return_per_sentence_wer else result

    # -------------------------------------------------------------------------------- internals
    @contextmanager
    def _threads(self) -> Iterator[None]:
        with torch_threads(decode_threads(self.model, self.threads, self.view.device)):
            yield

    def _options(self, sfreq, window, stride, strategy, subject, use_events: bool) -> InferenceOptions:
        window, stride, sfreq = _positive("window", window), _positive("stride", stride), _positive("sfreq", sfreq)
        if window is not None:
            check_window(window, self.view.data.sfreq, self.view.config.encoder, what="window")
        decoding = self.view.decoding  # replace() validates the strategy name (a one-line ConfigError)
        if strategy is not None:
            decoding = dataclasses.replace(decoding, strategy=strategy)
        return InferenceOptions(window=window, stride=stride, sfreq=sfreq, batch_size=self.batch_size,
                                subject=subject, use_events=use_events, decoding=decoding, progress=self.progress)

    def _prepare(self, x, opts: InferenceOptions, events: Events | None) -> Prepared:
        if isinstance(x, mne.io.BaseRaw):
            if opts.sfreq is not None and abs(opts.sfreq - x.info["sfreq"]) > 1e-6:
                raise Brain2TextError(f"sfreq={opts.sfreq:g} given for a Raw sampled at {x.info['sfreq']:g} Hz; "
                                      "a Raw carries its own rate")
            return prepare_raw(x, self.view, opts, events=events)
        if isinstance(x, (str, os.PathLike)):
            return prepare_recording(Path(x), self.view, opts, events=events)
        if not isinstance(x, (np.ndarray, list, tuple)) and not hasattr(x, "__array__"):
            raise Brain2TextError(f"decode() takes an mne.io.Raw, a file path or an (n_channels, n_times) array, "
                                  f"got {type(x).__name__}")
        return prepare_raw(self._array_raw(x, opts.sfreq), self.view, opts, events=events)

    def _array_raw(self, x, sfreq: float | None) -> mne.io.BaseRaw:
        """The array as a Raw of the model's channel type; its rows named as the model's channels when the
        counts agree (the rows are then taken to be those channels, in the model's order)."""
        names = self.view.ch_names
        try:
            shape = np.shape(x)
        except ValueError:  # a ragged nested list: raw_from_array says what is wrong with it
            shape = ()
        rows = shape[0] if len(shape) == 2 else None
        ch_names = list(names) if names and rows == len(names) else None
        return raw_from_array(x, sfreq, ch_names, ch_type=self.view.data.channel_types[0])
