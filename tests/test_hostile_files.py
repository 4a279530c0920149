"""Files that must never hang the reader, vanish silently, blow its memory or cost another run.

Each hostile file sits in a tree beside a healthy run, whose report must come out whole.  Memory
is measured in a fresh interpreter (peak RSS after the read minus peak RSS after a warm-up read
of a small healthy tree); permission tests drop to the ``nobody`` user in a forked child.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from conftest import (
    event_bytes,
    file_version_event,
    frame,
    rank0,
    scalar_event,
    scalars_metadata,
    series_points,
    tensor_event,
    write_event_file,
)
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

from tblive.doors.posthoc import analyze
from tblive.read.crc import masked_crc32c
from tblive.read.records import DEFAULT_MAX_RECORD_SIZE
from tblive.read.runs import LogDir, read_directory_points
from tblive.render.report import render_json, render_text
from tblive.series.feed import SeriesFeed, SeriesPoints

REPO = Path(__file__).resolve().parents[1]
MEMORY_BUDGET = 100 << 20  # bytes of peak RSS growth a hostile file may cost


def healthy_run(directory: Path, points: int = 50) -> None:
    write_event_file(
        directory / "events.out.tfevents.1.host",
        [file_version_event()]
        + [scalar_event("loss", s, 1.0 / (s + 1), 10.0 + s) for s in range(points)],
    )


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A world-traversable directory with a short path (unix socket paths are limited)."""
    path = Path(tempfile.mkdtemp(prefix="tbl", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for directory, subdirs, _ in os.walk(path):
            for name in subdirs:
                os.chmod(os.path.join(directory, name), 0o755)
        shutil.rmtree(path, ignore_errors=True)


def report_json(path: Path) -> Dict[str, Any]:
    return render_json(str(path), analyze(str(path)))


def runs_of(report: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {run["name"]: run for run in report["runs"]}


def issue_text(run: Dict[str, Any]) -> str:
    return "\n".join("%s: %s" % (i["file"], i["message"]) for i in run["read_issues"])


# -- non-regular files -------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_fifo_named_summary_json_or_event_file_never_blocks(short_dir: Path) -> None:
    healthy_run(short_dir / "good")
    healthy_run(short_dir / "fifos")
    os.mkfifo(short_dir / "fifos" / "summary.json")
    os.mkfifo(short_dir / "fifos" / "events.out.tfevents.2.fifo")
    report = report_json(short_dir)
    runs = runs_of(report)
    assert runs["good"]["points"] == 50 and runs["good"]["read_issues"] == []
    fifos = runs["fifos"]
    assert fifos["points"] == 50  # the regular event file beside the FIFOs is read
    text = issue_text(fifos)
    assert "summary.json: a FIFO, not a regular file" in text
    assert "events.out.tfevents.2.fifo: a FIFO, not a regular file" in text


@pytest.mark.timeout(60)
def test_fifo_summary_json_with_the_cli_shows_the_issue_in_text_and_json(short_dir: Path) -> None:
    healthy_run(short_dir / "run")
    os.mkfifo(short_dir / "run" / "summary.json")
    out = short_dir / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "tblive.cli", "report", str(short_dir / "run"), "--json", str(out)],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    assert "summary.json" in done.stdout and "a FIFO, not a regular file" in done.stdout
    report = json.loads(out.read_text())
    assert any("a FIFO" in i["message"] for i in report["read_issues"])
    assert report["points"] == 50


@pytest.mark.timeout(30)
def test_socket_and_devices_named_like_event_files_are_skipped(short_dir: Path) -> None:
    run = short_dir / "r"
    healthy_run(run)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(run / "events.out.tfevents.9.sock"))
        # /dev/zero never ends and /dev/null never has data: neither may be read
        os.symlink("/dev/zero", str(run / "events.out.tfevents.8.zero"))
        os.symlink("/dev/zero", str(run / "summary.json"))
        os.symlink(str(run / "gone"), str(run / "events.out.tfevents.7.dangling"))
        report = report_json(short_dir)
    finally:
        server.close()
    assert report["points"] == 50
    text = "\n".join(i["message"] for i in report["read_issues"])
    assert "a socket, not a regular file" in text
    assert text.count("a character device, not a regular file") == 2
    assert "broken symbolic link" in text


# -- permissions -------------------------------------------------------------------------------


def as_nobody(path: Path) -> Dict[str, Any]:
    """The JSON report of ``path`` made by a forked child running as the ``nobody`` user."""
    report_json(path)  # warm-up in this process: no lazy import is left for the child
    if os.geteuid() != 0:
        return report_json(path)  # an unprivileged user meets mode 000 as it is
    import pwd

    nobody = pwd.getpwnam("nobody")
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        code = 0
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            data = json.dumps(report_json(path)).encode()
        except BaseException as error:  # noqa: BLE001 - report anything to the parent
            data = json.dumps({"error": repr(error)}).encode()
            code = 1
        with os.fdopen(writer, "wb") as stream:
            stream.write(data)
        os._exit(code)
    os.close(writer)
    chunks: List[bytes] = []
    with os.fdopen(reader, "rb") as stream:
        while True:
            ready, _, _ = select.select([stream], [], [], 60)
            assert ready, "the child reading as nobody did not answer in 60 s"
            chunk = os.read(stream.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(child, 0)
    report = json.loads(b"".join(chunks))
    assert "error" not in report, report
    return report


@pytest.mark.timeout(90)
def test_unreadable_file_and_directory_are_read_issues_and_never_complete(short_dir: Path) -> None:
    healthy_run(short_dir / "good")
    healthy_run(short_dir / "lost_file")
    locked = short_dir / "lost_file" / "events.out.tfevents.2.host"
    write_event_file(locked, [scalar_event("loss", s, 0.5, 100.0 + s) for s in range(50, 60)])
    locked.chmod(0)
    healthy_run(short_dir / "lost_nested")
    healthy_run(short_dir / "lost_nested" / "loss_eval")
    (short_dir / "lost_nested" / "loss_eval").chmod(0)
    healthy_run(short_dir / "locked_run")
    (short_dir / "locked_run").chmod(0)
    report = as_nobody(short_dir)
    runs = runs_of(report)
    assert sorted(runs) == ["good", "locked_run", "lost_file", "lost_nested"]
    good = runs["good"]
    assert good["complete"] and good["read_issues"] == [] and good["status"] != "NO DATA"
    lost_file = runs["lost_file"]
    assert lost_file["points"] == 50 and not lost_file["complete"]
    assert "events.out.tfevents.2.host: cannot open the file (permission denied)" in issue_text(
        lost_file
    )
    assert "INCOMPLETE" in lost_file["summary"]
    lost_nested = runs["lost_nested"]
    assert lost_nested["points"] == 50 and not lost_nested["complete"]
    assert "loss_eval: cannot list the directory (permission denied)" in issue_text(lost_nested)
    locked_run = runs["locked_run"]
    assert locked_run["status"] == "NO DATA" and not locked_run["complete"]
    assert "locked_run: cannot list the directory (permission denied)" in issue_text(locked_run)
    assert report["status"] != "NO DATA"  # the worst of the runs with data


@pytest.mark.timeout(90)
def test_unreadable_file_is_named_in_the_text_report(short_dir: Path) -> None:
    healthy_run(short_dir / "run")
    (short_dir / "run" / "events.out.tfevents.1.host").chmod(0)
    if os.geteuid() == 0:
        report = as_nobody(short_dir / "run")
        assert report["status"] == "NO DATA" and report["complete"] is False
        assert "permission denied" in report["read_issues"][0]["message"]
        return
    results = analyze(str(short_dir / "run"))
    text = render_text(str(short_dir / "run"), results)
    assert "permission denied" in text and "NO DATA" in text and "INCOMPLETE" in text


# -- memory ------------------------------------------------------------------------------------


def peak_growth(
    tree: Path, warmup: Path, address_space: int = 0, **analyze_args: Any
) -> Dict[str, Any]:
    """Run analyze on ``tree`` in a fresh interpreter; returns its JSON report and how far its
    peak RSS (bytes) rose above the RSS after a warm-up read of ``warmup``.  With ``address_space``, the
    interpreter may then map only that many more bytes (RLIMIT_AS)."""
    script = textwrap.dedent(
        """
        import json, resource, sys
        from tblive.doors.posthoc import analyze
        from tblive.render.report import render_json

        def status(field):
            with open("/proc/self/status") as lines:
                for line in lines:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024

        kwargs = json.loads(sys.argv[3])
        render_json(sys.argv[2], analyze(sys.argv[2], **kwargs))
        extra = int(sys.argv[4])
        if extra:
            with open("/proc/self/statm") as statm:
                mapped = int(statm.read().split()[0]) * resource.getpagesize()
            resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, resource.RLIM_INFINITY))
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # the peak (VmHWM) starts again from the current RSS
        before = status("VmRSS")
        report = render_json(sys.argv[1], analyze(sys.argv[1], **kwargs))
        growth = status("VmHWM") - before
        print(json.dumps({"growth": growth, "report": report}))
        """
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tree),
            str(warmup),
            json.dumps(analyze_args),
            str(address_space),
        ],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    print("peak RSS growth: %.1f MB" % (result["growth"] / 1e6))  # shown with pytest -s
    return result


def framed_header(length: int) -> bytes:
    header = struct.pack("<Q", length)
    return header + struct.pack("<I", masked_crc32c(header))


def c_masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C with the C ``crc32c`` package (RecordWriter's pure-Python one
    takes seconds for a 64 MiB record)."""
    import crc32c

    crc = crc32c.crc32c(data) & 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tensor_record_bytes(size: int) -> bytes:
    """One framed event holding a float tensor of ``size`` bytes (an image-sized summary)."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=bytes(size))
    tensor.tensor_shape.dim.add(size=size // 4)
    value = summary_pb2.Summary.Value(tag="big", tensor=tensor, metadata=scalars_metadata())
    event = event_pb2.Event(wall_time=1.0, step=1, summary=summary_pb2.Summary(value=[value]))
    payload = event.SerializeToString()
    header = struct.pack("<Q", len(payload))
    return b"".join(
        [
            header,
            struct.pack("<I", c_masked_crc(header)),
            payload,
            struct.pack("<I", c_masked_crc(payload)),
        ]
    )


@pytest.fixture
def warmup(tmp_path: Path) -> Path:
    healthy_run(tmp_path / "warmup" / "a")
    healthy_run(tmp_path / "warmup" / "b")
    return tmp_path / "warmup"


@pytest.mark.timeout(120)
def test_length_header_claiming_a_gibibyte_costs_nothing(tmp_path: Path, warmup: Path) -> None:
    tree = tmp_path / "tree"
    healthy_run(tree / "good")
    bad = tree / "bad" / "events.out.tfevents.1.host"
    bad.parent.mkdir(parents=True)
    claim = 1 << 30
    with open(bad, "wb") as stream:
        stream.write(event_bytes([file_version_event(), scalar_event("loss", 0, 1.0, 1.0)]))
        stream.write(framed_header(claim))
        stream.seek(claim + 4, os.SEEK_CUR)  # a sparse payload and its crc: nothing on disk
        stream.write(event_bytes([scalar_event("loss", 1, 2.0, 2.0)]))
    result = peak_growth(tree, warmup)
    assert result["growth"] < MEMORY_BUDGET, result["growth"]
    runs = runs_of(result["report"])
    assert runs["good"]["points"] == 50 and runs["good"]["read_issues"] == []
    assert runs["bad"]["points"] == 2  # the record after the skipped one is read
    assert "larger than the limit of 32 MiB" in issue_text(runs["bad"])


@pytest.mark.timeout(120)
def test_a_64_mib_tensor_record_is_skipped_and_bounded(tmp_path: Path, warmup: Path) -> None:
    tree = tmp_path / "tree"
    healthy_run(tree / "good")
    path = tree / "images" / "events.out.tfevents.1.host"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as stream:
        stream.write(event_bytes([file_version_event(), scalar_event("loss", 0, 1.0, 1.0)]))
        stream.write(tensor_record_bytes(64 << 20))
        stream.write(event_bytes([scalar_event("loss", 2, 3.0, 3.0)]))
    result = peak_growth(tree, warmup)
    assert result["growth"] < MEMORY_BUDGET, result["growth"]
    runs = runs_of(result["report"])
    assert runs["good"]["points"] == 50
    assert runs["images"]["points"] == 2
    assert "larger than the limit of 32 MiB" in issue_text(runs["images"])


@pytest.mark.timeout(120)
def test_a_record_just_under_the_limit_is_read_in_bounded_memory(
    tmp_path: Path, warmup: Path
) -> None:
    tree = tmp_path / "tree"
    healthy_run(tree / "good")
    path = tree / "images" / "events.out.tfevents.1.host"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as stream:
        stream.write(event_bytes([file_version_event(), scalar_event("loss", 0, 1.0, 1.0)]))
        stream.write(tensor_record_bytes(DEFAULT_MAX_RECORD_SIZE - 1024))
    result = peak_growth(tree, warmup)
    # the record read, its parsed message and one transient copy: about 2x on current
    # protobuf/numpy, ~3x on the older builds Python 3.8 gets; never more
    assert result["growth"] < 3.5 * DEFAULT_MAX_RECORD_SIZE, result["growth"]
    runs = runs_of(result["report"])
    assert runs["images"]["points"] == 1 and runs["images"]["read_issues"] == []
    assert runs["images"]["skipped"]  # a non-scalar tensor: counted, not read as a point


def test_the_record_limit_is_configurable(tmp_path: Path) -> None:
    events = [file_version_event(), scalar_event("loss", 0, 1.0, 1.0)]
    big = tensor_event(
        "img", 1, 2.0, rank0(types_pb2.DT_STRING, string_val=[bytes(5000)]), with_metadata=False
    )
    events += [big, scalar_event("loss", 2, 3.0, 3.0)]
    write_event_file(tmp_path / "r" / "events.out.tfevents.1", events)
    logdir = LogDir(str(tmp_path), lambda name: SeriesPoints(), max_record_size=4096)
    logdir.rescan()
    logdir.poll()
    (run,) = logdir.runs.values()
    assert series_points(run.sinks) == {"loss": [(0, 1.0, 1.0), (2, 3.0, 3.0)]}
    (issue,) = run.issues
    assert "is larger than the limit of 4096 bytes (max_record_size)" in issue.message
    results = analyze(str(tmp_path), max_record_size=4096)
    assert results[0].verdict.points == 2


@pytest.mark.timeout(120)
def test_memory_error_in_one_run_never_costs_the_other_its_report(
    tmp_path: Path, warmup: Path
) -> None:
    """A limit raised past what the process may map: the failure stays in its file."""
    tree = tmp_path / "tree"
    healthy_run(tree / "a_good")
    healthy_run(tree / "z_good")
    bad = tree / "m_bad" / "events.out.tfevents.1.host"
    bad.parent.mkdir(parents=True)
    claim = 8 << 30  # more than the 1 GiB the reading process may map
    with open(bad, "wb") as stream:
        stream.write(event_bytes([file_version_event(), scalar_event("loss", 0, 1.0, 1.0)]))
        stream.write(framed_header(claim))
        stream.truncate(stream.tell() + claim + 4)  # the whole record, sparse
    result = peak_growth(tree, warmup, address_space=1 << 30, max_record_size=16 << 30)
    runs = runs_of(result["report"])
    assert runs["a_good"]["points"] == 50 and runs["z_good"]["points"] == 50
    assert runs["m_bad"]["points"] == 1 and not runs["m_bad"]["complete"]
    assert "reading failed (MemoryError" in issue_text(runs["m_bad"])


# -- replaced files ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["new inode", "rewritten in place"])
def test_a_file_replaced_under_the_same_name_is_read_again(tmp_path: Path, how: str) -> None:
    """CatBoost writes ``events.out.tfevents`` (no suffix) again on every training."""
    path = tmp_path / "catboost_info" / "learn" / "events.out.tfevents"
    first = [scalar_event("Logloss", s, 1.0, 100.0 + s) for s in range(100)]
    second = [scalar_event("Logloss", s, 2.0, 900.0 + s) for s in range(150)]
    write_event_file(path, first)
    logdir = LogDir(str(tmp_path / "catboost_info"), lambda name: SeriesPoints())
    logdir.rescan()
    assert logdir.poll() == 100
    if how == "new inode":
        write_event_file(path.with_name("tmp"), second)
        os.replace(path.with_name("tmp"), path)
    else:
        with open(path, "r+b") as stream:  # same inode, longer than before: no shrink to see
            stream.write(event_bytes(second))
    logdir.poll()
    (run,) = logdir.runs.values()
    assert series_points(run.sinks) == {"Logloss": [(s, 2.0, 900.0 + s) for s in range(150)]}
    assert any("reading it again from the start" in i.message for i in run.issues)


# -- summary.json ------------------------------------------------------------------------------


def summary_tree(tmp_path: Path, content: str) -> Path:
    run = tmp_path / "run"
    write_event_file(
        run / "events.out.tfevents.1",
        [file_version_event()]
        + [scalar_event("a", s, float(s), 1.0 + s) for s in range(0, 50, 10)],
    )
    (run / "summary.json").write_text(content)
    return run


@pytest.mark.parametrize(
    "rows, problem",
    [
        ([[1.0, 60, 1.0, 4.0]], "not a list of [wall_time, step, value] rows"),
        ([[1.0, 60]], "not a list of [wall_time, step, value] rows"),
        ([["1", 60, 1.0]], "not a list of [wall_time, step, value] rows"),
        ({"x": 1}, "not a list of [wall_time, step, value] rows"),
        (7, "not a list of [wall_time, step, value] rows"),
        ([[1.0, float("nan"), 1.0]], "1 rows with a step that is not a whole number"),
        ([[1.0, float("inf"), 1.0]], "1 rows with a step that is not a whole number"),
        ([[1.0, 1e300, 1.0]], "1 rows with a step that is not a whole number"),
        ([[1.0, 60.5, 1.0]], "1 rows with a step that is not a whole number"),
    ],
)
def test_summary_json_rows_of_the_wrong_shape_are_read_issues(
    tmp_path: Path, rows: Any, problem: str
) -> None:
    run = summary_tree(tmp_path, json.dumps({"a": rows}))
    logdir = LogDir(str(run), lambda name: SeriesPoints())
    logdir.rescan()
    logdir.poll()
    (got,) = logdir.runs.values()
    assert series_points(got.sinks) == {"a": [(s, float(s), 1.0 + s) for s in range(0, 50, 10)]}
    assert any(problem in i.message for i in got.issues), got.issues


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"a": [[1, 60, 2]', ""])
def test_malformed_summary_json_is_a_read_issue(tmp_path: Path, content: str) -> None:
    run = summary_tree(tmp_path, content)
    report = render_json(str(run), analyze(str(run)))
    assert report["points"] == 5
    assert any("not a valid summary.json" in i["message"] for i in report["read_issues"])


def test_summary_json_fills_missing_points_in_the_middle_and_at_the_end(tmp_path: Path) -> None:
    rows = [[1.0 + s, s, float(s)] for s in range(0, 50, 5)] + [[99.0, 60, 60.0]]
    run = summary_tree(tmp_path, json.dumps({"a": rows}))
    got, _ = read_directory_points(str(run))  # the event files alone
    assert len(got["a"]) == 5
    logdir = LogDir(str(run), lambda name: SeriesPoints())
    logdir.rescan()
    logdir.poll()
    (merged,) = logdir.runs.values()
    expected = [(s, float(s), 1.0 + s) for s in range(0, 50, 5)] + [(60, 60.0, 99.0)]
    assert series_points(merged.sinks) == {"a": expected}
    assert merged.issues == []


def test_summary_json_beyond_the_size_limit_is_not_read(tmp_path: Path) -> None:
    run = summary_tree(tmp_path, "")
    os.truncate(run / "summary.json", (256 << 20) + 1)  # sparse: costs no disk
    report = render_json(str(run), analyze(str(run)))
    assert report["points"] == 5
    (issue,) = report["read_issues"]
    assert "larger than the limit of 256 MiB for summary.json" in issue["message"]


@pytest.mark.timeout(120)
def test_large_summary_json_is_read_in_bounded_memory(tmp_path: Path, warmup: Path) -> None:
    rows = 400_000  # ~16 MB of JSON; json.load would hold ~70 MB of Python objects
    run = tmp_path / "tree" / "run"
    write_event_file(run / "events.out.tfevents.1", [scalar_event("a", 0, 0.0, 1.0)])
    with open(run / "summary.json", "w") as stream:
        stream.write('{"a": [')
        stream.write(
            ", ".join("[%r, %d, %r]" % (1.0 + s * 0.25, s, s * 0.001) for s in range(rows))
        )
        stream.write("]}")
    result = peak_growth(tmp_path / "tree", warmup)
    assert result["report"]["points"] == rows
    assert result["growth"] < 40 << 20, result["growth"]


# -- tags, empty trees -------------------------------------------------------------------------


def test_non_utf8_tag_is_the_same_on_the_fast_and_the_protobuf_path(tmp_path: Path) -> None:
    fast = scalar_event("ab", 1, 1.0, 1.0).SerializeToString()
    slow = tensor_event(
        "ab", 2, 2.0, rank0(types_pb2.DT_FLOAT, float_val=[2.0]), with_metadata=True
    ).SerializeToString()
    two_values = event_pb2.Event(
        wall_time=3.0,
        step=3,
        summary=summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag="ab", simple_value=3.0),
                summary_pb2.Summary.Value(tag="ok", simple_value=4.0),
            ]
        ),
    ).SerializeToString()
    payloads = [p.replace(b"\x0a\x02ab", b"\x0a\x02a\xff") for p in (fast, slow, two_values)]
    assert all(b"a\xff" in p for p in payloads)
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(frame(payloads))
    sinks, run = read_directory_points(str(tmp_path))
    assert series_points(sinks) == {
        "a\\xff": [(1, 1.0, 1.0), (2, 2.0, 2.0), (3, 3.0, 3.0)],
        "ok": [(3, 4.0, 3.0)],
    }
    (issue,) = run.issues
    assert "is not valid UTF-8" in issue.message


