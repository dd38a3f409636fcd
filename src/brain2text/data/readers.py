"""Read one MEG/EEG recording: any format MNE reads, or a ``.npy`` array, validated first.

MNE accepts NaN silently and raises cryptic errors on empty or truncated files (STACK_NOTES), so
everything a user can get wrong is checked here and reported as one :class:`DataError` line that
names the file. MNE files are opened lazily (``preload=False``): preprocessing reads channel chunks,
so a one-hour recording never sits in memory as float64 at once.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import mne
import numpy as np
from mne._fiff.utils import _mult_cal_one  # MNE's own reader helper (mne is pinned)
from mne.io.kit.constants import KIT

from ..errors import DataError

DATA_CHANNEL_TYPES = ("mag", "grad", "eeg")
_MAX_CHANS = 4096  # more "channels" than this is a transposed (n_times, n_chans) array, not a montage
_FINITE_CHUNK = 8_000_000  # values checked per step for NaN/Inf (bounded memory)
ARRAY_SOURCE = "<array>"  # what errors about an in-memory array name instead of a file


def _fail(path, problem: str):
    raise DataError(problem, path)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            return tuple(shape), np.dtype(dtype), fh.tell()
    except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError...
        _fail(path, f"not a valid .npy file ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})")


def _check_shape_dtype(source, shape, dtype: np.dtype) -> None:
    """What an (n_chans, n_times) sample array must be, whether a ``.npy`` file or an array in memory."""
    if dtype.hasobject:
        _fail(source, "array holds Python objects; a numeric (n_chans, n_times) array is expected (pickles are "
                      "refused)")
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        _fail(source, f"non-numeric dtype {dtype}; expected float or integer samples")
    if len(shape) != 2:
        _fail(source, f"expected a 2-D array (n_chans, n_times), got shape {shape}")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        _fail(source, f"not a valid .npy file (header claims shape {shape})")
    if shape[0] == 0 or shape[1] == 0:
        _fail(source, f"zero-length array {shape}: no channels or no samples")
    if shape[0] > _MAX_CHANS and shape[0] > shape[1]:
        _fail(source, f"shape {shape} looks transposed: expected (n_chans, n_times) with at most {_MAX_CHANS} "
                      "channels")


def _check_npy_header(path: Path, shape, dtype: np.dtype, offset: int) -> None:
    _check_shape_dtype(path, shape, dtype)
    need = math.prod(shape) * dtype.itemsize
    have = path.stat().st_size - offset
    if have < need:
        _fail(path, f"truncated: the header promises shape {shape} ({need} bytes) but the file holds {have}")


def check_finite(data: np.ndarray, path, what: str = "samples") -> None:
    """DataError if ``data`` (any shape, maybe memory-mapped) holds NaN or Inf; checked in chunks."""
    flat = data.reshape(data.shape[0], -1) if data.ndim > 1 else data[None]
    step = max(1, _FINITE_CHUNK // max(1, flat.shape[1]))
    for i in range(0, flat.shape[0], step):
        block = np.asarray(flat[i:i + step])
        if not np.isfinite(block).all():
            row = i + int(np.argwhere(~np.isfinite(block))[0][0])
            _fail(path, f"{what} contain NaN or Inf (first in channel {row})")


def _sidecar(path: Path) -> dict:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        value = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _fail(side, f"invalid sidecar JSON ({' '.join(str(exc).split())})")
    if not isinstance(value, dict):
        _fail(side, "sidecar JSON must be an object like {\"sfreq\": 1000}")
    return value


def default_channel_names(n_chans: int) -> list[str]:
    """``MEG 001``, ``MEG 002``, ...: the names of an array's rows when nothing names them."""
    return [f"MEG {i + 1:03d}" for i in range(n_chans)]


