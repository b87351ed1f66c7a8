"""Every input file a user hands jaxnn is checked (issue 19.4): CSV as RFC 4180 writes it, .npy
and .npz arrays, images of every mode and bit depth, decompression bombs, hidden entries, missing
values, and the names of built-in datasets. Each file is written by the test itself."""

from __future__ import annotations

import csv
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from jaxnn.data import arrays, images, load
from jaxnn.data.sources import read_csv_inputs, read_images, resolve_spec
from jaxnn.errors import UserError

GRAD_CASES = {}  # file readers produce arrays: nothing is differentiable
HYPOTHESIS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LABEL_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00")


def _error(spec, **options) -> str:
    with pytest.raises(UserError) as err:
        load(spec, **options)
    return str(err.value)


def _table(n=30):
    """Rows ``(a, b, label)``: a = index, b = 2 * index, labels cycling over three names."""
    return [(i, 2 * i, ("emu", "cat", "dog")[i % 3]) for i in range(n)]


def _write(path, rows, header=("a", "b", "label"), **kwargs):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, **kwargs)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _all_x(splits):
    parts = (splits.train, splits.val, splits.test.unseal("test"))
    return np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts])


# ---- CSV ------------------------------------------------------------------------------------


def test_a_quoted_field_with_commas_and_a_line_break_is_valid(tmp_path):
    rows = [(i, 2 * i, "big, hairy\ncat" if i % 2 else "dog") for i in range(30)]
    path = _write(tmp_path / "q.csv", rows, quoting=csv.QUOTE_NONNUMERIC)
    splits = load(f"csv:{path}")
    assert splits.info.class_names == ("big, hairy\ncat", "dog")
    x, _ = _all_x(splits)
    assert sorted(x[:, 0].tolist()) == list(range(30))


def test_a_bad_quote_is_reported_on_its_real_line(tmp_path):
    text = "a,b,label\n1,2,x\n3,4,y\n" + '5,6,"bad"z\n' + "7,8,x\n"
    path = tmp_path / "bad.csv"
    path.write_text(text)
    assert "line 4: a quoted field must end at a delimiter" in _error(f"csv:{path}")
    path.write_text('a,b,label\n1,2,x\n3,4,"never closed\n5,6,x\n7,8,y\n')
    assert "line 3: a quoted field that opens in this record is never closed" in _error(
        f"csv:{path}"
    )


def test_a_record_after_a_quoted_line_break_is_named_by_the_line_it_starts_on(tmp_path):
    text = 'a,b,label\n1,2,"two\nlines"\n3,4,x\n5,six,y\n'
    path = tmp_path / "ml.csv"
    path.write_text(text)
    assert "line 5, column 'b': expected a number, got 'six'" in _error(f"csv:{path}")


