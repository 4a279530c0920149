"""The command line: the only module that prints, parses arguments and sets exit codes.

Exit status: 0 when the report was produced (with ``--fail-on LEVEL``: 1 when a finding reaches
LEVEL, or when no run had any data); 2 with one line on stderr for bad input (no such directory, no event files, a bad config).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from typing import IO, Any, Callable, List, NoReturn, Optional, Sequence, Union

from tblive import __version__
from tblive.errors import TbliveError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
#: ``tblive watch --poll`` without a number polls this often (seconds)
POLL_DEFAULT = 5.0


class _Progress:
    """A progress bar on stderr, shown only when the work takes over a second and stderr is a tty."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.shown = False
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, done: int, total: int, name: str) -> None:
        if not self.enabled or total <= 1:
            return
        if not self.shown and time.monotonic() - self.started < 1.0:
            return
        self.shown = True
        width = 30
        filled = int(width * done / max(total, 1))
        line = "\r[%s%s] %d/%d %s" % ("#" * filled, "." * (width - filled), done, total, name[:40])
        self.stream.write(line.ljust(100)[:100])
        if done >= total:
            self.stream.write("\r" + " " * 100 + "\r")
        self.stream.flush()


def _load_config(path: Optional[str], expected_steps: Optional[int] = None):
    from tblive.judge.config import Config
    from tblive.judge.config_file import load_config

    config = load_config(path) if path else Config.default()
    if expected_steps:
        config.grace.expected_steps = int(expected_steps)
    return config


def _fail(message: str) -> int:
    sys.stderr.write("tblive: %s\n" % message)
    return EXIT_BAD_INPUT


def _write(path: str, text: Union[str, Callable[[IO[str]], object]]) -> None:
    """Write a report: ``-`` is stdout, a regular file is replaced atomically, and anything
    else that exists (``/dev/null``, ``/dev/stdout``, a FIFO) is written in place -- replacing
    it with a file would destroy a device node.  ``text`` may be a function writing to the
    stream (a big JSON document is streamed rather than built as one string)."""
    write = text if callable(text) else (lambda stream: stream.write(text))
    if path == "-":
        write(sys.stdout)
        sys.stdout.flush()
        return
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as stream:
            write(stream)
        return
    from tblive.atomic import write_atomically_with

    write_atomically_with(path, write)


def _json_writer(document: Any) -> Callable[[IO[str]], object]:
    """A writer of ``json.dumps(document, indent=2) + "\n"``, streamed to the stream."""

    def write(stream: IO[str]) -> None:
        json.dump(document, stream, indent=2)
        stream.write("\n")

    return write


def _output_problem(flag: str, path: Optional[str]) -> Optional[str]:
    """Why ``path`` cannot be written (one line), or None; checked before any reading."""
    if not path or path == "-":
        return None
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return "%s %s: is a directory (give a file name)" % (flag, path)
    if not os.path.exists(parent):
        return "%s %s: the directory %s does not exist" % (flag, path, os.path.dirname(path))
    if not os.path.isdir(parent):
        return "%s %s: %s is a file, not a directory" % (flag, path, os.path.dirname(path))
    if not os.access(parent, os.W_OK):
        return "%s %s: the directory %s is not writable" % (flag, path, parent)
    return None


def _check_outputs(args: argparse.Namespace, flags: Sequence[str]) -> Optional[str]:
    seen = []
    for flag in flags:
        path = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        problem = _output_problem(flag, path)
        if problem:
            return problem
        if path == "-":
            seen.append(flag)
    if len(seen) > 1:
        return "only one of %s can write to stdout (-)" % " / ".join(seen)
    return None


def _terminal_width() -> int:
    """Columns to wrap messages to: the terminal's (or $COLUMNS), at most 120, at least 60."""
    columns = shutil.get_terminal_size((100, 24)).columns
    return max(60, min(columns, 120))


def _use_colour(stream: Any) -> bool:
    return (
        hasattr(stream, "isatty")
        and stream.isatty()
        and os.environ.get("NO_COLOR") is None
        and os.environ.get("TERM") != "dumb"
    )


