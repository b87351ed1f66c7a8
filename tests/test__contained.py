"""Nothing in a run directory is followed through a link, deleted outside it, or written
through a link."""

import os

import pytest

from jaxnn._contained import check_tree, remove_inside, write_replacing
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


def test_write_replacing_replaces_a_link_at_the_path_and_leaves_its_target_alone(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.symlink(victim, tmp_path / "out.bin")
    write_replacing(tmp_path / "out.bin", b"new bytes")
    assert not (tmp_path / "out.bin").is_symlink()
    assert (tmp_path / "out.bin").read_bytes() == b"new bytes"
    assert victim.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "victim.txt"]  # no temp


def test_write_replacing_refuses_a_directory_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match="expected a file name to write, got a directory"):
        write_replacing(tmp_path / "d", b"x")
    with pytest.raises(FileNotFoundError):
        write_replacing(tmp_path / "missing" / "f", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
