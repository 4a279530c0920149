"""Atomic writes: readers see the old content or the new, modes like open(), devices kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tblive.atomic import write_atomically, write_atomically_with


def test_replaces_content_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.json"
    write_atomically(str(target), "old")
    write_atomically_with(str(target), lambda stream: stream.write("new"))
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.json"
        write_atomically(str(fresh), "{}")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
        kept = tmp_path / "kept.json"
        kept.write_text("{}")
        os.chmod(kept, 0o604)
        write_atomically(str(kept), "[]")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604
        private = tmp_path / "state.json"
        write_atomically(str(private), "{}", mode=0o600)
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(previous)


def test_a_device_target_is_written_in_place_never_replaced(tmp_path: Path) -> None:
    before = os.stat(os.devnull)
    write_atomically(os.devnull, "discarded")
    after = os.stat(os.devnull)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert not any(name.startswith(".null.") for name in os.listdir(os.path.dirname(os.devnull)))


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")

    def broken(stream):
        stream.write("half")
        raise RuntimeError("disk full")

    try:
        write_atomically_with(str(target), broken)
    except RuntimeError:
        pass
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