@pytest.mark.parametrize("fail_on", ["warning", "critical"])
def test_a_tree_without_data_is_no_data_and_fails(tmp_path: Path, fail_on: str, capsys) -> None:
    from tblive.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "events.out.tfevents.1").write_bytes(b"")
    write_event_file(tmp_path / "header_only" / "events.out.tfevents.1", [file_version_event()])
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "events.out.tfevents.1").write_bytes(os.urandom(64))
    out = tmp_path / "report.json"
    assert main(["report", str(tmp_path), "--json", str(out), "--fail-on", fail_on]) == 1
    text = capsys.readouterr().out
    assert "OK" not in text.replace("NO DATA", "")
    report = json.loads(out.read_text())
    assert report["status"] == "NO DATA"
    assert {run["status"] for run in report["runs"]} == {"NO DATA"}
    assert main(["report", str(tmp_path)]) == 0  # without --fail-on it is only a report


def test_an_empty_run_beside_data_stays_visible_as_no_data(tmp_path: Path, capsys) -> None:
    from tblive.cli import main

    healthy_run(tmp_path / "good")
    write_event_file(tmp_path / "empty" / "events.out.tfevents.1", [file_version_event()])
    out = tmp_path / "report.json"
    assert main(["report", str(tmp_path), "--json", str(out), "--fail-on", "critical"]) == 0
    text = capsys.readouterr().out
    table = text[text.index("RUNS") : text.index("RUN: ")]
    empty_line = next(line for line in table.splitlines() if " empty " in line)
    assert "NO DATA" in empty_line and "OK" not in empty_line
    runs = runs_of(json.loads(out.read_text()))
    assert runs["empty"]["status"] == "NO DATA" and runs["good"]["status"] != "NO DATA"


