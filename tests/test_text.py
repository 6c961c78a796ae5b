"""Tokenizers trained on the training texts (mmcli/text.py)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer
from helpers import CLASSES, SHARED_WORDS, WORDS

from mmcli.text import encode, fingerprint, load_tokenizer, train_tokenizer

TEXTS = [f"{w} {s} {c}" for c in CLASSES for w in WORDS[c] for s in SHARED_WORDS]


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_encode_pads_and_truncates(kind):
    tok = train_tokenizer(TEXTS, kind, 200)
    ids = encode(tok, ["apple", "", "   ", " ".join(["sea"] * 500)], 6)
    assert ids.shape == (4, 6) and ids.dtype.name == "int32"
    assert ids[0, 0] != 0 and (ids[0, 1:] == 0).all()  # one token, then padding (id 0)
    assert (ids[1] == 0).all() and (ids[2] == 0).all()  # empty and whitespace-only: all padding
    assert (ids[3] != 0).all()  # 500 words: cut to 6 tokens


def test_save_and_load_round_trip(tmp_path):
    tok = train_tokenizer(TEXTS)
    (tmp_path / "tokenizer.json").write_text(tok.to_str(), encoding="utf-8")
    again = load_tokenizer(tmp_path)
    assert fingerprint(again) == fingerprint(tok)
    assert (encode(again, TEXTS, 8) == encode(tok, TEXTS, 8)).all()


def test_bpe_training_gives_the_same_ids_every_time():
    # the trainers number tokens in hash-map order; mmcli renumbers them canonically (specials, then sorted)
    vocabs = {tuple(sorted(train_tokenizer(TEXTS, "bpe").get_vocab().items())) for _ in range(5)}
    assert len(vocabs) == 1
    assert train_tokenizer(TEXTS, "bpe").token_to_id("[PAD]") == 0


def test_wordpiece_training_keeps_what_it_can_guarantee():
    # The WordPiece trainer breaks ties between equally frequent merges in hash-map order, so the learned token
    # *set* may differ between trainings (config.py says so). What holds every time: specials first, the rest in
    # sorted order, every training word encodes without [UNK], and a saved tokenizer reloads to the same ids.
    for _ in range(5):
        tok = train_tokenizer(TEXTS, "wordpiece", 200)
        vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
        assert [i for _, i in vocab] == list(range(len(vocab)))
        assert [t for t, _ in vocab[:2]] == ["[PAD]", "[UNK]"]
        rest = [t for t, _ in vocab[2:]]
        assert rest == sorted(rest)
        unk = tok.token_to_id("[UNK]")
        assert all(unk not in enc.ids for enc in tok.encode_batch(TEXTS))
        again = Tokenizer.from_str(tok.to_str())
        assert (encode(again, TEXTS, 8) == encode(tok, TEXTS, 8)).all()
