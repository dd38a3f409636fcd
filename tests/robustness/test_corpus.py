"""The malformed-input corpus: every entry point (``brain2text inspect``, ``train.py``, ``inference.py``,
``brain2text evaluate``, ``brain2text synth``) given broken, hostile or impossible input.

Each case is written into a fresh folder by the test (nothing binary is committed) and must end with a
clean error (see ``robust_helpers.assert_clean_error``): non-zero exit, one line ``error: <file>: <problem>``
on stderr, no traceback, and no file created or modified anywhere under the case's folder (temporary
files included) or in the shared model directory. Hostile payloads (a pickle inside a ``.npy`` or a
``pytorch_model.bin``, code in ``trial_type``, ``!!python/object`` YAML) would ``touch`` a marker file if
they ever ran: the marker must not exist afterwards.

Most cases run in-process through ``brain2text.cli.main`` (fast); those with ``sub=True`` run as real
subprocesses (``python -m brain2text`` or the root scripts) so the exact stderr a user sees is checked.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from brain2text.cli import main
from robust_helpers import (
    PROGRESS,
    SQD,
    assert_clean_error,
    diff_snapshots,
    events_row,
    immutable_dir,
    npy_with_header,
    object_npy,
    recording_with_events,
    release_dir,
    run_subprocess,
    small_fif,
    snapshot,
    truncated,
    word_trial_type,
)

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")


@dataclass
class Case:
    argv: list[str]
    expect: list[str]  # substrings of the one error line (file and problem)
    marker: Path | None = None  # must not exist afterwards
    sub: bool = False  # run as a real subprocess
    watch: list[Path] = field(default_factory=list)  # more folders that must stay untouched
    cleanup: Callable[[], None] | None = None
    progress_ok: bool = False  # a progress bar of real work may precede the error line


@dataclass
class Ctx:
    w: Path  # the case's own folder
    setup: object  # eval_helpers.TinySetup (model, base LM, synthetic BIDS)

    def model_copy(self) -> Path:
        dst = self.w / "model"
        shutil.copytree(self.setup.model_dir, dst)
        return dst

    def infer(self, inp, *extra: str, model: Path | None = None, out: Path | None = None, script=False) -> list[str]:
        head = ["inference.py"] if script else ["infer"]
        return [*head, "--model_path", str(model or self.setup.model_dir), "--input_file", str(inp),
                "--output_file", str(out or self.w / "results.json"), *extra]

    def train(self, config, *extra: str, script=False) -> list[str]:
        head = ["train.py"] if script else ["train"]
        return [*head, "--config", str(config), "--mode", "full", "--output_dir", str(self.w / "run"),
                f"data.cache_dir={self.w / 'cache'}", f"decoder.model_name_or_path={self.setup.lm_dir}", *extra]

    def evaluate(self, *extra: str, out: Path | None = None) -> list[str]:
        return ["evaluate", "--model_path", str(self.setup.model_dir),
                "--output_file", str(out or self.w / "eval.json"), f"data.cache_dir={self.w / 'cache'}", *extra]

    def yaml(self, text: str) -> Path:
        path = self.w / "config.yaml"
        path.write_text(text)
        return path


CASES: dict[str, Callable[[Ctx], Case]] = {}


def case(fn):
    CASES[fn.__name__.removeprefix("c_")] = fn
    return fn


def _npy(ctx: Ctx, name: str, array: np.ndarray) -> Path:
    path = ctx.w / name
    np.save(path, array)
    return path


def _good(ctx: Ctx, n_chans: int = 16, n_times: int = 1000) -> Path:
    return _npy(ctx, "rec.npy", np.random.default_rng(0).standard_normal((n_chans, n_times)).astype(np.float32))


# ---------------------------------------------------------------------------------- inspect: files
@case
def c_empty_fif(ctx):
    (ctx.w / "empty.fif").write_bytes(b"")
    return Case(["inspect", str(ctx.w / "empty.fif")], ["empty.fif", "file is empty"], sub=True)


@case
def c_truncated_fif_half(ctx):
    src = small_fif(ctx.w / "full_raw.fif")
    bad = truncated(src, ctx.w / "half_raw.fif", 0.5)
    src.unlink()
    return Case(["inspect", str(bad)], ["half_raw.fif", "truncated or corrupt"])


@case
def c_truncated_fif_tail(ctx):
    src = small_fif(ctx.w / "full_raw.fif")
    bad = truncated(src, ctx.w / "cut_raw.fif", 0.97)
    src.unlink()
    return Case(["inspect", str(bad)], ["cut_raw.fif", "truncated or corrupt"])


@case
def c_truncated_con_half(ctx):
    if not SQD.is_file():
        pytest.skip(f"{SQD} not found")
    return Case(["inspect", str(truncated(SQD, ctx.w / "rec.con", 0.5))], ["rec.con", "truncated"], sub=True)


@case
def c_truncated_con_header_only(ctx):
    if not SQD.is_file():
        pytest.skip(f"{SQD} not found")
    bad = ctx.w / "rec.con"
    bad.write_bytes(SQD.read_bytes()[:300])
    return Case(["inspect", str(bad)], ["rec.con", "cannot read as a recording"])


@case
def c_random_bytes_fif(ctx):
    (ctx.w / "noise.fif").write_bytes(np.random.default_rng(1).bytes(5000))
    return Case(["inspect", str(ctx.w / "noise.fif")], ["noise.fif", "cannot read as a recording"])


@case
def c_text_renamed_npy(ctx):
    (ctx.w / "notes.npy").write_text("subject 01, good session\n")
    return Case(["inspect", str(ctx.w / "notes.npy"), "--sfreq", "100"], ["notes.npy", "not a valid .npy"])


@case
def c_empty_npy(ctx):
    (ctx.w / "empty.npy").write_bytes(b"")
    return Case(["inspect", str(ctx.w / "empty.npy"), "--sfreq", "100"], ["empty.npy", "file is empty"])


@case
def c_object_npy_pickle(ctx):
    marker = ctx.w / "PICKLE_RAN"
    bad = object_npy(ctx.w / "evil.npy", marker)
    return Case(["inspect", str(bad), "--sfreq", "100"], ["evil.npy", "pickles are refused"], marker=marker, sub=True)


@case
def c_absurd_shape_npy(ctx):
    bad = npy_with_header(ctx.w / "huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, "
                                              "100000000000), }")
    return Case(["inspect", str(bad), "--sfreq", "100"], ["huge.npy", "truncated: the header promises"])


@case
def c_negative_shape_npy(ctx):
    bad = npy_with_header(ctx.w / "neg.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-4, 100), }")
    return Case(["inspect", str(bad), "--sfreq", "100"], ["neg.npy", "not a valid .npy"])


@case
def c_array_1d(ctx):
    return Case(["inspect", str(_npy(ctx, "flat.npy", np.zeros(500, np.float32))), "--sfreq", "100"],
                ["flat.npy", "expected a 2-D array"])


@case
def c_array_3d(ctx):
    return Case(["inspect", str(_npy(ctx, "cube.npy", np.zeros((2, 4, 500), np.float32))), "--sfreq", "100"],
                ["cube.npy", "expected a 2-D array"])


@case
def c_array_zero_samples(ctx):
    return Case(["inspect", str(_npy(ctx, "zero.npy", np.zeros((4, 0), np.float32))), "--sfreq", "100"],
                ["zero.npy", "zero-length"])


@case
def c_array_complex(ctx):
    return Case(["inspect", str(_npy(ctx, "cplx.npy", np.zeros((4, 50), np.complex64))), "--sfreq", "100"],
                ["cplx.npy", "non-numeric dtype"])


@case
def c_array_nan(ctx):
    x = np.ones((4, 500), np.float32)
    x[2, 17] = np.nan
    return Case(["inspect", str(_npy(ctx, "nan.npy", x)), "--sfreq", "100"], ["nan.npy", "NaN or Inf", "channel 2"])


@case
def c_array_inf(ctx):
    x = np.ones((4, 500), np.float32)
    x[0, 3] = -np.inf
    return Case(["inspect", str(_npy(ctx, "inf.npy", x)), "--sfreq", "100"], ["inf.npy", "NaN or Inf"])


@case
def c_sfreq_zero_flag(ctx):
    return Case(["inspect", str(_good(ctx)), "--sfreq", "0"], ["rec.npy", "sampling rate must be a positive number"])


@case
def c_sfreq_negative_flag(ctx):
    return Case(["inspect", str(_good(ctx)), "--sfreq", "-250"], ["rec.npy", "sampling rate must be a positive number"])


@case
def c_sfreq_zero_sidecar(ctx):
    rec = _good(ctx)
    rec.with_suffix(".json").write_text('{"sfreq": 0}')
    return Case(["inspect", str(rec)], ["rec.npy", "sampling rate must be a positive number"])


@case
def c_sfreq_negative_sidecar(ctx):
    rec = _good(ctx)
    rec.with_suffix(".json").write_text('{"sfreq": -1000}')
    return Case(["inspect", str(rec)], ["rec.npy", "sampling rate must be a positive number"])


@case
def c_sidecar_not_json(ctx):
    rec = _good(ctx)
    rec.with_suffix(".json").write_text("sfreq = 1000")
    return Case(["inspect", str(rec)], ["rec.json", "invalid sidecar JSON"])


@case
def c_sidecar_wrong_channel_names(ctx):
    rec = _good(ctx)
    rec.with_suffix(".json").write_text(json.dumps({"sfreq": 100, "ch_names": ["a", "b"]}))
    return Case(["inspect", str(rec)], ["rec.json", "ch_names must list 16 strings"])


@case
def c_empty_ctf_ds_folder(ctx):
    (ctx.w / "rec.ds").mkdir()
    return Case(["inspect", str(ctx.w / "rec.ds")], ["rec.ds", "cannot read as a recording"])


@case
def c_transposed_npy(ctx):
    return Case(["inspect", str(_npy(ctx, "long.npy", np.zeros((20000, 8), np.float32))), "--sfreq", "100"],
                ["long.npy", "looks transposed"])


@case
def c_sidecar_unknown_channel_type(ctx):
    rec = _good(ctx)
    rec.with_suffix(".json").write_text(json.dumps({"sfreq": 100, "ch_types": "squid"}))
    return Case(["inspect", str(rec)], ["rec.json", "invalid ch_types"])


@case
def c_events_empty_file(ctx):
    rec = recording_with_events(ctx.w, [])
    (ctx.w / "sub-01_task-0_events.tsv").write_bytes(b"")
    return Case(["inspect", str(rec)], ["sub-01_task-0_events.tsv", "events file is empty"])


@case
def c_missing_file(ctx):
    return Case(["inspect", str(ctx.w / "nowhere.fif")], ["nowhere.fif", "not found"])


# ------------------------------------------------------------------------- inspect: BIDS and events
@case
def c_bids_root_without_subjects(ctx):
    root = ctx.w / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "empty", "BIDSVersion": "1.8.0"}')
    return Case(["inspect", str(root)], ["bids", "no subjects"])


@case
def c_events_malformed_trial_type(ctx):
    rows = [events_row(1.0, word_trial_type("the")), events_row(1.5, "{'kind': 'word', 'word': 'cat'")]
    rec = recording_with_events(ctx.w, rows)
    return Case(["inspect", str(rec)],
                ["sub-01_task-0_events.tsv", "line 3", "trial_type is not a Python dict literal"])


@case
def c_events_code_in_trial_type(ctx):
    marker = ctx.w / "CODE_RAN"
    rows = [events_row(1.0, word_trial_type("the")),
            events_row(1.5, f"__import__('os').system('touch {marker}')"),
            events_row(2.0, "{'kind': 'word', 'word': __import__('os').system('touch " + str(marker) + "')}")]
    rec = recording_with_events(ctx.w, rows)
    return Case(["inspect", str(rec)], ["sub-01_task-0_events.tsv", "line 3"], marker=marker, sub=True)


@case
def c_events_bad_onset(ctx):
    rec = recording_with_events(ctx.w, [events_row(1.0, word_trial_type("the")).replace("1.0\t", "soon\t", 1)])
    return Case(["inspect", str(rec)], ["sub-01_task-0_events.tsv", "onset must be a number"])


@case
def c_events_no_onset_column(ctx):
    rec = recording_with_events(ctx.w, [])
    (ctx.w / "sub-01_task-0_events.tsv").write_text("time\ttrial_type\n1.0\tword\n")
    return Case(["inspect", str(rec)], ["sub-01_task-0_events.tsv", "no 'onset' column"])


@case
def c_events_nan_onset(ctx):
    rows = [events_row(1.0, word_trial_type("the")),
            events_row(1.3, word_trial_type("cat")).replace("1.3\t", "NaN\t", 1)]
    return Case(["inspect", str(recording_with_events(ctx.w, rows))],
                ["sub-01_task-0_events.tsv", "line 3", "onset is missing or NaN"])


@case
def c_events_trial_type_nested_1000_deep(ctx):
    rows = [events_row(1.0, word_trial_type("the")), events_row(1.3, "{'kind': " * 1000 + "'word'" + "}" * 1000)]
    return Case(["inspect", str(recording_with_events(ctx.w, rows))],
                ["sub-01_task-0_events.tsv", "line 3", "nested 1000 levels deep"], sub=True)


@case
def c_events_50mb_row(ctx):
    rows = [events_row(1.0, word_trial_type("x" * 50_000_000)), events_row(1.3, word_trial_type("cat"))]
    return Case(["inspect", str(recording_with_events(ctx.w, rows))],
                ["sub-01_task-0_events.tsv", "line 2", "field 'trial_type' is", "characters long (at most 65536)"])


# ----------------------------------------------------------------------------- inference.py / infer
@case
def c_infer_all_flat_channels(ctx):
    rec = _npy(ctx, "flat.npy", np.full((16, 2000), 3e-13, np.float32))
    return Case(ctx.infer(rec, "--sfreq", "200"), ["flat.npy", "all 16 channels are flat"], watch=[ctx.setup.model_dir])


@case
def c_infer_window_below_receptive_field(ctx):
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", "--window", "0.02", "--stride", "0.02"),
                ["--window of 0.02 s", "shorter than the encoder's receptive field"], watch=[ctx.setup.model_dir])


@case
def c_infer_sfreq_zero(ctx):
    return Case(ctx.infer(_good(ctx), "--sfreq", "0"), ["--sfreq must be > 0"])


@case
def c_infer_sfreq_negative_sidecar(ctx):
    rec = _good(ctx)
    rec.with_suffix(".json").write_text('{"sfreq": -200}')
    return Case(ctx.infer(rec), ["rec.npy", "sampling rate must be a positive number"], watch=[ctx.setup.model_dir])


@case
def c_infer_object_npy(ctx):
    marker = ctx.w / "PICKLE_RAN"
    bad = object_npy(ctx.w / "evil.npy", marker, shape=(16, 100))
    return Case(ctx.infer(bad, "--sfreq", "200", script=True), ["evil.npy", "pickles are refused"], marker=marker,
                watch=[ctx.setup.model_dir])


@case
def c_model_pytorch_bin_pickle(ctx):
    import torch

    from robust_helpers import TouchOnUnpickle

    marker = ctx.w / "PICKLE_RAN"
    model = ctx.model_copy()
    torch.save({"weights": TouchOnUnpickle(marker)}, model / "pytorch_model.bin")
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", model=model, script=True),
                ["pytorch_model.bin", "refusing to load a pickle-capable file"], marker=marker, sub=True)


@case
def c_model_missing_weights(ctx):
    model = ctx.model_copy()
    (model / "brain2text.safetensors").unlink()
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", model=model),
                ["brain2text.safetensors", "missing weights file"])


@case
def c_model_missing_config(ctx):
    model = ctx.model_copy()
    (model / "brain2text_config.json").unlink()
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", model=model), ["brain2text_config.json", "not a brain2text "
                                                                                                 "model"])


@case
def c_model_missing_tokenizer(ctx):
    model = ctx.model_copy()
    shutil.rmtree(model / "tokenizer")
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", model=model), ["tokenizer", "not found"])


@case
def c_model_missing_adapter(ctx):
    model = ctx.model_copy()
    shutil.rmtree(model / "adapter")
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", model=model), ["adapter_config.json", "missing LoRA adapter"])


@case
def c_model_truncated_safetensors(ctx):
    model = ctx.model_copy()
    truncated(model / "brain2text.safetensors", model / "brain2text.safetensors", 0.5)
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", model=model),
                ["brain2text.safetensors", "corrupt or truncated safetensors"])


@case
def c_model_truncated_adapter(ctx):
    model = ctx.model_copy()
    f = model / "adapter" / "adapter_model.safetensors"
    truncated(f, f, 0.3)
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", model=model),
                ["adapter_model.safetensors", "corrupt or truncated safetensors"])


@case
def c_model_config_not_json(ctx):
    model = ctx.model_copy()
    (model / "brain2text_config.json").write_text("{'format': 'brain2text'")
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", model=model), ["brain2text_config.json", "unreadable JSON"])


@case
def c_model_path_is_a_file(ctx):
    (ctx.w / "model.safetensors").write_bytes(b"\0" * 16)
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", model=ctx.w / "model.safetensors"),
                ["model.safetensors", "model directory not found"])


@case
def c_infer_output_parent_is_a_file(ctx):
    (ctx.w / "results").write_text("a file where a folder should be")
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", out=ctx.w / "results" / "out.json"),
                ["out.json", "is a file, not a folder"])


@case
def c_infer_output_read_only_dir(ctx):
    ro = ctx.w / "readonly"
    if not immutable_dir(ro):
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    return Case(ctx.infer(_good(ctx), "--sfreq", "200", out=ro / "out.json"), ["out.json", "not writable"],
                cleanup=lambda: release_dir(ro), watch=[ctx.setup.model_dir])


# ------------------------------------------------------------------------------- train.py / train
@case
def c_train_yaml_unknown_key(ctx):
    cfg = ctx.yaml("train:\n  batchsize: 4\n")
    return Case(ctx.train(cfg, script=True), ["config.yaml", "unknown key 'train.batchsize'", "batch_size"], sub=True)


@case
def c_train_yaml_wrong_type(ctx):
    cfg = ctx.yaml("encoder:\n  d_model: wide\n")
    return Case(ctx.train(cfg), ["config.yaml", "'encoder.d_model' must be an integer"])


@case
def c_train_yaml_python_object_tag(ctx):
    marker = ctx.w / "YAML_RAN"
    cfg = ctx.yaml(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    return Case(ctx.train(cfg, script=True), ["config.yaml", "python/object"], marker=marker, sub=True)


@case
def c_train_yaml_python_object_new(ctx):
    marker = ctx.w / "YAML_RAN"
    cfg = ctx.yaml(f"data: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n")
    return Case(ctx.train(cfg), ["config.yaml", "python/object"], marker=marker)


@case
def c_train_yaml_syntax(ctx):
    cfg = ctx.yaml("train:\n  batch_size: [4\n")
    return Case(ctx.train(cfg), ["config.yaml", "invalid YAML"])


@case
def c_train_yaml_not_a_mapping(ctx):
    cfg = ctx.yaml("- data\n- train\n")
    return Case(ctx.train(cfg), ["config.yaml", "top level must be a mapping"])


@case
def c_train_config_missing(ctx):
    return Case(ctx.train(ctx.w / "nope.yaml"), ["nope.yaml", "config file not found"])


@case
def c_train_sfreq_negative(ctx):
    return Case(ctx.train(TINY, "data.sfreq=-100"), ["tiny.yaml", "data.sfreq must be > 0"])


@case
def c_train_sfreq_nan(ctx):
    return Case(ctx.train(TINY, "data.sfreq=.nan"), ["data.sfreq", "finite number"])


@case
def c_train_override_unparsable(ctx):
    return Case(ctx.train(TINY, "train.batch_size=[1"), ["train.batch_size", "cannot parse"])


@case
def c_train_unknown_mode(ctx):
    argv = ctx.train(TINY)
    argv[argv.index("full")] = "fully"
    return Case(argv, ["unknown training mode 'fully'"])


@case
def c_train_output_dir_parent_is_a_file(ctx):
    (ctx.w / "runs").write_text("not a folder")
    argv = ctx.train(TINY, f"data.bids_root={ctx.setup.bids_root}")
    argv[argv.index(str(ctx.w / "run"))] = str(ctx.w / "runs" / "run1")
    return Case(argv, ["run1", "is a file, not a folder"])


@case
def c_train_output_dir_read_only(ctx):
    ro = ctx.w / "readonly"
    if not immutable_dir(ro):
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    argv = ctx.train(TINY, f"data.bids_root={ctx.setup.bids_root}")
    argv[argv.index(str(ctx.w / "run"))] = str(ro / "run")
    return Case(argv, ["run", "not writable"], cleanup=lambda: release_dir(ro))


@case
def c_train_bids_without_subjects(ctx):
    (ctx.w / "bids").mkdir()
    return Case(ctx.train(TINY, f"data.bids_root={ctx.w / 'bids'}", script=True), ["bids", "no subjects"])


@case
def c_train_bids_every_recording_flat(ctx):
    meg = ctx.w / "bids" / "sub-01" / "meg"
    rec = recording_with_events(meg, [events_row(1.0 + 0.3 * i, word_trial_type(w))
                                      for i, w in enumerate("a cat sat".split())])
    import mne

    raw = mne.io.read_raw_fif(rec, preload=True, verbose=False)
    raw._data[:] = 0.0
    raw.save(rec, overwrite=True, verbose=False)
    return Case(ctx.train(TINY, f"data.bids_root={ctx.w / 'bids'}"), ["bids", "no usable sentence examples",
                                                                       "channels are flat"], progress_ok=True)


@case
def c_train_output_dir_foreign(ctx):
    (ctx.w / "run").mkdir()
    (ctx.w / "run" / "thesis.tex").write_text("keep me")
    return Case(ctx.train(TINY, f"data.bids_root={ctx.setup.bids_root}"), ["run", "not a brain2text training run"])


# --------------------------------------------------------------------------------------- evaluate
@case
def c_evaluate_no_subjects(ctx):
    (ctx.w / "bids").mkdir()
    return Case(ctx.evaluate(f"data.bids_root={ctx.w / 'bids'}"), ["bids", "no subjects"], watch=[ctx.setup.model_dir])


@case
def c_evaluate_missing_model(ctx):
    argv = ctx.evaluate()
    argv[argv.index(str(ctx.setup.model_dir))] = str(ctx.w / "best_model")
    return Case(argv, ["best_model", "model directory not found"])


@case
def c_evaluate_output_is_markdown(ctx):
    return Case(ctx.evaluate(out=ctx.w / "eval.md"), ["eval.md", "the metrics JSON"])


@case
def c_evaluate_bad_override(ctx):
    return Case(ctx.evaluate("eval.n_bootstrap=0"), ["eval.n_bootstrap must be >= 1"], watch=[ctx.setup.model_dir])


@case
def c_evaluate_yaml_wrong_type(ctx):
    cfg = ctx.yaml("eval:\n  controls: noise\n")
    return Case([*ctx.evaluate(), "--config", str(cfg)], ["config.yaml", "'eval.controls' must be a list"])


@case
def c_infer_input_is_a_folder(ctx):
    (ctx.w / "recordings").mkdir()
    return Case(ctx.infer(ctx.w / "recordings"), ["recordings", "is a directory"], watch=[ctx.setup.model_dir])


@case
def c_evaluate_yaml_python_tag(ctx):
    marker = ctx.w / "YAML_RAN"
    cfg = ctx.yaml(f"eval: !!python/object/apply:os.system ['touch {marker}']\n")
    return Case([*ctx.evaluate(), "--config", str(cfg)], ["config.yaml", "python/object"], marker=marker)


@case
def c_evaluate_output_read_only_dir(ctx):
    ro = ctx.w / "readonly"
    if not immutable_dir(ro):
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    return Case(ctx.evaluate(f"data.bids_root={ctx.setup.bids_root}", out=ro / "eval.json"),
                ["eval.json", "not writable"], cleanup=lambda: release_dir(ro), watch=[ctx.setup.model_dir])


# ------------------------------------------------------------------------------------------ synth
def _synth(ctx, *extra: str, out: Path | None = None) -> list[str]:
    return ["synth", "--out", str(out or ctx.w / "synthetic"), "--subjects", "1", "--stories", "lw1",
            "--max-seconds", "10", "--n-chans", "8", "--sfreq", "200", *extra]


@case
def c_synth_sfreq_zero(ctx):
    return Case(_synth(ctx, "--sfreq", "0"), ["--sfreq"])


@case
def c_synth_sfreq_negative(ctx):
    return Case(_synth(ctx, "--sfreq", "-1000"), ["--sfreq"])


@case
def c_synth_no_subjects(ctx):
    return Case(_synth(ctx, "--subjects", "0"), ["--subjects must be >= 1"])


@case
def c_synth_no_channels(ctx):
    return Case(_synth(ctx, "--n-chans", "0"), ["--n-chans"])


@case
def c_synth_negative_duration(ctx):
    return Case(_synth(ctx, "--max-seconds", "-5"), ["--max-seconds"])


@case
def c_synth_missing_text_dir(ctx):
    return Case(_synth(ctx, "--text-dir", str(ctx.w / "texts")), ["texts"])


@case
def c_synth_out_parent_is_a_file(ctx):
    (ctx.w / "data").write_text("not a folder")
    return Case(_synth(ctx, out=ctx.w / "data" / "synthetic"), ["synthetic", "is a file, not a folder"])


@case
def c_synth_out_read_only_dir(ctx):
    ro = ctx.w / "readonly"
    if not immutable_dir(ro):
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    return Case(_synth(ctx, out=ro / "synthetic"), ["synthetic", "not writable"], sub=True,
                cleanup=lambda: release_dir(ro))


# ------------------------------------------------------------------------------------------ score
def _score(ctx, predictions: bytes, references: bytes = b"the cat sat\n", groups: bytes | None = None) -> list[str]:
    (ctx.w / "refs.txt").write_bytes(references)
    (ctx.w / "preds.txt").write_bytes(predictions)
    argv = ["score", "--references", str(ctx.w / "refs.txt"), "--predictions", str(ctx.w / "preds.txt"),
            "--output_file", str(ctx.w / "score.json"), "--bertscore_model", "none", "--n_bootstrap", "10"]
    if groups is not None:
        (ctx.w / "groups.txt").write_bytes(groups)
        argv += ["--groups", str(ctx.w / "groups.txt")]
    return argv


@case
def c_score_nul_bytes(ctx):
    return Case(_score(ctx, b"\0" * 4096), ["preds.txt", "not a text file: NUL byte on line 1"], sub=True)


@case
def c_score_binary_that_decodes_as_utf8(ctx):
    return Case(_score(ctx, bytes(range(1, 128)) * 4), ["preds.txt", "not a text file: control character U+0001"])


@case
def c_score_gzip_file(ctx):
    import gzip

    return Case(_score(ctx, gzip.compress(b"the cat sat\n")), ["preds.txt", "not UTF-8 text"])


@case
def c_score_utf16_references(ctx):
    return Case(_score(ctx, b"the cat sat\n", "the cat sat\n".encode("utf-16")),
                ["refs.txt", "not UTF-8 text: it starts with a UTF-16 byte-order mark"])


@case
def c_score_binary_groups_file(ctx):
    return Case(_score(ctx, b"the cat sat\n", groups=b"\x01\x02\x03\n"),
                ["groups.txt", "control character U+0001 on line 1"])


# ----------------------------------------------------------------------------- usage errors (argparse)
@case
def c_usage_infer_sfreq_not_a_number(ctx):
    return Case(ctx.infer(_good(ctx), "--sfreq", "fast", script=True), ["argument --sfreq", "invalid float value"],
                sub=True)


@case
def c_usage_evaluate_unknown_split(ctx):
    return Case([*ctx.evaluate(), "--split", "holdout"], ["argument --split", "invalid choice: 'holdout'"])


@case
def c_usage_synth_unknown_story(ctx):
    return Case(_synth(ctx, "--stories", "moby_dick"), ["argument --stories", "invalid choice: 'moby_dick'"])


@case
def c_usage_train_missing_arguments(ctx):
    return Case(["train.py", "--mode", "full"], ["required", "--config", "--output_dir"])


@case
def c_usage_inspect_unknown_flag(ctx):
    return Case(["inspect", str(_good(ctx)), "--sampling-rate", "100"], ["unrecognized arguments: --sampling-rate"])


# ------------------------------------------------------------------------------------------- runner
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from eval_helpers import tiny_eval_setup

    return tiny_eval_setup(tmp_path_factory)


def _run(argv: list[str], cwd: Path, sub: bool, capsys, monkeypatch) -> tuple[int, str]:
    if sub:
        return run_subprocess(argv, cwd)
    capsys.readouterr()
    monkeypatch.chdir(cwd)
    if argv[0].endswith(".py"):
        argv = ["train" if argv[0] == "train.py" else "infer", *argv[1:]]
    rc = main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_gives_one_clean_line_and_writes_nothing(name, setup, tmp_path, capsys, monkeypatch):
    ctx = Ctx(tmp_path / "case", setup)
    ctx.w.mkdir()
    spec = CASES[name](ctx)
    try:
        before = snapshot(tmp_path, *spec.watch)
        rc, err = _run(spec.argv, tmp_path, spec.sub, capsys, monkeypatch)
        after = snapshot(tmp_path, *spec.watch)
    finally:
        if spec.cleanup:
            spec.cleanup()
    assert_clean_error(rc, err, spec.expect, spec.progress_ok)
    assert not diff_snapshots(before, after), diff_snapshots(before, after)
    if spec.marker is not None:
        assert not spec.marker.exists(), "a hostile payload was executed"


# ------------------------------------------------------------- events that are repaired or skipped: warned
def _sentence(start: float, words: str, seq: int) -> list[str]:
    return [events_row(start + 0.3 * i, word_trial_type(w, seq)) for i, w in enumerate(words.split())]


@dataclass
class WarnCase:
    rows: list[str]
    expect: list[str]  # substrings of the one warning line
    references: list[str] | None  # the segments' references in the output (None: sliding windows, no references)
    sub: bool = False


WARN_CASES: dict[str, Callable[[], WarnCase]] = {
    "events_negative_onsets": lambda: WarnCase(
        _sentence(-3.0, "before the start", 0) + _sentence(2.0, "a cat sat", 1),
        ["1 of 2 sentence(s) fall outside the recording", "skipped"], ["a cat sat"]),
    "events_words_past_the_end": lambda: WarnCase(
        _sentence(2.0, "a cat sat", 0) + _sentence(30.0, "long after the end", 1),
        ["1 of 2 sentence(s) fall outside the recording (0-10.0 s", "skipped"], ["a cat sat"], sub=True),
    "events_every_sentence_past_the_end": lambda: WarnCase(
        _sentence(30.0, "long after", 0) + _sentence(40.0, "even later", 1),
        ["2 of 2 sentence(s) fall outside", "sliding windows are decoded instead"], None),
    "events_unsorted_onsets": lambda: WarnCase(
        [*reversed(_sentence(2.0, "a cat sat", 0)), *_sentence(5.0, "then it ran", 1)],
        ["2 row(s) out of onset order (first: line 3)", "sorted by onset"], ["a cat sat", "then it ran"]),
    "events_duplicate_rows": lambda: WarnCase(
        [*(r := _sentence(2.0, "a cat sat", 0))[:2], r[1], r[1], r[2]],
        ["2 duplicate row(s) dropped (line 4, 5", "same event as an earlier row"], ["a cat sat"]),
}


@pytest.mark.parametrize("name", sorted(WARN_CASES))
def test_repairable_events_give_one_warning_and_a_result(name, setup, tmp_path, capsys, monkeypatch):
    spec = WARN_CASES[name]()
    rec = recording_with_events(tmp_path / "case", spec.rows)
    out = tmp_path / "results.json"
    argv = ["infer", "--model_path", str(setup.model_dir), "--input_file", str(rec), "--output_file", str(out)]
    if spec.sub:
        rc, err = run_subprocess(["inference.py", *argv[1:]], tmp_path)
    else:
        rc, err = _run(argv, tmp_path, False, capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.match(line.strip())]
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "sub-01_task-0_events.tsv" in lines[0], err
    for text in spec.expect:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    segments = json.loads(out.read_text())["segments"]
    assert [s.get("reference") for s in segments] == (spec.references or [None] * len(segments)) and segments