def test_restarts_are_counted_per_run(tmp_path: Path) -> None:
    events = [scalar_event("a", s, 1.0, float(s)) for s in range(100)]
    events += [scalar_event("a", s, 2.0, 200.0 + s) for s in range(60, 80)]  # resumed at 60
    write_event_file(tmp_path / "run" / "events.out.tfevents.1", events)
    report = render_json(str(tmp_path / "run"), analyze(str(tmp_path / "run")))
    assert report["restarts"]["rewinds"] == 1
    if hasattr(SeriesFeed(SeriesPoints()), "discarded"):  # counted by the feed
        assert report["restarts"]["points_discarded"] == 40
    text = render_text(str(tmp_path / "run"), analyze(str(tmp_path / "run")))
    assert "Restarts: 1 series rewound, 40 points discarded" in text


@pytest.mark.timeout(90)
def test_an_unreadable_log_directory_is_one_run_saying_so(short_dir: Path) -> None:
    healthy_run(short_dir / "logs" / "seed1")
    (short_dir / "logs").chmod(0)
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody (an unprivileged owner could chmod back)")
    report = as_nobody(short_dir / "logs")
    assert report["status"] == "NO DATA" and report["complete"] is False
    (issue,) = report["read_issues"]
    assert "cannot list the directory (permission denied)" in issue["message"]
