"""copy_out: plain files and folders only, never through a link, all or nothing."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path, PurePath

import pytest

from mlmagic.copying import MAX_DEPTH, copy_out
from mlmagic.exceptions import MlmagicError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "model" / "sub").mkdir(parents=True)
    (root / "model" / "a.txt").write_text("a")
    (root / "model" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 5000)
    os.chmod(root / "model" / "a.txt", 0o640 | stat.S_ISUID)
    return root


def test_a_folder_is_copied_with_its_bytes_and_modes_but_no_set_id_bit(tree, tmp_path):
    dest = copy_out(tree, PurePath("model"), tmp_path / "copy")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "a.txt",
        "sub",
        "sub/b.bin",
    ]
    assert (dest / "sub" / "b.bin").read_bytes() == (tree / "model/sub/b.bin").read_bytes()
    assert stat.S_IMODE((dest / "a.txt").stat().st_mode) == 0o640
    assert (dest / "a.txt").stat().st_mtime_ns == (tree / "model/a.txt").stat().st_mtime_ns
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".mlmagic-copy")] == []


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: os.symlink("a.txt", p), "a symbolic link"),
        (lambda p: os.mkfifo(p), "a named pipe"),
        (lambda p: socket.socket(socket.AF_UNIX).bind(str(p)), "a socket"),
    ],
)
def test_anything_but_a_plain_file_or_folder_refuses_the_whole_copy(tree, tmp_path, make, kind):
    make(tree / "model" / "sub" / "zz-special")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "kept.txt").write_text("kept")
    with pytest.raises(MlmagicError, match=f"model/sub/zz-special is {kind}") as info:
        copy_out(tree, PurePath("model"), dest, shown=PurePath(""))
    assert "\n" not in str(info.value)
    # Files before it in the walk were copied into a scratch folder, never into dest.
    assert sorted(p.name for p in dest.iterdir()) == ["kept.txt"]


def test_a_link_on_the_way_down_is_refused(tree, tmp_path):
    os.symlink(tree / "model", tree / "alias")
    with pytest.raises(MlmagicError, match="alias is a symbolic link"):
        copy_out(tree, PurePath("alias/a.txt"), tmp_path / "a.txt", shown=PurePath(""))
    assert not (tmp_path / "a.txt").exists()


def test_a_copy_merges_into_an_existing_folder(tree, tmp_path):
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    (dest / "a.txt").write_text("old")
    (dest / "sub" / "mine.txt").write_text("mine")
    copy_out(tree, PurePath("model"), dest)
    assert (dest / "a.txt").read_text() == "a"
    assert (dest / "sub" / "mine.txt").read_text() == "mine"
    assert (dest / "sub" / "b.bin").is_file()


def test_a_tree_deeper_than_the_limit_is_refused(tmp_path):
    root = tmp_path / "root"
    deep = root.joinpath(*["d"] * (MAX_DEPTH + 2))
    deep.mkdir(parents=True)
    with pytest.raises(MlmagicError, match=f"nested more than {MAX_DEPTH} folders deep"):
        copy_out(root, PurePath("d"), tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_missing_paths_and_destinations_are_one_line(tree, tmp_path):
    with pytest.raises(MlmagicError, match="There is no model/nope.txt"):
        copy_out(tree, PurePath("model/nope.txt"), tmp_path / "x", shown=PurePath(""))
    with pytest.raises(MlmagicError, match="Cannot copy to .*no-such-folder"):
        copy_out(tree, PurePath("model"), tmp_path / "no-such-folder" / "copy")
