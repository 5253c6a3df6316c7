"""The event model on the wire, as pkg/events defines it in Go.

An event is one JSON object: event_id, task_id, task_type, name, event_type,
timestamp (Unix seconds with microseconds), timestamp_str (RFC 3339 in UTC with
microseconds) and data. Events are encoded here, in the job's thread, the moment
they are reported: the queue then holds immutable bytes that need no further work
and that a later change to the job's objects cannot alter.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import secrets
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

TASK_SUBMITTED = "task_submitted"
TASK_STARTED = "task_started"
TASK_PROGRESS = "task_progress"
TASK_COMPLETED = "task_completed"
TASK_FAILED = "task_failed"
TASK_CANCELLED = "task_cancelled"
TASK_HEARTBEAT = "task_heartbeat"

TASK_TYPES = ("training", "inference", "tuning", "task")

# Event types that may be dropped when the queue is full: there can be one per
# step, and losing some costs a point on a chart. The others are a handful per task
# and make its status, so they are always kept.
DROPPABLE = frozenset({TASK_PROGRESS, TASK_HEARTBEAT})

# The bounds of pkg/events (bound.go): the collector keeps an event whole, but the
# dashboards cut what is larger, so nothing is gained by sending more.
MAX_ID_LEN = 128
MAX_TEXT_LEN = 64 << 10
MAX_JSON_LEN = 256 << 10
MAX_METRICS = 256
MAX_LABEL_LEN = 1024  # host, attempt, a metric's name (events.MaxLabelLen)

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,%d}\Z" % MAX_ID_LEN)


def valid_id(s: Any) -> bool:
    """Report whether s can be a task or event id: 1 to 128 ASCII letters,
    digits, '_' and '-', so that it fits in a NATS subject token."""
    return isinstance(s, str) and _ID_RE.match(s) is not None


class _NUID:
    """Unique ids in the shape of the Go client's (github.com/nats-io/nuid):
    22 base-62 characters, a random prefix of 12 and a sequence of 10 that grows
    by a random step. Cheap enough for every progress event, and unique across
    processes because each process draws its own prefix."""

    _DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    _PRE_LEN = 12
    _SEQ_LEN = 10
    _MAX_SEQ = 62 ** 10
    _MIN_INC = 33
    _MAX_INC = 333

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reseed()

    def reseed(self) -> None:
        """Draw a new prefix and sequence. A forked child must call it, or it
        would hand out the same ids as its parent, and the stream would drop
        its events as copies."""
        self._lock = threading.Lock()
        self._prefix = "".join(secrets.choice(self._DIGITS) for _ in range(self._PRE_LEN))
        self._seq = secrets.randbelow(self._MAX_SEQ)
        self._inc = self._MIN_INC + secrets.randbelow(self._MAX_INC - self._MIN_INC)

    def next(self) -> str:
        with self._lock:
            self._seq += self._inc
            if self._seq >= self._MAX_SEQ:
                self._prefix = "".join(
                    secrets.choice(self._DIGITS) for _ in range(self._PRE_LEN))
                self._seq = secrets.randbelow(self._MAX_SEQ)
                self._inc = self._MIN_INC + secrets.randbelow(self._MAX_INC - self._MIN_INC)
            prefix, seq = self._prefix, self._seq
        out = []
        for _ in range(self._SEQ_LEN):
            seq, r = divmod(seq, 62)
            out.append(self._DIGITS[r])
        return prefix + "".join(reversed(out))


_nuid = _NUID()


def new_id() -> str:
    """Return a new unique id: an event id, an attempt id, a spool file's name."""
    return _nuid.next()


def new_task_id(task_type: str) -> str:
    """Return a new subject-safe task id such as ``training_<22 characters>``."""
    return task_type + "_" + _nuid.next()


def _reseed_after_fork() -> None:
    _nuid.reseed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_after_fork)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def now() -> Tuple[float, str]:
    """Return the time as the pair (timestamp, timestamp_str) of an event. Both
    come from the same microsecond, as in Go's events.New."""
    us = time.time_ns() // 1000
    return us / 1e6, format_micros(us)


def format_micros(us: int) -> str:
    """Format Unix microseconds the way timestamp_str is written:
    2006-01-02T15:04:05.000000Z."""
    t = _EPOCH + datetime.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def truncate(s: str, n: int = MAX_TEXT_LEN) -> str:
    """Keep at most n bytes of s's UTF-8, cut at a character boundary, and say
    how much was cut, like events.Truncate."""
    b = s.encode("utf-8", "surrogatepass")
    if len(b) <= n:
        return s
    cut = n
    while cut > 0 and (b[cut] & 0xC0) == 0x80:
        cut -= 1
    head = b[:cut].decode("utf-8", "surrogatepass")
    return head + "\u2026 [%d bytes cut]" % (len(b) - cut)


