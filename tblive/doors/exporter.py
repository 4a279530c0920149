"""Prometheus exporter: the live doors' current judgement of every run, served on ``/metrics``.

``tblive watch LOGDIR --prometheus HOST:PORT`` and ``Monitor(prometheus="HOST:PORT")`` serve,
in the Prometheus text format (prometheus-client, imported only when a server starts):

=======================================  ===================================================
metric                                   value
=======================================  ===================================================
``tblive_run_status{run}``               0 OK, 1 WARNING, 2 CRITICAL, -1 no verdict yet
``tblive_check_status{run,check}``       the same per check (worst finding of that check)
``tblive_run_last_step{run}``            the largest step logged
``tblive_run_seconds_since_data{run}``   seconds since data last arrived
``tblive_run_finished{run}``             1 once the run finished or crashed, else 0
``tblive_metric_last{run,role,tag}``     last value of the run's key metrics
=======================================  ===================================================

Label cardinality is bounded: per run one series per check (about fifteen checks) and, for
``tblive_metric_last``, only the key roles of :data:`KEY_ROLES` (``reward`` = the main reward,
``success``, ``entropy``, ``value_loss``, ``policy_loss``) with at most
:data:`MAX_TAGS_PER_ROLE` tags each (multi-agent runs have one per agent) -- never every tag.

The server reads the door's *current* state through a callable returning
:class:`RunSnapshot` objects (a custom collector, no gauges kept): a run that disappears from
the door disappears from ``/metrics`` at the next scrape, with no stale series.  Snapshots are
immutable; the door replaces them, the server's thread only reads them.  The server runs on
its own daemon thread (``tblive-prometheus``) and :meth:`MetricsServer.stop` ends it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from tblive.judge.findings import Verdict

__all__ = [
    "KEY_ROLES",
    "MAX_TAGS_PER_ROLE",
    "MetricsServer",
    "NO_DATA",
    "RunSnapshot",
    "parse_address",
    "snapshot",
]

logger = logging.getLogger(__name__)

#: label ``role`` -> the :class:`~tblive.judge.roles.Roles` attribute whose tags are exported
KEY_ROLES: Tuple[Tuple[str, str], ...] = (
    ("reward", "main_reward"),
    ("success", "success"),
    ("entropy", "entropy"),
    ("value_loss", "value_loss"),
    ("policy_loss", "policy_loss"),
)
#: at most this many tags per role and run (one per agent in multi-agent runs)
MAX_TAGS_PER_ROLE = 4
#: ``tblive_run_status`` of a run without a verdict yet
NO_DATA = -1
INSTALL_HINT = "pip install 'tblive[prometheus]'"


@dataclass(frozen=True)
class RunSnapshot:
    """What ``/metrics`` says about one run; ``last_data`` is seconds since the epoch."""

    run: str
    status: int = NO_DATA
    checks: Tuple[Tuple[str, int], ...] = ()
    last_step: Optional[int] = None
    last_data: Optional[float] = None
    finished: bool = False
    metrics: Tuple[Tuple[str, str, float], ...] = ()


def _number(value: Any) -> Optional[float]:
    """A float (NaN and infinities included: Prometheus shows them), or None."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def snapshot(
    run: str,
    verdict: Optional[Verdict],
    roles: Any = None,
    view: Optional[Mapping[str, Any]] = None,
    last_step: Optional[int] = None,
    last_data: Optional[float] = None,
    finished: bool = False,
) -> RunSnapshot:
    """The snapshot of one run from its latest verdict, roles and statistics (never raises
    for odd statistics: a metric without a last value is left out)."""
    checks: Dict[str, int] = {}
    status = NO_DATA
    if verdict is not None:
        status = int(verdict.status)
        for finding in verdict.findings:
            checks[finding.check] = max(checks.get(finding.check, 0), int(finding.status))
    metrics: List[Tuple[str, str, float]] = []
    if roles is not None and view:
        for label, attribute in KEY_ROLES:
            refs = getattr(roles, attribute, None) or []
            for ref in list(refs)[:MAX_TAGS_PER_ROLE]:
                stats = view.get(ref.tag)
                if stats is None or not getattr(stats, "count", 0):
                    continue
                value = _number(getattr(stats, "last_value", None))
                if value is not None:
                    metrics.append((label, ref.tag, value))
    return RunSnapshot(
        run=run,
        status=status,
        checks=tuple(sorted(checks.items())),
        last_step=None if last_step is None else int(last_step),
        last_data=last_data,
        finished=bool(finished),
        metrics=tuple(metrics),
    )


