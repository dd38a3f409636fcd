
import pytest

from brain2text.constants import SPECIAL_TOKENS
from brain2text.data.tokenizer import (
    add_meg_special_tokens,
    load_tokenizer,
    meg_token_ids,
    train_bpe_tokenizer,
    train_word_tokenizer,
)

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


def test_word_tokenizer_one_id_per_training_word(tmp_path):
    tok = train_word_tokenizer(TEXTS, vocab_size=1000)
    words = {w for t in TEXTS for w in t.split()}
    text = "the fort was built by Roy"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.split()) and tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    unseen = tok("Roy met a quokka", add_special_tokens=False)["input_ids"]
    assert unseen[0] != tok.unk_token_id and unseen[1:] == [tok.unk_token_id] * 3  # not training words
    assert tok.decode(unseen, skip_special_tokens=True).strip() == "Roy"
    assert len(tok) == len(words) + 4 + len(SPECIAL_TOKENS)  # words + pad/bos/eos/unk + MEG tokens
    small = train_word_tokenizer(TEXTS, vocab_size=3)  # the 3 most frequent words only
    assert len(small) == 3 + 4 + len(SPECIAL_TOKENS)
    tok.save_pretrained(tmp_path / "tok")
    assert load_tokenizer(tmp_path / "tok")(text)["input_ids"] == tok(text)["input_ids"]


def test_load_missing_dir(tmp_path):
    with pytest.raises(Exception, match="tokenizer directory not found"):
        load_tokenizer(tmp_path / "nope")
