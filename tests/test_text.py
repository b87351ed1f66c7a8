"""Tests for jaxnn.data.text: character and byte-pair tokenizers, JSON vocabularies, LM windows."""

import json

import numpy as np
import pytest

from jaxnn.data.text import (
    BPETokenizer,
    CharTokenizer,
    lm_windows,
    load_tokenizer,
    tokenizer_from_json,
)

GRAD_CASES = {}  # tokenizers map text to integer ids: nothing is differentiable

TRAIN = "the cat sat on the mat; the hat sat on the cat. " * 6
UNICODE = "naïve café — 東京 ✓ tab\tnewline\n"


def test_char_tokenizer_round_trips_text_of_known_characters():
    tok = CharTokenizer.fit(TRAIN)
    ids = tok.encode(TRAIN)
    assert ids.dtype == np.int32 and ids.shape == (len(TRAIN),)
    assert tok.decode(ids) == TRAIN


def test_char_vocabulary_is_the_training_characters_plus_unk():
    tok = CharTokenizer.fit(TRAIN)
    assert tok.chars == tuple(sorted(set(TRAIN)))
    assert tok.vocab_size == len(set(TRAIN)) + 1
    assert 0 not in tok.encode(TRAIN)


def test_unknown_characters_encode_to_unk_and_decode_to_replacement_character():
    tok = CharTokenizer.fit("abc")
    ids = tok.encode("abzc")
    assert ids.tolist() == [1, 2, tok.unk_id, 3]
    assert tok.decode(ids) == "ab\ufffdc"


@pytest.mark.parametrize(
    "tok", [CharTokenizer.fit("abc"), BPETokenizer.fit("abab abab", vocab_size=258)]
)
def test_decoding_unknown_ids_is_rejected(tok):
    with pytest.raises(ValueError, match="unknown ids"):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(ValueError, match="unknown ids"):
        tok.decode([-1])


def test_bpe_round_trips_any_text_including_unseen_unicode():
    tok = BPETokenizer.fit(TRAIN, vocab_size=300)
    for text in (TRAIN, UNICODE, ""):
        assert tok.decode(tok.encode(text)) == text


def test_bpe_merges_shorten_the_training_text_and_respect_vocab_size():
    tok = BPETokenizer.fit(TRAIN, vocab_size=265)
    assert tok.vocab_size == 265
    ids = tok.encode(TRAIN)
    assert len(ids) < len(TRAIN.encode("utf-8")) / 2
    assert ids.max() == 264


def test_bpe_first_merge_is_the_most_frequent_byte_pair():
    tok = BPETokenizer.fit("aaab aaab aaab", vocab_size=257)
    assert tok.merges == ((ord("a"), ord("a")),)


def test_bpe_stops_early_when_no_pair_repeats():
    tok = BPETokenizer.fit("abcd", vocab_size=1000)
    assert tok.vocab_size == 256


def test_bpe_rejects_vocab_below_the_byte_alphabet():
    with pytest.raises(ValueError, match=">= 256"):
        BPETokenizer.fit(TRAIN, vocab_size=100)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_vocabulary_saved_as_json_loads_to_an_identical_tokenizer(tmp_path, kind):
    tok = CharTokenizer.fit(UNICODE) if kind == "char" else BPETokenizer.fit(TRAIN, vocab_size=270)
    path = tmp_path / "vocab.json"
    tok.save(path)
    again = load_tokenizer(path)
    assert type(again) is type(tok) and again.vocab_size == tok.vocab_size
    assert np.array_equal(again.encode(UNICODE + TRAIN), tok.encode(UNICODE + TRAIN))


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenizer_json_dict_round_trips_encode_and_decode_exactly(kind):
    tok = (
        CharTokenizer.fit(TRAIN + UNICODE)
        if kind == "char"
        else BPETokenizer.fit(TRAIN, vocab_size=280)
    )
    d = tok.to_json()
    assert isinstance(d, dict) and d["type"] == kind
    again = tokenizer_from_json(json.loads(json.dumps(d)))
    assert type(again) is type(tok) and again.vocab_size == tok.vocab_size
    text = UNICODE + TRAIN + "zz\x00"
    assert np.array_equal(again.encode(text), tok.encode(text))
    ids = np.arange(tok.vocab_size)
    assert again.decode(ids) == tok.decode(ids)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"type": "wordpiece"}, "'char' or 'bpe'"),
        ({"type": "char", "chars": ["a", "b"]}, "'chars' to be a string"),
        ({"type": "char", "chars": "ba"}, "sorted, distinct"),
        ({"type": "bpe", "merges": [[97, 98, 99]]}, r"\[id, id\] pairs"),
        ({"type": "bpe", "merges": [[300, 1]]}, "not yet defined"),
        (["char"], "'char' or 'bpe'"),
    ],
)
def test_tokenizer_from_json_rejects_malformed_vocabularies(bad, match):
    with pytest.raises(ValueError, match=match):
        tokenizer_from_json(bad)


def test_load_tokenizer_rejects_unknown_type(tmp_path):
    path = tmp_path / "v.json"
    path.write_text('{"type": "wordpiece"}')
    with pytest.raises(ValueError, match="'char' or 'bpe'"):
        load_tokenizer(path)


def test_lm_windows_targets_are_inputs_shifted_by_one():
    ids = np.arange(20, dtype=np.int32)
    x, y = lm_windows(ids, 4)
    assert x.shape == y.shape == ((20 - 4 - 1) // 4 + 1, 4)
    assert np.array_equal(y, x + 1)
    assert x[1, 0] == 4  # stride defaults to seq_len: windows do not overlap


def test_lm_windows_stride_controls_overlap():
    ids = np.arange(10, dtype=np.int32)
    x, _ = lm_windows(ids, 3, stride=1)
    assert x.shape == (7, 3) and x[:, 0].tolist() == list(range(7))


def test_lm_windows_rejects_too_short_streams():
    with pytest.raises(ValueError, match="at least seq_len \\+ 1 = 6"):
        lm_windows(np.arange(5), 5)


def test_fit_rejects_empty_text():
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer.fit("")
