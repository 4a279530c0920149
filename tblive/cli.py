"""The command line: the only module that prints, parses arguments and sets exit codes.

Exit status: 0 when the report was produced (with ``--fail-on LEVEL``: 1 when a finding reaches
LEVEL); 2 with one line on stderr for bad input (no such directory, no event files, a bad config).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any, List, Optional, Sequence

from tblive import __version__

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


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
    from tblive.judge.metrics import Config, load_config

    config = load_config(path) if path else Config.default()
    if expected_steps:
        config.grace.expected_steps = int(expected_steps)
    return config


def _fail(message: str) -> int:
    sys.stderr.write("tblive: %s\n" % message)
    return EXIT_BAD_INPUT


def _write(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


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


def _analyze(paths: Sequence[str], config: Any, verify: bool):
    from tblive.doors.posthoc import analyze

    results = []
    for path in paths:
        results.extend(analyze(path, config, verify_payload=verify, progress=_Progress()))
    return results


def _fail_level(args: argparse.Namespace):
    from tblive.judge.findings import Status

    return Status.parse(args.fail_on) if args.fail_on else None


def cmd_report(args: argparse.Namespace) -> int:
    from tblive.judge.metrics import ConfigError
    from tblive.render.report import overall_status, render_json, render_text

    try:
        config = _load_config(args.config, args.expected_steps)
        results = _analyze([args.logdir], config, args.verify_crc)
    except (ConfigError, OSError, ValueError) as error:
        return _fail(str(error))
    _print(render_text(args.logdir, results, verbose=args.verbose, colour=_use_colour(sys.stdout)))
    try:
        if args.output:
            _write(args.output, render_text(args.logdir, results, verbose=args.verbose) + "\n")
        if args.json:
            _write(args.json, json.dumps(render_json(args.logdir, results), indent=2) + "\n")
    except OSError as error:
        return _fail("cannot write the report: %s" % error)
    level = _fail_level(args)
    if level is not None and overall_status(results) >= level:
        return EXIT_FINDINGS
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from tblive.judge.metrics import ConfigError
    from tblive.render.compare import compare_table, compare_to_dict
    from tblive.render.report import overall_status

    try:
        config = _load_config(args.config, args.expected_steps)
        results = _analyze(args.runs, config, args.verify_crc)
    except (ConfigError, OSError, ValueError) as error:
        return _fail(str(error))
    _print(compare_table(results, colour=_use_colour(sys.stdout)))
    if args.json:
        try:
            _write(args.json, json.dumps(compare_to_dict(results), indent=2) + "\n")
        except OSError as error:
            return _fail("cannot write the comparison: %s" % error)
    level = _fail_level(args)
    if level is not None and overall_status(results) >= level:
        return EXIT_FINDINGS
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    from tblive.alert.engine import SinkSettings
    from tblive.doors.watch import WatchOptions, watch
    from tblive.judge.metrics import ConfigError

    try:
        config = _load_config(args.config, args.expected_steps)
    except (ConfigError, OSError, ValueError) as error:
        return _fail(str(error))
    if str(args.log_level).upper() == "WARNING":  # the default: still show every alert/lifecycle
        for name in ("tblive.alert.tracker", "tblive.doors.watch", "tblive.read.tail"):
            logging.getLogger(name).setLevel(logging.INFO)
    sinks = SinkSettings.from_environment(
        slack_webhook=args.slack_webhook,
        slack_channel=args.slack_channel,
        slack_base_url=args.slack_base_url,
        on_critical=args.on_critical,
        events_log=args.events_log,
    )
    options = WatchOptions(
        logdir=args.logdir,
        config=config,
        interval=args.interval,
        poll_interval=args.poll,
        slack_webhook=sinks.slack_webhook,
        slack_token=sinks.slack_token,
        slack_channel=sinks.slack_channel,
        slack_base_url=sinks.slack_base_url,
        on_critical=sinks.on_critical,
        events_log=sinks.events_log,
        final_report=args.final_report,
        cooldown=args.cooldown,
        stall_after=args.stall_after,
        verify_payload=args.verify_crc,
        exit_when_finished=args.exit_when_finished,
    )
    try:
        return watch(options)
    except ValueError as error:
        return _fail(str(error))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file overriding patterns/thresholds")
    parser.add_argument(
        "--expected-steps",
        type=int,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tblive",
        description="Live monitor and honest verdicts for TensorBoard logs of RL training runs.",
    )
    parser.add_argument("--version", action="version", version="tblive %s" % __version__)
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    report = sub.add_parser("report", help="read a log directory once and print the verdict")
    report.add_argument("logdir", help="a run directory or a results tree with many runs")
    report.add_argument("--verbose", "-v", action="store_true", help="add a per-metric table")
    report.add_argument("--json", metavar="FILE", help="also write the JSON report to FILE")
    report.add_argument("--output", "-o", metavar="FILE", help="also write the text report to FILE")
    report.add_argument(
        "--fail-on",
        choices=["warning", "critical"],
        help="exit 1 when a finding reaches this level",
    )
    _common(report)
    report.set_defaults(handler=cmd_report)

    compare = sub.add_parser("compare", help="key metrics of several runs side by side")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run directories or trees")
    compare.add_argument("--json", metavar="FILE", help="also write the comparison as JSON")
    compare.add_argument("--fail-on", choices=["warning", "critical"])
    _common(compare)
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
        const=5.0,
        default=None,
        metavar="SECONDS",
        help="poll the files instead of inotify (NFS/CIFS/GPFS/Lustre: inotify misses writes "
        "made by other hosts); default every 5 s",
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
    watch.add_argument("--events-log", metavar="FILE", help="append every alert as a JSON line")
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    except Exception as error:  # a bug or an input nobody foresaw: one line, never a traceback
        logging.getLogger("tblive").debug("unexpected error", exc_info=True)
        return _fail(
            "%s: %s (run with --log-level DEBUG for details)" % (type(error).__name__, error)
        )


def _entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
