"""The model card (``README.md``) of a saved model directory: what the model is, what it was trained on
and for how long, how it scored against its controls, how to load it, and under which licences.

The layout is Hugging Face's: a YAML header (``library_name``, ``license``, ``tags``; ``yaml.safe_load``
reads it) and Markdown. Every fact comes from the model in memory or from the directory's own files
(``brain2text_config.json``, ``preprocessing.json``, ``training_info.json``, the training run's
``run.json`` beside the directory, the decoder base's ``config.json`` / ``lm_pretrain.json``); what is
not known is said to be unknown, never guessed.

Who writes it: :func:`~brain2text.models.serialization.save_model` (every model directory), the trainer
again once ``training_info.json`` is beside it (``best_model``, ``final_model``), and ``brain2text
evaluate``, which replaces the evaluation section (between :data:`EVALUATION_BEGIN` and
:data:`EVALUATION_END`) with its latest result. A card rewritten without an evaluation keeps the
section already there. The card is regenerated, so edits by hand are overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, config_from_dict
from ..constants import MODEL_CARD_FILE, MODEL_CONFIG_FILE, PREPROCESSING_FILE, TRAINING_INFO_FILE
from ..errors import Brain2TextError
from ..evaluation.bootstrap import verdict
from ..registry import PARTS
from ..training.run_dir import RUN_FILE, RUN_KIND
from ..utils.atomic import atomic_write_text
from .info import build_on_meta, parameter_counts

PROJECT_LICENSE = "mit"
TAGS = ("brain2text", "meg", "brain-decoding", "speech", "neuroscience", "lora")
EVALUATION_BEGIN = "<!-- brain2text:evaluation -->"
EVALUATION_END = "<!-- /brain2text:evaluation -->"
_EVALUATION_BLOCK = re.compile(re.escape(EVALUATION_BEGIN) + r".*?" + re.escape(EVALUATION_END), re.DOTALL)
LM_RECORD_FILE = "lm_pretrain.json"  # written by `brain2text pretrain-lm` into the decoder base it trains
CONTROL_ORDER = ("noise", "surrogate", "shuffled", "no_meg")
CARD_METRICS = (("wer", "WER"), ("bleu4", "BLEU-4"))


@dataclasses.dataclass
class _Facts:
    """What a card says, gathered once from a model and/or its directory."""

    name: str
    cfg: Config
    decoder_base: str
    preprocessing: dict
    training_info: dict | None
    run: dict | None
    counts: dict[str, int] | None
    model_path: str
    lexicon_words: list | None = None


# ------------------------------------------------------------------------------------------ reading
def _json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None when it is missing or unreadable (a card never fails on it)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _directory_config(directory: Path) -> tuple[Config, str]:
    meta = _json(directory / MODEL_CONFIG_FILE)
    if meta is None or "config" not in meta:
        raise Brain2TextError("not a brain2text model directory (no readable config)", directory / MODEL_CONFIG_FILE)
    return config_from_dict(meta["config"], str(directory / MODEL_CONFIG_FILE)), str(meta.get("decoder_base", ""))


def _counts_on_meta(cfg: Config, base: str, directory: Path | None) -> dict[str, int] | None:
    """Parameter counts of ``cfg`` built on the meta device (no weights read), or None without the base's
    config (a hub id other than LLaMA-2 7B, or a base that is not where the model says)."""
    path = _base_directory(base, directory) or Path(base)
    decoder = dataclasses.replace(cfg.decoder, model_name_or_path=str(path))
    meta_cfg = dataclasses.replace(cfg, decoder=decoder)
    try:
        model, _, _ = build_on_meta(meta_cfg)
    except (Brain2TextError, OSError, ValueError):
        return None
    return parameter_counts(model, meta_cfg)


def _gather(source, directory: Path | None, training_info: dict | None, model_path) -> _Facts:
    if isinstance(source, (str, os.PathLike)):
        directory = Path(source)
        cfg, base = _directory_config(directory)
        preprocessing = _json(directory / PREPROCESSING_FILE) or {}
        counts = _counts_on_meta(cfg, base, directory)
        lexicon = (_json(directory / MODEL_CONFIG_FILE) or {}).get("lexicon_words")
    else:
        cfg = source.cfg
        base = str(getattr(source, "decoder_base", "") or cfg.decoder.model_name_or_path)
        saved = _json(directory / PREPROCESSING_FILE) if directory is not None else None
        preprocessing = saved if saved is not None else dict(getattr(source, "preprocessing", None) or {})
        counts = parameter_counts(source, cfg)
        lexicon = getattr(source, "lexicon_words", None)
    if training_info is None and directory is not None:
        training_info = _json(directory / TRAINING_INFO_FILE)
    run = _json(directory.parent / RUN_FILE) if directory is not None else None
    if run is not None and run.get("kind") != RUN_KIND:
        run = None  # someone else's run.json beside the directory
    shown = str(model_path) if model_path is not None else (str(directory) if directory is not None else "MODEL_DIR")
    name = "/".join(Path(shown).parts[-2:]) if model_path is not None or directory is not None else "in memory"
    return _Facts(name, cfg, base, preprocessing, training_info, run, counts, shown,
                  lexicon if isinstance(lexicon, list) else None)


# ------------------------------------------------------------------------------------ decoder base
def _base_directory(base: str, directory: Path | None) -> Path | None:
    path = Path(base)
    if directory is not None and not path.is_absolute() and (directory / base).is_dir():
        return directory / base
    return path if path.is_dir() else None


def _front_matter(text: str) -> dict:
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    try:
        value = yaml.safe_load(text[3:end]) if end > 0 else None
    except yaml.YAMLError:
        return {}
    return value if isinstance(value, dict) else {}


def decoder_base_licence(base: str, directory: Path | None = None) -> tuple[str, str]:
    """(what the decoder base is, its licence) from what can be read about it.

    A base written by ``brain2text pretrain-lm`` (its ``lm_pretrain.json``) was trained here, so its
    weights are under the project's licence; LLaMA-2 is under the Llama 2 Community License, SmolLM2 under
    Apache-2.0; otherwise the ``license`` of the base's own model card, else unknown.
    """
    path = _base_directory(base, directory)
    record = _json(path / LM_RECORD_FILE) if path is not None else None
    if record is not None:
        words = record.get("n_words")
        ppl = record.get("heldout_val_word_perplexity")
        what = ("a small LLaMA-architecture language model trained from scratch by `brain2text pretrain-lm` on the "
                "training-split sentences of the four MEG-MASC story texts (the MASC stories as MEG-MASC uses "
                "them; MEG-MASC is CC0)"
                + (f": {words:,} words" if isinstance(words, int) else "")
                + (f", held-out word perplexity {ppl:,.1f}" if isinstance(ppl, (int, float)) else "")
                + f"; `{LM_RECORD_FILE}` beside it records the corpus")
        return what, "MIT, like the brain2text weights: trained here, on the MEG-MASC stimulus texts (MEG-MASC is CC0)"
    hf = _json(path / "config.json") if path is not None else None
    names = " ".join(str(x) for x in (base, (hf or {}).get("_name_or_path", ""), *(hf or {}).get("architectures", [])))
    shape = _base_shape(hf)
    lowered = names.lower().replace("_", "-")
    if "llama-2" in lowered or "llama2" in lowered:
        return f"LLaMA-2{shape}", "Llama 2 Community License (Meta): accept it before using or sharing this model"
    if "smollm2" in lowered:
        return f"SmolLM2{shape}", "Apache-2.0 (SmolLM2 by Hugging Face)"
    if path is not None and (path / MODEL_CARD_FILE).is_file():
        licence = _front_matter((path / MODEL_CARD_FILE).read_text(encoding="utf-8", errors="replace")).get("license")
        if licence:
            return f"a causal language model{shape}", f"{licence} (from the base model's own card)"
    return (f"a causal language model{shape}",
            "unknown: check the base model's own licence before using or sharing this model")


def _base_shape(hf: dict | None) -> str:
    if not hf:
        return ""
    keys = ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size")
    if not all(isinstance(hf.get(k), int) for k in keys):
        return ""
    return (f" ({hf.get('model_type', 'causal LM')}: {hf['num_hidden_layers']} layers x {hf['hidden_size']} wide x "
            f"{hf['num_attention_heads']} heads, vocabulary {hf['vocab_size']:,})")


# -------------------------------------------------------------------------------------- sections
def _header(facts: _Facts) -> str:
    tags = [*TAGS, *(["synthetic-data"] if facts.preprocessing.get("synthetic") else [])]
    meta: dict[str, Any] = {"library_name": "brain2text", "license": PROJECT_LICENSE, "tags": tags}
    base = facts.decoder_base
    if base and not Path(base).exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", base):
        meta["base_model"] = base  # a hub id: Hugging Face links the card to it
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _n(value) -> str:
    return "unknown" if value is None else f"{value:,}"


def _architecture(facts: _Facts, directory: Path | None) -> list[str]:
    cfg, c = facts.cfg, facts.counts
    e, r, d = cfg.encoder, cfg.rvq, cfg.decoder
    counts = None if c is None else {
        "subject": c["subject"], "encoder": c["encoder"] - c["subject"], "rvq": c["rvq"], "projector": c["projector"],
        "lora": c["lora"], "ctc_head": c["ctc_head"], "word_head": c["word_head"], "decoder": c["decoder"],
        "phoneme_head": c.get("phoneme_head")}
    attention = f"local attention (+-{e.attention_window} tokens)" if e.attention_window else "global attention"
    inputs = (f"spatial attention over sensor positions ({e.n_spatial} outputs): any montage" if e.spatial_attention
              else f"{e.n_chans} channels in a fixed order")
    base_what, _ = decoder_base_licence(facts.decoder_base, directory)
    settings = {
        "subject": f"{e.n_subjects} subject slots" if e.subject_layer else "off",
        "encoder": f"{sum(e.stage_layers)} transformer layers ({' + '.join(map(str, e.stage_layers))} in "
                   f"{len(e.stage_layers)} stages) x {e.d_model} wide x {e.n_heads} heads, {attention}; conv stem "
                   f"{e.stem_channels} channels, {e.total_stride}x time downsampling; {inputs}",
        "rvq": (f"{r.n_codebooks} levels x {r.codebook_size} codes x {r.dim} dimensions"
                + (", EMA codebooks" if r.ema else "") + ("" if r.enabled else " (disabled: continuous tokens)")),
        "projector": cfg.projector.type,
        "lora": f"r={d.lora_r}, alpha={d.lora_alpha} on {', '.join(d.lora_target_modules)}",
        "ctc_head": "linear",
        "word_head": f"{e.word_window:g} s of encoder tokens after each word onset, pooled",
        "phoneme_head": (f"39 ARPAbet phonemes + blank at {e.fine_stride}x downsampling; a lexicon of "
                         f"{len(facts.lexicon_words or [])} words" if e.phoneme_head else "off"),
        "decoder": f"`{facts.decoder_base}`: {base_what}; frozen unless a phase trains `decoder`",
    }
    rows = ["| part | what | this model | parameters |", "| --- | --- | --- | ---: |"]
    for name in PARTS:
        rows.append(f"| {name} | {PARTS[name].help} | {settings[name]} | "
                    f"{_n(None if counts is None else counts[name])} |")
    rows.append(f"| total | | | {_n(None if c is None else c['total'])} |")
    notes = [] if c is not None else ["", "Parameter counts are unknown here: the decoder base's config was not "
                                          "found where the model says it is."]
    dec = cfg.decoding
    return ["## Architecture", "",
            "An MEG encoder, a residual vector quantizer (RVQ) and a LoRA-adapted causal language model "
            "(LLaVA-style: the projected MEG tokens are spliced into the prompt), decoded free-running. "
            "RVQ parameters include its EMA codebooks.", "", *rows, *notes, "",
            f"Default decoding: `{dec.strategy}` (settings: num_beams {dec.num_beams}, lm_weight {dec.lm_weight:g}, "
            f"length_bonus {dec.length_bonus:g}, ctc_weight {dec.ctc_weight:g}); the prompt is \"{d.prompt}\".", ""]


def _training_data(facts: _Facts) -> list[str]:
    p, data = facts.preprocessing, facts.cfg.data
    settings = p.get("data") if isinstance(p.get("data"), dict) else dataclasses.asdict(data)
    synthetic = p.get("synthetic")
    kind = {True: "**SYNTHETIC** (`brain2text synth`: MEG-MASC's layout and story texts, simulated MEG); "
                  "no result on it says how well real MEG can be decoded",
            False: "recorded MEG (the dataset is not marked synthetic)"}.get(synthetic, "unknown")
    if settings.get("split") == "story":
        split = (f"held-out stories: validation {', '.join(settings.get('val_stories') or []) or '-'}, test "
                 f"{', '.join(settings.get('test_stories') or []) or '-'}")
    else:
        split = (f"sentences by a stable hash of their normalised text (validation {settings.get('val_fraction')}, "
                 f"test {settings.get('test_fraction')}, salt {settings.get('split_salt')!r}): no sentence text is "
                 "in two splits")
    subjects = p.get("subjects") or []
    stories = settings.get("stories") or []
    channels = p.get("ch_names") or []
    return ["## Training data", "",
            f"- data: {kind}",
            f"- dataset: `{settings.get('bids_root', 'unknown')}`",
            f"- subjects: {', '.join(subjects) if subjects else 'unknown'}",
            f"- stories: {', '.join(stories) if stories else 'every story in the events'}",
            f"- split: {split}",
            f"- channels: {len(channels) if channels else 'unknown'}, of types "
            f"{', '.join(settings.get('channel_types') or []) or 'unknown'}",
            f"- preprocessing: band-pass {settings.get('l_freq')}-{settings.get('h_freq')} Hz, notch "
            f"{settings.get('notch_freqs') or 'none'}, resampled to {p.get('sfreq', settings.get('sfreq'))} Hz, "
            f"robust scaling, clamp +-{settings.get('clamp')}, MEG shifted {settings.get('meg_delay')} s after the "
            "words",
            ""]


def _phases(facts: _Facts) -> tuple[str | None, list[dict]]:
    info = facts.training_info or {}
    if isinstance(info.get("phases"), list):
        return info.get("mode") or (facts.run or {}).get("mode"), info["phases"]
    mode = (facts.run or {}).get("mode")
    phases = getattr(facts.cfg.train, mode, None) if mode in ("multi_phase", "full", "distill") else None
    return mode, [dataclasses.asdict(p) for p in phases] if phases else []


def _training(facts: _Facts) -> list[str]:
    info = facts.training_info or {}
    mode, phases = _phases(facts)
    lines = ["## Training", ""]
    if not phases:
        return [*lines, "Not recorded (no `training_info.json` or `run.json` with this model).", ""]
    lines += [f"Mode `{mode or 'unknown'}`, {sum(int(p.get('steps', 0)) for p in phases):,} optimizer steps "
              f"in {len(phases)} phase(s):", "", "| phase | steps | trains | losses (weights) |",
              "| --- | ---: | --- | --- |"]
    for p in phases:
        losses = ", ".join(f"{k} {v:g}" for k, v in (p.get("losses") or {}).items())
        lines.append(f"| {p.get('name')} | {p.get('steps')} | {', '.join(p.get('trainable') or [])} | {losses} |")
    step = info.get("step")
    if info.get("metric"):
        value = info.get("value")
        chosen = f"the best validation {info['metric']} ({value:.4g})" if isinstance(value, (int, float)) else \
            f"the best validation {info['metric']}"
        lines += ["", f"This model is the one at step {step}: {chosen}."]
    elif step is not None:
        lines += ["", f"This model is the one at step {step} (the end of training"
                  + (f"; {info['note']}" if info.get("note") else "") + ")."]
    return [*lines, ""]


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _cell(value, difference: dict | None, key: str) -> str:
    if not difference:
        return _pct(value)
    lo, hi = difference["ci95"]
    word = difference.get("verdict") or verdict(difference, key)
    return f"{_pct(value)} (MEG {100 * difference['delta']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]: {word})"


def evaluation_section(evaluation: dict | None, metrics_file: str | os.PathLike | None = None) -> str:
    """The card's evaluation block: MEG beside each control on WER and BLEU-4, MEG minus the control with
    its 95% interval in percentage points and the verdict word; or how to add one."""
    lines = [EVALUATION_BEGIN, "## Evaluation", ""]
    if evaluation is None:
        lines += ["No evaluation recorded yet: `brain2text evaluate --model_path THIS_DIRECTORY --output_file "
                  "metrics.json` decodes the test split beside its controls and writes the result here.", ""]
        return "\n".join([*lines, EVALUATION_END])
    split = evaluation.get("split") or {}
    where = f" (`{metrics_file}`)" if metrics_file is not None else ""
    lines += [f"Latest `brain2text evaluate`{where}: the {split.get('which', '?')} split ({split.get('mode', '?')} "
              f"split), {evaluation.get('n_sentences')} examples, strategy `{evaluation.get('strategy')}`, "
              "free-running" + (", **SYNTHETIC data**" if evaluation.get("synthetic") else "") + ".", "",
              "| input | " + " | ".join(label for _, label in CARD_METRICS) + " |",
              "| --- |" + " --- |" * len(CARD_METRICS),
              "| MEG | " + " | ".join(_pct(evaluation["metrics"].get(k)) for k, _ in CARD_METRICS) + " |"]
    controls = evaluation.get("controls") or {}
    differences = evaluation.get("differences") or {}
    for name in [c for c in CONTROL_ORDER if c in controls] + [c for c in controls if c not in CONTROL_ORDER]:
        cells = [_cell(controls[name].get(k), (differences.get(name) or {}).get(k), k) for k, _ in CARD_METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Scores in %; in brackets, MEG minus that control in percentage points with its paired "
              "bootstrap 95% interval; beats / worse: the interval excludes 0 and the permutation p < 0.05 (where "
              "computed), else not established. WER: lower is better.", ""]
    return "\n".join([*lines, EVALUATION_END])


def _loading(facts: _Facts) -> list[str]:
    path = facts.model_path
    return ["## How to load", "", "```python", "from brain2text import Decoder", "",
            f"decoder = Decoder.from_pretrained({json.dumps(path)})",
            "segments = decoder.decode(\"recording.fif\")  # or an mne.io.Raw, or an array with sfreq=",
            "```", "", "```bash",
            f"python inference.py --model_path {path} --input_file recording.fif --output_file results.json",
            "```", "",
            f"Loading needs the decoder base at `{facts.decoder_base}` (`decoder_base` in `{MODEL_CONFIG_FILE}`): it "
            "is not copied into this directory. Only safetensors and JSON are read.", ""]


def _licences(facts: _Facts, directory: Path | None) -> list[str]:
    _, licence = decoder_base_licence(facts.decoder_base, directory)
    return ["## Licences", "",
            "- brain2text and the weights it trained (encoder, RVQ, projector, heads, LoRA adapter): MIT.",
            f"- decoder base `{facts.decoder_base}`: {licence}.", ""]


# ------------------------------------------------------------------------------------------ public
def model_card(source, training_info: dict | None = None, evaluation: dict | None = None, *,
               directory: str | os.PathLike | None = None, model_path: str | os.PathLike | None = None,
               metrics_file: str | os.PathLike | None = None) -> str:
    """The model card (Markdown with a YAML header) of a saved model directory or a model in memory.

    ``source``: a model directory, or a :class:`~brain2text.models.brain2text.Brain2Text` (then
    ``directory``, when given, is where its training record and ``run.json`` are read). ``training_info``
    and ``evaluation`` (a ``brain2text evaluate`` result) default to what the directory holds / none.
    ``model_path`` is the path the loading example shows (default: the directory).
    """
    directory = Path(directory) if directory is not None else None
    facts = _gather(source, directory, training_info, model_path)
    directory = Path(source) if isinstance(source, (str, os.PathLike)) else directory
    synthetic = " (trained on SYNTHETIC data)" if facts.preprocessing.get("synthetic") else ""
    intro = [f"# brain2text model: {facts.name}{synthetic}", "",
             "Decodes the text a person heard from their MEG recording. Written by brain2text; regenerated when "
             "the model is saved or evaluated, so edits by hand do not last.", ""]
    body = [*intro, *_architecture(facts, directory), *_training_data(facts), *_training(facts),
            evaluation_section(evaluation, metrics_file), "", *_loading(facts), *_licences(facts, directory)]
    return _header(facts) + "\n" + "\n".join(body).rstrip() + "\n"


def write_model_card(directory: str | os.PathLike, model=None, training_info: dict | None = None,
                     evaluation: dict | None = None, *, model_path: str | os.PathLike | None = None,
                     metrics_file: str | os.PathLike | None = None) -> Path:
    """Write ``directory/README.md`` atomically (see :func:`model_card`; ``model`` saves reading the
    directory's config and counting parameters again). Without ``evaluation`` the evaluation section of
    the card already there is kept. Raises :class:`Brain2TextError` when the directory is not writable."""
    directory = Path(directory)
    source = model if model is not None else directory
    card = model_card(source, training_info, evaluation, directory=directory, model_path=model_path,
                      metrics_file=metrics_file)
    path = directory / MODEL_CARD_FILE
    if evaluation is None and path.is_file():
        kept = _EVALUATION_BLOCK.search(path.read_text(encoding="utf-8", errors="replace"))
        if kept is not None:
            card = _EVALUATION_BLOCK.sub(lambda _: kept.group(0), card, count=1)
    atomic_write_text(path, card)
    return path
