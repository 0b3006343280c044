"""Outputs appear whole or not at all, with the permissions of any new file."""

import os

import pytest

from dynamo_core.atomic_files import atomic_output, atomic_write, new_file_mode


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "result.txt"
    path.write_text("old")

    def fail_halfway(stream):
        stream.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, fail_halfway)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_a_finished_write_replaces_the_file_with_the_umask_permissions(tmp_path):
    path = tmp_path / "deep" / "result.bin"
    previous = os.umask(0o027)
    try:
        atomic_write(path, lambda stream: stream.write(b"new"))
        assert path.stat().st_mode & 0o777 == 0o640 == new_file_mode()
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"new"


def test_text_mode_and_a_recognisable_temporary_suffix(tmp_path):
    path = tmp_path / "notes.txt"
    with atomic_output(path, "w", suffix=".partial") as stream:
        names = [p.name for p in tmp_path.iterdir()]
        assert len(names) == 1 and names[0].startswith(".notes.txt.") and names[0].endswith(".partial")
        stream.write("text")
    assert path.read_text() == "text"
