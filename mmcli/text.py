"""Tokenizers: train one on the training texts (Hugging Face `tokenizers`) or load a saved/pretrained one.

Token id 0 is always padding, so a mask is simply `ids != 0`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

SPECIALS = ["[PAD]", "[UNK]"]


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 8000) -> Tokenizer:
    """Learn a lower-casing BPE (default) or WordPiece vocabulary from `texts`."""
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIALS,
                                             show_progress=False)
        tok.decoder = decoders.WordPiece()
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIALS,
                                       show_progress=False)
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r} (wordpiece, bpe)")
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(list(texts), trainer=trainer)
    return _renumbered(tok)


def _renumbered(tok: Tokenizer) -> Tokenizer:
    """The same tokenizer with ids in a canonical order: special tokens first, then the rest sorted.

    The trainers number tokens in hash-map order, which changes from one run to the next; sorted ids make the
    same training texts give the same ids, hence the same model for the same seed."""
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    ordered = SPECIALS + sorted(t for t in vocab if t not in SPECIALS)
    spec["model"]["vocab"] = {t: i for i, t in enumerate(ordered)}
    return Tokenizer.from_str(json.dumps(spec))


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load `tokenizer.json` (a file, or a folder that holds one, e.g. a Hugging Face model folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    return Tokenizer.from_file(str(path))


def pad_id(tok: Tokenizer) -> int:
    """The padding id: [PAD] (ours and BERT's, 0) or <pad> (RoBERTa-style vocabularies, 1)."""
    for name in ("[PAD]", "<pad>", "<PAD>"):
        pid = tok.token_to_id(name)
        if pid is not None:
            return pid
    return 0


def encode(tok: Tokenizer, texts: list[str], max_tokens: int) -> np.ndarray:
    """Texts -> int32 ids `[N, max_tokens]`, truncated and right-padded with the pad id."""
    tok.no_padding()
    tok.enable_truncation(max_tokens)
    out = np.full((len(texts), max_tokens), pad_id(tok), dtype=np.int32)
    for i, enc in enumerate(tok.encode_batch(texts)):
        ids = enc.ids[:max_tokens]
        out[i, : len(ids)] = ids
    return out


def fitted_length(tok: Tokenizer, texts: list[str], cap: int, step: int = 8) -> int:
    """The token count (special tokens included) of the longest of `texts`, rounded up to a multiple of `step`,
    at least `step` and at most `cap`: a text column's length. No text under the cap is cut, and short texts
    don't carry padding up to a fixed length (the cached ids, and a scratch encoder's work per row, grow with it;
    the pretrained text encoders also trim each batch to its longest text)."""
    tok.no_padding()
    tok.no_truncation()
    longest = max((len(e.ids) for e in tok.encode_batch(texts)), default=1)
    return int(min(cap, max(step, step * math.ceil(longest / step))))


def fingerprint(tok: Tokenizer) -> str:
    """A stable hash of the tokenizer's full definition (vocabulary, normaliser, ...)."""
    import hashlib

    blob = json.dumps(json.loads(tok.to_str()), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
