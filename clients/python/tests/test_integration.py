"""Against a real collector: run only when MINIRAY_URL names one.

MINIRAY_INGEST_TOKEN is sent when set. When MINIRAY_TEST_DASHBOARD_URL names a
dashboard reading the same stream, the tests also check what it shows.
tests/python_test.go runs them with both set, against the real programs.
"""

import json
import os
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from support import miniray

from miniray import _event

URL = os.environ.get("MINIRAY_URL", "")
DASHBOARD = os.environ.get("MINIRAY_TEST_DASHBOARD_URL", "").rstrip("/")

# Task names carry the run's own suffix, so that a collector used before holds
# no task of the same name.
RUN = _event.new_id()[-8:]


@unittest.skipUnless(URL, "MINIRAY_URL not set: these tests need a running collector")
class CollectorTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.client = miniray.Client(spool_dir=os.path.join(tmp.name, "spool"),
                                     heartbeat=0.2)
        self.addCleanup(self.client.close, 30)

    def flush(self):
        self.assertTrue(self.client.flush(60), self.client.stats())
        return self.client.stats()

    def payload(self, task_id, step):
        return _event.encode_event(_event.new_id(), task_id, "training", "integration",
                                   "task_progress", {"step": step})

    def test_a_tuning_job_and_its_trials_are_stored(self):
        c = self.client

        @miniray.track_training_job(name="py-it-trial-" + RUN, client=c)
        def trial(lr):
            for step in range(1, 6):
                miniray.progress(step, 5, {"loss": lr / step, "lr": lr})
            return {"lr": lr, "loss": lr / 5}

        @miniray.track_tuning_job(name="py-it-search-" + RUN, description="integration search",
                                  params={"lrs": [0.1, 0.2]}, client=c)
        def search(lrs):
            return min((trial(lr) for lr in lrs), key=lambda r: r["loss"])

        best = search([0.1, 0.2])
        self.assertEqual(best, {"lr": 0.1, "loss": 0.1 / 5})
        st = self.flush()
        self.assertEqual(st["sent"], st["queued"])
        self.assertEqual(st["refused"], 0)
        if not DASHBOARD:
            return
        page = wait_for(self, lambda: self.listed("py-it-search-" + RUN, 1))
        search_task = page[0]
        tuning_id = search_task["task_id"]
        done = wait_for(self, lambda: self.task(tuning_id, "COMPLETED"))
        self.assertEqual(done["type"], "tuning")
        self.assertEqual(done["description"], "integration search")
        self.assertEqual(done["params"], {"lrs": [0.1, 0.2]})
        self.assertEqual(done["result"], best)
        trials = wait_for(self, lambda: self.listed("py-it-trial-" + RUN, 2, parent_id=tuning_id))
        for t in trials:
            self.assertEqual(t["status"], "COMPLETED")
            self.assertEqual(t["parent_id"], tuning_id)
            self.assertEqual(t["progress"], {"step": 5, "total": 5})
            series = get(self, "/api/tasks/%s/metrics" % t["task_id"])
            self.assertEqual(len(series["series"]["loss"]["step"]), 5)

    def test_a_resent_event_is_a_duplicate(self):
        p = self.payload(_event.new_task_id("training"), 1)
        self.client._enqueue("task_progress", p)
        self.flush()
        self.client._enqueue("task_progress", p)
        st = self.flush()
        self.assertEqual((st["sent"], st["duplicates"]), (2, 1))

    def test_a_bad_event_is_refused_alone(self):
        tid = _event.new_task_id("training")
        with self.client._cond:
            self.client._enqueue("task_progress", self.payload(tid, 1))
            self.client._enqueue("task_progress", self.payload("no.dots.allowed", 2))
            self.client._enqueue("task_progress", self.payload(tid, 3))
        with self.assertLogs("miniray", level="ERROR") as logs:
            st = self.flush()
        self.assertIn("task_id", logs.output[0])
        self.assertEqual((st["sent"], st["refused"]), (2, 1))

    def test_non_finite_metrics_are_stored(self):
        @miniray.track_training_job(name="py-it-diverged-" + RUN, client=self.client)
        def diverge():
            miniray.progress(1, 2, {"loss": float("nan"), "grad": float("inf")})
            return None

        diverge()
        st = self.flush()
        self.assertEqual((st["sent"], st["refused"]), (st["queued"], 0))
        if DASHBOARD:
            [t] = wait_for(self, lambda: self.listed("py-it-diverged-" + RUN, 1))
            done = wait_for(self, lambda: self.task(t["task_id"], "COMPLETED"))
            self.assertEqual(done["metrics"], {"loss": "NaN", "grad": "+Inf"})

    def test_heartbeats_are_accepted(self):
        @miniray.track_inference_job(name="py-it-beat-" + RUN, client=self.client)
        def wait():
            time.sleep(0.7)

        wait()
        st = self.flush()
        self.assertGreaterEqual(st["sent"], 4)  # submitted, started, beats, completed
        self.assertEqual(st["refused"], 0)

    # The dashboard's API.

    def listed(self, name, n, **query):
        q = dict(query, q=name, limit=1000)
        page = get(self, "/api/tasks?" + urllib.parse.urlencode(q))
        tasks = [t for t in page["tasks"] if t["name"] == name]
        return tasks if len(tasks) >= n else None

    def task(self, task_id, status):
        t = get(self, "/api/tasks/" + task_id, missing_ok=True)
        return t if t is not None and t["status"] == status else None


def get(test, path, missing_ok=False):
    try:
        with urllib.request.urlopen(DASHBOARD + path, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        if missing_ok and e.code == 404:
            return None
        test.fail("GET %s: %s" % (path, e))


def wait_for(test, fn, timeout=60.0):
    """Poll fn until it returns something, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            test.fail("timed out waiting on the dashboard")
        time.sleep(0.1)


if __name__ == "__main__":
    unittest.main()
