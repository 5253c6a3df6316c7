"""The client: a bounded queue of encoded events and the thread that posts them.

Reporting an event never waits on the network: it encodes the event and appends
it to an in-memory queue. A sender thread takes batches off the queue and posts
them as NDJSON to the collector's ingest, which answers only once JetStream has
stored every event. A batch that cannot be posted is retried with the same event
ids, so that the stream and the dashboards drop the copies; while the collector
cannot be reached, batches go to the spool (see _spool) and are sent from there
once it answers again, in the order they were reported.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import sys
import threading
import time
import weakref
from typing import Any, Deque, Dict, List, Optional, Tuple

from . import _event, _spool
from ._config import env_duration
from ._transport import OK, REFUSED, RETRY, Transport, redact

log = logging.getLogger("miniray")

DEFAULT_URL = "http://127.0.0.1:8081"

# DEFAULT_HEARTBEAT is Go's tracking.DefaultHeartbeat: the collector declares a
# task lost after lost_after (by default three heartbeats) without a sign of life.
DEFAULT_HEARTBEAT = 10.0

# DEFAULT_QUEUE_SIZE bounds the events waiting in memory before progress and
# heartbeats are dropped; at a few hundred bytes each it is a few megabytes.
DEFAULT_QUEUE_SIZE = 1 << 14

# DEFAULT_TIMEOUT bounds one request. The ingest waits up to 30 s for JetStream
# before it answers 503; a request that takes longer than this is abandoned and
# retried, which is safe since the events keep their ids.
DEFAULT_TIMEOUT = 15.0

# DEFAULT_CLOSE_TIMEOUT is how long a program's exit waits for its events to be
# acknowledged, unless MINIRAY_FLUSH_TIMEOUT says otherwise. While the collector
# cannot be reached the events are spooled and the exit does not wait.
DEFAULT_CLOSE_TIMEOUT = 10.0

# A request carries at most this many events and bytes: well under the ingest's
# default limit of 4 MiB (ingest_max_bytes), and a batch is split further if the
# collector refuses it as too large.
BATCH_EVENTS = 500
BATCH_BYTES = 1 << 20

# SPOOL_READ_BYTES is how much of the spool is read and posted at a time, so
# that a spool grown large during a long outage is not read whole into memory.
SPOOL_READ_BYTES = 4 * BATCH_BYTES

MIN_BACKOFF = 0.05
MAX_BACKOFF = 2.0

# A failed post is retried quickly this many times, after these pauses, before
# the client calls the collector unreachable and starts spooling: a collector
# restarting, or a 503 while it reconnects to NATS, does not need the disk.
QUICK_RETRIES = (0.1, 0.3)

class Client:
    """Client sends a program's events to the collector from a background thread.

    url, token and ca_file default to MINIRAY_URL (or http://127.0.0.1:8081),
    MINIRAY_INGEST_TOKEN and MINIRAY_CA_FILE; spool_dir to MINIRAY_SPOOL_DIR (or
    miniray/spool in the user's cache directory), and "" keeps unsent events in
    memory only; heartbeat, in seconds, to MINIRAY_HEARTBEAT_INTERVAL (or 10 s),
    and zero or less sends none. It raises ValueError for a URL that is not http
    or https and OSError for a CA file that cannot be read.

    A Client is safe for use from any thread. Call close before the program ends,
    or let the exit handler of the package do it.
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *,
                 ca_file: Optional[str] = None, spool_dir: Optional[str] = None,
                 heartbeat: Optional[float] = None, queue_size: int = DEFAULT_QUEUE_SIZE,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if url is None:
            url = os.environ.get("MINIRAY_URL", "") or DEFAULT_URL
        if token is None:
            token = os.environ.get("MINIRAY_INGEST_TOKEN", "")
        if ca_file is None:
            ca_file = os.environ.get("MINIRAY_CA_FILE", "")
        if spool_dir is None:
            spool_dir = _spool.default_dir()
        if heartbeat is None:
            heartbeat = env_duration("MINIRAY_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT)
        if queue_size < 1:
            raise ValueError("queue_size %d: must be positive" % queue_size)
        # What a forked child needs to make a client like this one.
        self._config: Dict[str, Any] = dict(url=url, token=token, ca_file=ca_file,
                                            spool_dir=spool_dir, heartbeat=heartbeat,
                                            queue_size=queue_size, timeout=timeout)
        self._successor: Optional[Client] = None
        self._transport = Transport(url, token.strip(), ca_file, timeout)
        self.url = redact(self._transport.url)
        self._heartbeat = float(heartbeat)
        self._queue_size = queue_size
        self._pid = os.getpid()

        # _cond guards the queue and every counter below. The counters only grow,
        # but for spooled, which drops to zero when the spool has been sent:
        # settled + spooled <= queued always.
        self._cond = threading.Condition()
        self._queue: Deque[bytes] = collections.deque()
        self._inflight: List[bytes] = []
        self._queued = 0      # events taken into the queue
        self._settled = 0     # stored by the collector, or refused by it for good
        self._sent = 0        # stored by the collector
        self._duplicates = 0  # of those, how many it already had
        self._refused = 0     # refused for good: bad event or wrong token
        self._spooled = 0     # in this client's spool file, not yet sent
        self._dropped = 0     # progress and heartbeats dropped on a full queue
        self._late = 0        # reported after close
        self._offline = False
        self._closing = False
        self._stopping = False
        self._exited = False
        self._close_result: Optional[bool] = None

        # Owned by the sender thread, but for the exit path of close.
        self._stop = threading.Event()
        self._spool_dir = spool_dir if _spool.available else ""
        self._spool: Optional[_spool.SpoolFile] = None
        self._spool_lock = threading.Lock()
        self._spool_closed = False
        self._backoff = MIN_BACKOFF
        self._retry_at = 0.0
        self._delivered = threading.Event()  # set by the first delivery, or close
        self._warned: set = set()

        # Tasks that are running, for the heartbeat thread.
        self._beat_lock = threading.Lock()
        self._running: set = set()
        self._beat_thread: Optional[threading.Thread] = None

        self._thread = threading.Thread(target=self._run, name="miniray-sender", daemon=True)
        self._thread.start()
        if self._spool_dir:
            threading.Thread(target=self._drain_orphans, name="miniray-spool-drain",
                             daemon=True).start()
        _clients.add(self)

    def __repr__(self) -> str:
        return "<miniray.Client %s>" % self.url

    # The job's side.

    def _enqueue(self, event_type: str, payload: bytes) -> None:
        """Queue one encoded event without waiting. A progress event or a
        heartbeat that finds the queue full is dropped and counted."""
        warn = False
        with self._cond:
            if self._stopping:
                self._late += 1
                warn = self._late == 1
            elif event_type in _event.DROPPABLE and len(self._queue) >= self._queue_size:
                self._dropped += 1
                warn = self._dropped == 1
            else:
                self._queue.append(payload)
                self._queued += 1
                self._cond.notify_all()
                return
        if warn and self._stopping:
            log.warning("miniray: an event was reported after the client was closed;"
                        " it is not sent")
        elif warn:
            log.warning("miniray: event queue full (%d events), dropping progress events"
                        " until the collector catches up", self._queue_size)

    def _task_running(self, task: Any) -> None:
        if self._heartbeat <= 0:
            return
        with self._beat_lock:
            self._running.add(task)
            if self._beat_thread is None:
                t = threading.Thread(target=self._beat, name="miniray-heartbeat", daemon=True)
                try:
                    t.start()
                except RuntimeError:  # the interpreter is shutting down
                    return
                self._beat_thread = t

    def _task_ended(self, task: Any) -> None:
        # Once this returns no heartbeat of the task follows: the beat thread emits
        # under the same lock, so the task's last event is its end.
        with self._beat_lock:
            self._running.discard(task)

    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat):
            with self._beat_lock:
                for task in list(self._running):
                    task._emit(_event.TASK_HEARTBEAT, {})

    # Waiting.

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every event reported before the call has been stored by the
        collector (or refused by it for good, which is logged), or until timeout
        seconds have passed. It returns whether everything was settled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            while self._settled < target:
                if self._exited:
                    return False
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    return False
                self._cond.wait(wait)
            return True

    def close(self, timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT) -> bool:
        """Wait up to timeout seconds until every event is stored by the collector
        or, while it cannot be reached, safe in the spool; then stop the sender,
        which spools whatever is still unsent. It returns True when no event was
        lost (spooled events are sent later by the collector or the next job on
        this machine) and logs a warning otherwise. Closing twice is harmless."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._closing:
                return bool(self._close_result)
            self._closing = True
            target = self._queued
            while not self._exited:
                if self._settled >= target or (
                        self._offline and self._settled + self._spooled >= target):
                    break
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    break
                self._cond.wait(wait)
            self._stopping = True
            self._cond.notify_all()
        self._stop.set()
        self._delivered.set()

        # The sender is idle or about to spool the rest; if it is stuck in a
        # request, spool for it. Events then sent twice are dropped by id.
        grace = 1.0 if deadline is None else min(1.0, max(0.2, deadline - time.monotonic()))
        self._thread.join(grace)
        if self._thread.is_alive():
            with self._cond:
                rest = self._inflight + list(self._queue)
                self._queue.clear()
            self._spool_rest(rest)
        with self._beat_lock:
            self._running.clear()
        _clients.discard(self)
        self._close_result = self._report()
        return self._close_result

    def _report(self) -> bool:
        with self._cond:
            lost = max(0, self._queued - self._settled - self._spooled) + self._late
            spooled, dropped = self._spooled, self._dropped
        if spooled and self._spool is not None:
            log.warning("miniray: %d events left in the spool %s, to be sent by the collector"
                        " or the next job on this machine", spooled, self._spool.path)
        if lost:
            log.warning("miniray: %d events were neither delivered nor spooled, and are lost",
                        lost)
        if dropped:
            log.warning("miniray: %d progress events were dropped on a full queue", dropped)
        return lost == 0

    def stats(self) -> Dict[str, int]:
        """Return the client's counters: events queued, sent (stored by the
        collector), duplicates (of those, ones it already had), refused (bad or
        unauthorized, dropped), spooled (on disk, waiting), dropped (progress on a
        full queue) and pending (queued and not yet settled)."""
        with self._cond:
            return {
                "queued": self._queued,
                "sent": self._sent,
                "duplicates": self._duplicates,
                "refused": self._refused,
                "spooled": self._spooled,
                "dropped": self._dropped,
                "pending": self._queued - self._settled,
            }

    @property
    def spool_path(self) -> Optional[str]:
        """The path of this client's spool file, once it has one."""
        s = self._spool
        return s.path if s is not None else None

    # The sender's side.

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    due = False
                    while not self._stopping:
                        due = self._spooled > 0 and time.monotonic() >= self._retry_at
                        if self._queue or due:
                            break
                        wait = None
                        if self._spooled:
                            wait = max(self._retry_at - time.monotonic(), 0.001)
                        self._cond.wait(wait)
                    if self._stopping:
                        return
                    batch = [] if due else self._take()
                    self._inflight = batch
                if due:
                    self._send_spool()
                else:
                    self._deliver(batch)
        except Exception:  # a bug here must not go unnoticed, nor hang close
            log.exception("miniray: the sender stopped")
        finally:
            self._finish()

    def _take(self) -> List[bytes]:
        batch: List[bytes] = []
        size = 0
        while self._queue and len(batch) < BATCH_EVENTS:
            n = len(self._queue[0]) + 1
            if batch and size + n > BATCH_BYTES:
                break
            batch.append(self._queue.popleft())
            size += n
        return batch

    def _finish(self) -> None:
        with self._cond:
            rest = self._inflight + list(self._queue)
            self._queue.clear()
            self._inflight = []
        self._spool_rest(rest)
        with self._cond:
            self._exited = True
            self._cond.notify_all()

    def _spool_rest(self, rest: List[bytes]) -> None:
        """Spool what is left at the end and close the spool file, removing it
        when it holds nothing."""
        if rest:
            self._to_spool(rest)
        with self._spool_lock:
            if self._spool is not None and not self._spool_closed:
                with self._cond:
                    keep = self._spooled > 0
                try:
                    self._spool.close(keep)
                except OSError:
                    pass
            self._spool_closed = True

    def _deliver(self, batch: List[bytes]) -> None:
        """Post a batch or, once the collector cannot be reached, spool it. With
        no spool the batch is retried in memory until it is delivered or the
        client stops."""
        if self._spooled == 0:
            batch, reason = self._post_counted(batch, QUICK_RETRIES)
            self._set_inflight(batch)
            if not batch:
                self._set_online()
                return
            self._set_offline(reason)
        if self._to_spool(batch):
            self._set_inflight([])
            return
        backoff = MIN_BACKOFF
        while batch:
            if self._stop.wait(backoff):
                return  # _finish spools what is left in _inflight, if it can
            backoff = min(2 * backoff, MAX_BACKOFF)
            batch, reason = self._post_counted(batch, ())
            self._set_inflight(batch)
        self._set_online()

    def _set_inflight(self, batch: List[bytes]) -> None:
        # _inflight is what the sender holds and has not settled: what close
        # spools if the sender is stuck.
        with self._cond:
            self._inflight = batch
            self._cond.notify_all()

    def _post_counted(self, batch: List[bytes],
                      retries: Tuple[float, ...]) -> Tuple[List[bytes], str]:
        """Post a batch, retrying after the given pauses, and count what the
        collector settled. It returns the events still unsent and why."""
        reason, retry_after = "", 0.0
        for i, pause in enumerate((0.0,) + tuple(retries)):
            wait = max(pause, retry_after) if i else 0.0
            if wait and self._stop.wait(wait):
                break
            batch, ok, refused, (reason, retry_after) = self._post_all(batch)
            self._settle(ok, refused)
            if not batch:
                return [], ""
        return batch, reason

    def _settle(self, ok: int, refused: int) -> None:
        if ok or refused:
            with self._cond:
                self._settled += ok + refused
                self._sent += ok
                self._refused += refused
                self._cond.notify_all()
        if ok and not self._delivered.is_set():
            self._delivered.set()

    def _post_all(self, payloads: List[bytes]) -> Tuple[List[bytes], int, int, Tuple[str, float]]:
        """Post events in requests of bounded size. A request refused for one bad
        event is sent again without it; one refused as a whole is split until the
        bad event is alone. It returns the events not sent for a reason that may
        pass, how many were stored and refused, and that reason."""
        work = self._chunks(payloads)
        ok = refused = 0
        while work:
            chunk = work.pop(0)
            kind, info = self._transport.post(chunk)
            if kind == OK:
                ok += len(chunk)
                if info:
                    with self._cond:
                        self._duplicates += info
                continue
            if kind == RETRY:
                rest = chunk + [p for c in work for p in c]
                return rest, ok, refused, info
            if kind == REFUSED:
                self._warn_once("token", "miniray: the collector at %s refused the token (%s);"
                                " events are dropped. Set MINIRAY_INGEST_TOKEN to its"
                                " ingest_token", self.url, info)
                refused += len(chunk) + sum(len(c) for c in work)
                return [], ok, refused, ("", 0.0)
            index, msg = info
            if index is not None and 0 <= index < len(chunk):
                self._bad_event(chunk[index], msg)
                refused += 1
                rest = chunk[:index] + chunk[index + 1:]
                if rest:
                    work.insert(0, rest)
            elif len(chunk) > 1:
                half = len(chunk) // 2
                work[0:0] = [chunk[:half], chunk[half:]]
            else:
                self._bad_event(chunk[0], msg)
                refused += 1
        return [], ok, refused, ("", 0.0)

    @staticmethod
    def _chunks(payloads: List[bytes]) -> List[List[bytes]]:
        out: List[List[bytes]] = []
        chunk: List[bytes] = []
        size = 0
        for p in payloads:
            if chunk and (len(chunk) >= BATCH_EVENTS or size + len(p) + 1 > BATCH_BYTES):
                out.append(chunk)
                chunk, size = [], 0
            chunk.append(p)
            size += len(p) + 1
        if chunk:
            out.append(chunk)
        return out

    def _bad_event(self, payload: bytes, msg: str) -> None:
        head = payload[:200].decode("ascii", "replace")
        if "bad" not in self._warned:
            self._warned.add("bad")
            log.error("miniray: the collector refused an event, which is dropped: %s; event %s",
                      msg, head)
        else:
            log.debug("miniray: the collector refused an event: %s; event %s", msg, head)

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        if key in self._warned:
            log.debug(msg, *args)
            return
        self._warned.add(key)
        log.warning(msg, *args)

    def _set_offline(self, reason: str) -> None:
        with self._cond:
            if self._offline:
                return
            self._offline = True
            self._cond.notify_all()
        where = "kept in memory"
        if self._spool_dir:
            where = "spooled in %s" % self._spool_dir
        msg = ("miniray: collector at %s unreachable (%s); events are %s and sent when it"
               " answers; the job goes on")
        if "offline" in self._warned:
            log.info(msg, self.url, reason, where)
        else:
            self._warned.add("offline")
            log.warning(msg, self.url, reason, where)

    def _set_online(self) -> None:
        with self._cond:
            if not self._offline:
                return
            self._offline = False
            self._cond.notify_all()
        log.info("miniray: collector at %s reachable again", self.url)

    def _to_spool(self, batch: List[bytes]) -> bool:
        """Append events to this client's spool file, creating it on first use.
        It reports False when there is no usable spool."""
        with self._spool_lock:
            if not self._spool_dir or self._spool_closed:
                return False
            if self._spool is None:
                try:
                    self._spool = _spool.SpoolFile.create(self._spool_dir)
                except OSError as e:
                    log.warning("miniray: no spool in %s (%s); events wait in memory",
                                self._spool_dir, e)
                    self._spool_dir = ""
                    return False
            try:
                self._spool.append(batch)
            except OSError as e:
                log.warning("miniray: spool write to %s failed (%s); events wait in memory",
                            self._spool.path, e)
                return False
        with self._cond:
            if self._spooled == 0:
                self._retry_at = time.monotonic() + self._backoff
            self._spooled += len(batch)
            self._cond.notify_all()
        return True

    def _send_spool(self) -> None:
        """Post the next records of the spool file, oldest first. Once the
        collector stored them they count as settled, and once it stored them all
        the file is emptied and new events are posted directly again. A failed
        post is retried after a growing pause; events sent twice are dropped by id.
        Records already sent stay in the file until it is emptied: if the client
        stops before, whoever sends the file sends them again, to the same end."""
        with self._spool_lock:
            if self._spool is None or self._spool_closed:
                return
            try:
                payloads, offset, bad = self._spool.read_next(SPOOL_READ_BYTES)
            except OSError as e:
                log.warning("miniray: read spool %s: %s", self._spool.path, e)
                payloads = None
        if payloads is not None:
            if bad:
                log.warning("miniray: spool %s has %d damaged records, skipped",
                            self._spool.path, bad)
            rest, ok, _, _ = self._post_all(payloads) if payloads else ([], 0, 0, None)
            emptied = None if rest else self._advance_spool(offset)
            if emptied is not None:
                with self._cond:
                    n = self._spooled if emptied else min(len(payloads) + bad, self._spooled)
                    self._spooled -= n
                    self._settled += n
                    self._sent += ok
                    self._refused += n - ok
                    self._backoff = MIN_BACKOFF
                    self._retry_at = time.monotonic()  # the next records, at once
                    self._cond.notify_all()
                if emptied:
                    self._set_online()
                return
        with self._cond:
            self._backoff = min(2 * self._backoff, MAX_BACKOFF)
            self._retry_at = time.monotonic() + self._backoff

    def _advance_spool(self, offset: int) -> Optional[bool]:
        """Move the spool's sent offset; None when that failed."""
        with self._spool_lock:
            if self._spool is None or self._spool_closed:
                return None
            try:
                return self._spool.advance(offset)
            except OSError as e:
                log.warning("miniray: empty spool %s: %s", self._spool.path, e)
                return None

    def _drain_orphans(self) -> None:
        """Send, once the collector has taken this client's first events, the
        spool files that processes now gone left on this machine. The collector
        does the same for the files in its own spool_dir; a file both send is
        stored once. The thread starts with the client because Python 3.12 and
        later start none while the interpreter shuts down, which is when a short
        script first reaches the collector."""
        self._delivered.wait()
        if self._stopping:
            return

        def send(payloads: List[bytes]) -> bool:
            rest, _, _, _ = self._post_all(payloads)
            return not rest

        try:
            n, problems = _spool.drain_orphans(self._spool_dir, self.spool_path, send)
        except Exception:
            log.exception("miniray: sending spool files left by other jobs")
            return
        if n:
            log.info("miniray: sent %d events spooled by jobs that ended", n)
        for p in problems:
            log.info("miniray: spool file left by another job: %s", p)

    def _live(self) -> "Client":
        """Return the client to use in this process: this one, or in a forked
        child, a new one made with the same settings, once."""
        if self._pid == os.getpid():
            return self
        with _fork_lock:
            s = self._successor
            if s is None or s._pid != os.getpid():
                s = Client(**self._config)
                self._successor = s
                _register_exit()
            return s

    def _abandon_after_fork(self) -> None:
        """Make a forked child's copy of the client inert: its threads did not
        survive the fork, and its locks may be held by them for ever."""
        self._cond = threading.Condition()
        self._beat_lock = threading.Lock()
        self._spool_lock = threading.Lock()
        self._stopping = True
        self._exited = True
        self._running = set()
        if self._spool is not None:
            self._spool.abandon()
        self._spool_closed = True


# Every open client, for the exit handler and for a forked child.
_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()

_default_lock = threading.Lock()
_fork_lock = threading.Lock()
_default: Optional[Client] = None
_default_failed = False
_exit_pids: set = set()


def _register_exit() -> None:
    """Make sure the clients of this process are closed when it exits: by atexit,
    and in a multiprocessing worker, which leaves through os._exit, by its
    finalizers."""
    pid = os.getpid()
    if pid in _exit_pids:
        return
    _exit_pids.add(pid)
    if not _exit_pids - {pid}:
        atexit.register(_close_at_exit)  # inherited by forked children
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, _close_at_exit, exitpriority=10)


