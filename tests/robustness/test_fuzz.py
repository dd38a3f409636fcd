"""Property-based fuzzing (hypothesis, bounded to a few seconds each) of the three parsers that read
what users hand over: the events.tsv parser, the .npy/sidecar reader and the config loader.

Property: every input either parses or raises the package's own error (DataError / ConfigError); no
other exception, and never any code run (hostile strings would ``touch`` a marker file).
Every crash found here became a regression example (``@example``) and a fix.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import numpy as np
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from brain2text.config import Config, load_config  # noqa: E402
from brain2text.errors import ConfigError, DataError  # noqa: E402

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                database=None, derandomize=True)


def fuzz(n: int) -> settings:
    """Bounded, reproducible fuzzing: ``n`` examples, no deadline, no example database written."""
    return settings(FUZZ, max_examples=n)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ------------------------------------------------------------------------------------ events.tsv
def _hostile(marker: str) -> list[str]:
    return [f"__import__('os').system('touch {marker}')",
            "{'kind': 'word', 'word': __import__('os').system('touch " + marker + "')}",
            "{'kind': (lambda: open('" + marker + "', 'w'))()}",
            f"exec(\"open('{marker}', 'w')\")",
            "{'kind': 'word', 'word': f'{open(\"" + marker + "\", \"w\")}'}",
            "[" * 300 + "]" * 300, "{'a': " * 200 + "1" + "}" * 200, "9" * 5000, "1e999", "{'onset': -1e999}"]


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["n/a", "nan", "None", "", "word", "sentence", "word_list"]))
_info = st.dictionaries(st.sampled_from(["kind", "word", "story", "sound_id", "sequence_id", "condition", "word_index",
                                         "pronounced", "phoneme", "extra"]) | st.text(max_size=6),
                        _scalar | st.lists(_scalar, max_size=3), max_size=8)
_number_text = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                         st.sampled_from(["", "n/a", "soon", "1,5", "0x10", "1e999", "-0", "nan"]), st.text(max_size=6))


def _cell(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


@st.composite
def events_tables(draw, marker: str):
    flat = draw(st.booleans())
    n = draw(st.integers(0, 6))
    rows = []
    for _ in range(n):
        onset, duration = draw(_number_text), draw(_number_text)
        kind = draw(st.sampled_from(["dict", "mutated", "hostile", "label"]))
        if kind == "dict":
            tt = repr(draw(_info))
        elif kind == "mutated":
            base = repr(draw(_info))
            cut = draw(st.integers(0, len(base)))
            tt = base[:cut] + draw(st.text(alphabet=string.printable, max_size=4)) + base[cut:]
        elif kind == "hostile":
            tt = draw(st.sampled_from(_hostile(marker)))
        else:
            tt = draw(st.text(max_size=10))
        if flat:
            rows.append([onset, duration, tt, draw(st.text(max_size=8)), draw(_number_text), draw(_number_text)])
        else:
            rows.append([onset, duration, tt, "1", "0"])
    header = ["onset", "duration", "trial_type", "word", "sequence_id", "pronounced"] if flat else \
        ["onset", "duration", "trial_type", "value", "sample"]
    if draw(st.booleans()):  # a damaged header
        header = draw(st.permutations(header))[: draw(st.integers(1, len(header)))]
    return "\n".join("\t".join(_cell(c) for c in r) for r in [header, *rows]) + "\n"


def _check_events(path: Path, text: str | bytes, marker: Path) -> None:
    from brain2text.data.events import extract_sentences, read_events

    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        events = read_events(path)
        for include in (False, True):
            for s in extract_sentences(events, include_word_lists=include):
                assert isinstance(s.text, str) and len(s.words) == len(s.onsets)
    except DataError:
        pass
    assert not marker.exists(), "events parsing executed code"


@fuzz(150)
@given(data=st.data())
def test_fuzz_events_parser(fuzz_dir, data):
    marker = fuzz_dir / "EVENTS_CODE_RAN"
    _check_events(fuzz_dir / "events.tsv", data.draw(events_tables(str(marker))), marker)


@fuzz(100)
@given(raw=st.binary(max_size=300))
@example(raw=b"onset\ttrial_type\n\x00\x00\n")
@example(raw=b"onset\ttrial_type\n1\t\"{'kind': 'word'\n")
@example(raw=b"\xff\xfe\x00o")
def test_fuzz_events_parser_bytes(fuzz_dir, raw):
    marker = fuzz_dir / "EVENTS_CODE_RAN"
    _check_events(fuzz_dir / "events_bytes.tsv", b"onset\tduration\ttrial_type\n" + raw, marker)


# ----------------------------------------------------------------------------- .npy and sidecar
_DESCRS = ["<f4", "<f8", ">f4", "<i2", "|u1", "<c8", "|O", "|b1", "<U3", "|V8", "<M8[s]", "<f2", "foo", "<f4x", "",
           "(2,)<f4"]
_dim = st.one_of(st.integers(-3, 40), st.sampled_from([0, 1, 4097, 10**12, 2**63 - 1]),
                 st.floats(allow_nan=True).map(str))


@st.composite
def npy_files(draw):
    shape = tuple(draw(st.lists(_dim, max_size=4)))
    descr = draw(st.sampled_from(_DESCRS))
    fortran = draw(st.sampled_from(["False", "True", "0", "'yes'"]))
    header = "{'descr': %r, 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, repr(shape).replace("'", ""))
    if draw(st.integers(0, 9)) == 0:
        header = header[: draw(st.integers(0, len(header)))]
    version = draw(st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x09"]))
    raw = header.encode()
    raw += b" " * ((64 - (12 + len(raw) + 1) % 64) % 64) + b"\n"
    length = len(raw).to_bytes(4 if version != b"\x01\x00" else 2, "little")
    payload = draw(st.binary(max_size=2048)) if draw(st.booleans()) else np.random.default_rng(
        draw(st.integers(0, 9))).standard_normal(draw(st.integers(0, 400))).astype("<f4").tobytes()
    return b"\x93NUMPY" + version + length + raw + payload


_sidecar = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={
        "sfreq": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-5, 10**6),
                           st.text(max_size=4), st.none(), st.booleans(), st.lists(st.integers(), max_size=2)),
        "ch_names": st.one_of(st.lists(st.text(max_size=5), max_size=5), st.text(max_size=5), st.integers()),
        "ch_types": st.one_of(st.sampled_from(["mag", "grad", "eeg", "stim", "misc", "bogus", ""]),
                              st.lists(st.sampled_from(["mag", "eeg", "bogus"]), max_size=5), st.integers(), st.none()),
    }),
    st.sampled_from(["[]", "{", "null", "\"sfreq\"", "{\"sfreq\": NaN}", "{\"sfreq\": Infinity}",
                     "{\"sfreq\": 1e999}"]),
)


def _check_npy(folder: Path, blob: bytes, sidecar, sfreq) -> None:
    from brain2text.data.readers import read_recording

    path = folder / "fuzz.npy"
    path.write_bytes(blob)
    side = path.with_suffix(".json")
    side.unlink(missing_ok=True)
    if sidecar is not None:
        side.write_text(sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
    try:
        raw = read_recording(path, sfreq)
    except DataError:
        return
    data = raw.get_data()
    assert data.ndim == 2 and np.isfinite(data).all() and raw.info["sfreq"] > 0


@fuzz(150)
@given(blob=npy_files(), sidecar=_sidecar,
       sfreq=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.just(100.0)))
@example(blob=b"\x93NUMPY\x01\x00" + b"\x76\x00" + b"{'descr': '<f4', 'fortran_order': False, 'shape': (-4, 100), }"
         + b" " * 53 + b"\n" + b"\0" * 64, sidecar=None, sfreq=100.0)  # negative shape: was an OverflowError
@example(blob=b"\x93NUMPY\x01\x004\x00{" + b" " * 50 + b"\n", sidecar=None, sfreq=None)  # was a tokenize.TokenError
def test_fuzz_npy_and_sidecar_reader(fuzz_dir, blob, sidecar, sfreq):
    _check_npy(fuzz_dir, blob, sidecar, sfreq)


@fuzz(60)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 50)),
       dtype=st.sampled_from(["<f4", ">f8", "<i2", "|u1", "<f2"]), sidecar=_sidecar,
       fill=st.sampled_from(["random", "zeros", "nan", "inf", "huge"]))
def test_fuzz_real_arrays_with_sidecars(fuzz_dir, shape, dtype, sidecar, fill):
    rng = np.random.default_rng(0)
    x = {"random": rng.standard_normal(shape), "zeros": np.zeros(shape), "huge": np.full(shape, 1e300)}.get(fill)
    if x is None:
        x = rng.standard_normal(shape)
        x.flat[-1] = np.nan if fill == "nan" else np.inf
    with np.errstate(all="ignore"):
        arr = x.astype(dtype)
    path = fuzz_dir / "arr.npy"
    np.save(path, arr)
    _check_npy(fuzz_dir, path.read_bytes(), sidecar, None)


# ---------------------------------------------------------------------------------------- config
def _known_keys() -> dict[str, list[str]]:
    import dataclasses

    cfg = Config()
    return {f.name: [g.name for g in dataclasses.fields(getattr(cfg, f.name))] for f in dataclasses.fields(cfg)}


KNOWN = _known_keys()
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**4), st.integers(-10**30, 10**30),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                  st.sampled_from(["sentence", "story", "kmeans", "greedy", "joint", "mlp2x_gelu", "bf16", "no",
                                   "float32"]))
_value = st.recursive(_leaf, lambda inner: (st.lists(inner, max_size=3)
                                            | st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=6)
_phase = st.fixed_dictionaries({}, optional={"name": st.text(max_size=5), "steps": _leaf, "trainable": _value,
                                             "losses": st.dictionaries(st.sampled_from(["mae", "lm", "ctc", "bogus"]),
                                                                       _leaf, max_size=3),
                                             "lr": _leaf, "warmup_steps": _leaf})


@st.composite
def config_trees(draw):
    tree = {}
    for section in draw(st.lists(st.sampled_from([*KNOWN, "bogus"]), max_size=4, unique=True)):
        fields = KNOWN.get(section, ["x"])
        keys = draw(st.lists(st.sampled_from([*fields, "unknown_key"]), max_size=4, unique=True))
        node = {}
        for k in keys:
            node[k] = draw(st.lists(_phase, max_size=2) if k in ("multi_phase", "full", "distill") else _value)
        tree[section] = node if draw(st.integers(0, 19)) else draw(_value)
    return tree


def _check_config(path: Path | None, overrides: list[str]) -> None:
    try:
        cfg = load_config(path, overrides)
    except ConfigError:
        return
    assert isinstance(cfg, Config)
    for name, value in _floats(cfg.to_dict()):
        assert math.isfinite(value), f"{name} = {value}"


def _floats(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _floats(v, f"{prefix}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _floats(v, f"{prefix}[{i}]")
    elif isinstance(tree, float):
        yield prefix, tree


@fuzz(300)
@given(tree=config_trees())
@example(tree={"encoder": {"n_heads": 0}})  # was a ZeroDivisionError
@example(tree={"data": {"sfreq": float("nan")}})  # passed validation
@example(tree={"train": {"multi_phase": [{"losses": {"mae": None}}]}})
@example(tree={"encoder": {"stage_downsample": [0]}, "rvq": {"codebook_size": 0}})
def test_fuzz_config_trees(fuzz_dir, tree):
    path = fuzz_dir / "fuzz.yaml"
    path.write_text(yaml.safe_dump(tree, allow_unicode=True))
    _check_config(path, [])


_override_key = st.one_of(st.sampled_from([f"{s}.{k}" for s, ks in KNOWN.items() for k in ks]),
                          st.text(alphabet=string.ascii_lowercase + "._", max_size=12))
_override_value = st.one_of(st.text(max_size=12),
                            st.sampled_from(["[1", "{a: 1}", ".nan", "-.inf", "!!python/object:os.system",
                                             "!!binary aGk=", "&a [*a]", "0x10", "1e400", "~", "''"]))


@fuzz(300)
@given(overrides=st.lists(st.tuples(_override_key, _override_value).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=4)
       | st.lists(st.text(max_size=10), max_size=2))
@example(overrides=["encoder.d_model=7", "encoder.n_heads=0"])
@example(overrides=["data=1", "data.sfreq=2"])
@example(overrides=["train.seed=99999999999999999999999"])
def test_fuzz_config_overrides(overrides):
    _check_config(None, overrides)


@fuzz(80)
@given(text=st.text(alphabet=string.printable, max_size=120))
@example(text="!!python/object/apply:os.system ['true']")
@example(text="a: &x [*x]")
@example(text="data: {sfreq: !!float nan}")
def test_fuzz_config_raw_yaml(fuzz_dir, text):
    path = fuzz_dir / "raw.yaml"
    path.write_text(text)
    _check_config(path, [])
