import ast
import csv
from pathlib import Path

import pandas as pd
import pytest

from bids_helpers import flatten_events
from brain2text.data.events import EVENT_TABLE_COLUMNS, extract_sentences, read_events
from brain2text.errors import DataError


def _independent_groups(path: Path, conditions: set[str]) -> list[list[str]]:
    """Sentences computed without the project's code: plain csv + literal_eval + a groupby."""
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            d = ast.literal_eval(r["trial_type"])
            if d["kind"] == "word" and d["condition"] in conditions:
                rows.append((float(r["onset"]), d["sound_id"], d["sequence_id"], d["word"]))
    table = pd.DataFrame(rows, columns=["onset", "sound", "seq", "word"]).sort_values("onset", kind="mergesort")
    groups = table.groupby(["sound", "seq"], sort=False)["word"].apply(list)
    return list(groups)


def test_real_events_counts(real_events_path):
    events = read_events(real_events_path)
    assert list(events.columns) == list(EVENT_TABLE_COLUMNS)
    assert len(events) == 6622
    counts = events["kind"].value_counts().to_dict()
    assert counts == {"phoneme": 5113, "word": 1503, "sound": 6}
    assert set(events["story"]) == {"cable_spool_fort"}
    assert events["line"].iloc[0] == 2 and events["line"].iloc[-1] == 6623


@pytest.mark.parametrize("with_lists", [False, True])
def test_real_sentences_match_independent_groupby(real_events_path, with_lists):
    sentences = extract_sentences(read_events(real_events_path), include_word_lists=with_lists)
    expected = _independent_groups(real_events_path, {"sentence", "word_list"} if with_lists else {"sentence"})
    assert len(sentences) == len(expected) == (126 if with_lists else 117)
    assert [s.words for s in sentences] == expected
    assert sum(len(s.words) for s in extract_sentences(read_events(real_events_path), True)) == 1503
    for s in sentences:
        assert s.onsets == sorted(s.onsets) and all(o >= a for a, o in zip(s.onsets, s.offsets))
        assert s.text.split() == s.words  # events carry no punctuation tokens
    if with_lists:
        assert {s.condition for s in sentences} == {"sentence", "word_list"}