def test_a_bad_utf8_byte_is_reported_on_its_own_line(tmp_path):
    path = tmp_path / "latin.csv"
    lines = [b"a,b,label"] + [f"{i},{i},x".encode() for i in range(5)] + [b"6,6,caf\xe9"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    msg = _error(f"csv:{path}")
    assert "line 7, byte 8 (b'\\xe9') is not UTF-8" in msg


def test_the_finite_1e308_is_called_beyond_float32_not_nan(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,label\n1,0\n1e308,1\n2,0\n")
    msg = _error(f"csv:{path}")
    assert "line 3, column 'a': 1e308 is finite but beyond float32's range" in msg
    assert "NaN" not in msg


def test_a_trailing_comma_is_reported_not_taken_as_an_empty_target(tmp_path):
    path = tmp_path / "trail.csv"
    path.write_text("a,b,label,\n" + "".join(f"{i},{i},x{i % 2},\n" for i in range(20)))
    assert "line 1, column 4 has no name; a trailing ',' at the end of line 1" in _error(
        f"csv:{path}"
    )
    path.write_text("a,b,label\n" + "".join(f"{i},{i},{i % 2},\n" for i in range(20)))
    assert "line 2 has 4 fields; expected 3" in _error(f"csv:{path}")
    assert "a trailing delimiter makes an empty last field" in _error(f"csv:{path}")


def test_missing_values_error_by_default_naming_the_cell_without_target_hint(tmp_path):
    rows = [(i, "" if i == 4 else 2 * i, ("no", "yes")[i % 2]) for i in range(40)]
    path = _write(tmp_path / "gap.csv", rows)
    msg = _error(f"csv:{path}", target="label")
    assert "line 6, column 'b' is missing a value (1 missing cell(s) in 1 row(s))" in msg
    assert "missing=drop" in msg and "missing=mean" in msg and "target=NAME" not in msg


def test_missing_drop_skips_the_rows_and_reports_the_counts(tmp_path):
    rows = [(i, "NA" if i in (4, 9) else 2 * i, ("no", "yes")[i % 2]) for i in range(40)]
    path = _write(tmp_path / "gap.csv", rows)
    splits = load(f"csv:{path}", missing="drop")
    x, _ = _all_x(splits)
    assert len(x) == 38 and not {4, 9} & set(x[:, 0].astype(int).tolist())
    assert splits.info.missing == {
        "policy": "drop", "cells": 2, "rows": 2, "dropped_rows": 2, "fill": None,
    }  # fmt: skip
    assert len(splits.info.notes) == 1 and "2 row(s) dropped" in splits.info.notes[0]


def test_missing_mean_fills_with_the_training_split_mean_only(tmp_path):
    rows = [(i, "" if i % 10 == 3 else float(i), ("no", "yes")[i % 2]) for i in range(60)]
    path = _write(tmp_path / "gap.csv", rows)
    splits = load(f"csv:{path}", missing="mean")
    fill = splits.info.missing["fill"]
    train = splits.train.x
    known = train[:, 0] % 10 != 3  # column a is the row index: the filled rows are known
    assert np.isclose(fill["b"], train[known, 1].mean())
    assert np.allclose(train[~known, 1], np.float32(fill["b"]))
    test = splits.test.unseal("check")
    assert np.allclose(test.x[test.x[:, 0] % 10 == 3, 1], np.float32(fill["b"]))
    assert splits.info.missing["cells"] == 6 and splits.info.missing["dropped_rows"] == 0


def test_prediction_reads_columns_by_name_and_fills_with_the_recorded_means(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("b,extra,a\n1,z,2\n,z,4\n5,z,6\n")
    found = read_csv_inputs(path, ["a", "b"], missing="mean", fill={"a": 0.0, "b": 9.5})
    assert found.x.tolist() == [[2, 1], [4, 9.5], [6, 5]] and found.rows.tolist() == [0, 1, 2]
    found = read_csv_inputs(path, ["a", "b"], missing="drop")
    assert found.x.tolist() == [[2, 1], [6, 5]] and found.rows.tolist() == [0, 2]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.tuples(
            st.floats(-1e30, 1e30, allow_nan=False).map(lambda v: float(np.float32(v))),
            st.text(LABEL_CHARS, max_size=8).map(
                lambda s: "c" + s  # a label, never a number or a missing value
            ),
        ),
        min_size=12, max_size=30,
    ),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
)  # fmt: skip
def test_any_csv_written_by_pythons_csv_module_round_trips(tmp_path, values, quoting):
    rows = [(repr(float(v)), name) for v, name in values]
    path = _write(tmp_path / "h.csv", rows, header=("value", "name"), quoting=quoting)
    found = read_csv_inputs(path, ["value"], target="name")
    assert found.x[:, 0].tolist() == [np.float32(v) for v, _ in values]
    assert found.y.tolist() == [name.strip() for _, name in values]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    table=st.lists(
        st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=3, max_size=3),
        min_size=2, max_size=20,
    ),
    gap=st.booleans(),
)  # fmt: skip
def test_the_c_parser_and_the_exact_parser_read_the_same_numbers(tmp_path, table, gap):
    path = _write(tmp_path / "n.csv", [[repr(v) for v in row] for row in table], ("a", "b", "c"))
    fast = read_csv_inputs(path, ["a", "b", "c"]).x
    if gap:  # one quoted cell sends the file to the exact parser
        rows = [[repr(v) for v in row] for row in table]
        path = _write(tmp_path / "n.csv", rows, ("a", "b", "c"), quoting=csv.QUOTE_ALL)
    exact = read_csv_inputs(path, ["a", "b", "c"]).x
    assert fast.dtype == exact.dtype == np.float32
    assert np.array_equal(fast, exact)


# ---- npy / npz ------------------------------------------------------------------------------


def test_an_object_array_is_refused_never_unpickled(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("untouched")
    x = np.empty((20, 2), dtype=object)
    x[:] = 1.0
    np.savez(tmp_path / "obj.npz", x=x, y=np.arange(20) % 2)
    msg = _error(f"npz:{tmp_path / 'obj.npz'}")
    assert "holds Python objects" in msg and "never unpickles" in msg
    assert sentinel.read_text() == "untouched"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"PK\x03\x04 not really a zip", "cannot read it as NumPy arrays"),
        (b"\x93NUMPY garbage", "cannot read it as NumPy arrays"),
        (b"plain text, no archive", "holds Python objects"),  # np.load takes it for a pickle
    ],
)
def test_a_garbage_archive_gives_one_line_naming_it(tmp_path, data, match):
    (tmp_path / "g.npz").write_bytes(data)
    msg = _error(f"npz:{tmp_path / 'g.npz'}")
    assert "g.npz" in msg and match in msg