def _npy_info(path: Path, n_chans: int, sfreq: float | None) -> mne.Info:
    side = _sidecar(path)
    if sfreq is None:
        sfreq = side.get("sfreq")
    if sfreq is None:
        _fail(path, f"sampling rate unknown: pass --sfreq or write {path.with_suffix('.json').name} with "
                    f"{{\"sfreq\": ...}}")
    if isinstance(sfreq, bool) or not isinstance(sfreq, (int, float)) or not math.isfinite(sfreq) or sfreq <= 0:
        _fail(path, f"sampling rate must be a positive number, got {sfreq!r}")
    names = side.get("ch_names", default_channel_names(n_chans))
    if not isinstance(names, list) or len(names) != n_chans or not all(isinstance(n, str) for n in names):
        _fail(path.with_suffix(".json"), f"ch_names must list {n_chans} strings (one per array row)")
    if len(set(names)) != len(names):
        _fail(path.with_suffix(".json"), "ch_names must be unique")
    types = side.get("ch_types", "mag")
    try:
        return mne.create_info(names, float(sfreq), types, verbose=False)
    except (ValueError, KeyError, TypeError) as exc:
        _fail(path.with_suffix(".json"), f"invalid ch_types ({' '.join(str(exc).split())})")


class _LazyRaw(mne.io.BaseRaw):
    """An (n_chans, n_times) array as a lazy MNE Raw: samples are converted to float64 on demand, the
    requested channels only (as MNE's own file readers do), so a long recording is never copied whole.

    The samples come from ``array`` when given (kept in ``_raw_extras``: MNE's reader hook sees only the
    file names and the extras), else from a memory map of the ``.npy`` file ``filename``.
    """

    def __init__(self, info: mne.Info, n_times: int, filename: str | None = None, array: np.ndarray | None = None):
        super().__init__(info, preload=False, first_samps=[0], last_samps=[n_times - 1], filenames=[filename],
                         raw_extras=[{"array": array}], orig_format="single", verbose=False)

    def _read_segment_file(self, data, idx, fi, start, stop, cals, mult):  # MNE's reader hook
        array = self._raw_extras[fi].get("array")
        if array is None:
            array = np.load(self.filenames[fi], mmap_mode="r", allow_pickle=False)
        if mult is None:  # only the requested rows: a channel chunk of a one-hour file, not all 208 as float64
            rows = np.arange(array.shape[0])[idx]
            _mult_cal_one(data, np.asarray(array[rows, start:stop], dtype=np.float64), slice(None), cals, mult)
        else:  # projectors mix channels: MNE needs every row
            _mult_cal_one(data, np.asarray(array[:, start:stop], dtype=np.float64), idx, cals, mult)


class NpyRaw(_LazyRaw):
    """A ``.npy`` (n_chans, n_times) array as a lazy MNE Raw, read from a memory map on each request."""

    def __init__(self, path: Path, info: mne.Info, n_times: int):
        super().__init__(info, n_times, filename=str(path))


class ArrayRaw(_LazyRaw):
    """An (n_chans, n_times) array in memory as a lazy MNE Raw (no float64 copy of the whole array)."""

    def __init__(self, array: np.ndarray, info: mne.Info):
        super().__init__(info, array.shape[1], array=array)


def _read_npy(path: Path, sfreq: float | None) -> mne.io.BaseRaw:
    shape, dtype, offset = _npy_header(path)
    _check_npy_header(path, shape, dtype, offset)
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, OverflowError) as exc:
        _fail(path, f"cannot read the array ({' '.join(str(exc).split())})")
    check_finite(data, path)
    info = _npy_info(path, shape[0], sfreq)
    return NpyRaw(path, info, shape[1])