def test_flattened_layout_gives_identical_sentences(real_events_path, tmp_path):
    flat_path = tmp_path / "flat_events.tsv"
    flatten_events(real_events_path, flat_path)
    assert "{" not in flat_path.read_text()
    a = read_events(real_events_path)
    b = read_events(flat_path)
    cols = [c for c in EVENT_TABLE_COLUMNS if c != "line"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    for inc in (False, True):
        assert extract_sentences(a, inc) == extract_sentences(b, inc)


def test_row_order_does_not_matter(real_events_path, tmp_path):
    table = pd.read_csv(real_events_path, sep="\t").sample(frac=1.0, random_state=0)
    shuffled = tmp_path / "shuffled.tsv"
    table.to_csv(shuffled, sep="\t", index=False)
    assert extract_sentences(read_events(shuffled)) == extract_sentences(read_events(real_events_path))


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "events.tsv"
    path.write_text(body)
    return path


HEADER = "onset\tduration\ttrial_type\tvalue\tsample\n"
GOOD = ("1.0\t0.2\t{'story': 'The_Black_Willow', 'kind': 'word', 'word': 'Hi', 'sequence_id': 0.0, 'sound_id': 0.0, "
        "'condition': 'sentence'}\t1\t1000\n")


def test_story_is_lowercased_and_good_file_reads(tmp_path):
    events = read_events(_write(tmp_path, HEADER + GOOD))
    assert events["story"].tolist() == ["the_black_willow"]
    assert extract_sentences(events)[0].text == "Hi"


def test_code_in_trial_type_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    for payload in (f"__import__('os').system('touch {marker}')",
                    f"{{'kind': 'word', 'word': __import__('os').system('touch {marker}')}}"):
        path = _write(tmp_path, HEADER + GOOD + f"2.0\t0.1\t{payload}\t1\t2000\n")
        with pytest.raises(DataError) as exc:
            read_events(path)
        assert "line 3" in str(exc.value) and str(path) in str(exc.value)
        assert not marker.exists()


@pytest.mark.parametrize("body, needle", [
    ("", "empty"),
    (HEADER + "abc\t0.1\t{'kind': 'word'}\t1\t1\n", "line 2: onset must be a number"),
    (HEADER + "n/a\t0.1\t{'kind': 'word'}\t1\t1\n", "line 2: onset is missing"),
    (HEADER + "1.0\t-1\t{'kind': 'word'}\t1\t1\n", "line 2"),
    (HEADER + GOOD + "1.0\t0.1\t[1, 2]\t1\t1\n", "line 3: trial_type must be a dict literal"),
    (HEADER + GOOD + "1.0\t0.1\t{'kind': 'word'\t1\t1\n", "line 3: trial_type is not a Python dict literal"),
    (HEADER + GOOD + "1.0\t0.1\t{'kind': 'word', 'sequence_id': 'x'}\t1\t1\n", "line 3: sequence_id must be a number"),
    ("time\tthing\n1\t2\n", "no 'onset' column"),
    ("onset\tduration\n1\t2\n", "neither a 'trial_type' nor a 'kind'"),
    (HEADER + GOOD + "1.0\t0.1\t{'kind': 'word'}\t1\t1\textra\tcols\n", "malformed events table"),
])
def test_malformed_events_give_one_line_errors(tmp_path, body, needle):
    path = _write(tmp_path, body)
    with pytest.raises(DataError) as exc:
        read_events(path)
    message = str(exc.value)
    assert needle in message and str(path) in message and "\n" not in message


def test_missing_events_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_events(tmp_path / "nope.tsv")


def test_plain_labels_in_dict_layout_are_events_not_errors(tmp_path):
    events = read_events(_write(tmp_path, HEADER + GOOD + "3.0\t0\tBAD_ACQ_SKIP\t2\t3000\n"))
    assert events["kind"].tolist() == ["word", "bad_acq_skip"]
    assert len(extract_sentences(events)) == 1


def test_unpronounced_words_and_word_lists(tmp_path):
    rows = [
        "1.0\t0.2\t{'kind': 'word', 'word': 'a', 'sequence_id': 0.0, 'sound_id': 0.0, 'condition': 'sentence', "
        "'pronounced': 1.0}\t1\t1",
        "1.3\t0.2\t{'kind': 'word', 'word': 'b', 'sequence_id': 0.0, 'sound_id': 0.0, 'condition': 'sentence', "
        "'pronounced': 0.0}\t1\t1",
        "1.6\t0.2\t{'kind': 'word', 'word': 'c', 'sequence_id': 0.0, 'sound_id': 0.0, 'condition': 'sentence', "
        "'pronounced': 1.0}\t1\t1",
        "2.0\t0.2\t{'kind': 'word', 'word': 'x', 'sequence_id': 1.0, 'sound_id': 0.0, 'condition': 'word_list'}\t1\t1",
        "3.0\t0.2\t{'kind': 'word', 'word': 'a', 'sequence_id': 0.0, 'sound_id': 1.0, 'condition': 'sentence'}\t1\t1",
    ]
    events = read_events(_write(tmp_path, HEADER + "\n".join(rows) + "\n"))
    sentences = extract_sentences(events)
    assert [s.words for s in sentences] == [["a", "c"], ["a"]]  # sequence_id 0 in two sounds: two sentences
    with_lists = extract_sentences(events, include_word_lists=True)
    assert [s.condition for s in with_lists] == ["sentence", "word_list", "sentence"]


def test_bare_nan_inside_dict_reads_as_missing(tmp_path):
    row = "1.0\t0.2\t{'kind': 'word', 'word': 'Hi', 'sequence_id': 3.0, 'sound_id': nan, 'word_index': nan}\t1\t1\n"
    events = read_events(_write(tmp_path, HEADER + row))
    assert events["sound_id"].isna().all() and events["sequence_id"].tolist() == [3.0]
    assert [s.words for s in extract_sentences(events)] == [["Hi"]]


# ------------------------------------------------------------------ damaged tables: refused or repaired
def _word(onset: float, word: str, seq: float = 0.0) -> str:
    return (f"{onset}\t0.2\t{{'kind': 'word', 'word': '{word}', 'sequence_id': {seq}, 'sound_id': 0.0, "
            f"'condition': 'sentence'}}\t1\t1\n")


def test_real_events_need_no_repair(real_events_path):
    import warnings

    from brain2text.errors import Brain2TextWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", Brain2TextWarning)  # MEG-MASC as published: no duplicates, in time order
        assert len(read_events(real_events_path)) == 6622


def test_duplicate_rows_are_dropped_with_a_warning(tmp_path):
    path = _write(tmp_path, HEADER + _word(1.0, "the") + _word(1.3, "cat") + _word(1.3, "cat") + _word(1.6, "sat"))
    with pytest.warns(UserWarning, match=r"events.tsv: 1 duplicate row\(s\) dropped \(line 4"):
        events = read_events(path)
    assert events["line"].tolist() == [2, 3, 5]
    assert extract_sentences(events)[0].text == "the cat sat"


def test_the_same_word_twice_at_two_times_is_not_a_duplicate(tmp_path):
    events = read_events(_write(tmp_path, HEADER + _word(1.0, "no") + _word(1.3, "no")))
    assert extract_sentences(events)[0].words == ["no", "no"]


def test_rows_out_of_order_are_sorted_with_a_warning(tmp_path):
    path = _write(tmp_path, HEADER + _word(1.6, "sat") + _word(1.0, "the") + _word(1.3, "cat") + _word(2.0, "down"))
    with pytest.warns(UserWarning, match=r"2 row\(s\) out of onset order \(first: line 3\); rows sorted by onset"):
        events = read_events(path)
    assert events["onset"].is_monotonic_increasing and events["line"].tolist() == [3, 4, 2, 5]
    assert extract_sentences(events)[0].text == "the cat sat down"


def test_negative_onsets_are_kept(tmp_path):
    """BIDS allows events before the first sample; windowing skips their sentences as outside the recording."""
    events = read_events(_write(tmp_path, HEADER + _word(-2.0, "early") + _word(1.0, "late", 1.0)))
    assert events["onset"].tolist() == [-2.0, 1.0]


def test_deep_nesting_and_huge_fields_are_refused_before_parsing(tmp_path):
    import time

    deep = "{'kind': " * 1000 + "'word'" + "}" * 1000
    with pytest.raises(DataError, match=r"line 3: trial_type is nested 1000 levels deep"):
        read_events(_write(tmp_path, HEADER + GOOD + f"2.0\t0.1\t{deep}\t1\t1\n"))
    huge = "{'kind': 'word', 'word': '" + "a" * (50 * 2**20) + "'}"
    start = time.perf_counter()
    with pytest.raises(DataError, match=rf"line 2: field 'trial_type' is {len(huge)} characters long \(at most 65536"):
        read_events(_write(tmp_path, HEADER + f"1.0\t0.1\t{huge}\t1\t1\n" + GOOD))
    assert time.perf_counter() - start < 10


def test_brackets_inside_words_are_not_nesting(tmp_path):
    word = "((((((((((" + "[" * 10 + "{" * 10 + "\\'"
    row = f"1.0\t0.2\t{{'kind': 'word', 'word': '{word}', 'sequence_id': 0.0}}\t1\t1\n"
    assert read_events(_write(tmp_path, HEADER + row))["word"].tolist() == [word.replace("\\'", "'")]
