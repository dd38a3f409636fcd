
import pytest

from brain2text.data.text import detokenize, normalize_for_split


@pytest.mark.parametrize("tokens, expected", [
    ("He would n't go", "He wouldn't go"),
    ("stock - still", "stock-still"),
    ("Harmon 's dog", "Harmon's dog"),
    ("ca n't and wo n't", "can't and won't"),
    ("Hey , Roy ? Yes ! Fine ; ok : done .", "Hey, Roy? Yes! Fine; ok: done."),
    ('" Hey , Roy ? " " What ? "', '"Hey, Roy?" "What?"'),
    ("`` Hi '' she said", '"Hi" she said'),
    ("( yes ) -- no", "(yes) -- no"),
    ("They 're here and we 've gone", "They're here and we've gone"),
])
def test_detokenize(tokens, expected):
    assert detokenize(tokens.split()) == expected


def test_detokenize_story_text_has_no_treebank_spacing(shared_data):
    for path in sorted((shared_data / "meg_masc" / "stimuli_text").glob("*.txt")):
        tokens = path.read_text(encoding="utf-8").split()
        text = detokenize(tokens)
        for bad in (" ,", " .", " n't", " 's", " ?", " !"):
            assert bad not in text, (path.name, bad)
        # Same words, only the spacing changed.
        assert normalize_for_split(text) == normalize_for_split(" ".join(tokens))
        assert text.count('"') == sum(t == '"' for t in tokens)


def test_normalize_for_split():
    assert normalize_for_split("Wouldn't  it, Roy?") == normalize_for_split("would n't it Roy") == "wouldnt it roy"
    assert normalize_for_split("stock-still") == normalize_for_split("stock - still") == "stock still"
    assert normalize_for_split("  A\tB\n") == "a b"
    assert normalize_for_split("") == ""
