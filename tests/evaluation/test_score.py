"""``brain2text score``: text, JSON and EEG-To-Text inputs, empty lines, grouping, clear errors, atomic output."""

from __future__ import annotations

import json

import pytest

from brain2text.cli import main
from brain2text.errors import Brain2TextError
from brain2text.evaluation.score import parse_eegtotext, read_file, read_sentences


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
    assert {"delta", "ci95", "p_value", "verdict"} <= set(diff["wer"]) and diff["wer"]["delta"] < 0
    assert diff["wer"]["verdict"] == "not established"  # 4 sentences can never give p < 0.05
    assert result["bleu_tokenizer"] == "13a" and "normalisation" in result
    assert result["bootstrap_unit"] == "sentence" and result["n_clusters"] == 4
    assert {"rouge1_f", "rouge2_f", "rougeL_f"} <= set(result["metrics"])
    printed = capsys.readouterr().out
    assert "does not beat" in printed and "pred.txt \u2212 other.txt" in printed
    assert "grouped by identical reference: 4 clusters of 4 rows" in printed


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


def test_a_prediction_holding_a_delete_character_is_text_in_json_but_binary_in_a_text_file(tmp_path):
    """A small model can write U+007F; `evaluate` keeps it (unescaped) in its JSON, which `score` must read."""
    e = _write(tmp_path / "metrics.json", json.dumps({"sentences": [{"reference": "x y", "prediction": "x\x7f"}]},
                                                     ensure_ascii=False))
    assert "\x7f" in e.read_text(encoding="utf-8")
    assert read_sentences(e, "predictions") == ["x\x7f"]
    t = _write(tmp_path / "preds.txt", "x\x7f\n")
    with pytest.raises(Brain2TextError, match="control character U\\+007F"):
        read_sentences(t, "predictions")


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
    (b'["a"]\n\x00\x01\x02', "NUL byte on line 2"),
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


def _blocks(rows, tf=True, free=True):
    out = []
    for target, pred_tf, pred in rows:
        out.append(f"target string: {target}")
        if tf:
            out.append(f"predicted string with tf: {pred_tf}")
        if free:
            out.append(f"predicted string: {pred}")
        out += ["################################################", "", ""]
    return "\n".join(out) + "\n"


ROWS = [("the cat sat on the mat", "the cat sat on the mat", "a cat sat"),
        ("he ran far away", "he ran far away", "he ran"),
        ("the cat sat on the mat", "the cat sat on the mat", "the cat sat on a mat"),
        ("", "", "")]


def test_eegtotext_blocks_give_targets_and_free_running_predictions(tmp_path):
    path = _write(tmp_path / "results.txt", _blocks(ROWS))
    assert read_file(path).format == "eegtotext"  # auto-detected from its first line
    assert read_sentences(path, "references") == [r[0] for r in ROWS]
    assert read_sentences(path, "predictions") == [r[2] for r in ROWS]
    assert read_sentences(path, "predictions", "tf") == [r[1] for r in ROWS]
    assert [b["line"] for b in parse_eegtotext(path, path.read_text().split("\n"))] == [1, 7, 13, 19]
    out = tmp_path / "s.json"
    assert main(["score", "--predictions", str(path), "--output_file", str(out), "--bertscore_model", "none",
                 "--n_bootstrap", "100", "--n_permutations", "100"]) == 0  # references from the same file
    result = json.loads(out.read_text())
    assert result["n_sentences"] == 4 and result["formats"] == {"references": "eegtotext", "predictions": "eegtotext"}
    assert result["n_clusters"] == 3 and result["grouping"] == "grouped by identical reference: 3 clusters of 4 rows"
    assert result["warnings"] == [] and result["teacher_forced"] == {"predictions": False}