def get_client() -> Optional[Client]:
    """Return the client that tracked jobs use when they are given none, making
    it from the environment on first use. It returns None, after a warning, when
    the environment is unusable (or MINIRAY_URL is "off"): jobs then run and
    report nothing. In a forked child it is a new client with the parent's
    settings."""
    global _default, _default_failed
    with _default_lock:
        if _default is not None:
            _default = _default._live()
            return _default
        if _default_failed:
            return None
        if os.environ.get("MINIRAY_URL", "").strip().lower() == "off":
            _default_failed = True
            return None
        try:
            _default = Client()
        except (ValueError, OSError) as e:
            _default_failed = True
            log.warning("miniray: tracking disabled: %s", e)
            return None
        _register_exit()
        return _default


def set_client(client: Optional[Client]) -> None:
    """Make client the one tracked jobs use when they are given none. The one it
    replaces is not closed. None makes the next job build one from the
    environment again."""
    global _default, _default_failed
    with _default_lock:
        _default = client
        _default_failed = False
        if client is not None:
            _register_exit()


def flush(timeout: Optional[float] = None) -> bool:
    """Flush the default client, if there is one. See Client.flush."""
    with _default_lock:
        c = _default
    return c.flush(timeout) if c is not None else True


def close(timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT) -> bool:
    """Close the default client, if there is one; the next job makes a new one.
    See Client.close."""
    global _default
    with _default_lock:
        c, _default = _default, None
    if c is None or c._pid != os.getpid():
        return True
    return c.close(timeout)


def _close_at_exit() -> None:
    # Every client still open gets a share of one bounded wait, so that a script
    # that ends right after its job loses nothing and exits in bounded time.
    timeout = env_duration("MINIRAY_FLUSH_TIMEOUT", DEFAULT_CLOSE_TIMEOUT)
    deadline = time.monotonic() + max(timeout, 0.0)
    for c in list(_clients):
        if c._pid == os.getpid():
            c.close(max(deadline - time.monotonic(), 0.0))


def _after_fork_in_child() -> None:
    # Only the forking thread survives a fork, and any lock another thread held
    # stays held: every lock is made anew, and the parent's clients made inert.
    global _default_lock, _fork_lock
    _default_lock = threading.Lock()
    _fork_lock = threading.Lock()
    for c in list(_clients):
        c._abandon_after_fork()
        _clients.discard(c)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