def test_a_truncated_npz_is_refused(tmp_path):
    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.ones((50, 4), np.float32), y=np.arange(50) % 2)
    (tmp_path / "t.npz").write_bytes(buf.getvalue()[:-40])
    assert "t.npz" in _error(f"npz:{tmp_path / 't.npz'}")


def test_a_lone_npy_named_npz_is_refused(tmp_path):
    with open(tmp_path / "one.npz", "wb") as f:
        np.save(f, np.ones((4, 2)))
    assert "holds one array of shape (4, 2), not an .npz archive" in _error(
        f"npz:{tmp_path / 'one.npz'}"
    )


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.ones((20, 2), np.complex64), "complex numbers"),
        (np.array(["a"] * 40).reshape(20, 2), "expected x to hold numbers, got strings"),
        (np.full((20, 2), 1e300), "beyond float32's range"),
    ],
)
def test_features_of_the_wrong_dtype_or_range_are_refused(tmp_path, x, match):
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 2)
    assert match in _error(f"npz:{tmp_path / 'd.npz'}")


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.array(3.0), r"expected an array of shape \(N, 4\) with N >= 1, got shape \(\)"),
        (np.ones((5, 3), np.float32), r"expected an array of shape \(N, 4\).*got shape \(5, 3\)"),
        (np.ones(4, np.float32), r"got shape \(4,\) \(one example: add a leading axis"),
        (np.array([[1, 2, np.nan, 4]], np.float32), "NaN or infinity in 1 example"),
        (np.array([[1, 2, np.inf, 4]]), "NaN or infinity"),
        (np.ones((2, 4), bool).astype("datetime64[s]"), "datetimes"),
    ],
)
def test_prediction_inputs_are_checked_with_expected_and_got(tmp_path, x, match):
    np.save(tmp_path / "in.npy", x)
    with pytest.raises(UserError, match=match):
        arrays.read_inputs(tmp_path / "in.npy", (4,))


def test_prediction_takes_x_from_an_npz(tmp_path):
    np.savez(tmp_path / "in.npz", x=np.ones((3, 4)), other=np.zeros(2))
    assert arrays.read_inputs(tmp_path / "in.npz", (4,)).shape == (3, 4)
    np.savez(tmp_path / "two.npz", a=np.ones((3, 4)), b=np.zeros(2))
    with pytest.raises(UserError, match=r"expected an array named x \(or just one array\)"):
        arrays.read_inputs(tmp_path / "two.npz", (4,))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    dtype=st.sampled_from(["float32", "float64", "float16", "int8", "int32", "uint16", "bool"]),
    n=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_any_array_saved_with_np_save_of_a_supported_dtype_loads_identically(
    tmp_path, dtype, n, seed
):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 3)) * 100).astype(dtype)
    np.save(tmp_path / "a.npy", x)
    got = arrays.read_inputs(tmp_path / "a.npy", (3,))
    assert got.dtype == np.float32 and np.array_equal(got, x.astype(np.float32))


# ---- images ---------------------------------------------------------------------------------


def _two_classes(root, make):
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            make(i, name).save(root / name / f"{i}.png")
    return root


def test_16_bit_pngs_are_scaled_by_65535_not_clipped(tmp_path):
    def make(i, name):
        return Image.fromarray(np.full((4, 4), 1000 * i + (30000 if name == "b" else 0), np.uint16))

    splits = load(f"images:{_two_classes(tmp_path / 'deep', make)}")
    x, y = _all_x(splits)
    assert splits.info.input_shape == (4, 4, 1)
    expected = (1000 * np.arange(6)[None] + np.array([[0], [30000]])) / 65535.0
    got = sorted(float(v) for v in x[:, 0, 0, 0])
    assert np.allclose(got, sorted(expected.ravel().tolist()), atol=1e-6)
    assert x.max() < 1.0 and x.max() > 0.5  # 35000 / 65535, not clipped at 255