def raw_from_array(data, sfreq, ch_names: list[str] | None = None, ch_type: str = "mag") -> mne.io.BaseRaw:
    """An (n_chans, n_times) array (NumPy, or anything ``np.asarray`` takes) sampled at ``sfreq`` Hz as a
    lazy MNE Raw, checked as a ``.npy`` file is (numeric, 2-D, not transposed, finite, a positive rate);
    errors name ``<array>``.

    ``ch_names`` names the rows (default ``MEG 001...``, as for ``.npy``); every channel gets ``ch_type``
    and no sensor position, so an encoder with spatial attention sees them on a stable grid
    (:func:`sensor_positions_2d`), as for ``.npy`` inputs. For real positions pass an MNE Raw instead.
    """
    source = ARRAY_SOURCE
    try:
        array = np.asarray(data)
    except (TypeError, ValueError) as exc:  # ragged nested lists, objects NumPy cannot convert
        _fail(source, f"expected an (n_chans, n_times) array, got {type(data).__name__} ({exc})")
    _check_shape_dtype(source, tuple(int(d) for d in array.shape), array.dtype)
    if sfreq is None:
        _fail(source, "sampling rate unknown: pass sfreq= with an array")
    if isinstance(sfreq, bool) or not isinstance(sfreq, (int, float, np.number)) or not math.isfinite(sfreq) \
            or sfreq <= 0:
        _fail(source, f"sampling rate must be a positive number, got {sfreq!r}")
    ch_names = default_channel_names(array.shape[0]) if ch_names is None else list(ch_names)
    if len(ch_names) != array.shape[0]:
        raise ValueError(f"{len(ch_names)} channel names for {array.shape[0]} rows")
    check_finite(array, source)
    return ArrayRaw(array, mne.create_info(ch_names, float(sfreq), ch_type, verbose=False))


def _check_kit_size(path: Path, raw: mne.io.BaseRaw) -> None:
    """MNE's KIT reader (.con/.sqd) reads past the end of a truncated file as zeros: compare sizes."""
    extras = (getattr(raw, "_raw_extras", None) or [{}])[0]
    dirs = extras.get("dirs") if isinstance(extras, dict) else None
    if not dirs or "nchan" not in extras or "n_samples" not in extras:
        return

    need = (int(dirs[KIT.DIR_INDEX_RAW_DATA]["offset"])
            + int(extras["n_samples"]) * int(extras["nchan"]) * extras["dtype"].itemsize)
    have = path.stat().st_size
    if have < need:
        _fail(path, f"truncated: the header promises {int(extras['n_samples'])} samples of {int(extras['nchan'])} "
                    f"channels ({need} bytes) but the file holds {have}")


def _read_mne(path: Path) -> mne.io.BaseRaw:
    try:
        if path.is_dir():
            raw = mne.io.read_raw_ctf(path, preload=False, verbose="error")
        else:
            raw = mne.io.read_raw(path, preload=False, verbose="error")
    except Exception as exc:  # MNE raises anything from ValueError to AttributeError on bad files
        msg = " ".join(str(exc).split())[:160] or type(exc).__name__
        _fail(path, f"cannot read as a recording ({type(exc).__name__}: {msg})")
    if raw.n_times == 0:
        _fail(path, "recording has no samples")
    _check_kit_size(path, raw)
    try:  # a truncated file often opens fine and fails on its last buffer
        raw.get_data(start=raw.n_times - 1, stop=raw.n_times)
    except Exception as exc:
        _fail(path, f"truncated or corrupt data ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})")
    return raw


def read_recording(path: str | os.PathLike, sfreq: float | None = None) -> mne.io.BaseRaw:
    """Open one recording (.fif, .con, .sqd, CTF .ds, ... or .npy) as an MNE Raw.

    ``.npy``: shape (n_chans, n_times), ``allow_pickle=False``; the sampling rate comes from
    ``sfreq`` or a sidecar ``<name>.json`` (``{"sfreq": 1000, "ch_names": [...], "ch_types": "mag"}``,
    channel names and types optional: default ``MEG 001...`` of type ``mag``). Other formats: MNE,
    lazily (``sfreq`` is ignored, the file's own rate is used). Raises :class:`DataError` for a
    missing, empty, truncated or garbage file, a wrong shape or dtype, NaN/Inf in a ``.npy``, a
    non-positive rate, or a recording without MEG/EEG channels.
    """
    path = Path(path)
    if not path.exists():
        _fail(path, "file not found")
    if path.is_dir() and path.suffix.lower() != ".ds":
        _fail(path, "is a directory; give a recording file, a CTF .ds folder, or a BIDS root to `brain2text inspect`")
    if path.is_file() and path.stat().st_size == 0:
        _fail(path, "file is empty")
    raw = _read_npy(path, sfreq) if path.suffix.lower() == ".npy" else _read_mne(path)
    if not any(t in DATA_CHANNEL_TYPES for t in raw.get_channel_types()):
        _fail(path, f"no MEG/EEG channels (channel types: {sorted(set(raw.get_channel_types()))})")
    return raw


