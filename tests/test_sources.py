"""Tests for jaxnn.data.sources: a user's CSV, npz/npy, text and image folders as Splits."""

import hashlib
import re

import numpy as np
import pytest
from PIL import Image

from jaxnn.data import SealedDataset, load
from jaxnn.data.datasets import pydoc_corpus
from jaxnn.data.sources import (
    csv_columns,
    load_source,
    read_csv_features,
    read_images,
    resolve_spec,
    source_files,
    source_record,
    source_sha256,
    text_splits,
)
from jaxnn.errors import UserError

GRAD_CASES = {}  # file readers produce arrays: nothing is differentiable

SPECIES = ("emu", "cat", "dog")


def _write_csv(path, n=60, label=lambda i: SPECIES[i % 3]):
    """Columns ``species`` (first), ``a`` = row index, ``b`` = 2 * index."""
    rows = "".join(f"{label(i)},{i},{2 * i}\n" for i in range(n))
    path.write_text("species,a,b\n" + rows)
    return path


def _all(splits):
    """Train, val and test datasets, unsealing the test set."""
    return splits.train, splits.val, splits.test.unseal("test")


# ---- specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist1d", "synthetic:moons", "tfds:mnist", "pydoc_text"])
def test_load_source_returns_none_for_names_that_are_not_file_sources(name):
    assert load_source(name) is None


def test_resolve_spec_maps_bare_paths_by_suffix_and_directories_by_content(tmp_path):
    (tmp_path / "arrays").mkdir()
    np.save(tmp_path / "arrays" / "x.npy", np.zeros((2, 1)))
    (tmp_path / "pics").mkdir()
    assert resolve_spec("my.csv") == "csv:my.csv"
    assert resolve_spec("d/my.NPZ") == "npz:d/my.NPZ"
    assert resolve_spec("book.txt") == "text:book.txt"
    assert resolve_spec(str(tmp_path / "arrays")) == f"npy:{tmp_path / 'arrays'}"
    assert resolve_spec(str(tmp_path / "pics")) == f"images:{tmp_path / 'pics'}"
    assert resolve_spec("csv:x.txt") == "csv:x.txt"
    assert resolve_spec("mnist1d") == "mnist1d"


def test_unknown_options_are_refused_with_the_valid_ones_listed(tmp_path):
    path = _write_csv(tmp_path / "d.csv")
    with pytest.raises(UserError, match=r"unknown option\(s\) \['seq_len'\].*'target'"):
        load_source(f"csv:{path}", seq_len=3)


# ---- csv ------------------------------------------------------------------------------------


def test_csv_with_string_labels_maps_them_to_sorted_ids(tmp_path):
    path = _write_csv(tmp_path / "animals.csv")
    splits = load_source(f"csv:{path}", target="species")
    info = splits.info
    assert info.task == "classification" and info.class_names == ("cat", "dog", "emu")
    assert info.num_classes == 3 and info.input_shape == (2,)
    assert str(path) in info.description
    for ds in _all(splits):
        index = ds.x[:, 0].astype(int)  # column a is the row index
        want = [info.class_names.index(SPECIES[i % 3]) for i in index]
        assert ds.y.dtype == np.int32 and ds.y.tolist() == want
        assert np.array_equal(ds.x[:, 1], 2 * ds.x[:, 0])


def test_csv_target_defaults_to_the_last_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(40)))
    splits = load_source(f"csv:{path}")
    assert splits.info.class_names == ("0", "1") and splits.info.input_shape == (2,)
    assert np.array_equal(splits.train.y, splits.train.x[:, 0].astype(int) % 2)


