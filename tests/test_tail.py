"""tblive.read.tail with real watchdog observers on a real directory."""

from __future__ import annotations

import threading
import time
from typing import List

import pytest

from tblive.read.tail import CLOSED, CREATED, MODIFIED, REOPENED, Change, ChangeQueue, Tail


def collect(changes: ChangeQueue, until, timeout: float = 5.0) -> List[Change]:
    seen: List[Change] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(seen):
        seen.extend(changes.drain(0.05))
    return seen


def test_change_queue_dedupes_and_keeps_what_matters():
    queue = ChangeQueue()
    for _ in range(1000):
        queue.put(Change("/r/events.1", MODIFIED))
    queue.put(Change("/r/events.1", CLOSED))
    queue.put(Change("/r/events.2", CLOSED))
    queue.put(Change("/r/events.2", MODIFIED))  # a write after the close: reopened
    assert len(queue) == 2
    drained = queue.drain(0)
    assert sorted((c.path, c.kind) for c in drained) == [
        ("/r/events.1", CLOSED),
        ("/r/events.1", MODIFIED),
        ("/r/events.2", MODIFIED),
        ("/r/events.2", REOPENED),  # closed and opened again: not an end
    ]
    assert queue.drain(0) == []
    started = time.monotonic()
    threading.Timer(0.1, queue.wake).start()
    assert queue.drain(5.0) == [] and time.monotonic() - started < 2.0


@pytest.mark.parametrize("poll", [None, 0.1])
def test_tail_sees_appends_new_folders_and_closes(tmp_path, poll):
    before = set(threading.enumerate())
    changes = ChangeQueue()
    tail = Tail(str(tmp_path / "logs"), changes, poll_interval=poll)
    tail.start()
    try:
        assert not tail.watching  # does not exist yet
        nested = tmp_path / "logs" / "run" / "agent0" / "dist_entropy"
        nested.mkdir(parents=True)
        assert tail.ensure_watching()
        time.sleep(0.3)
        path = nested / "events.out.tfevents.1.host"
        with open(path, "ab") as handle:
            handle.write(b"x" * 10)
            handle.flush()
            seen = collect(changes, lambda s: any(c.path == str(path) for c in s))
            assert {c.kind for c in seen if c.path == str(path)} & {CREATED, MODIFIED}
        seen = collect(changes, lambda s: any(c.kind == CLOSED for c in s), timeout=1.0)
        assert any(c.kind == CLOSED and c.path == str(path) for c in seen) == tail.closes_visible
        assert tail.closes_visible == (poll is None)
        # reading the file (what the daemon does) must not produce changes
        changes.drain(0.3)
        for _ in range(5):
            path.read_bytes()
        assert [c for c in changes.drain(0.5) if not c.is_directory] == []
    finally:
        assert tail.stop()
    assert set(threading.enumerate()) - before == set()


def test_missing_directory_reports_its_creation_through_the_nearest_parent(tmp_path):
    """inotify: a watch on the nearest existing parent says when the way to LOGDIR appears."""
    changes = ChangeQueue()
    target = tmp_path / "a" / "b" / "logs"
    tail = Tail(str(target), changes)
    tail.start()
    try:
        assert not tail.watching
        (tmp_path / "unrelated").mkdir()  # not on the way: not reported
        (tmp_path / "a").mkdir()
        seen = collect(changes, lambda s: any(c.is_directory for c in s), timeout=3.0)
        assert [(c.path, c.is_directory) for c in seen] == [(str(tmp_path / "a"), True)]
        assert not tail.ensure_watching()  # moves the parent watch down to a/
        target.mkdir(parents=True)
        seen = collect(changes, lambda s: any(c.is_directory for c in s), timeout=3.0)
        assert any(c.path == str(tmp_path / "a" / "b") for c in seen)
        assert tail.ensure_watching()  # now the real, recursive watch
        path = target / "events.out.tfevents.1.host"
        path.write_bytes(b"x")
        seen = collect(changes, lambda s: any(c.path == str(path) for c in s))
        assert any(c.path == str(path) for c in seen)
    finally:
        assert tail.stop()
