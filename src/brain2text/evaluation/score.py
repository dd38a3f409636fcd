"""Score anyone's predictions against references with the metric code of ``brain2text evaluate``.

Inputs are read by :func:`read_sentences`:

* a text file (any name not ending in ``.json``): one sentence per line, UTF-8; empty lines are
  sentences (scored, not dropped); a final newline does not add a line; ``\\r\\n`` is accepted.
* a JSON file written by this package:
  - ``brain2text infer`` output (an object with ``segments``, or a list of such objects for several
    files, concatenated in order): predictions are the segments' ``text``, references their
    ``reference``;
  - ``brain2text evaluate`` output (an object with ``sentences``): predictions are ``prediction``
    (or a control's predictions with ``field="noise"`` / ``"shuffled"`` / ``"no_meg"``), references
    ``reference``;
  - a plain JSON list of strings.
  ``field`` overrides the key read from each segment / sentence object.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import EvalConfig
from ..errors import Brain2TextError
from .bootstrap import paired_bootstrap
from .metrics import metrics_info, sentence_stats


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Brain2TextError("file not found", path) from None
    except UnicodeDecodeError:
        raise Brain2TextError("not UTF-8 text (expected one sentence per line)", path) from None
    except OSError as exc:
        raise Brain2TextError(f"cannot read ({exc.strerror})", path) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    return [line.rstrip("\r") for line in lines]


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


def read_sentences(path: str | os.PathLike, role: str = "predictions", field: str | None = None) -> list[str]:
    """Sentences from a text file (one per line) or a JSON written by infer / evaluate (see module doc)."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        if field is not None:
            raise Brain2TextError(f"a field ({field!r}) can only be chosen in a JSON file", path)
        return _read_lines(path)
    text = "\n".join(_read_lines(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Brain2TextError(f"invalid JSON at line {exc.lineno}: {exc.msg}", path) from None
    return _from_json(data, path, role, field)


def _check_counts(named: list[tuple[str, str, list[str]]]) -> None:
    (name0, path0, items0) = named[0]
    for name, path, items in named[1:]:
        if len(items) != len(items0):
            raise Brain2TextError(f"{name} {path} has {len(items)} sentences but {name0} {path0} has {len(items0)}; "
                                  "they must pair line by line")
    if not items0:
        raise Brain2TextError(f"{name0} {path0} has no sentences")


def bertscore_settings(cfg: EvalConfig) -> tuple[str | None, int | None]:
    model = None if cfg.bertscore_model.lower() == "none" else cfg.bertscore_model
    return model, (cfg.bertscore_num_layers or None)


def score_files(references: str, predictions: str, against: str | None = None, cfg: EvalConfig | None = None,
                predictions_field: str | None = None, against_field: str | None = None) -> dict:
    """The score JSON: metrics of ``predictions`` (and ``against``), and paired differences P - P2."""
    cfg = cfg or EvalConfig()
    refs = read_sentences(references, "references")
    preds = read_sentences(predictions, "predictions", predictions_field)
    named = [("references", str(references), refs), ("predictions", str(predictions), preds)]
    other = None
    if against is not None:
        other = read_sentences(against, "predictions", against_field)
        named.append(("against", str(against), other))
    _check_counts(named)
    model, layers = bertscore_settings(cfg)
    stats = sentence_stats(refs, preds, model, layers)
    result = {
        "references": str(references), "predictions": str(predictions), "predictions_field": predictions_field,
        "n_sentences": len(refs),
        "metrics": stats.corpus(),
        **metrics_info(model, layers),
        "n_bootstrap": cfg.n_bootstrap, "bootstrap_seed": cfg.bootstrap_seed,
    }
    if other is not None:
        stats_b = sentence_stats(refs, other, model, layers)
        result["against"] = str(against)
        result["against_field"] = against_field
        result["against_metrics"] = stats_b.corpus()
        result["differences"] = {"against": paired_bootstrap(stats, stats_b, cfg.n_bootstrap, cfg.bootstrap_seed)}
    return result