def test_csv_split_is_seeded_stratified_and_seals_the_test_set(tmp_path):
    path = _write_csv(tmp_path / "d.csv", n=90)
    spec = f"csv:{path}"
    a, b = load_source(spec, seed=0, target="species"), load_source(spec, seed=1, target="species")
    assert isinstance(a.test, SealedDataset) and a.test.unseal_count == 0
    assert (len(a.train), len(a.val), len(a.test)) == (65, 7, 18)
    assert np.bincount(a.test.unseal().y).tolist() == [6, 6, 6]  # stratified
    assert np.array_equal(a.test.unseal().x, b.test.unseal().x)  # seed moves val only
    assert not np.array_equal(a.val.x, b.val.x)
    again = load_source(spec, seed=0, target="species")
    assert np.array_equal(again.val.x, a.val.x)
    everything = np.concatenate([d.x[:, 0] for d in _all(a)])
    assert sorted(everything.tolist()) == list(range(90))


def test_csv_regression_gives_float_targets_of_one_output(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("x,y\n" + "".join(f"{i},{3 * i}\n" for i in range(30)))
    splits = load_source(f"csv:{path}", task="regression")
    assert splits.info.task == "regression" and splits.info.num_classes == 1
    assert splits.train.y.dtype == np.float32 and splits.train.y.shape[1] == 1
    np.testing.assert_array_equal(splits.train.y[:, 0], 3 * splits.train.x[:, 0])


def test_csv_fractional_targets_mean_regression_without_a_task(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("x,y\n" + "".join(f"{i},{i + 0.5}\n" for i in range(30)))
    assert load_source(f"csv:{path}").info.task == "regression"


def test_tab_separated_file_reads_with_delimiter_tab(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("a\tb\tlabel\n" + "".join(f"{i}\t{i + 1}\tk{i % 2}\n" for i in range(20)))
    splits = load_source(f"csv:{path}", delimiter="tab")
    assert splits.info.class_names == ("k0", "k1")
    assert np.array_equal(splits.train.x[:, 1], splits.train.x[:, 0] + 1)


def test_integer_targets_with_too_many_values_ask_for_a_task(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("rooms,price\n" + "".join(f"{i % 7},{1000 + i}\n" for i in range(1200)))
    with pytest.raises(UserError, match="1200 distinct values; pass task=regression"):
        load_source(f"csv:{path}")
    assert load_source(f"csv:{path}", task="regression").info.task == "regression"


def test_csv_integer_target_by_position(tmp_path):
    path = _write_csv(tmp_path / "d.csv")
    splits = load_source(f"csv:{path}", target=0)
    assert splits.info.class_names == ("cat", "dog", "emu")


# ---- csv: bad files -------------------------------------------------------------------------


def _csv_error(tmp_path, text, **options):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        load_source(f"csv:{path}", **options)
    assert str(path) in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("kind", ["csv", "npz", "text"])
def test_missing_or_empty_file_is_named_in_the_error(tmp_path, kind):
    path = tmp_path / f"data.{kind}"
    with pytest.raises(UserError, match=rf"{kind}:.*data\.{kind}: file not found"):
        load_source(f"{kind}:{path}")
    path.write_bytes(b"")
    with pytest.raises(UserError, match=rf"{kind}:.*data\.{kind}: the file is empty"):
        load_source(f"{kind}:{path}")


def test_csv_with_windows_line_endings_and_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "win.csv"
    rows = "".join(f"{i},{i % 2 and 'yes' or 'no'}\r\n" for i in range(20))
    path.write_bytes(("\ufeffa,answer\r\n" + rows).encode("utf-8"))
    splits = load_source(f"csv:{path}")
    assert splits.info.class_names == ("no", "yes")
    assert csv_columns(path) == (("a",), "answer")


def test_csv_with_header_only_is_refused(tmp_path):
    assert "no data rows" in _csv_error(tmp_path, "a,b,label\n")


def test_csv_without_header_row_is_refused(tmp_path):
    assert "expected a header row" in _csv_error(tmp_path, "1,2,0\n3,4,1\n")


def test_csv_with_a_repeated_column_name_is_refused(tmp_path):
    assert "names the column(s) ['a'] more than once" in _csv_error(tmp_path, "a,a,y\n1,2,0\n")


def test_ragged_csv_row_is_named_by_line_number(tmp_path):
    text = "a,b,label\n1,2,0\n3,4,1\n5,6\n7,8,1\n"
    assert "line 4 has 2 fields; expected 3" in _csv_error(tmp_path, text)
    text = "a,b,label\n1,2,cat\n3,4,dog,9\n"
    assert "line 3 has 4 fields; expected 3" in _csv_error(tmp_path, text)


def test_non_numeric_feature_column_is_named_with_its_line(tmp_path):
    text = "a,b,label\n" + "".join(f"{i},{i},x\n" for i in range(5)) + "5,five,y\n"
    msg = _csv_error(tmp_path, text)
    assert "line 7, column 'b': expected a number, got 'five'" in msg


def test_csv_nan_is_a_missing_value_and_infinity_is_refused_with_its_line(tmp_path):
    msg = _csv_error(tmp_path, "a,label\n1,0\nnan,1\n2,0\n")
    assert "line 3, column 'a' is missing a value (1 missing cell(s) in 1 row(s))" in msg
    assert "missing=drop" in msg and "target=" not in msg
    msg = _csv_error(tmp_path, "a,label\n1,0\n3,1\n2,inf\n")
    assert "line 4, column 'label': expected a finite number, got 'inf'" in msg


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"target": "weight"}, r"target column 'weight' not found; expected one of \['a'"),
        ({"task": "ranking"}, "expected task one of"),
        ({"val_fraction": 1.5}, r"val_fraction to be a number in \(0, 1\)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "< 1"),
        ({"delimiter": ";;"}, "one character"),
        ({"task": "regression", "target": "label"}, "numeric targets for task=regression"),
    ],
)
def test_bad_csv_option_values_are_refused(tmp_path, options, match):
    text = "a,b,label\n" + "".join(f"{i},{i},{SPECIES[i % 3]}\n" for i in range(20))
    assert re.search(match, _csv_error(tmp_path, text, **options))


# ---- npz / npy ------------------------------------------------------------------------------


def _arrays(n=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (np.arange(n) % 2).astype(np.int64)


def test_npz_with_x_and_y_is_split_like_the_built_ins(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    splits = load_source(f"npz:{tmp_path / 'd.npz'}")
    assert splits.info.task == "classification" and splits.info.num_classes == 2
    assert (len(splits.train), len(splits.val), len(splits.test)) == (36, 4, 10)
    got = np.concatenate([d.x for d in _all(splits)])
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, x.tolist()))
    for d in _all(splits):  # each example keeps its own label
        rows = [int(np.flatnonzero((x == r).all(1))[0]) for r in d.x]
        assert np.array_equal(d.y, y[rows])


def test_npz_with_splits_uses_them_as_given(tmp_path):
    (xt, yt), (xv, yv), (xs, ys) = _arrays(40, 0), _arrays(6, 1), _arrays(8, 2)
    path = tmp_path / "s.npz"
    np.savez(path, x_train=xt, y_train=yt, x_val=xv, y_val=yv, x_test=xs, y_test=ys)
    splits = load_source(f"npz:{path}")
    assert np.array_equal(splits.train.x, xt) and np.array_equal(splits.val.x, xv)
    assert np.array_equal(splits.test.unseal().x, xs) and np.array_equal(splits.test.unseal().y, ys)


def test_npz_with_train_and_test_only_carves_validation_from_train(tmp_path):
    (xt, yt), (xs, ys) = _arrays(40, 0), _arrays(8, 2)
    path = tmp_path / "s.npz"
    np.savez(path, x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    splits = load_source(f"npz:{path}", val_fraction=0.25)
    assert (len(splits.train), len(splits.val)) == (30, 10)
    assert np.array_equal(splits.test.unseal().x, xs)


def test_npz_float_targets_mean_regression_and_string_labels_classify(tmp_path):
    x, _ = _arrays(30)
    np.savez(tmp_path / "r.npz", x=x, y=x.sum(1))
    reg = load_source(f"npz:{tmp_path / 'r.npz'}")
    assert reg.info.task == "regression" and reg.train.y.shape == (len(reg.train), 1)
    np.savez(tmp_path / "c.npz", x=x, y=np.array(["no", "yes"] * 15))
    cls = load_source(f"npz:{tmp_path / 'c.npz'}")
    assert cls.info.class_names == ("no", "yes")


def test_npz_without_the_expected_arrays_names_the_file_and_what_it_holds(tmp_path):
    x, y = _arrays()
    path = tmp_path / "d.npz"
    np.savez(path, inputs=x, y=y)
    with pytest.raises(UserError, match=r"d\.npz: expected arrays x and y.*\['inputs', 'y'\]"):
        load_source(f"npz:{path}")


def test_npz_with_half_a_split_names_the_missing_array(tmp_path):
    (xt, yt), (xv, _) = _arrays(40, 0), _arrays(6, 1)
    np.savez(tmp_path / "d.npz", x_train=xt, y_train=yt, x_val=xv)
    with pytest.raises(UserError, match=r"d\.npz: expected both x_val and y_val, got only x_val"):
        load_source(f"npz:{tmp_path / 'd.npz'}")


def test_npz_column_labels_of_shape_n_by_1_classify(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y[:, None])
    splits = load_source(f"npz:{tmp_path / 'd.npz'}")
    assert splits.info.num_classes == 2 and splits.train.y.ndim == 1


def test_npz_with_mismatched_lengths_is_refused(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y[:-1])
    with pytest.raises(UserError, match=r"d\.npz: expected x .* same N"):
        load_source(f"npz:{tmp_path / 'd.npz'}")


def test_npy_directory_reads_memory_mapped_arrays(tmp_path):
    x, y = _arrays()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    splits = load_source(f"npy:{tmp_path}")
    want = load_source(f"npz:{_savez(tmp_path / 'same.npz', x=x, y=y)}")
    assert np.array_equal(splits.train.x, want.train.x)
    assert np.array_equal(splits.test.unseal().y, want.test.unseal().y)


def _savez(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npy_missing_directory_is_named(tmp_path):
    with pytest.raises(UserError, match=r"npy:.*absent: file not found"):
        load_source(f"npy:{tmp_path / 'absent'}")


# ---- text -----------------------------------------------------------------------------------

TEXT = "It was the best of times, it was the worst of times; naïve café.\n" * 40


def test_text_file_becomes_contiguous_language_model_windows(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(TEXT, encoding="utf-8")
    splits = load_source(f"text:{path}", seq_len=16)
    info = splits.info
    assert info.task == "language_model" and info.input_shape == (16,)
    assert str(path) in info.description
    tok = info.tokenizer
    first = tok.decode(np.concatenate([splits.train.x[0], splits.train.x[1]]))
    assert TEXT.startswith(first)
    end_of_train = int(len(TEXT) * 0.8)
    val_start = tok.decode(splits.val.x[0])
    assert TEXT[end_of_train:].startswith(val_start)
    assert np.array_equal(splits.train.y[:, :-1], splits.train.x[:, 1:])


def test_text_bpe_tokens_decode_back_to_the_file(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(TEXT, encoding="utf-8")
    splits = load_source(f"text:{path}", seq_len=8, tokenizer="bpe", vocab_size=300)
    tok = splits.info.tokenizer
    assert 256 < tok.vocab_size <= 300
    assert TEXT.startswith(tok.decode(splits.train.x[0]))


def test_text_splits_follow_the_pydoc_text_recipe():
    want = load("pydoc_text", seq_len=64)
    got = text_splits(pydoc_corpus(), name="t", description="d", seq_len=64)
    assert got.info.tokenizer.chars == want.info.tokenizer.chars
    for a, b in zip(_all(got), _all(want), strict=True):
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)


def test_text_shorter_than_one_window_is_refused(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("just a few words, not enough for the val part\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"short\.txt: the val part .* seq_len \+ 1 = 33"):
        load_source(f"text:{path}", seq_len=32)


def test_text_that_is_not_utf8_is_refused_with_its_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("line one\nline two café\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.txt: line 2 .* not UTF-8"):
        load_source(f"text:{path}")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"tokenizer": "word"}, r"expected tokenizer one of \['char', 'bpe'\]"),
        ({"seq_len": 0}, "seq_len to be a positive integer, got 0"),
        ({"tokenizer": "bpe", "vocab_size": 100}, "vocab_size >= 256"),
    ],
)
def test_bad_text_option_values_are_refused(tmp_path, options, match):
    path = tmp_path / "book.txt"
    path.write_text(TEXT, encoding="utf-8")
    with pytest.raises(UserError, match=match):
        load_source(f"text:{path}", **options)


# ---- images ---------------------------------------------------------------------------------

CLASSES = ("circle", "line", "square")


def _image_folder(root, per_class=5, size=(6, 5), mode="L", fmt="png"):
    """Class ``k`` images are filled with gray level ``40 * (k + 1) + i`` (i = image index)."""
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            value = 40 * (k + 1) + i
            color = value if mode == "L" else (value, 0, 255 - value)
            Image.new(mode, (size[1], size[0]), color).save(root / name / f"{i}.{fmt}")
    return root


def test_image_folder_gives_nhwc_floats_in_unit_range_labelled_by_folder(tmp_path):
    root = _image_folder(tmp_path / "shapes", per_class=10)
    (root / "README.md").write_text("not a class")
    splits = load_source(f"images:{root}")
    info = splits.info
    assert info.class_names == CLASSES and info.modality == "image"
    assert info.input_shape == (6, 5, 1)
    for ds in _all(splits):
        assert ds.x.dtype == np.float32 and 0.0 <= ds.x.min() and ds.x.max() <= 1.0
        level = np.rint(ds.x[:, 0, 0, 0] * 255).astype(int)
        assert np.array_equal(ds.y, level // 40 - 1)
        assert (ds.x == ds.x[:, :1, :1, :]).all()  # every image is one flat gray level


def test_image_folder_resizes_and_converts_to_rgb_on_request(tmp_path):
    root = _image_folder(tmp_path / "shapes", fmt="jpg", mode="RGB")
    splits = load_source(f"folder:{root}", size="4x3", mode="rgb")
    assert splits.info.input_shape == (4, 3, 3)
    gray = load_source(f"images:{root}", size=(4, 3), mode="gray")
    assert gray.info.input_shape == (4, 3, 1)


def test_rgb_images_load_as_three_channels_by_default(tmp_path):
    root = _image_folder(tmp_path / "shapes", mode="RGB")
    assert load_source(f"images:{root}").info.input_shape == (6, 5, 3)


def test_class_folder_without_images_is_named(tmp_path):
    root = _image_folder(tmp_path / "shapes")
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match=r"class folder .*empty holds no images"):
        load_source(f"images:{root}")


def test_unreadable_image_is_named_by_its_path(tmp_path):
    root = _image_folder(tmp_path / "shapes")
    (root / "line" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match=r"cannot read image .*line/broken\.png"):
        load_source(f"images:{root}")


def test_images_of_different_sizes_need_a_size_option(tmp_path):
    root = _image_folder(tmp_path / "shapes")
    Image.new("L", (9, 9), 7).save(root / "square" / "big.png")
    with pytest.raises(UserError, match=r"big\.png is 9x9 .* pass size=HxW"):
        load_source(f"images:{root}")
    assert load_source(f"images:{root}", size="6x5").info.input_shape == (6, 5, 1)


@pytest.mark.parametrize("size", ["big", "0x4", (3,), "4x4x4"])
def test_bad_image_size_is_refused(tmp_path, size):
    root = _image_folder(tmp_path / "shapes")
    with pytest.raises(UserError, match="expected size=HxW"):
        load_source(f"images:{root}", size=size)


def test_directory_without_class_folders_is_refused(tmp_path):
    with pytest.raises(UserError, match="no class subfolders"):
        load_source(f"images:{tmp_path}")


# ---- fingerprints ---------------------------------------------------------------------------


def test_source_sha256_of_a_file_is_the_sha256_of_its_bytes(tmp_path):
    path = _write_csv(tmp_path / "d.csv")
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    assert source_sha256(f"csv:{path}") == want
    path.write_text(path.read_text().replace("emu", "owl"))
    assert source_sha256(f"csv:{path}") != want


def test_source_sha256_of_an_image_folder_changes_with_one_image(tmp_path):
    root = _image_folder(tmp_path / "shapes")
    before = source_sha256(f"images:{root}")
    assert len(source_files(f"images:{root}")) == 15
    assert source_sha256(f"images:{root}") == before
    Image.new("L", (5, 6), 3).save(root / "line" / "0.png")
    assert source_sha256(f"images:{root}") != before


def test_source_sha256_of_a_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        source_sha256(f"text:{tmp_path / 'gone.txt'}")


# ---- inputs for prediction ------------------------------------------------------------------


def test_csv_columns_name_the_features_in_file_order_and_the_target(tmp_path):
    path = _write_csv(tmp_path / "d.csv")
    assert csv_columns(path) == (("species", "a"), "b")
    assert csv_columns(path, target="species") == (("a", "b"), "species")


def test_read_csv_features_picks_named_columns_in_training_order(tmp_path):
    train = _write_csv(tmp_path / "train.csv")
    features, _ = csv_columns(train, target="species")
    new = tmp_path / "new.csv"
    new.write_text("id,b,a\n7,10,5\n8,4,2\n")  # reordered, no target, an extra column
    x = read_csv_features(new, features)
    assert x.dtype == np.float32 and x.tolist() == [[5.0, 10.0], [2.0, 4.0]]
    only = tmp_path / "only.csv"
    only.write_text("a\n1.5\n")
    assert read_csv_features(only, ["a"]).tolist() == [[1.5]]


def test_read_csv_features_names_missing_columns_and_bad_cells(tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("a,c\n1,2\n")
    with pytest.raises(UserError, match=r"new\.csv: expected the feature columns.*missing \['b'\]"):
        read_csv_features(new, ["a", "b"])
    new.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(UserError, match=r"new\.csv: line 3, column 'b': expected a number"):
        read_csv_features(new, ["a", "b"])


def test_read_images_reads_a_flat_folder_in_name_order_as_training_did(tmp_path):
    root = _image_folder(tmp_path / "shapes")
    trained = load_source(f"images:{root}", size="4x4", mode="rgb")
    x, files = read_images(root / "line", size=(4, 4), mode="rgb")
    assert [f.name for f in files] == [f"{i}.png" for i in range(5)]
    assert x.shape == (5, *trained.info.input_shape) and x.dtype == np.float32
    level = np.rint(x[:, 0, 0, 0] * 255).astype(int)
    assert level.tolist() == [80 + i for i in range(5)]
    one, _ = read_images(files[2], size="4x4", mode="gray")
    assert one.shape == (1, 4, 4, 1)


def test_read_images_names_an_unreadable_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"cannot read image .*bad\.jpg"):
        read_images(tmp_path, size=(4, 4), mode="gray")


def test_source_record_keeps_what_prediction_needs_after_the_file_is_gone(tmp_path):
    path = _write_csv(tmp_path / "d.csv")
    record = source_record(f"csv:{path}", target="species", task="classification")
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["path"] == str(path.resolve()) and record["kind"] == "csv"
    assert record["options"] == {"target": "species", "task": "classification"}
    assert record["feature_columns"] == ["a", "b"] and record["target_column"] == "species"
    path.unlink()
    new = tmp_path / "new.csv"
    new.write_text("b,a\n4,2\n")
    assert read_csv_features(new, record["feature_columns"]).tolist() == [[2.0, 4.0]]