def recording_name(raw: mne.io.BaseRaw) -> str:
    """The file a Raw came from (for error messages), or ``<array>``."""
    names = [f for f in (getattr(raw, "filenames", None) or []) if f]
    return str(names[0]) if names else ARRAY_SOURCE


def meg_picks(raw: mne.io.BaseRaw, channel_types: list[str] | tuple[str, ...]) -> list[int]:
    """Indices of good channels whose MNE type is in ``channel_types`` (e.g. ``["mag", "grad"]``).

    Reference magnetometers (``ref_meg``), stim and misc channels are never picked unless asked for.
    """
    bads = set(raw.info["bads"])
    wanted = set(channel_types)
    picks = [i for i, (name, kind) in enumerate(zip(raw.ch_names, raw.get_channel_types()))
             if kind in wanted and name not in bads]
    if not picks:
        found = sorted(set(raw.get_channel_types()))
        _fail(recording_name(raw), f"no good channels of type {sorted(wanted)} (channel types here: {found})")
    return picks


def _grid(n: int) -> np.ndarray:
    side = max(1, math.ceil(math.sqrt(n)))
    idx = np.arange(n)
    xy = np.stack([idx % side, idx // side], axis=1).astype(np.float64)
    return xy / max(1, side - 1)


def _sphere_center(pos: np.ndarray) -> np.ndarray:
    # |p|^2 = 2 c.p + (r^2 - |c|^2): linear least squares; fall back to the centroid if it is absurd.
    a = np.hstack([2 * pos, np.ones((len(pos), 1))])
    sol, *_ = np.linalg.lstsq(a, (pos**2).sum(1), rcond=None)
    center = sol[:3]
    radius = math.sqrt(max(sol[3] + center @ center, 0.0))
    if not np.isfinite(center).all() or radius > 10 * (np.ptp(pos, axis=0).max() + 1e-12):
        center = pos.mean(0) - np.array([0.0, 0.0, np.ptp(pos[:, 2]) + 1e-3])
    return center


def sensor_positions_2d(raw: mne.io.BaseRaw, picks: list[int]) -> np.ndarray:
    """(C, 2) sensor positions in [0, 1] for the picked channels.

    The 3-D sensor locations (``info['chs'][i]['loc'][:3]``) are projected as MNE draws topomaps:
    an azimuthal-equidistant projection around the centre of the best-fitting sphere, then scaled
    (same factor for x and y) into the unit square. When positions are missing (all zero, NaN or
    repeated, e.g. a ``.npy`` input), the fallback is a row-major square grid in channel order:
    the model still gets distinct, stable positions, though without anatomical meaning.
    """
    pos = np.array([raw.info["chs"][i]["loc"][:3] for i in picks], dtype=np.float64)
    usable = (np.isfinite(pos).all() and len(pos) >= 4
              and (np.linalg.norm(pos, axis=1) > 0).all()
              and len(np.unique(pos.round(6), axis=0)) == len(pos))
    if not usable:
        return _grid(len(picks))
    v = pos - _sphere_center(pos)
    r = np.linalg.norm(v, axis=1)
    theta = np.arccos(np.clip(v[:, 2] / np.maximum(r, 1e-12), -1.0, 1.0))  # angle from the top
    phi = np.arctan2(v[:, 1], v[:, 0])
    xy = np.stack([theta * np.cos(phi), theta * np.sin(phi)], axis=1)
    xy -= xy.min(0)
    scale = xy.max()
    return xy / scale if scale > 0 else _grid(len(picks))