def truncate_label(s: str) -> str:
    """Cut a label longer than MAX_LABEL_LEN bytes as events.TruncateLabel does, so
    that it fits with the note of the cut: the ingest refuses longer ones."""
    if len(s.encode("utf-8", "surrogatepass")) <= MAX_LABEL_LEN:
        return s
    return truncate(s, MAX_LABEL_LEN - 32)


def _json_default(o: Any) -> Any:
    # Arrays and scalars of numpy, torch, jax and pandas all have tolist(); a
    # dataclass becomes its fields. Anything else is refused as json would.
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    tolist = getattr(o, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(o, (set, frozenset)):
        return list(o)
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


class RawJSON:
    """A JSON value already encoded: a job's params or result, captured when it
    was reported."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def encode_value(v: Any, what: str) -> RawJSON:
    """Encode a job's params or result as strict JSON (no NaN), capturing it as it
    is now. A value over the dashboards' bound is replaced by a note, as
    events.Bound does. It raises ValueError or TypeError when v does not encode."""
    text = json.dumps(v, default=_json_default, allow_nan=False, ensure_ascii=True,
                      separators=(",", ":"))
    if len(text) > MAX_JSON_LEN:
        text = json.dumps("[%s of %d bytes not kept]" % (what, len(text)))
    return RawJSON(text)


def encode_metrics(metrics: Mapping[Any, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """Turn a job's metrics into the JSON the Go model reads: finite numbers as
    numbers, NaN and the infinities as "NaN", "+Inf" and "-Inf". It returns the
    metrics and the names of those that are not numbers and were left out."""
    out: Dict[str, Any] = {}
    bad: List[str] = []
    for k, v in metrics.items():
        name = truncate_label(k if isinstance(k, str) else str(k))
        if not name:  # the ingest refuses a metric without a name
            bad.append(repr(name))
            continue
        try:
            f = float(v)
        except (TypeError, ValueError, OverflowError):
            bad.append(name)
            continue
        if math.isnan(f):
            out[name] = "NaN"
        elif math.isinf(f):
            out[name] = "+Inf" if f > 0 else "-Inf"
        else:
            out[name] = f
    if len(out) > MAX_METRICS:
        out = {k: out[k] for k in sorted(out)[:MAX_METRICS]}
    return out, bad


# The order of data's fields in Go's struct, so that the JSON reads the same.
_DATA_ORDER = ("attempt", "description", "parent_id", "params", "host", "pid", "step",
               "total", "metrics", "result", "error", "stack", "reason")
_TEXT_FIELDS = ("description", "error", "stack", "reason")


def _dumps(v: Any) -> str:
    return json.dumps(v, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def encode_event(event_id: str, task_id: str, task_type: str, name: str, event_type: str,
                 data: Mapping[str, Any], at: Optional[Tuple[float, str]] = None) -> bytes:
    """Encode one event as the JSON line the ingest and the spool take.

    data holds the fields of the event's data; empty strings, zero pids and None
    are left out, as Go's omitempty does, except a result, which Go writes even
    when it is null. The output is ASCII, so it is UTF-8 whatever the job's text
    holds (a lone surrogate becomes an escape the Go decoder replaces)."""
    ts, ts_str = at if at is not None else now()
    parts = []
    for key in _DATA_ORDER:
        if key not in data:
            continue
        v = data[key]
        if key == "result" and isinstance(v, RawJSON):
            parts.append('"result":' + v.text)
            continue
        if v is None or v == "" or (key == "pid" and v == 0):
            continue
        if isinstance(v, RawJSON):
            parts.append(_dumps(key) + ":" + v.text)
        elif key in _TEXT_FIELDS:
            parts.append(_dumps(key) + ":" + _dumps(truncate(str(v))))
        else:
            parts.append(_dumps(key) + ":" + _dumps(v))
    head = _dumps({
        "event_id": event_id,
        "task_id": task_id,
        "task_type": task_type,
        "name": truncate(name),
        "event_type": event_type,
        "timestamp": ts,
        "timestamp_str": ts_str,
    })
    return (head[:-1] + ',"data":{' + ",".join(parts) + "}}").encode("ascii")