def parse_address(text: str) -> Tuple[str, int]:
    """``"HOST:PORT"`` / ``":PORT"`` / ``"PORT"`` / ``"[::1]:PORT"`` -> (host, port).

    An empty host is 0.0.0.0 (every interface).  Raises ValueError with one line.
    """
    value = str(text).strip()
    host, separator, port_text = value.rpartition(":")
    if not separator:
        host, port_text = "", value
    host = host.strip("[]") or "0.0.0.0"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(
            "--prometheus %r: expected HOST:PORT, e.g. 127.0.0.1:9100" % text
        ) from None
    if not 0 <= port <= 65535:
        raise ValueError("--prometheus %r: port %d is out of range" % (text, port))
    return host, port


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ValueError("--prometheus needs prometheus-client (%s)" % INSTALL_HINT) from None
    return prometheus_client


class _Collector:
    """A prometheus-client collector that renders the snapshots of the moment."""

    def __init__(self, source: Callable[[], Iterable[RunSnapshot]]) -> None:
        self.source = source

    def describe(self) -> List[Any]:
        return []  # no families at registration: collect() reads live state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            runs = sorted(self.source(), key=lambda s: s.run)
        except Exception:  # a scrape must never take the door down
            logger.exception("tblive exporter: cannot read the runs' state")
            runs = []
        now = time.time()
        status = GaugeMetricFamily(
            "tblive_run_status",
            "Run verdict: 0 OK, 1 WARNING, 2 CRITICAL, -1 no verdict yet",
            labels=["run"],
        )
        checks = GaugeMetricFamily(
            "tblive_check_status",
            "Per-check status: 0 OK, 1 WARNING, 2 CRITICAL",
            labels=["run", "check"],
        )
        step = GaugeMetricFamily("tblive_run_last_step", "Largest step logged", labels=["run"])
        quiet = GaugeMetricFamily(
            "tblive_run_seconds_since_data", "Seconds since data last arrived", labels=["run"]
        )
        finished = GaugeMetricFamily(
            "tblive_run_finished", "1 once the run finished or crashed", labels=["run"]
        )
        metric = GaugeMetricFamily(
            "tblive_metric_last",
            "Last value of the run's key metrics (key roles only)",
            labels=["run", "role", "tag"],
        )
        for run in runs:
            status.add_metric([run.run], float(run.status))
            for check, value in run.checks:
                checks.add_metric([run.run, check], float(value))
            if run.last_step is not None:
                step.add_metric([run.run], float(run.last_step))
            if run.last_data is not None:
                quiet.add_metric([run.run], max(now - run.last_data, 0.0))
            finished.add_metric([run.run], 1.0 if run.finished else 0.0)
            for role, tag, value in run.metrics:
                metric.add_metric([run.run, role, tag], value)
        yield from (status, checks, step, quiet, finished, metric)


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """Serves ``/metrics`` on ``address`` from ``source`` (see the module docstring).

    Construction only checks the address; :meth:`start` imports prometheus-client and binds
    (ValueError with one line when it cannot: not installed, address in use, bad host).
    """

    def __init__(self, address: str, source: Callable[[], Iterable[RunSnapshot]]) -> None:
        self.address = address
        self.host, self.port = parse_address(address)
        self.source = source
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._registry: Any = None
        self._content_type = "text/plain; version=0.0.4; charset=utf-8"

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else "[%s]" % self.host
        return "http://%s:%d/metrics" % (host, self.port)

    def render(self) -> bytes:
        """The current ``/metrics`` body."""
        client = _client()
        if self._registry is None:
            self._registry = client.CollectorRegistry(auto_describe=False)
            self._registry.register(_Collector(self.source))
        return client.generate_latest(self._registry)

    def start(self) -> MetricsServer:
        """Bind and serve on a daemon thread; returns self.  Raises ValueError (one line)."""
        if self._server is not None:
            return self
        client = _client()
        self._content_type = client.CONTENT_TYPE_LATEST
        self.render()  # builds the registry: a broken collector shows now, not at a scrape
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                if path in ("/metrics", "/metrics/"):
                    try:
                        body, code, kind = exporter.render(), 200, exporter._content_type
                    except Exception as error:  # never a traceback into the server thread
                        logger.warning("tblive exporter: cannot render /metrics: %s", error)
                        body, code, kind = b"error\n", 500, "text/plain"
                elif path == "/":
                    body, code, kind = b'<a href="/metrics">/metrics</a>\n', 200, "text/html"
                else:
                    body, code, kind = b"not found\n", 404, "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("exporter: " + format, *args)

        server_class = _IPv6Server if ":" in self.host else ThreadingHTTPServer
        try:
            server = server_class((self.host, self.port), Handler)
        except (OSError, OverflowError) as error:
            raise ValueError(
                "--prometheus %s: cannot serve on it: %s"
                % (self.address, getattr(error, "strerror", None) or error)
            ) from None
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])  # the real port when 0 was asked for
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="tblive-prometheus"
        )
        self._thread.daemon = True
        self._thread.start()
        logger.info("serving Prometheus metrics on %s", self.url)
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop serving and join the thread; True when it ended in time."""
        server, self._server = self._server, None
        if server is None:
            return True
        try:
            server.shutdown()
            server.server_close()
        except Exception as error:
            logger.warning("tblive exporter: stopping failed: %s", error)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True
