from pathlib import Path

import pytest

from brain2text.constants import SPECIAL_TOKENS
from brain2text.data.tokenizer import add_meg_special_tokens, load_tokenizer, meg_token_ids, train_bpe_tokenizer

TEXTS = [
    "The cable spool fort was built by Bill and Roy.",
    "Roy climbed to the top of the fort and waved.",
    "They did n't know what the spool was for.",
] * 5


def test_bpe_roundtrip_and_special_tokens(tmp_path):
    tok = train_bpe_tokenizer(TEXTS, vocab_size=300)
    ids = meg_token_ids(tok)
    assert set(ids) == set(SPECIAL_TOKENS)
    assert len(set(ids.values())) == 3
    # Byte-level BPE: an unseen word still round-trips exactly.
    text = "Zyxwv quokkas, unseen!"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]).strip() == text
    # Special tokens are single ids, not split into pieces.
    enc = tok("<meg_start><meg><meg_end>", add_special_tokens=False)["input_ids"]
    assert enc == [ids["<meg_start>"], ids["<meg>"], ids["<meg_end>"]]
    assert add_meg_special_tokens(tok) == 0  # idempotent
    tok.save_pretrained(tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert meg_token_ids(again) == ids


def test_load_missing_dir(tmp_path):
    with pytest.raises(Exception, match="tokenizer directory not found"):
        load_tokenizer(tmp_path / "nope")