def _print(text: str) -> None:
    """Print, replacing what the console's encoding cannot show (emoji on a latin-1 terminal)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    sys.stdout.write(text.encode(encoding, "replace").decode(encoding) + "\n")


def _analyze(paths: Sequence[str], config: Any, verify: bool, assume: str = "auto"):
    from tblive.doors.posthoc import analyze

    results = []
    for path in paths:
        results.extend(
            analyze(path, config, verify_payload=verify, progress=_Progress(), assume=assume)
        )
    return results


def _fail_level(args: argparse.Namespace):
    from tblive.judge.findings import Status

    return Status.parse(args.fail_on) if args.fail_on else None


def cmd_report(args: argparse.Namespace) -> int:
    from tblive.render.report import has_data, overall_status, render_json, render_text

    problem = _check_outputs(args, ("--json", "--output", "--html"))
    if problem:
        return _fail(problem)
    try:
        config = _load_config(args.config, args.expected_steps)
        results = _analyze([args.logdir], config, args.verify_crc, args.assume)
    except (TbliveError, OSError, ValueError) as error:
        return _fail(str(error))
    width = _terminal_width()
    if "-" not in (args.json, args.output, args.html):  # stdout is the machine-readable one
        text = render_text(
            args.logdir, results, args.verbose, colour=_use_colour(sys.stdout), width=width
        )
        _print(text)
    try:
        if args.output:
            _write(args.output, render_text(args.logdir, results, args.verbose, width=width) + "\n")
        if args.json:
            _write(args.json, _json_writer(render_json(args.logdir, results)))
        if args.html:
            from tblive.render.html import render_html

            _write(args.html, render_html(args.logdir, results, config.grace))
    except OSError as error:
        return _fail("cannot write the report: %s" % error)
    level = _fail_level(args)
    no_data = not any(has_data(result) for result in results)  # never a pass
    if level is not None and (no_data or overall_status(results) >= level):
        return EXIT_FINDINGS
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from tblive.render.compare import compare_table, compare_to_dict
    from tblive.render.report import has_data, overall_status

    problem = _check_outputs(args, ("--json", "--html"))
    if problem:
        return _fail(problem)
    try:
        config = _load_config(args.config, args.expected_steps)
        results = _analyze(args.runs, config, args.verify_crc, args.assume)
    except (TbliveError, OSError, ValueError) as error:
        return _fail(str(error))
    if "-" not in (args.json, args.html):
        _print(compare_table(results, colour=_use_colour(sys.stdout)))
    try:
        if args.json:
            _write(args.json, _json_writer(compare_to_dict(results)))
        if args.html:
            from tblive.render.html import render_compare_html

            _write(args.html, render_compare_html(results, config.grace))
    except OSError as error:
        return _fail("cannot write the comparison: %s" % error)
    level = _fail_level(args)
    no_data = not any(has_data(result) for result in results)  # never a pass
    if level is not None and (no_data or overall_status(results) >= level):
        return EXIT_FINDINGS
    return EXIT_OK


def _test_alert(options: Any) -> int:
    """``tblive watch --test-alert``: one test message through every configured sink."""
    from tblive.alert.engine import AlertEngine
    from tblive.alert.settings import build_sinks

    engine = AlertEngine(sinks=build_sinks(options.alerts), settings=options.alerts)
    try:
        results = engine.test_alert()
    finally:
        engine.close(1.0)
    for name, error in results.items():
        _print("%s: %s" % (name, "sent" if error is None else "FAILED: %s" % error))
    if options.alerts.on_critical:
        _print("command: not run by the test (it may act, e.g. cancel a job)")
    return EXIT_OK if all(error is None for error in results.values()) else EXIT_FINDINGS


def cmd_watch(args: argparse.Namespace) -> int:
    from tblive.alert.settings import AlertSettings, check_output_file
    from tblive.doors.watch import WatchOptions, watch

    try:
        config = _load_config(args.config, args.expected_steps)
    except (TbliveError, OSError, ValueError) as error:
        return _fail(str(error))
    if str(args.log_level).upper() == "WARNING":  # the default: still show every alert/lifecycle
        for name in ("tblive.alert", "tblive.doors.watch", "tblive.read.tail"):
            logging.getLogger(name).setLevel(logging.INFO)
    try:
        alerts = AlertSettings.from_env(
            slack_webhook=args.slack_webhook,
            slack_channel=args.slack_channel,
            slack_base_url=args.slack_base_url,
            on_critical=args.on_critical,
            command_secrets=args.on_critical_env_secrets,
            events_log=args.events_log,
            state_file=args.state_file,
        ).validate()
        if args.final_report:
            check_output_file(args.final_report, "--final-report")
    except ValueError as error:  # SettingsError: one line, exit 2 before anything starts
        return _fail(str(error))
    sys.stderr.write("tblive: alerts go to: %s\n" % ", ".join(alerts.channels()))
    options = WatchOptions(
        logdir=args.logdir,
        config=config,
        interval=args.interval,
        poll_interval=args.poll,
        alerts=alerts,
        final_report=args.final_report,
        cooldown=args.cooldown,
        stall_after=args.stall_after,
        verify_payload=args.verify_crc,
        exit_when_finished=args.exit_when_finished,
        config_path=args.config,
        expected_steps=args.expected_steps,
        prometheus=args.prometheus,
    )
    if args.test_alert:
        return _test_alert(options)
    try:
        return watch(options)
    except (TbliveError, ValueError) as error:
        return _fail(str(error))


def _assume(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--assume",
        choices=["auto", "finished", "live"],
        default="auto",
        help="judge the runs as finished or still running (default auto: finished when "
        "summary.json is there or no event file changed for 30 min or 30 gaps between points)",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file overriding patterns/thresholds")
    parser.add_argument(
        "--expected-steps",
        type=_positive_int,
        metavar="N",
        help="the planned length of the runs in steps (grace.expected_steps): failure signs "
        "are then judged against shares of it instead of point counts",
    )
    parser.add_argument(
        "--verify-crc",
        action="store_true",
        help="check every record's payload CRC (slower; by default only length headers and "
        "records that fail to decode are checked)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``tblive: --expected-steps: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, "tblive: %s (see %s --help)\n" % (message, self.prog))


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    level = str(text).strip().upper()
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            "unknown log level %r (expected %s)" % (text, ", ".join(_LOG_LEVELS))
        )
    return level


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of steps, not %s" % text)
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tblive",
        description="Live monitor and honest verdicts for TensorBoard logs of RL training runs.",
    )
    parser.add_argument("--version", action="version", version="tblive %s" % __version__)
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=_log_level,
        metavar="LEVEL",
        help="logging level: DEBUG, INFO, WARNING (default), ERROR or CRITICAL",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    report = sub.add_parser("report", help="read a log directory once and print the verdict")
    report.add_argument("logdir", help="a run directory or a results tree with many runs")
    report.add_argument("--verbose", "-v", action="store_true", help="add a per-metric table")
    report.add_argument(
        "--json", metavar="FILE", help="also write the JSON report to FILE (- for stdout only)"
    )
    report.add_argument("--output", "-o", metavar="FILE", help="also write the text report to FILE")
    report.add_argument(
        "--html",
        metavar="FILE",
        help="also write a self-contained HTML report with plots to FILE (needs matplotlib)",
    )
    report.add_argument(
        "--fail-on",
        choices=["warning", "critical"],
        help="exit 1 when a finding reaches this level",
    )
    _common(report)
    _assume(report)
    report.set_defaults(handler=cmd_report)

    compare = sub.add_parser("compare", help="key metrics of several runs side by side")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run directories or trees")
    compare.add_argument(
        "--json", metavar="FILE", help="also write the comparison as JSON (- for stdout only)"
    )
    compare.add_argument(
        "--html", metavar="FILE", help="also write the comparison as HTML with overlaid curves"
    )
    compare.add_argument("--fail-on", choices=["warning", "critical"])
    _common(compare)
    _assume(compare)
    compare.set_defaults(handler=cmd_compare)

    watch = sub.add_parser("watch", help="tail a log directory and alert while training runs")
    watch.add_argument("logdir", help="run directory or results tree; may not exist yet")
    watch.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="re-judge every run this often (default 60; sooner when a run's data grew a lot)",
    )
    watch.add_argument(
        "--poll",
        type=float,
        nargs="?",
        const=POLL_DEFAULT,
        default=None,
        metavar="SECONDS",
        help="poll the files instead of inotify (NFS/CIFS/GPFS/Lustre: inotify misses writes "
        "made by other hosts); default every 5 s",
    )
    watch.add_argument(
        "--prometheus",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (needs prometheus-client; "
        "see docs/watch.md)",
    )
    watch.add_argument(
        "--slack-webhook", metavar="URL", help="incoming webhook (or SLACK_WEBHOOK_URL)"
    )
    watch.add_argument(
        "--slack-channel", metavar="CHANNEL", help="channel for the bot token in SLACK_BOT_TOKEN"
    )
    watch.add_argument(
        "--slack-base-url",
        metavar="URL",
        help="alternative Slack API base URL (or SLACK_API_BASE_URL; Slack-compatible servers, tests)",
    )
    watch.add_argument(
        "--on-critical",
        metavar="COMMAND",
        help="shell command run on each CRITICAL alert (TBLIVE_RUN, TBLIVE_CHECK, ... in its env)",
    )
    watch.add_argument(
        "--on-critical-env-secrets",
        action="store_true",
        help="pass SLACK_* and other secret-looking variables to the --on-critical command "
        "(removed from its environment by default)",
    )
    watch.add_argument("--events-log", metavar="FILE", help="append every alert as a JSON line")
    watch.add_argument(
        "--state-file",
        metavar="FILE",
        help="where alert state and undelivered alerts are kept across restarts (default: "
        "$XDG_STATE_HOME/tblive/, one file per LOGDIR)",
    )
    watch.add_argument(
        "--test-alert",
        action="store_true",
        help="send one test message through every configured channel and exit (0: all "
        "delivered, 1: one failed)",
    )
    watch.add_argument(
        "--final-report",
        metavar="FILE",
        help="write the final JSON report here when a run finishes or on shutdown",
    )
    watch.add_argument(
        "--cooldown",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="repeat an unchanged problem after this long (default 3600)",
    )
    watch.add_argument(
        "--stall-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="call a run stalled after this long without data "
        "(default: 10x its median gap between points, at least 600)",
    )
    watch.add_argument(
        "--exit-when-finished",
        action="store_true",
        help="exit once every run has finished (its writer closed and nothing more came)",
    )
    _common(watch)
    watch.set_defaults(handler=cmd_watch)
    return parser


def _bare_poll(argv: Sequence[str]) -> List[str]:
    """``watch --poll LOGDIR``: argparse would take LOGDIR for the seconds of ``--poll``;
    a ``--poll`` followed by something that is neither a number nor an option gets the
    default interval (``--poll=5``), so LOGDIR stays LOGDIR."""
    args = list(argv)
    if "watch" not in args:
        return args
    for index in range(args.index("watch") + 1, len(args) - 1):
        following = args[index + 1]
        if args[index] == "--poll" and not following.startswith("-"):
            try:
                float(following)
            except ValueError:
                args[index] = "--poll=%g" % POLL_DEFAULT
    return args


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_bare_poll(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:  # pragma: no cover - interactive
        return 130
    except TbliveError as error:  # bad input: its one-line message says what and where
        return _fail(str(error))
    except Exception as error:  # a bug or an input nobody foresaw: one line, never a traceback
        logging.getLogger("tblive").debug("unexpected error", exc_info=True)
        return _fail(
            "%s: %s (run with --log-level DEBUG for details)" % (type(error).__name__, error)
        )


def _entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