def test_teacher_forced_lines_are_refused_unless_asked_and_then_flagged(tmp_path, capsys):
    only_tf = _write(tmp_path / "tf.txt", _blocks(ROWS, free=False))
    out = tmp_path / "s.json"
    args = ["score", "--references", str(only_tf), "--predictions", str(only_tf), "--output_file", str(out),
            "--bertscore_model", "none", "--n_bootstrap", "50", "--n_permutations", "50"]
    assert main(args) == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(only_tf) in err and "line 1: block has no 'predicted string:' line" in err
    assert "teacher-forced" in err and "--predictions_field tf" in err
    assert main(args + ["--predictions_field", "tf"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["teacher_forced"]["predictions"] and "not generation" in result["warnings"][0]
    assert printed.startswith("WARNING: predictions") and printed.count("not generation") == 2  # above and below
    assert result["metrics"]["wer"] == 0.0  # teacher forcing copies the reference here: why it is refused


@pytest.mark.parametrize("text, line, problem", [
    ("target string: a\npredicted string: b\npredicted string with tf: c\n####\n", 3,
     "broken block (started on line 1)"),
    ("target string: a\npredicted string: b\n####\n\n\ntarget string: c\ntarget string: d\n", 7,
     "got 'target string: d'"),
    ("target string: a\npredicted string: b\n####\nhello\n", 4, "expected 'target string:' to start a block"),
    ("target string: a\n####\n", 1, "a target string with no predicted string"),
    ("target string: a\npredicted string: b\npredicted string: c\n####\n", 3, "broken block"),
])
def test_a_broken_block_is_one_error_naming_the_line(tmp_path, capsys, text, line, problem):
    path = _write(tmp_path / "results.txt", text)
    out = tmp_path / "s.json"
    assert main(["score", "--predictions", str(path), "--output_file", str(out), "--bertscore_model", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and f"line {line}" in err and problem in err, err
    assert not out.exists()


def test_mixed_formats_are_clear_errors(tmp_path, capsys):
    refs = _write(tmp_path / "refs.txt", "a b\nc d\ne f\n")
    blocks = _write(tmp_path / "results.txt", _blocks(ROWS))
    preds = _write(tmp_path / "preds.json", json.dumps(["a b", "c d"]))
    out = tmp_path / "s.json"

    def error(*args):
        assert main(["score", *args, "--output_file", str(out), "--bertscore_model", "none"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not out.exists(), err
        return err

    err = error("--references", str(refs), "--predictions", str(preds))
    assert f"{preds} (JSON) has 2 sentences but references {refs} (text) has 3" in err
    err = error("--references", str(refs), "--predictions", str(blocks), "--format", "text")
    assert str(blocks) in err and "line 1 starts with 'target string:'" in err and "--format eegtotext" in err
    err = error("--references", str(refs), "--predictions", str(preds), "--format", "text")
    assert str(refs) not in err and str(preds) in err and "is JSON" in err
    err = error("--references", str(refs), "--predictions", str(blocks))
    assert "has 4 sentences" in err and "(EEG-To-Text blocks)" in err
    four = _write(tmp_path / "four.txt", "the cat sat on the mat\nhe ran far away\nthe cat sat on a mat\n\n")
    err = error("--references", str(four), "--predictions", str(blocks))
    assert str(blocks) in err and "line 13: the target string" in err and "do not pair" in err
    err = error("--predictions", str(refs))
    assert "--references is needed" in err


def test_groups_file_sets_the_clusters_and_must_have_one_line_per_sentence(tmp_path, capsys):
    refs = _write(tmp_path / "refs.txt", "a b\nc d\ne f\ng h\n")
    pred = _write(tmp_path / "pred.txt", "a b\nc x\ne f\nx h\n")
    groups = _write(tmp_path / "groups.txt", "s1\ns1\ns2\ns2\n")
    out = tmp_path / "s.json"
    base = ["score", "--references", str(refs), "--predictions", str(pred), "--against", str(refs),
            "--output_file", str(out), "--bertscore_model", "none", "--n_bootstrap", "100", "--n_permutations", "100"]
    assert main(base + ["--groups", str(groups)]) == 0
    result = json.loads(out.read_text())
    assert result["n_clusters"] == 2 and result["grouping"] == f"grouped by {groups}: 2 clusters of 4 rows"
    capsys.readouterr()
    short = _write(tmp_path / "short.txt", "s1\ns2\ns3\n")
    assert main(base + ["--groups", str(short)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(short) in err and "has 3 group ids but there are 4 sentences" in err
    holes = _write(tmp_path / "holes.txt", "s1\n\ns3\ns4\n")
    assert main(base + ["--groups", str(holes)]) == 2
    assert "line 2: empty group id" in capsys.readouterr().err
    assert main(base + ["--bootstrap_unit", "row"]) == 0
    assert json.loads(out.read_text())["n_clusters"] == 4


def test_wer_normalization_none_is_recorded(tmp_path):
    refs = _write(tmp_path / "refs.txt", "He said, hello!\n")
    pred = _write(tmp_path / "pred.txt", "he said hello\n")
    out = tmp_path / "s.json"
    base = ["score", "--references", str(refs), "--predictions", str(pred), "--output_file", str(out),
            "--bertscore_model", "none", "--n_bootstrap", "20"]
    assert main(base) == 0 and json.loads(out.read_text())["metrics"]["wer"] == 0.0
    assert main(base + ["--wer-normalization", "none"]) == 0
    result = json.loads(out.read_text())
    assert result["metrics"]["wer"] == 1.0 and result["normalisation"]["wer_normalization"] == "none"
    assert "as written" in result["normalisation"]["wer"]


def test_bertscore_shows_progress_and_help_shows_defaults(tmp_path, capsys):
    refs = _write(tmp_path / "refs.txt", "the cat sat on the mat\nhello there\n")
    out = tmp_path / "s.json"
    assert main(["score", "--references", str(refs), "--predictions", str(refs), "--output_file", str(out),
                 "--n_bootstrap", "20", "--n_permutations", "0"]) == 0
    assert "BERTScore" in capsys.readouterr().err and json.loads(out.read_text())["metrics"]["bertscore_f1"] > 0.99
    assert main(["score", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10000)" in text and "(default: sentence)" in text and "(default: auto)" in text
