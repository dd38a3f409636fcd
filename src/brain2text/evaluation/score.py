"""Score anyone's predictions against references with the metric and interval code of ``evaluate``.

Formats (``fmt``: ``auto``, ``text``, ``json`` or ``eegtotext``; ``auto`` takes a file whose first
non-empty line starts with ``target string:`` as ``eegtotext``, a ``.json`` file as ``json``, anything
else as ``text``):

* ``text``: one sentence per line, UTF-8; empty lines are sentences (scored, not dropped); a final
  newline does not add a line; ``\\r\\n`` is accepted.
* ``json``, written by this package:
  - ``brain2text infer`` output (an object with ``segments``, or a list of such objects for several
    files, concatenated in order): predictions are the segments' ``text``, references their
    ``reference``;
  - ``brain2text evaluate`` output (an object with ``sentences``): predictions are ``prediction``
    (or a control's predictions with ``field="noise"`` / ``"surrogate"`` / ``"shuffled"`` /
    ``"no_meg"``), references ``reference``;
  - a plain JSON list of strings.
  ``field`` overrides the key read from each segment / sentence object.
* ``eegtotext``: what EEG-To-Text's ``eval_decoding.py`` (and its forks) write: blocks of
  ``target string: ...``, ``predicted string with tf: ...`` (teacher-forced), ``predicted string: ...``
  (free-running), a line of ``#``, two blank lines. References are the ``target string`` lines (so
  the same file can be ``--references`` and ``--predictions``), predictions the free-running
  ``predicted string`` lines. The teacher-forced lines (the model is fed the reference word by word
  and predicts each next word: not generation) are read only with ``field="tf"``, and the result then
  carries a warning. A block with a missing, repeated or out-of-order line is an error naming the line.

Every file must be UTF-8 text: NUL bytes and other control characters (binary data), UTF-16 and other
encodings are refused. Errors are one line naming the file (and the line).

Rows are grouped into clusters for the bootstrap and the permutation test (``bootstrap.py``): by
default rows with identical references (whitespace collapsed): the same sentence heard by several
subjects is one draw of the text; or by a ``groups`` file (one group id per line, one line per row).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import EvalConfig
from ..errors import Brain2TextError
from .bootstrap import make_clusters, method_info, paired_bootstrap
from .metrics import clean_text, metrics_info, sentence_stats

FORMATS = ("auto", "text", "json", "eegtotext")
FORMAT_NAMES = {"text": "text", "json": "JSON", "eegtotext": "EEG-To-Text blocks"}
TARGET, TF, FREE = "target string:", "predicted string with tf:", "predicted string:"
EEG_FIELDS = {"free": FREE, "tf": TF}
# C0 controls other than tab, newline, vertical tab, form feed and carriage return, and DEL: in no sentence, but in
# nearly every binary file (even one whose bytes happen to decode as UTF-8).
BINARY_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
# JSON may hold U+007F unescaped inside a string (a model can write it: `evaluate` keeps its predictions as
# they are), and json.loads refuses the other control characters where they break the syntax
JSON_BINARY_CHARS = re.compile("[\x00-\x08\x0e-\x1f]")
TF_WARNING = ("teacher-forced predictions ('predicted string with tf'): the model was fed the reference word by "
              "word; they are not generation and say nothing about decoding")


@dataclass
class Sentences:
    """What one input file gave: its format, the sentences, and for block files the file's own targets."""

    path: Path
    format: str
    items: list[str]
    targets: list[str] | None = None  # eegtotext: the target string of each block
    lines: list[int] | None = None  # eegtotext: the line each block starts on
    teacher_forced: bool = False

    def describe(self) -> str:
        return f"{self.path} ({FORMAT_NAMES[self.format]})"


