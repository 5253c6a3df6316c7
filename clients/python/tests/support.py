"""What the tests share: the import path, a fake collector and small helpers."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

# Test the package next to the tests, not one that may be installed.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import miniray  # noqa: E402
from miniray import _client  # noqa: E402

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
TS_STR_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

# The replies a test can script, one per request, before the server answers 200.
Reply = Tuple[int, Dict[str, Any], Dict[str, str]]


class FakeCollector:
    """An HTTP server that takes POST /api/v1/events like the collector does: it
    checks the content type, the token and that each line is a JSON object,
    keeps the events, and drops a repeated event id as JetStream would.

    script holds replies for the next requests: (status, body, headers), or None
    for the usual answer. gate,
    when set, is waited on by every request before it is answered, so that a
    test can hold the sender while it queues events."""

    def __init__(self, token: str = "", port: int = 0,
                 ssl_context: Optional[Any] = None) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.requests: List[Dict[str, Any]] = []
        self.events: List[Dict[str, Any]] = []
        self.ids: set = set()
        self.script: List[Reply] = []
        self.refuse_over: Optional[int] = None  # 413 for requests with more events
        self.gate: Optional[threading.Event] = None
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                status, reply, headers = fake.handle(self.path, dict(self.headers.items()), body)
                raw = json.dumps(reply).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on a held request

        self.server = Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def handle(self, path: str, headers: Dict[str, str], body: bytes) -> Reply:
        lines = [ln for ln in body.split(b"\n") if ln.strip()]
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body,
                                  "count": len(lines)})
        if self.gate is not None:
            self.gate.wait(30)
        with self.lock:
            if path != "/api/v1/events":
                return 404, {"error": "no such endpoint"}, {}
            if self.token and headers.get("Authorization") != "Bearer " + self.token:
                return 401, {"error": "missing or wrong token"}, {}
            reply = self.script.pop(0) if self.script else None
            if reply is not None:
                return reply
            if not headers.get("Content-Type", "").startswith("application/x-ndjson"):
                return 415, {"error": "content type"}, {}
            if self.refuse_over is not None and len(lines) > self.refuse_over:
                return 413, {"error": "body over the limit"}, {}
            decoded = []
            for i, ln in enumerate(lines):
                try:
                    ev = json.loads(ln)
                except ValueError as e:
                    return 400, {"error": "event %d: %s" % (i, e), "index": i}, {}
                if not isinstance(ev, dict) or not ID_RE.match(str(ev.get("task_id", ""))):
                    return 400, {"error": "event %d: task_id" % i, "index": i,
                                 "field": "task_id"}, {}
                decoded.append(ev)
            dups = 0
            for ev in decoded:
                if ev["event_id"] in self.ids:
                    dups += 1
                    continue
                self.ids.add(ev["event_id"])
                self.events.append(ev)
            return 200, {"events": len(decoded), "accepted": len(decoded) - dups,
                         "duplicates": dups}, {}

    def of_type(self, event_type: str) -> List[Dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["event_type"] == event_type]

    def snapshot(self) -> List[Dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def posted_ids(self) -> List[List[str]]:
        """The event ids of every request, in order, accepted or not."""
        out = []
        with self.lock:
            for r in self.requests:
                ids = []
                for ln in r["body"].split(b"\n"):
                    if ln.strip():
                        try:
                            ids.append(json.loads(ln)["event_id"])
                        except (ValueError, KeyError, TypeError):
                            ids.append("?")
                out.append(ids)
        return out


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def eventually(test: Any, what: str, cond: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll cond until it holds, or fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            test.fail("timed out waiting for " + what)
        time.sleep(0.01)


class ClientTest:
    """A mixin that gives each test a fake collector, a spool directory and a
    client made for them, closed after the test."""

    token = ""

    def setUp(self) -> None:  # noqa: D401
        super().setUp()  # type: ignore[misc]
        self.fake = FakeCollector(token=self.token)
        self.addCleanup(self.fake.close)  # type: ignore[attr-defined]
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)  # type: ignore[attr-defined]
        self.spool_dir = os.path.join(tmp.name, "spool")
        self.client = self.make_client()

    def make_client(self, **kw: Any) -> miniray.Client:
        args: Dict[str, Any] = dict(url=self.fake.url, token=self.token,
                                    spool_dir=self.spool_dir, heartbeat=0)
        args.update(kw)
        c = miniray.Client(**args)
        self.addCleanup(c.close, 5)  # type: ignore[attr-defined]
        return c

    def spool_files(self) -> List[str]:
        if not os.path.isdir(self.spool_dir):
            return []
        return sorted(os.path.join(self.spool_dir, n) for n in os.listdir(self.spool_dir))


def subprocess_env(**extra: str) -> Dict[str, str]:
    """The environment of a Python subprocess that imports this package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIRAY_")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


__all__ = ["miniray", "_client", "FakeCollector", "ClientTest", "eventually", "free_port",
           "subprocess_env", "ID_RE", "TS_STR_RE"]
