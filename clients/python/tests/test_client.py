"""The sender: batching, retries, refusals, the spool, and bounds on waiting."""

import http.server
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from support import ClientTest, FakeCollector, _client, eventually, free_port, miniray

from miniray import _event, _spool


def queue_events(client, n, task_id="training_q", event_type="task_progress"):
    """Queue n events of one task straight into the client, as a Task would, all
    at once: the sender takes none of them before it can take them all."""
    ids = []
    with client._cond:
        for i in range(n):
            eid = _event.new_id()
            ids.append(eid)
            client._enqueue(event_type, _event.encode_event(
                eid, task_id, "training", "q", event_type, {"step": i}))
    return ids


class TransportTest(ClientTest, unittest.TestCase):
    def test_posts_ndjson_to_the_ingest(self):
        queue_events(self.client, 3)
        self.assertTrue(self.client.flush(10))
        req = self.fake.requests[0]
        self.assertEqual(req["path"], "/api/v1/events")
        self.assertEqual(req["headers"]["Content-Type"], "application/x-ndjson")
        self.assertNotIn("Authorization", req["headers"])
        self.assertEqual(self.client.stats()["sent"], 3)

    def test_url_forms(self):
        cases = [("http://h:1", "http://h:1/api/v1/events"),
                 ("http://h:1/", "http://h:1/api/v1/events"),
                 ("https://h/miniray", "https://h/miniray/api/v1/events"),
                 ("http://h:1/api/v1/events", "http://h:1/api/v1/events")]
        for url, want in cases:
            with self.subTest(url=url):
                self.assertEqual(miniray.Client(url=url, spool_dir="").url, want)
        for bad in ["127.0.0.1:8081", "nats://h:4222", "http://"]:
            with self.subTest(url=bad), self.assertRaises(ValueError):
                miniray.Client(url=bad, spool_dir="")

    def test_batches_what_queued_while_a_post_was_in_flight(self):
        self.fake.gate = threading.Event()
        ids = queue_events(self.client, 1)
        eventually(self, "first request", lambda: len(self.fake.requests) == 1)
        ids += queue_events(self.client, 1200)
        self.fake.gate.set()
        self.assertTrue(self.client.flush(30))
        counts = [r["count"] for r in self.fake.requests]
        self.assertEqual(sum(counts), 1201)
        self.assertEqual(counts[:4], [1, 500, 500, 200])
        self.assertEqual([e["event_id"] for e in self.fake.snapshot()], ids)

    def test_retries_a_503_with_the_same_event_ids(self):
        self.fake.script = [(503, {"error": "retry"}, {}), (502, {}, {})]
        ids = queue_events(self.client, 4)
        self.assertTrue(self.client.flush(30))
        self.assertEqual(self.fake.posted_ids(), [ids, ids, ids])
        self.assertEqual(len(self.fake.snapshot()), 4)
        self.assertEqual(self.spool_files(), [])

    def test_honours_retry_after(self):
        self.fake.script = [(503, {"error": "nats"}, {"Retry-After": "1"})]
        start = time.monotonic()
        queue_events(self.client, 1)
        self.assertTrue(self.client.flush(30))
        self.assertGreaterEqual(time.monotonic() - start, 0.9)

    def test_duplicates_are_counted(self):
        payload = _event.encode_event(_event.new_id(), "training_d", "training", "d",
                                      "task_progress", {"step": 1})
        self.client._enqueue("task_progress", payload)
        self.assertTrue(self.client.flush(10))
        self.client._enqueue("task_progress", payload)
        self.assertTrue(self.client.flush(10))
        st = self.client.stats()
        self.assertEqual((st["sent"], st["duplicates"]), (2, 1))

    def test_bad_event_is_dropped_and_the_rest_sent(self):
        self.fake.gate = threading.Event()
        queue_events(self.client, 1)
        eventually(self, "first request", lambda: len(self.fake.requests) == 1)
        with self.client._cond:
            good = queue_events(self.client, 2)
            self.client._enqueue("task_progress", _event.encode_event(
                _event.new_id(), "bad.id", "training", "q", "task_progress", {}))
            good += queue_events(self.client, 2)
        with self.assertLogs("miniray", level="ERROR") as logs:
            self.fake.gate.set()
            self.assertTrue(self.client.flush(10))
        self.assertIn("refused an event", logs.output[0])
        self.assertEqual([e["event_id"] for e in self.fake.snapshot()][1:], good)
        self.assertEqual(self.client.stats()["refused"], 1)

    def test_request_too_large_is_split(self):
        self.fake.refuse_over = 3
        self.fake.gate = threading.Event()
        queue_events(self.client, 1)
        eventually(self, "first request", lambda: len(self.fake.requests) == 1)
        ids = queue_events(self.client, 20)
        self.fake.gate.set()
        self.assertTrue(self.client.flush(10))
        self.assertEqual([e["event_id"] for e in self.fake.snapshot()][1:], ids)
        self.assertEqual(self.client.stats()["refused"], 0)

    def test_close_is_quick_and_idempotent(self):
        queue_events(self.client, 5)
        start = time.monotonic()
        self.assertTrue(self.client.close(10))
        self.assertTrue(self.client.close(10))
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(len(self.fake.snapshot()), 5)
        self.assertEqual(self.spool_files(), [])
        with self.assertLogs("miniray", level="WARNING"):
            queue_events(self.client, 1)


class TokenTest(ClientTest, unittest.TestCase):
    token = "a-token-of-sixteen-chars"

    def test_token_is_sent(self):
        queue_events(self.client, 2)
        self.assertTrue(self.client.flush(10))
        self.assertEqual(self.fake.requests[0]["headers"]["Authorization"],
                         "Bearer " + self.token)
        self.assertEqual(len(self.fake.snapshot()), 2)

    def test_redirect_is_not_followed_with_the_token(self):
        # A collector that answers with a redirect, once: the client must not send
        # the token, nor the events, to where it points, and delivers them after.
        seen = []

        class Thief(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                seen.append((self.command, self.headers.get("Authorization")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _record

        thief = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Thief)
        threading.Thread(target=thief.serve_forever, args=(0.02,), daemon=True).start()
        self.addCleanup(thief.server_close)
        self.addCleanup(thief.shutdown)
        where = "http://127.0.0.1:%d/api/v1/events" % thief.server_address[1]
        self.fake.script = [(302, {"error": "moved"}, {"Location": where})]
        ids = queue_events(self.client, 3)
        self.assertTrue(self.client.flush(30))
        self.assertEqual(seen, [])
        self.assertEqual([e["event_id"] for e in self.fake.snapshot()], ids)

    def test_token_from_the_environment(self):
        os.environ["MINIRAY_INGEST_TOKEN"] = self.token
        self.addCleanup(os.environ.pop, "MINIRAY_INGEST_TOKEN")
        c = miniray.Client(url=self.fake.url, spool_dir=self.spool_dir, heartbeat=0)
        self.addCleanup(c.close, 5)
        queue_events(c, 1)
        self.assertTrue(c.flush(10))
        self.assertEqual(len(self.fake.snapshot()), 1)

    def test_wrong_token_warns_once_and_the_job_goes_on(self):
        c = self.make_client(token="wrong-token-of-16-chars")

        @miniray.track_training_job(name="refused", client=c)
        def job(x):
            miniray.progress(1, 1)
            return x + 1

        with self.assertLogs("miniray", level="WARNING") as logs:
            self.assertEqual([job(i) for i in range(3)], [1, 2, 3])
            start = time.monotonic()
            self.assertTrue(c.close(10))
            self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(sum("refused the token" in m for m in logs.output), 1, logs.output)
        self.assertEqual(self.fake.snapshot(), [])
        self.assertEqual(c.stats()["refused"], 12)
        self.assertEqual(self.spool_files(), [])  # refused events must not come in by disk


class UnreachableTest(ClientTest, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.url = "http://127.0.0.1:%d" % free_port()

    def test_job_runs_warns_once_and_spools_in_the_go_format(self):
        c = self.make_client(url=self.url)

        @miniray.track_training_job(name="offline", client=c)
        def job(n):
            for i in range(n):
                miniray.progress(i + 1, n, {"loss": 0.1})
            return "ok"

        with self.assertLogs("miniray", level="WARNING") as logs:
            self.assertEqual(job(3), "ok")
            self.assertEqual(job(3), "ok")
            eventually(self, "spooled", lambda: c.stats()["spooled"] == 12)
        self.assertEqual(sum("unreachable" in m for m in logs.output), 1, logs.output)
        files = self.spool_files()
        self.assertEqual(len(files), 1)
        if _spool.available:
            import fcntl
            with open(files[0], "rb") as f:  # held while the client lives
                with self.assertRaises(OSError):
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        start = time.monotonic()
        with self.assertLogs("miniray", level="WARNING"):
            self.assertTrue(c.close(10))
        self.assertLess(time.monotonic() - start, 5)
        with open(files[0], "rb") as f:
            payloads, bad = _spool.parse(f.read())
        self.assertEqual(bad, 0)
        evs = [json.loads(p) for p in payloads]
        self.assertEqual([e["event_type"] for e in evs[:6]],
                         ["task_submitted", "task_started"] + ["task_progress"] * 3 +
                         ["task_completed"])
        self.assertEqual(len({e["event_id"] for e in evs}), 12)

    def test_without_spool_close_is_bounded_and_reports_the_loss(self):
        c = self.make_client(url=self.url, spool_dir="")
        queue_events(c, 3)
        start = time.monotonic()
        with self.assertLogs("miniray", level="WARNING") as logs:
            self.assertFalse(c.close(1))
        self.assertLess(time.monotonic() - start, 5)
        self.assertTrue(any("lost" in m for m in logs.output), logs.output)

    def test_progress_never_waits_for_a_hanging_collector(self):
        self.fake.gate = threading.Event()  # every request hangs
        c = self.make_client(queue_size=50, timeout=60)

        @miniray.track_training_job(name="hung", client=c)
        def job():
            worst = 0.0
            for i in range(2000):
                t = time.perf_counter()
                miniray.progress(i, 2000, {"loss": 1.0})
                worst = max(worst, time.perf_counter() - t)
            return worst

        with self.assertLogs("miniray", level="WARNING") as logs:
            start = time.monotonic()
            worst = job()
            self.assertLess(time.monotonic() - start, 10)
            self.assertLess(worst, 1.0)
            start = time.monotonic()
            c.close(1)
            self.assertLess(time.monotonic() - start, 5)
        self.assertTrue(any("queue full" in m for m in logs.output), logs.output)
        st = c.stats()
        self.assertGreater(st["dropped"], 0)
        # Every lifecycle event is kept, here in the spool, once the close gave up.
        self.fake.gate.set()
        with open(self.spool_files()[0], "rb") as f:
            kinds = [json.loads(p)["event_type"] for p in _spool.parse(f.read())[0]]
        sent = [e["event_type"] for e in self.fake.snapshot()]
        for kind in ("task_submitted", "task_started", "task_completed"):
            self.assertIn(kind, kinds + sent)

    def test_spool_is_sent_when_the_collector_comes_back(self):
        port = free_port()
        c = self.make_client(url="http://127.0.0.1:%d" % port)
        with self.assertLogs("miniray", level="WARNING"):
            ids = queue_events(c, 30)
            eventually(self, "spooled", lambda: c.stats()["spooled"] == 30)
            ids += queue_events(c, 5)
            eventually(self, "spooled", lambda: c.stats()["spooled"] == 35)
        path = c.spool_path

        # The spool is sent a few records at a time, and one of the posts fails:
        # only that part is sent again.
        old = _client.SPOOL_READ_BYTES
        _client.SPOOL_READ_BYTES = 2000
        self.addCleanup(setattr, _client, "SPOOL_READ_BYTES", old)
        with self.assertLogs("miniray", level="INFO") as logs:
            later = FakeCollector(port=port)
            later.script = [None, (503, {"error": "nats"}, {})]
            self.addCleanup(later.close)
            self.assertTrue(c.flush(30))
        self.assertTrue(any("reachable again" in m for m in logs.output), logs.output)
        self.assertEqual([e["event_id"] for e in later.snapshot()], ids)
        posts = later.posted_ids()
        self.assertGreater(len(posts), 3)
        self.assertEqual(posts[1], posts[2])
        self.assertEqual(sum(len(p) for p in posts), 35 + len(posts[1]))
        self.assertEqual(os.path.getsize(path), 0)
        ids2 = queue_events(c, 2)
        self.assertTrue(c.close(10))
        self.assertFalse(os.path.exists(path))
        self.assertEqual([e["event_id"] for e in later.snapshot()][35:], ids2)

    def test_collector_down_then_up_loses_nothing_without_spool(self):
        port = free_port()
        c = self.make_client(url="http://127.0.0.1:%d" % port, spool_dir="")
        with self.assertLogs("miniray", level="WARNING"):
            ids = queue_events(c, 10)
            eventually(self, "offline", lambda: c._offline)
        later = FakeCollector(port=port)
        self.addCleanup(later.close)
        self.assertTrue(c.flush(30))
        self.assertEqual([e["event_id"] for e in later.snapshot()], ids)


class OrphanTest(ClientTest, unittest.TestCase):
    def write_spool(self, name, payloads):
        os.makedirs(self.spool_dir, exist_ok=True)
        path = os.path.join(self.spool_dir, name)
        with open(path, "wb") as f:
            f.write(b"".join(_spool.record(p) for p in payloads))
            f.write(b"0badf00d {torn")
        return path

    @unittest.skipUnless(_spool.available, "needs flock")
    def test_spool_files_of_ended_jobs_are_sent(self):
        import fcntl
        mk = lambda: _event.encode_event(_event.new_id(), "training_o", "training", "o",  # noqa
                                         "task_progress", {"step": 1})
        old = [mk() for _ in range(3)]
        orphan = self.write_spool("0000000000000000001-1-a.spool", old)
        held = self.write_spool("0000000000000000002-2-b.spool", [mk()])
        other = self.write_spool("notes.txt", [mk()])
        f = open(held, "rb")
        self.addCleanup(f.close)
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

        queue_events(self.client, 1)  # the first delivery starts the drain
        eventually(self, "orphan sent", lambda: not os.path.exists(orphan))
        got = [e["event_id"] for e in self.fake.snapshot()]
        for p in old:
            self.assertIn(json.loads(p)["event_id"], got)
        self.assertTrue(os.path.exists(held))
        self.assertTrue(os.path.exists(other))


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class HTTPSTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.cert = os.path.join(tmp.name, "cert.pem")
        key = os.path.join(tmp.name, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", self.cert, "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        self.fake = FakeCollector(ssl_context=ctx)
        self.addCleanup(self.fake.close)
        self.url = self.fake.url
        self.spool_dir = os.path.join(tmp.name, "spool")

    def test_https_with_a_ca_file(self):
        c = miniray.Client(url=self.url, ca_file=self.cert, spool_dir=self.spool_dir,
                           heartbeat=0)
        self.addCleanup(c.close, 5)
        queue_events(c, 2)
        self.assertTrue(c.flush(10))
        self.assertEqual(len(self.fake.snapshot()), 2)

    def test_https_with_an_unknown_ca_is_unreachable(self):
        c = miniray.Client(url=self.url, spool_dir=self.spool_dir, heartbeat=0)
        with self.assertLogs("miniray", level="WARNING") as logs:
            queue_events(c, 1)
            self.assertFalse(c.flush(1))
            self.assertTrue(c.close(1))  # spooled
        self.assertIn("CERTIFICATE_VERIFY_FAILED", "".join(logs.output))

    def test_missing_ca_file(self):
        with self.assertRaises(OSError):
            miniray.Client(url=self.url, ca_file="/nonexistent/ca.pem", spool_dir="")


if __name__ == "__main__":
    unittest.main()
