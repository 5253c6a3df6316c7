"""The HTTP side: posting batches of events to the collector's ingest and
telling what its answer means for them."""

from __future__ import annotations

import http.client
import ipaddress
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, List, Tuple

INGEST_PATH = "/api/v1/events"

# Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER = 5.0

_USER_AGENT = "miniray-python"


def ingest_url(base: str) -> str:
    """Return the ingest endpoint of a collector URL such as
    http://127.0.0.1:8081; a URL that already names the endpoint is kept."""
    u = urllib.parse.urlsplit(base.strip())
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError("MINIRAY_URL %r: want http://host:port or https://host:port"
                         % redact(base))
    path = u.path.rstrip("/")
    if not path.endswith(INGEST_PATH):
        path += INGEST_PATH
    return urllib.parse.urlunsplit((u.scheme, u.netloc, path, u.query, ""))


def redact(url: str) -> str:
    """Return url with the password of its user info, if any, hidden."""
    u = urllib.parse.urlsplit(url)
    if u.password is None:
        return url
    netloc = u.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit((u.scheme, "***@" + netloc, u.path, u.query, u.fragment))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The outcomes of one post.
OK = "ok"              # stored; info is how many were duplicates
RETRY = "retry"        # not stored, try again later; info is (reason, retry_after)
BAD = "bad"            # refused as wrong; info is (index or None, message)
REFUSED = "refused"    # the token is missing or wrong; info is the message


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turns a redirect into an error. urllib would follow it with the bearer
    token to wherever it points, and as a GET that stores nothing."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


class Transport:
    """Posts batches of encoded events to the ingest."""

    def __init__(self, url: str, token: str, ca_file: str, timeout: float) -> None:
        self.url = ingest_url(url)
        self.token = token
        self.timeout = timeout
        u = urllib.parse.urlsplit(self.url)
        handlers: List[Any] = [_NoRedirect()]
        if u.scheme == "https":
            ctx = ssl.create_default_context(cafile=ca_file or None)
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        if _loopback(u.hostname or ""):
            # A proxy from the environment cannot reach this machine's collector.
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def post(self, payloads: List[bytes]) -> Tuple[str, Any]:
        body = b"\n".join(payloads) + b"\n"
        req = urllib.request.Request(self.url, data=body, method="POST")
        req.add_header("Content-Type", "application/x-ndjson")
        req.add_header("User-Agent", _USER_AGENT)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                reply = resp.read(1 << 16)
        except urllib.error.HTTPError as e:
            return self._refusal(e)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            return RETRY, (str(reason) or type(e).__name__, 0.0)
        dups = 0
        try:
            dups = int(json.loads(reply.decode("utf-8")).get("duplicates", 0))
        except (ValueError, AttributeError, TypeError):
            pass
        return OK, dups

    @staticmethod
    def _refusal(e: urllib.error.HTTPError) -> Tuple[str, Any]:
        try:
            raw = e.read(1 << 16)
        except (OSError, http.client.HTTPException):
            raw = b""
        finally:
            e.close()
        msg, index = raw.decode("utf-8", "replace").strip(), None
        try:
            body = json.loads(msg)
            msg = str(body.get("error", msg))
            if isinstance(body.get("index"), int):
                index = body["index"]
        except (ValueError, AttributeError):
            pass
        text = "HTTP %d: %s" % (e.code, msg[:500])
        if 300 <= e.code < 400:
            # Kept and tried again: the events wait until MINIRAY_URL is put right.
            return RETRY, ("HTTP %d: redirected to %s; set MINIRAY_URL to the collector"
                           " itself" % (e.code, e.headers.get("Location", "?")), 0.0)
        if e.code in (401, 403):
            return REFUSED, text
        if e.code in (400, 413):
            return BAD, (index, text)
        retry_after = 0.0
        try:
            retry_after = min(float(e.headers.get("Retry-After", "0")), MAX_RETRY_AFTER)
        except (TypeError, ValueError):
            pass
        return RETRY, (text, retry_after)
