"""A tiny scripted Slack stand-in for tests: a threaded HTTP server on 127.0.0.1.

It records every POST (path, headers, raw body, parsed JSON or form body) and answers from a
script: a list of :class:`Reply` consumed one per request, then ``default``. Webhook paths
(``/services/...``) answer ``ok`` as plain text like Slack does; API paths (``/api/<method>``)
answer ``{"ok": true, ...}``; ``files.getUploadURLExternal`` hands out an upload URL on this
server (``/upload/<file id>``, which accepts the bytes) and ``files.completeUploadExternal``
echoes its files, so slack-sdk's ``files_upload_v2`` works end to end. A reply can also delay
before answering (a hang). ``RecordingSlackServer(port)`` binds a given port (start it late to
turn "connection refused" into a healthy server).

Use the ``slack_server`` fixture (``from slack_server import slack_server_fixture``) or the class directly.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import parse_qs

import pytest


@dataclass
class Reply:
    """One scripted answer; ``body`` None means Slack's normal success body for the path."""

    status: int = 200
    headers: Dict[str, str] = field(default_factory=dict)
    body: Optional[str] = None
    delay: float = 0.0


@dataclass
class Recorded:
    path: str
    headers: Dict[str, str]
    raw: bytes
    body: Any  # parsed JSON (dict) or form fields (dict) or None


class RecordingSlackServer:
    """Start with ``start()`` (or as a context manager); ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, port: int = 0) -> None:
        self.requests: List[Recorded] = []
        self.script: List[Reply] = []
        self.default = Reply()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def webhook_url(self, secret: str = "T000/B000/XXXXSECRETXXXX") -> str:
        return "%s/services/%s" % (self.url, secret)

    @property
    def api_base_url(self) -> str:
        return self.url + "/api/"

    def answer(self, *replies: Reply, default: Optional[Reply] = None) -> None:
        """Script the next answers (and optionally the answer after them)."""
        with self._lock:
            self.script = list(replies)
            if default is not None:
                self.default = default

    @property
    def messages(self) -> List[Recorded]:
        """The requests that posted a message (webhook posts and chat.postMessage)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.startswith("/services/") or r.path == "/api/chat.postMessage"
            ]

    def message_texts(self) -> List[str]:
        """The ``text`` of every posted message, in arrival order."""
        return [str((r.body or {}).get("text", "")) for r in self.messages]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` requests arrived (True) or ``timeout`` passed (False)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if len(self.requests) >= count:
                    return True
            time.sleep(0.01)
        return False

    def start(self) -> RecordingSlackServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="test-slack-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> RecordingSlackServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _next_reply(self) -> Reply:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def _record(self, item: Recorded) -> None:
        with self._lock:
            self.requests.append(item)

    def _handler_class(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                content_type = self.headers.get("Content-Type", "")
                body: Any = None
                try:
                    if "json" in content_type:
                        body = json.loads(raw.decode("utf-8"))
                    elif "form" in content_type:
                        body = {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
                except ValueError:
                    body = None
                server._record(Recorded(self.path, dict(self.headers.items()), raw, body))
                reply = server._next_reply()
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.body is not None:
                    text = reply.body
                elif reply.status == 200 and self.path == "/api/files.getUploadURLExternal":
                    file_id = "F%04d" % len(server.requests)
                    text = json.dumps(
                        {
                            "ok": True,
                            "upload_url": "%s/upload/%s" % (server.url, file_id),
                            "file_id": file_id,
                        }
                    )
                elif reply.status == 200 and self.path == "/api/files.completeUploadExternal":
                    files = (body or {}).get("files") if isinstance(body, dict) else None
                    if isinstance(files, str):
                        files = json.loads(files)
                    text = json.dumps({"ok": True, "files": files or []})
                elif self.path.startswith("/upload/"):
                    text = "OK - %d" % length if reply.status == 200 else "error"
                elif self.path.startswith("/api/"):
                    if reply.status == 200:
                        text = json.dumps({"ok": True, "channel": "C1", "ts": "1.0"})
                    else:
                        text = json.dumps({"ok": False, "error": "http_%d" % reply.status})
                else:
                    text = "ok" if reply.status == 200 else "error %d" % reply.status
                payload = text.encode("utf-8")
                self.send_response(reply.status)
                is_json = text.startswith("{")
                self.send_header(
                    "Content-Type", "application/json" if is_json else "text/plain; charset=utf-8"
                )
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a hang)
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # silence stderr
                return

        return Handler


@pytest.fixture(name="slack_server")
def slack_server_fixture() -> Iterator[RecordingSlackServer]:
    """A started :class:`RecordingSlackServer`; import ``slack_server_fixture`` to use it."""
    with RecordingSlackServer() as server:
        yield server