@pytest.mark.parametrize(
    ("mode", "array", "want"),
    [
        ("L", np.full((4, 4), 51, np.uint8), 0.2),
        ("LA", np.dstack([np.full((4, 4), 51, np.uint8), np.zeros((4, 4), np.uint8)]), 0.2),
        ("1", np.ones((4, 4), bool), 1.0),
        ("P", None, None),
    ],
)
def test_gray_palette_and_alpha_modes_are_converted(tmp_path, mode, array, want):
    path = tmp_path / "im.png"
    if mode == "P":
        Image.fromarray(np.full((4, 4, 3), (255, 0, 0), np.uint8)).convert("P").save(path)
        x, _ = read_images(path, size=(4, 4), mode="rgb")
        assert np.allclose(x[0, 0, 0], [1.0, 0.0, 0.0])
        return
    Image.fromarray(array, mode if mode != "1" else None).save(path)
    assert Image.open(path).mode == mode
    x, _ = read_images(path, size=(4, 4), mode="gray")
    assert x.shape == (1, 4, 4, 1) and np.allclose(x, want)


def test_rgba_drops_alpha_and_16_bit_gray_repeats_for_rgb(tmp_path):
    rgba = np.dstack([np.full((3, 3), v, np.uint8) for v in (255, 0, 0, 10)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    x, _ = read_images(tmp_path / "c.png", size=(3, 3), mode="rgb")
    assert np.allclose(x[0, 1, 1], [1, 0, 0])
    Image.fromarray(np.full((3, 3), 65535, np.uint16)).save(tmp_path / "g.png")
    x, _ = read_images(tmp_path / "g.png", size=(6, 6), mode="rgb")
    assert x.shape == (1, 6, 6, 3) and np.allclose(x, 1.0)


def test_float_images_are_refused_clearly(tmp_path):
    path = tmp_path / "f.png"
    Image.fromarray(np.ones((3, 3), np.float32)).save(tmp_path / "f.tiff")
    path.write_bytes((tmp_path / "f.tiff").read_bytes())  # a TIFF under a .png name
    with pytest.raises(UserError, match=r"32-bit floating-point pixels \(mode F\)"):
        read_images(path, size=(3, 3), mode="gray")


def _png_header_only(path, width, height):
    """A PNG that claims ``width x height`` pixels but holds almost no data."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [9000, 20000])  # above jaxnn's limit; above Pillow's error
def test_a_decompression_bomb_is_refused_in_one_line(tmp_path, side):
    assert side * side > images.MAX_IMAGE_PIXELS
    path = _png_header_only(tmp_path / "bomb.png", side, side)
    with pytest.raises(UserError, match=r"bomb\.png .*above the limit of 67,108,864 pixels"):
        read_images(path, size=(4, 4), mode="gray")


def test_hidden_and_stray_entries_are_named_in_one_note(tmp_path):
    root = _two_classes(tmp_path / "pics", lambda i, n: Image.new("L", (4, 4), 40 * i))
    (root / ".hidden_class").mkdir()
    Image.new("L", (4, 4)).save(root / ".hidden_class" / "0.png")
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "a" / ".5.png").write_bytes(b"\0")
    (root / "a" / "notes.txt").write_text("x")
    splits = load(f"images:{root}")
    assert splits.info.num_classes == 2 and splits.info.class_names == ("a", "b")
    (note,) = splits.info.notes
    for name in (".DS_Store", ".hidden_class/", "a/.5.png", "a/notes.txt"):
        assert name in note
    assert "skipped 4 entries" in note


# ---- names ----------------------------------------------------------------------------------


def test_a_built_in_name_means_the_built_in_set_even_beside_a_folder_of_that_name(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits" / "one").mkdir(parents=True)
    assert resolve_spec("digits") == "digits"
    assert resolve_spec("./digits") == "images:./digits"
    assert load("digits").info.name == "digits"
    assert "no class subfolders" not in str(load("digits").info.description)


def test_the_bare_built_in_names_are_those_of_the_table_of_sources():
    from jaxnn.data.datasets import SOURCES
    from jaxnn.data.sources import BUILTIN_NAMES

    bare = {s.name for s in SOURCES if s.prefix is None and ":" not in s.name}
    assert set(BUILTIN_NAMES) == bare


def test_a_planted_mnist1d_cache_with_its_own_checksum_is_not_trusted(tmp_path, monkeypatch):
    from jaxnn.data import builtin

    monkeypatch.setenv("JAXNN_CACHE_DIR", str(tmp_path))
    fresh = builtin._mnist1d_arrays.__wrapped__(True)
    (path,) = tmp_path.glob("mnist1d-*.npz")
    planted = (np.zeros_like(fresh[0]), *fresh[1:])
    np.savez(path, x=planted[0], y=planted[1], x_test=planted[2], y_test=planted[3],
             sha256=np.array(builtin._arrays_sha256(planted)))  # fmt: skip
    with pytest.warns(UserWarning, match="failed its checksum; regenerating"):
        again = builtin._mnist1d_arrays.__wrapped__(True)
    assert np.array_equal(again[0], fresh[0]) and not list(tmp_path.glob("*.sha256"))