# ------------------------------------------------------------------------------------- reading
def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Brain2TextError("file not found", path) from None
    except IsADirectoryError:
        raise Brain2TextError("is a directory, not a file", path) from None
    except OSError as exc:
        raise Brain2TextError(f"cannot read ({exc.strerror})", path) from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise Brain2TextError("not UTF-8 text: it starts with a UTF-16 byte-order mark (save it as UTF-8)", path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Brain2TextError("not UTF-8 text (expected one sentence per line)", path) from None
    binary = (JSON_BINARY_CHARS if path.suffix.lower() == ".json" else BINARY_CHARS).search(text)
    if binary is not None:
        line = text.count("\n", 0, binary.start()) + 1
        what = "NUL byte" if binary.group() == "\x00" else f"control character U+{ord(binary.group()):04X}"
        raise Brain2TextError(f"not a text file: {what} on line {line} (binary data?)", path)
    return text[1:] if text.startswith("\ufeff") else text


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    return [line.rstrip("\r") for line in lines]


def _read_lines(path: Path) -> list[str]:
    return _lines(_read_text(path))


def _first_content(lines: list[str]) -> tuple[int, str] | None:
    return next(((i, line) for i, line in enumerate(lines) if line.strip()), None)


def detect_format(path: Path, lines: list[str]) -> str:
    first = _first_content(lines)
    if first is not None and first[1].startswith(TARGET):
        return "eegtotext"
    return "json" if path.suffix.lower() == ".json" else "text"


def _snippet(line: str) -> str:
    return repr(line if len(line) <= 40 else line[:37] + "...")


def _value(line: str, prefix: str) -> str:
    value = line[len(prefix):]
    return value[1:] if value.startswith(" ") else value


def _is_separator(line: str) -> bool:
    return bool(line.strip()) and set(line.strip()) == {"#"}


def parse_eegtotext(path: Path, lines: list[str]) -> list[dict]:
    """Blocks ``{"line", "target", "tf"?, "free"?}`` of an EEG-To-Text results file (see module doc)."""
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if not lines[i].startswith(TARGET):
            raise Brain2TextError(f"line {i + 1}: expected '{TARGET}' to start a block, got {_snippet(lines[i])}", path)
        block = {"line": i + 1, "target": _value(lines[i], TARGET)}
        i += 1
        while i < len(lines) and not _is_separator(lines[i]):
            kind = "tf" if lines[i].startswith(TF) else "free" if lines[i].startswith(FREE) else None
            if kind is None or kind in block or (kind == "tf" and "free" in block):
                want = "'predicted string:' or a '####' line" if "tf" in block or "free" in block else \
                    "'predicted string with tf:' or 'predicted string:'"
                raise Brain2TextError(f"line {i + 1}: broken block (started on line {block['line']}): expected "
                                      f"{want}, got {_snippet(lines[i])}", path)
            block[kind] = _value(lines[i], EEG_FIELDS[kind])
            i += 1
        if "tf" not in block and "free" not in block:
            raise Brain2TextError(f"line {block['line']}: broken block: a target string with no predicted string", path)
        blocks.append(block)
        i += 1  # the separator
    return blocks


def _from_eegtotext(path: Path, lines: list[str], role: str, field: str | None) -> Sentences:
    blocks = parse_eegtotext(path, lines)
    targets, starts = [b["target"] for b in blocks], [b["line"] for b in blocks]
    if role == "references":
        return Sentences(path, "eegtotext", targets, targets, starts)
    field = field or "free"
    if field not in EEG_FIELDS:
        raise Brain2TextError(f"an EEG-To-Text file has the fields 'free' ('{FREE}', the default) and 'tf' "
                              f"('{TF}'), not {field!r}", path)
    for b in blocks:
        if field not in b:
            hint = (": its 'predicted string with tf' is teacher-forced (the model was fed the reference), not "
                    "generation; pass --predictions_field tf (or --against_field tf) to score it anyway, flagged"
                    if field == "free" else "")
            raise Brain2TextError(f"line {b['line']}: block has no '{EEG_FIELDS[field]}' line{hint}", path)
    return Sentences(path, "eegtotext", [b[field] for b in blocks], targets, starts, teacher_forced=field == "tf")


def _field_values(items: list, key: str, path: Path, what: str) -> list[str]:
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or key not in item:
            raise Brain2TextError(f"{what} {i} has no '{key}' field", path)
        value = item[key]
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise Brain2TextError(f"{what} {i}: '{key}' must be a string, got {type(value).__name__}", path)
        out.append(value)
    return out


def _from_json(data, path: Path, role: str, field: str | None) -> list[str]:
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return list(data)
    if isinstance(data, dict) and isinstance(data.get("sentences"), list):
        key = field or ("reference" if role == "references" else "prediction")
        return _field_values(data["sentences"], key, path, "sentence")
    objects = data if isinstance(data, list) else [data]
    if objects and all(isinstance(o, dict) and isinstance(o.get("segments"), list) for o in objects):
        key = field or ("reference" if role == "references" else "text")
        out: list[str] = []
        for o in objects:
            out.extend(_field_values(o["segments"], key, path, "segment"))
        return out
    raise Brain2TextError("JSON is neither a list of strings, inference output (segments) nor evaluate output "
                          "(sentences)", path)


def _as_text(path: Path, lines: list[str], field: str | None) -> Sentences:
    if field is not None:
        raise Brain2TextError(f"a field ({field!r}) can only be chosen in a JSON or EEG-To-Text file", path)
    for i, line in enumerate(lines):
        if line.startswith(TARGET):
            raise Brain2TextError(f"line {i + 1} starts with '{TARGET}': this is an EEG-To-Text block file, not one "
                                  "sentence per line; use --format eegtotext (or auto)", path)
    first = _first_content(lines)
    if path.suffix.lower() == ".json" and first is not None and first[1].lstrip()[:1] in ("{", "["):
        raise Brain2TextError("is JSON, not one sentence per line; use --format json (or auto)", path)
    return Sentences(path, "text", lines)


def read_file(path: str | os.PathLike, role: str = "predictions", field: str | None = None,
              fmt: str = "auto") -> Sentences:
    """One input file in format ``fmt`` (see module doc); ``role`` is ``references`` or ``predictions``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    path = Path(path)
    lines = _read_lines(path)
    fmt = detect_format(path, lines) if fmt == "auto" else fmt
    if fmt == "eegtotext":
        return _from_eegtotext(path, lines, role, field)
    if fmt == "text":
        return _as_text(path, lines, field)
    try:
        data = json.loads("\n".join(lines))
    except json.JSONDecodeError as exc:
        raise Brain2TextError(f"invalid JSON at line {exc.lineno}: {exc.msg}", path) from None
    return Sentences(path, "json", _from_json(data, path, role, field))


def read_sentences(path: str | os.PathLike, role: str = "predictions", field: str | None = None,
                   fmt: str = "auto") -> list[str]:
    """The sentences of one input file (see :func:`read_file`)."""
    return read_file(path, role, field, fmt).items


def read_groups(path: str | os.PathLike, n_rows: int) -> list[str]:
    """One group id per line, one line per row; the wrong count or an empty id is a one-line error."""
    path = Path(path)
    ids = _read_lines(path)
    if len(ids) != n_rows:
        raise Brain2TextError(f"has {len(ids)} group ids but there are {n_rows} sentences "
                              "(one id per line, in the sentences' order)", path)
    for i, g in enumerate(ids):
        if not g.strip():
            raise Brain2TextError(f"line {i + 1}: empty group id", path)
    return [g.strip() for g in ids]


# ------------------------------------------------------------------------------------- pairing
def _check_counts(named: list[tuple[str, Sentences]]) -> None:
    name0, first = named[0]
    for name, other in named[1:]:
        if len(other.items) != len(first.items):
            raise Brain2TextError(f"{name} {other.describe()} has {len(other.items)} sentences but {name0} "
                                  f"{first.describe()} has {len(first.items)}; they must pair line by line")
    if not first.items:
        raise Brain2TextError(f"{name0} {first.path} has no sentences")


def _check_targets(refs: Sentences, named: list[tuple[str, Sentences]]) -> None:
    """A block file's own target strings must be the references, row for row (else the files do not pair)."""
    for name, s in named:
        if s.targets is None or s is refs:
            continue
        for k, (target, ref) in enumerate(zip(s.targets, refs.items)):
            if clean_text(target) != clean_text(ref):
                raise Brain2TextError(f"line {s.lines[k]}: the target string {_snippet(target)} is not reference "
                                      f"{k + 1} of {refs.path} ({_snippet(ref)}); the files do not pair", s.path)


def _clusters(refs: list[str], unit: str, groups: str | None):
    """Clusters of the rows and the sentence that says how they were grouped."""
    n = len(refs)
    if unit == "row":
        if groups is not None:
            raise Brain2TextError("--groups and --bootstrap_unit row contradict each other (row resamples rows)",
                                  groups)
        return make_clusters("row", n), f"rows resampled independently (no grouping): {n} rows"
    if unit != "sentence":
        raise Brain2TextError(f"score supports the bootstrap units sentence and row, not {unit!r} "
                              "(subject_sentence needs subject labels: use brain2text evaluate)")
    if groups is not None:
        clusters = make_clusters("sentence", n, read_groups(groups, n))
        return clusters, f"grouped by {groups}: {clusters.n_clusters} clusters of {n} rows"
    clusters = make_clusters("sentence", n, [clean_text(r) for r in refs])
    return clusters, f"grouped by identical reference: {clusters.n_clusters} clusters of {n} rows"


def bertscore_settings(cfg: EvalConfig) -> tuple[str | None, int | None]:
    model = None if cfg.bertscore_model.lower() == "none" else cfg.bertscore_model
    return model, (cfg.bertscore_num_layers or None)


def _inputs(references, predictions, against, predictions_field, against_field, fmt):
    preds = read_file(predictions, "predictions", predictions_field, fmt)
    if references is None:
        if preds.format != "eegtotext":
            raise Brain2TextError("--references is needed (only an EEG-To-Text file holds its own references)",
                                  predictions)
        references = predictions
    refs = read_file(references, "references", None, fmt)
    named = [("references", refs), ("predictions", preds)]
    if against is not None:
        named.append(("against", read_file(against, "predictions", against_field, fmt)))
    _check_counts(named)
    _check_targets(refs, named[1:])
    return dict(named)


def score_files(references: str | None, predictions: str, against: str | None = None, cfg: EvalConfig | None = None,
                predictions_field: str | None = None, against_field: str | None = None, fmt: str = "auto",
                groups: str | None = None, progress: bool = False) -> dict:
    """The score JSON: metrics of ``predictions`` (and ``against``), and paired differences P - P2
    (interval, p-value, verdict; clusters of identical references unless ``groups``)."""
    cfg = cfg or EvalConfig()
    files = _inputs(references, predictions, against, predictions_field, against_field, fmt)
    refs = files["references"].items
    clusters, grouping = _clusters(refs, cfg.bootstrap_unit, groups)
    model, layers = bertscore_settings(cfg)

    def stats_of(name):
        return sentence_stats(refs, files[name].items, model, layers, wer_normalization=cfg.wer_normalization,
                              progress=progress)

    stats = stats_of("predictions")
    result = {
        "references": str(files["references"].path), "predictions": str(predictions),
        "predictions_field": predictions_field, "n_sentences": len(refs),
        "formats": {name: s.format for name, s in files.items()},
        "metrics": stats.corpus(),
        **metrics_info(model, layers, cfg.wer_normalization),
        "n_bootstrap": cfg.n_bootstrap, "bootstrap_seed": cfg.bootstrap_seed, "n_permutations": cfg.n_permutations,
        "bootstrap_unit": clusters.unit, "n_clusters": clusters.n_clusters, "grouping": grouping,
        "bootstrap": method_info(clusters, cfg.n_bootstrap, cfg.n_permutations, cfg.bootstrap_seed),
        "teacher_forced": {name: s.teacher_forced for name, s in files.items() if name != "references"},
        "warnings": [f"{name} {s.path}: {TF_WARNING}" for name, s in files.items() if s.teacher_forced],
    }
    if against is not None:
        stats_b = stats_of("against")
        result["against"] = str(against)
        result["against_field"] = against_field
        result["against_metrics"] = stats_b.corpus()
        result["differences"] = {"against": paired_bootstrap(stats, stats_b, cfg.n_bootstrap, cfg.bootstrap_seed,
                                                             clusters=clusters, n_permutations=cfg.n_permutations)}
    return result
