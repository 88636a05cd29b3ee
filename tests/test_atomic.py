"""Atomic writes: a writer that fails half-way leaves the old file whole and no litter."""

from __future__ import annotations

import pytest

from convbench import atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = atomic.write_text(tmp_path / "report.html", "old")

    def half_then_crash(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write("new but unfin")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write(target, half_then_crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_text_replaces_and_keeps_newlines_as_given(tmp_path):
    target = atomic.write_text(tmp_path / "sub" / "a.csv", "a,b\r\n1,2\n")
    atomic.write_text(target, "x\r\n")
    assert target.read_bytes() == b"x\r\n"


def test_finished_files_get_the_usual_permissions(tmp_path):
    # Not mkstemp's owner-only 0600: a report must be readable by whoever it is sent to.
    target = atomic.write_text(tmp_path / "report.html", "x")
    assert target.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK

