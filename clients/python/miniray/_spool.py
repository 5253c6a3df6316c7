"""The spool: events kept on disk while the collector cannot be reached.

The format is the Go client's (pkg/tracking/spool.go), so that the collector, the
Go jobs and this client all send each other's files:

- a directory, MINIRAY_SPOOL_DIR or miniray/spool in the user's cache directory;
- one file per client, named <Unix nanoseconds, 19 digits>-<pid>-<id>.spool, held
  under an exclusive flock(2) while its client lives; a file whose lock is free
  belongs to a process that is gone, and whoever locks it may send it and remove it;
- one record per line: the CRC-32 (IEEE) of the event's JSON as 8 lowercase hex
  digits, a space, the JSON. A torn last line fails its checksum and is skipped.

flock(2) is POSIX only: elsewhere there is no spool and events wait in memory.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from typing import Callable, List, Optional, Tuple

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from . import _event

SPOOL_EXT = ".spool"

available = fcntl is not None


def default_dir() -> str:
    """Return MINIRAY_SPOOL_DIR, or miniray/spool in the user's cache directory,
    the directory Go's os.UserCacheDir names."""
    d = os.environ.get("MINIRAY_SPOOL_DIR", "")
    if d:
        return d
    return os.path.join(_user_cache_dir(), "miniray", "spool")


def _user_cache_dir() -> str:
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Caches")
    if os.name == "nt":
        return os.environ.get("LocalAppData") or os.path.expanduser("~")
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return xdg
    home = os.environ.get("HOME", "")
    if home:
        return os.path.join(home, ".cache")
    import tempfile
    return tempfile.gettempdir()


def record(payload: bytes) -> bytes:
    """Return the spool line of one event's JSON."""
    return b"%08x " % (zlib.crc32(payload) & 0xFFFFFFFF) + payload + b"\n"


def parse(data: bytes) -> Tuple[List[bytes], int]:
    """Return the intact events' JSON of a spool file's bytes and how many lines
    were damaged (bad checksum, torn, or not a JSON object)."""
    out: List[bytes] = []
    bad = 0
    for line in data.split(b"\n"):
        if not line:
            continue
        crc, sep, body = line.partition(b" ")
        try:
            ok = sep == b" " and len(crc) == 8 and int(crc, 16) == zlib.crc32(body) & 0xFFFFFFFF
        except ValueError:
            ok = False
        if not ok or not body.startswith(b"{"):
            bad += 1
            continue
        out.append(body)
    return out, bad


def _write_all(fd: int, b: bytes) -> None:
    view = memoryview(b)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


class SpoolFile:
    """One client's own spool file, locked while it is open."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd: Optional[int] = fd
        # size is how many bytes of whole records the file holds, sent how many of
        # them the collector has stored. torn is set when a failed write left part
        # of a record that could not be cut off: the next write then starts on a
        # new line, so that only that record is lost.
        self.size = 0
        self.sent = 0
        self.torn = False

    @classmethod
    def create(cls, directory: str) -> "SpoolFile":
        """Create and lock a new spool file in directory. It raises OSError when
        that is not possible."""
        if fcntl is None:
            raise OSError("spool needs flock, which this platform lacks")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        name = "%019d-%d-%s%s" % (time.time_ns(), os.getpid(), _event.new_id(), SPOOL_EXT)
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        return cls(path, fd)

    def append(self, payloads: List[bytes]) -> None:
        """Write the events as one write and sync it: a spooled event must outlive
        the process. A failed write is cut off again, so that the file holds whole
        records only; it raises OSError."""
        if self.fd is None:
            raise OSError("spool file is closed")
        buf = b"".join(record(p) for p in payloads)
        if self.torn:
            self.size = os.fstat(self.fd).st_size
            buf = b"\n" + buf
        try:
            _write_all(self.fd, buf)
            os.fsync(self.fd)
        except OSError:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                self.torn = True
            raise
        self.size += len(buf)
        self.torn = False

    def read_next(self, limit: int) -> Tuple[List[bytes], int, int]:
        """Return the events of the whole records that follow the sent ones, about
        limit bytes of them (at least one record), the offset after them, and how
        many damaged records were among them."""
        if self.fd is None:
            raise OSError("spool file is closed")
        start, end = self.sent, self.size
        data = b""
        while start + len(data) < end:
            n = min(limit, end - start - len(data))
            data += os.pread(self.fd, n, start + len(data))
            cut = data.rfind(b"\n")
            if cut >= 0:
                data = data[:cut + 1]
                break
            # One record longer than limit: read on to its end.
        payloads, bad = parse(data)
        return payloads, start + len(data), bad

    def advance(self, offset: int) -> bool:
        """Record that the records before offset were stored. Once all of them
        were, empty the file and report True."""
        if self.fd is None:
            raise OSError("spool file is closed")
        self.sent = offset
        if self.sent < self.size:
            return False
        os.ftruncate(self.fd, 0)
        self.size, self.sent, self.torn = 0, 0, False
        return True

    def close(self, keep: bool) -> None:
        """Release the file, removing it when it holds nothing to send."""
        if self.fd is None:
            return
        if not keep:
            try:
                os.remove(self.path)
            except OSError:
                pass
        os.close(self.fd)
        self.fd = None

    def abandon(self) -> None:
        """Forget the file in a forked child without unlocking it: the lock
        belongs to the open file the parent shares, and closing the child's
        descriptor leaves the parent's lock in place."""
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def drain_orphans(directory: str, own: Optional[str],
                  send: Callable[[List[bytes]], bool]) -> Tuple[int, List[str]]:
    """Send the spool files in directory that no live process holds, oldest
    first, and remove each one once send reports it delivered. It returns how
    many events were sent and the problems met, as text."""
    if fcntl is None:
        return 0, []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(SPOOL_EXT))
    except FileNotFoundError:
        return 0, []
    except OSError as e:
        return 0, ["read spool dir: %s" % e]
    sent = 0
    problems: List[str] = []
    for name in names:
        path = os.path.join(directory, name)
        if path == own:
            continue
        try:
            n = _drain_file(path, send)
        except OSError as e:
            problems.append("%s: %s" % (name, e))
            continue
        if n is None:
            problems.append("%s: not delivered, left for later" % name)
            continue
        sent += n
    return sent, problems


def _drain_file(path: str, send: Callable[[List[bytes]], bool]) -> Optional[int]:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0  # another drainer was quicker
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # its process is alive and sends it itself
        if not os.path.exists(path):
            return 0  # removed by the drainer that held the lock before us
        payloads, _ = parse(_read_all(fd))
        if payloads and not send(payloads):
            return None
        os.remove(path)
        return len(payloads)
    finally:
        os.close(fd)
