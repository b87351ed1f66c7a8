"""Nothing in a run directory is followed through a link or deleted outside it."""

import os

import pytest

from jaxnn._contained import check_tree, remove_inside
from jaxnn.errors import UserError


def test_check_tree_refuses_a_link_anywhere_below_the_root(tmp_path):
    root = tmp_path / "run"
    (root / "a" / "b").mkdir(parents=True)
    check_tree("t", root)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "a" / "b" / "link")
    with pytest.raises(UserError, match="is a symbolic link"):
        check_tree("t", root)


def test_check_tree_refuses_a_file_in_place_of_the_root(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="expected .* to be a directory, got a file"):
        check_tree("t", tmp_path / "f")


def test_remove_inside_never_deletes_through_a_link_or_outside_the_root(tmp_path):
    root, outside = tmp_path / "run", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    os.symlink(outside, root / "link")
    with pytest.raises(UserError, match="refusing to delete"):
        remove_inside("t", root, root / "link")
    with pytest.raises(UserError, match="refusing to delete"):
        remove_inside("t", root, outside)
    assert (outside / "keep.txt").read_text() == "keep"
    (root / "doomed").mkdir()
    remove_inside("t", root, root / "doomed")
    assert not (root / "doomed").exists()
