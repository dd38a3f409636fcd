"""``brain2text score``: text and JSON inputs, empty lines, clear errors, atomic output."""

from __future__ import annotations

import json

import pytest

from brain2text.cli import main
from brain2text.evaluation.score import read_sentences


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_score_text_files_with_against(tmp_path, capsys):
    refs = _write(tmp_path / "refs.txt", "the cat sat on the mat\nhello world\n\na b c\n")
    pred = _write(tmp_path / "pred.txt", "the cat sat on the mat\nhello world\n\na b c\n")
    other = _write(tmp_path / "other.txt", "a dog\n\nsomething\na x c\n")
    out = tmp_path / "score.json"
    rc = main(["score", "--references", str(refs), "--predictions", str(pred), "--against", str(other),
               "--output_file", str(out), "--bertscore_model", "none", "--n_bootstrap", "200"])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["n_sentences"] == 4  # the empty line is a sentence
    assert result["metrics"]["wer"] == 0.0 and result["metrics"]["bleu4"] == pytest.approx(1.0)
    assert result["metrics"]["rougeL_f"] == 1.0  # the empty pair is a perfect match
    # 6 edits (no word of "a dog" matches) + 2 deletions + 1 insertion (empty reference) + 1 substitution
    assert result["against_metrics"]["wer"] == pytest.approx(10 / 11)
    diff = result["differences"]["against"]
    assert set(diff["wer"]) == {"delta", "ci95"} and diff["wer"]["delta"] < 0
    assert result["bleu_tokenizer"] == "13a" and "normalisation" in result
    assert "does not beat" in capsys.readouterr().out


def test_score_reads_infer_and_evaluate_json(tmp_path):
    infer = [{"input_file": "a.fif", "segments": [{"start": 0, "end": 1, "text": "a b", "reference": "a b"},
                                                  {"start": 1, "end": 2, "text": "", "reference": "c"}]},
             {"input_file": "b.fif", "segments": [{"start": 0, "end": 1, "text": "d", "reference": "d e"}]}]
    p = _write(tmp_path / "results.json", json.dumps(infer))
    assert read_sentences(p, "predictions") == ["a b", "", "d"]
    assert read_sentences(p, "references") == ["a b", "c", "d e"]
    ev = {"sentences": [{"reference": "x y", "prediction": "x", "noise": "z"}]}
    e = _write(tmp_path / "metrics.json", json.dumps(ev))
    assert read_sentences(e, "references") == ["x y"]
    assert read_sentences(e, "predictions", "noise") == ["z"]
    out = tmp_path / "s.json"
    assert main(["score", "--references", str(e), "--predictions", str(e), "--against", str(e), "--against_field",
                 "noise", "--output_file", str(out), "--bertscore_model", "none", "--n_bootstrap", "50"]) == 0
    assert json.loads(out.read_text())["metrics"]["wer"] == 0.5


def test_line_counts_differ_is_one_clear_error_and_nothing_written(tmp_path, capsys):
    refs = _write(tmp_path / "refs.txt", "a\nb\nc\n")
    pred = _write(tmp_path / "pred.txt", "a\nb\n")
    out = tmp_path / "score.json"
    rc = main(["score", "--references", str(refs), "--predictions", str(pred), "--output_file", str(out),
               "--bertscore_model", "none"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists() and len(err.splitlines()) == 1
    assert str(refs) in err and str(pred) in err and "2 sentences" in err and "has 3" in err
    assert not list(tmp_path.glob(".score.json*"))  # no temporary left behind


@pytest.mark.parametrize("content, problem", [
    (None, "file not found"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b"{not json", "invalid JSON"),
    (b'{"foo": 1}', "neither a list of strings"),
    (b'{"segments": [{"start": 0}]}', "no 'text' field"),
])
def test_malformed_inputs_give_one_line_errors(tmp_path, capsys, content, problem):
    refs = _write(tmp_path / "refs.txt", "a\n")
    pred = tmp_path / "pred.json"
    if content is not None:
        pred.write_bytes(content)
    out = _write(tmp_path / "score.json", "previous result")
    rc = main(["score", "--references", str(refs), "--predictions", str(pred), "--output_file", str(out),
               "--bertscore_model", "none"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and problem in err and str(pred) in err and len(err.splitlines()) == 1
    assert out.read_text() == "previous result"  # an earlier result is never clobbered by a failed run


def test_text_reading_rules(tmp_path):
    p = _write(tmp_path / "x.txt", "\ufeffone\r\n\r\nthree")
    assert read_sentences(p) == ["one", "", "three"]
    assert read_sentences(_write(tmp_path / "y.txt", "")) == []
