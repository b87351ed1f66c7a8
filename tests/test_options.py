"""Tests for jaxnn.data.options and the table of sources: one option check for every source."""

import numpy as np
import pytest

from jaxnn.data import load
from jaxnn.data.datasets import NAMES, SOURCES
from jaxnn.data.options import (
    RULES,
    bpe_vocabulary,
    check_options,
    csv_delimiter,
    fractions_below_one,
    image_size,
)
from jaxnn.errors import UserError

GRAD_CASES = {}  # option checks: nothing is differentiable


def _spec(source, tmp_path) -> str:
    """A name for ``source`` whose data does not exist: loading it would fail on reading."""
    if source.prefix is None:
        return source.name
    if source.prefix == "tfds:":
        return "tfds:no_such_dataset_xyz"
    return f"{source.prefix}{tmp_path / 'absent'}"


SOURCE_IDS = [s.name for s in SOURCES]


def test_names_are_the_table_s_sources_in_order():
    assert NAMES == tuple(s.name for s in SOURCES)
    assert len(set(NAMES)) == len(NAMES)


@pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
def test_every_option_of_every_source_has_a_rule_and_a_default_that_passes_it(source):
    assert source.options, f"{source.name} takes no option"
    for key, default in source.options.items():
        test, what = RULES[key]
        assert test(default), f"{source.name}: default {key}={default!r} fails '{what}'"
    for check in source.checks:
        check(f"load({source.name!r})", dict(source.options))


def test_every_rule_is_used_by_some_source():
    used = {key for s in SOURCES for key in s.options}
    assert used == set(RULES)


@pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
def test_an_unknown_option_is_listed_with_the_source_s_valid_ones_before_data_is_read(
    source, tmp_path
):
    spec = _spec(source, tmp_path)
    with pytest.raises(UserError) as err:
        load(spec, colour="red")
    message = str(err.value)
    assert message.startswith(f"load({spec!r}): unknown option(s) ['colour']")
    assert f"expected some of {sorted(source.options)}" in message


@pytest.mark.parametrize(
    ("source", "key"),
    [(s, k) for s in SOURCES for k in s.options],
    ids=[f"{s.name}-{k}" for s in SOURCES for k in s.options],
)
def test_a_value_of_the_wrong_type_is_refused_before_data_is_read(source, key, tmp_path):
    spec = _spec(source, tmp_path)
    with pytest.raises(UserError) as err:
        load(spec, **{key: object()})
    assert str(err.value).startswith(f"load({spec!r}): expected {key}")


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("digits", {"val_fraction": 1.5}, r"val_fraction to be a number in \(0, 1\), got 1.5"),
        ("digits", {"test_fraction": 0.0}, r"test_fraction to be a number in \(0, 1\), got 0.0"),
        ("synthetic:moons", {"n": "abc"}, "n to be a positive integer, got 'abc'"),
        ("synthetic:moons", {"noise": float("nan")}, "noise to be a finite number >= 0"),
        ("synthetic:spirals", {"arms": 2.5}, "arms to be an integer >= 2"),
        ("synthetic:spirals", {"arms": 1}, "arms to be an integer >= 2"),
        ("mnist1d", {"disk_cache": 1}, "disk_cache to be True or False"),
        ("pydoc_text", {"tokenizer": "word"}, r"tokenizer one of \['char', 'bpe'\]"),
        ("pydoc_text", {"stride": 0}, "stride to be a positive integer"),
        ("pydoc_text", {"train_stride": -2}, "train_stride to be a positive integer"),
        ("pydoc_text", {"tokenizer": "bpe", "vocab_size": 100}, "vocab_size >= 256 for bpe"),
        ("pydoc_text", {"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test"),
        ("tfds:mnist", {"max_examples": 0}, "max_examples to be a positive integer"),
        ("tfds:mnist", {"val_split": 3}, "val_split to be a split name or None"),
    ],
)
def test_a_value_out_of_range_is_refused_naming_the_source_and_the_rule(name, options, match):
    with pytest.raises(UserError, match=rf"^load\('{name}'\): expected {match}"):
        load(name, **options)


@pytest.mark.parametrize(
    ("kind", "options", "match"),
    [
        ("csv", {"delimiter": ";;"}, "delimiter to be one character"),
        ("csv", {"target": ["a"]}, "target to be a column name or index"),
        ("csv", {"task": "ranking"}, "task one of"),
        ("npz", {"modality": "audio"}, "modality one of"),
        ("npy", {"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction \\+ test_fraction < 1"),
        ("text", {"seq_len": 0}, "seq_len to be a positive integer, got 0"),
        ("images", {"size": "0x3"}, "size=HxW with positive integers .*got '0x3'"),
        ("images", {"mode": "cmyk"}, "mode one of"),
    ],
)
def test_a_file_source_refuses_a_bad_value_before_it_looks_for_the_file(
    kind, options, match, tmp_path
):
    with pytest.raises(UserError, match=rf"absent'\): expected {match}"):
        load(f"{kind}:{tmp_path / 'absent'}", **options)


def test_numpy_scalars_pass_the_rules_and_give_the_same_data():
    a = load("synthetic:moons", seed=1, n=np.int64(120), noise=np.float64(0.2))
    b = load("synthetic:moons", seed=1, n=120, noise=0.2)
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.val.y, b.val.y)


def test_check_options_fills_in_the_defaults_and_runs_the_checks_last():
    defaults = {"val_fraction": 0.1, "test_fraction": 0.2}
    assert check_options("w", defaults, {"val_fraction": 0.3}) == {
        "val_fraction": 0.3,
        "test_fraction": 0.2,
    }
    with pytest.raises(UserError, match="^w: expected val_fraction \\+ test_fraction < 1"):
        check_options("w", defaults, {"val_fraction": 0.9}, (fractions_below_one,))


def test_bpe_vocabulary_applies_to_bpe_tokens_only():
    bpe_vocabulary("w", {"tokenizer": "char", "vocab_size": 10})
    with pytest.raises(UserError, match="^w: expected vocab_size >= 256"):
        bpe_vocabulary("w", {"tokenizer": "bpe", "vocab_size": 255})


@pytest.mark.parametrize(("value", "want"), [(",", ","), ("tab", "\t"), ("\\t", "\t"), (";", ";")])
def test_csv_delimiter_names_one_character(value, want):
    assert csv_delimiter(value) == want


@pytest.mark.parametrize("value", [";;", "", '"', "\n", 9, None])
def test_csv_delimiter_refuses_anything_else(value):
    with pytest.raises(ValueError, match="one character"):
        csv_delimiter(value)


@pytest.mark.parametrize(
    ("value", "want"),
    [("28x28", (28, 28)), ("4X3", (4, 3)), ("4,3", (4, 3)), (5, (5, 5)), ((2, 3), (2, 3))],
)
def test_image_size_reads_height_by_width(value, want):
    assert image_size(value) == want


def test_image_size_keeps_none():
    assert image_size(None) is None


@pytest.mark.parametrize("value", ["0x3", "axb", "4", True, 2.5, (1, 2, 3), -1])
def test_image_size_refuses_what_is_not_two_positive_integers(value):
    with pytest.raises(ValueError, match="positive integers"):
        image_size(value)
