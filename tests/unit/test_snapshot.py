"""The snapshot of a run's source folder: ignore files, exclusions, links and limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlmagic.exceptions import RunError
from mlmagic.run.snapshot import SnapshotInfo, snapshot


def make_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def copied(dest: Path) -> set[str]:
    return {p.relative_to(dest).as_posix() for p in dest.rglob("*") if not p.is_dir()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "src",
        {
            "train.py": "print('hi')\n",
            "data/train.csv": "a,b\n",
            "data/notes.log": "x\n",
            "pkg/model.py": "\n",
        },
    )


def test_copies_everything_without_an_ignore_file(source: Path, tmp_path: Path) -> None:
    info = snapshot(source, tmp_path / "dest")
    assert copied(tmp_path / "dest") == {
        "train.py",
        "data/train.csv",
        "data/notes.log",
        "pkg/model.py",
    }
    assert info == SnapshotInfo(files=4, bytes=12 + 4 + 2 + 1, ignore_file=None, skipped=[])


@pytest.mark.parametrize(
    ("present", "used"),
    [
        ((".mlignore", ".amlignore", ".gitignore"), ".mlignore"),
        ((".amlignore", ".gitignore"), ".amlignore"),
        ((".gitignore",), ".gitignore"),
    ],
)
def test_the_first_ignore_file_found_is_the_only_one_used(
    source: Path, tmp_path: Path, present: tuple[str, ...], used: str
) -> None:
    patterns = {".mlignore": "*.log\n", ".amlignore": "data/\n", ".gitignore": "pkg/\n"}
    for name in present:
        (source / name).write_text(patterns[name])

    info = snapshot(source, tmp_path / "dest")

    assert info.ignore_file == source / used
    names = copied(tmp_path / "dest")
    assert ("data/notes.log" in names) == (used != ".mlignore" and used != ".amlignore")
    assert ("data/train.csv" in names) == (used != ".amlignore")
    assert ("pkg/model.py" in names) == (used != ".gitignore")
    assert set(present) <= names  # ignore files themselves are part of the source


def test_ignore_files_in_subfolders_are_not_read(source: Path, tmp_path: Path) -> None:
    (source / "data" / ".gitignore").write_text("*\n")
    snapshot(source, tmp_path / "dest")
    assert "data/train.csv" in copied(tmp_path / "dest")


def test_negation_patterns(tmp_path: Path) -> None:
    source = make_tree(
        tmp_path / "src",
        {"a.csv": "", "keep.csv": "", "data/b.csv": "", "data/keep.csv": "", "x.py": ""},
    )
    (source / ".mlignore").write_text("*.csv\n!keep.csv\n")
    snapshot(source, tmp_path / "dest")
    assert copied(tmp_path / "dest") == {".mlignore", "keep.csv", "data/keep.csv", "x.py"}


def test_a_file_in_an_ignored_folder_cannot_be_re_included(tmp_path: Path) -> None:
    # As in git: "!" does not reach into a folder that is itself ignored.
    source = make_tree(tmp_path / "src", {"data/a": "", "data/keep": "", "other/keep": ""})
    (source / ".mlignore").write_text("data/\n!data/keep\n")
    snapshot(source, tmp_path / "dest")
    assert copied(tmp_path / "dest") == {".mlignore", "other/keep"}


def test_content_of_a_folder_can_be_ignored_with_exceptions(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"data/a": "", "data/keep": ""})
    (source / ".mlignore").write_text("data/*\n!data/keep\n")
    snapshot(source, tmp_path / "dest")
    assert copied(tmp_path / "dest") == {".mlignore", "data/keep"}


def test_directory_and_anchored_patterns(tmp_path: Path) -> None:
    source = make_tree(
        tmp_path / "src",
        {
            "build/out.bin": "",
            "pkg/build/out.bin": "",
            "build.py": "",
            "top.txt": "",
            "pkg/top.txt": "",
            "deep/a/cache/x": "",
            "deep/a/kept": "",
        },
    )
    (source / ".gitignore").write_text("# comment\n\nbuild/\n/top.txt\n**/cache/\n")
    snapshot(source, tmp_path / "dest")
    assert copied(tmp_path / "dest") == {".gitignore", "build.py", "pkg/top.txt", "deep/a/kept"}


def test_always_ignored_folders_at_any_depth(source: Path, tmp_path: Path) -> None:
    make_tree(
        source,
        {
            ".git/HEAD": "ref",
            "__pycache__/m.cpython-311.pyc": "",
            "pkg/__pycache__/m.pyc": "",
            ".ipynb_checkpoints/nb-checkpoint.ipynb": "",
            "pkg/.ipynb_checkpoints/x": "",
        },
    )
    snapshot(source, tmp_path / "dest")
    assert copied(tmp_path / "dest") == {
        "train.py",
        "data/train.csv",
        "data/notes.log",
        "pkg/model.py",
    }


def test_excluded_workspace_folder_and_files(source: Path, tmp_path: Path) -> None:
    make_tree(source, {".mlmagic/store.db": "x" * 100, ".mlmagic/runs/r1/snap/a": ""})
    info = snapshot(
        source, tmp_path / "dest", exclude=[source / ".mlmagic", source / "data" / "notes.log"]
    )
    assert copied(tmp_path / "dest") == {"train.py", "data/train.csv", "pkg/model.py"}
    assert info.files == 3


def test_a_destination_inside_the_source_is_not_copied_into_itself(source: Path) -> None:
    dest = source / ".mlmagic" / "runs" / "r1" / "snapshot"
    info = snapshot(source, dest, exclude=[])
    assert info.files == 4
    assert not (dest / ".mlmagic").exists()


def test_empty_folders_are_kept(source: Path, tmp_path: Path) -> None:
    (source / "checkpoints").mkdir()
    snapshot(source, tmp_path / "dest")
    assert (tmp_path / "dest" / "checkpoints").is_dir()


def test_modes_and_modification_times_are_kept(source: Path, tmp_path: Path) -> None:
    script = source / "train.py"
    script.chmod(0o755)
    os.utime(script, (1_000_000_000, 1_000_000_000))
    snapshot(source, tmp_path / "dest")
    copy = tmp_path / "dest" / "train.py"
    assert copy.stat().st_mode & 0o777 == 0o755
    assert copy.stat().st_mtime == 1_000_000_000


def test_symbolic_links(source: Path, tmp_path: Path) -> None:
    outside = make_tree(tmp_path / "outside", {"secret.txt": "secret", "folder/f": ""})
    (source / "inner_link.csv").symlink_to(source / "data" / "train.csv")
    (source / "outer_link.txt").symlink_to(outside / "secret.txt")
    (source / "outer_folder").symlink_to(outside / "folder")
    (source / "inner_folder").symlink_to(source / "pkg")
    (source / "dangling").symlink_to(source / "missing")

    info = snapshot(source, tmp_path / "dest")

    dest = tmp_path / "dest"
    link_copy = dest / "inner_link.csv"
    assert not link_copy.is_symlink()
    assert link_copy.read_text() == "a,b\n"
    assert not (dest / "outer_link.txt").exists()
    assert not (dest / "outer_folder").exists()
    assert not (dest / "inner_folder").exists()
    assert info.files == 5
    skipped = "\n".join(info.skipped)
    assert len(info.skipped) == 4
    assert f"outer_link.txt: a symbolic link to {outside / 'secret.txt'}" in skipped
    assert "outer_folder/: a symbolic link to a folder" in skipped
    assert "inner_folder/: a symbolic link to a folder" in skipped
    assert "dangling: a symbolic link to" in skipped


def test_over_the_size_limit_names_the_largest_files_and_copies_nothing(
    source: Path, tmp_path: Path
) -> None:
    sizes = {"big/a.bin": 9000, "big/b.bin": 8000, "c.bin": 7000, "d.bin": 6000}
    sizes |= {"e.bin": 5000, "f.bin": 4000}
    make_tree(source, {name: b"x" * size for name, size in sizes.items()})
    (source / ".gitignore").write_text("*.log\n")
    dest = tmp_path / "dest"

    with pytest.raises(RunError) as caught:
        snapshot(source, dest, max_bytes=20_000)

    message = str(caught.value)
    assert f"The source folder {source} is too big" in message
    assert "add up to 38.1 KiB, over the limit of 19.5 KiB" in message
    assert "big/a.bin (8.8 KiB), big/b.bin (7.8 KiB), c.bin (6.8 KiB)" in message
    assert "e.bin (4.9 KiB)." in message
    assert "f.bin" not in message
    assert f"add them to .mlignore (gitignore syntax) in {source}" in message.lower()
    assert "pass a smaller --source-dir" in message
    assert "replaces the .gitignore used now" in message
    assert not dest.exists()


def test_over_the_file_count_limit_names_the_fullest_folders(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {f"images/{i}.png": "" for i in range(30)}
    files |= {f"labels/sub/{i}.txt": "" for i in range(20)}
    files |= {f"top{i}.py": "" for i in range(3)}
    source = make_tree(tmp_path / "src", files)

    with pytest.raises(RunError) as caught:
        snapshot(source, tmp_path / "dest", max_files=10)

    message = str(caught.value)
    assert "it holds 53 files, over the limit of 10" in message
    assert "images/ (30 files), labels/ (20 files), top level (3 files)" in message
    assert "Add them to .mlignore (gitignore syntax)" in message
    assert "replaces" not in message  # there is no other ignore file
    assert not (tmp_path / "dest").exists()


def test_limits_count_only_what_is_not_ignored(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {f"images/{i}.png": "" for i in range(30)}
    source = make_tree(tmp_path / "src", {**files, "train.py": ""})
    (source / ".mlignore").write_text("images/\n")
    info = snapshot(source, tmp_path / "dest", max_files=2)
    assert info.files == 2


def test_missing_or_file_source_folder(tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"does not exist.*--source-dir"):
        snapshot(tmp_path / "nope", tmp_path / "dest")
    (tmp_path / "file").write_text("")
    with pytest.raises(RunError, match=r"is not a folder"):
        snapshot(tmp_path / "file", tmp_path / "dest")


def test_destination_must_be_new_or_empty(source: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert snapshot(source, tmp_path / "empty").files == 4
    with pytest.raises(RunError, match="not empty"):
        snapshot(source, tmp_path / "empty")
    (tmp_path / "afile").write_text("")
    with pytest.raises(RunError, match="it is a file"):
        snapshot(source, tmp_path / "afile")


def test_a_malformed_ignore_pattern_is_a_run_error(source: Path, tmp_path: Path) -> None:
    (source / ".mlignore").write_text("ok.txt\nfoo\\\n")
    with pytest.raises(RunError, match=r"\.mlignore has a pattern that is not gitignore"):
        snapshot(source, tmp_path / "dest")
