"""The decorators and the task context, against a fake collector."""

import asyncio
import contextvars
import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import warnings

from support import (ID_RE, TS_STR_RE, ClientTest, FakeCollector, free_port, miniray,
                     subprocess_env)

ORIGINAL_USAGE = '''
from miniray import track_training_job
@track_training_job(name="My Training Job", description="Trains a model")
def train_model(epochs):
    ...
    return {"accuracy": 0.95}
'''


class DecoratorTest(ClientTest, unittest.TestCase):
    def setUp(self):
        super().setUp()
        miniray.set_client(self.client)
        self.addCleanup(miniray.set_client, None)

    def flushed(self):
        self.assertTrue(self.client.flush(10), self.client.stats())
        return self.fake.snapshot()

    def test_original_usage(self):
        scope = {}
        exec(ORIGINAL_USAGE, scope)
        self.assertEqual(scope["train_model"](10), {"accuracy": 0.95})
        evs = self.flushed()
        self.assertEqual([e["event_type"] for e in evs],
                         ["task_submitted", "task_started", "task_completed"])
        sub, start, done = evs
        tid = sub["task_id"]
        self.assertRegex(tid, r"^training_[0-9A-Za-z]{22}$")
        for e in evs:
            self.assertEqual(e["task_id"], tid)
            self.assertEqual(e["task_type"], "training")
            self.assertEqual(e["name"], "My Training Job")
            self.assertRegex(e["event_id"], ID_RE)
            self.assertRegex(e["timestamp_str"], TS_STR_RE)
            self.assertEqual(e["data"]["attempt"], sub["data"]["attempt"])
        self.assertEqual(len({e["event_id"] for e in evs}), 3)
        self.assertLessEqual(sub["timestamp"], start["timestamp"])
        self.assertLessEqual(start["timestamp"], done["timestamp"])
        self.assertEqual(sub["data"]["description"], "Trains a model")
        self.assertNotIn("parent_id", sub["data"])
        self.assertEqual(start["data"]["pid"], os.getpid())
        self.assertTrue(start["data"]["host"])
        self.assertEqual(done["data"]["result"], {"accuracy": 0.95})

    def test_wrapper_looks_like_the_function(self):
        @miniray.track_inference_job(name="x")
        def predict(a, b=2, *, c=3):
            """Predicts."""
            return a + b + c

        self.assertEqual(predict.__name__, "predict")
        self.assertEqual(predict.__doc__, "Predicts.")
        self.assertEqual(predict(1, c=10), 13)
        self.assertTrue(hasattr(predict, "__wrapped__"))

    def test_bare_decorator_and_default_name(self):
        @miniray.track_training_job
        def fit():
            return 1

        @miniray.track_job
        def other():
            return 2

        self.assertEqual(fit() + other(), 3)
        evs = self.flushed()
        self.assertEqual({(e["name"], e["task_type"]) for e in evs},
                         {("fit", "training"), ("other", "task")})

    def test_failure_is_reported_and_reraised(self):
        @miniray.track_training_job(name="bad")
        def bad():
            raise ValueError("boom")

        with self.assertRaisesRegex(ValueError, "boom"):
            bad()
        evs = self.flushed()
        self.assertEqual([e["event_type"] for e in evs][-1], "task_failed")
        d = evs[-1]["data"]
        self.assertEqual(d["error"], "ValueError: boom")
        self.assertIn("Traceback", d["stack"])
        self.assertIn("in bad", d["stack"])

    def test_keyboard_interrupt_cancels(self):
        @miniray.track_training_job(name="stopped")
        def stopped():
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            stopped()
        last = self.flushed()[-1]
        self.assertEqual(last["event_type"], "task_cancelled")
        self.assertEqual(last["data"]["reason"], "interrupted")

    def test_sys_exit(self):
        @miniray.track_job(name="exit")
        def leave(code):
            sys.exit(code)

        for code, want in [(0, "task_cancelled"), (None, "task_cancelled"), (3, "task_failed")]:
            with self.subTest(code=code), self.assertRaises(SystemExit):
                leave(code)
            self.assertEqual(self.flushed()[-1]["event_type"], want)

    def test_result_that_does_not_encode(self):
        @miniray.track_job(name="odd")
        def odd(v):
            return v

        out = object()
        self.assertIs(odd(out), out)
        odd(float("nan"))
        ends = self.fake.of_type("task_completed") if self.client.flush(10) else []
        self.assertEqual(len(ends), 2)
        for e in ends:
            self.assertNotIn("result", e["data"])
            self.assertTrue(e["data"]["reason"].startswith("result not recorded: "))

    def test_result_is_captured_when_returned(self):
        @miniray.track_job(name="mutable")
        def make():
            return {"n": 1}

        out = make()
        out["n"] = 2
        self.assertEqual(self.flushed()[-1]["data"]["result"], {"n": 1})

    def test_params(self):
        @miniray.track_training_job(name="p", params={"lr": 0.1, "layers": [1, 2]})
        def p():
            return None

        @miniray.track_training_job(name="q", params={"f": object()})
        def q():
            return None

        p()
        q()
        starts = {e["name"]: e for e in self.flushed() if e["event_type"] == "task_started"}
        self.assertEqual(starts["p"]["data"]["params"], {"lr": 0.1, "layers": [1, 2]})
        self.assertIn("params do not encode", starts["q"]["data"]["params"]["error"])

    def test_progress_through_the_current_task(self):
        @miniray.track_training_job(name="steps")
        def steps(n):
            task = miniray.current_task()
            self.assertTrue(task)
            self.assertEqual(task.task_type, "training")
            for i in range(n):
                task.progress(i + 1, n, {"loss": 1.0 / (i + 1), "bad": float("inf")})
            miniray.progress(n, metrics={"acc": 0.9})
            return task.id

        tid = steps(4)
        prog = [e for e in self.flushed() if e["event_type"] == "task_progress"]
        self.assertEqual([e["data"]["step"] for e in prog], [1, 2, 3, 4, 4])
        self.assertEqual(prog[0]["data"]["total"], 4)
        self.assertNotIn("total", prog[-1]["data"])
        self.assertEqual(prog[1]["data"]["metrics"], {"loss": 0.5, "bad": "+Inf"})
        self.assertEqual({e["task_id"] for e in prog}, {tid})

    def test_progress_with_values_that_are_not_numbers(self):
        @miniray.track_training_job(name="mixed")
        def mixed():
            miniray.progress(1, 1, {"loss": 0.5, "note": "text"})
            miniray.progress("not a step")  # logged, not raised
            miniray.progress(-1)  # the ingest would refuse it

        with self.assertLogs("miniray", level="WARNING") as logs:
            mixed()
        self.assertTrue(any("note" in m for m in logs.output), logs.output)
        self.assertTrue(any("step -1 is negative" in m for m in logs.output), logs.output)
        prog = [e for e in self.flushed() if e["event_type"] == "task_progress"]
        self.assertEqual(len(prog), 1)
        self.assertEqual(prog[0]["data"]["metrics"], {"loss": 0.5})

    def test_outside_a_job_there_is_no_task(self):
        t = miniray.current_task()
        self.assertFalse(t)
        self.assertEqual(t.id, "")
        t.progress(1, 2, {"loss": 1})
        miniray.progress(1)
        self.assertTrue(self.client.flush(5))
        self.assertEqual(self.client.stats()["queued"], 0)

    def test_nested_jobs_become_children(self):
        @miniray.track_training_job(name="trial")
        def trial(i):
            inner()
            return i

        @miniray.track_job(name="inner")
        def inner():
            return None

        @miniray.track_tuning_job(name="search", description="grid")
        def search():
            ids = []
            for i in range(2):
                trial(i)
                ids.append(miniray.current_task().id)
            return ids

        search()
        self.assertFalse(miniray.current_task())
        subs = [e for e in self.flushed() if e["event_type"] == "task_submitted"]
        by_name = {}
        for e in subs:
            by_name.setdefault(e["name"], []).append(e)
        root = by_name["search"][0]
        self.assertNotIn("parent_id", root["data"])
        trials = by_name["trial"]
        self.assertEqual(len(trials), 2)
        for t in trials:
            self.assertEqual(t["data"]["parent_id"], root["task_id"])
        trial_ids = {t["task_id"] for t in trials}
        for e in by_name["inner"]:
            self.assertIn(e["data"]["parent_id"], trial_ids)

    def test_explicit_parent_and_fixed_task_id(self):
        @miniray.track_training_job(name="fixed", task_id="my-job_1", parent="sweep-7")
        def fixed():
            return miniray.current_task().attempt

        a, b = fixed(), fixed()
        self.assertNotEqual(a, b)
        evs = self.flushed()
        self.assertEqual({e["task_id"] for e in evs}, {"my-job_1"})
        self.assertEqual({e["data"]["attempt"] for e in evs}, {a, b})
        subs = [e for e in evs if e["event_type"] == "task_submitted"]
        self.assertEqual({e["data"]["parent_id"] for e in subs}, {"sweep-7"})

    def test_fixed_id_called_inside_itself_has_no_self_parent(self):
        @miniray.track_job(name="rec", task_id="rec")
        def rec(n):
            return rec(n - 1) if n else 0

        rec(1)
        subs = [e for e in self.flushed() if e["event_type"] == "task_submitted"]
        self.assertEqual(len(subs), 2)
        for e in subs:
            self.assertNotIn("parent_id", e["data"])

    def test_bad_arguments_fail_at_decoration(self):
        with self.assertRaises(ValueError):
            miniray.track_training_job(name="x", task_id="has.dot")
        with self.assertRaises(ValueError):
            miniray.track_training_job(name="x", parent="a b")
        with self.assertRaises(ValueError):
            miniray.track_job(name="x", task_type="other")
        with self.assertRaises(TypeError):
            miniray.track_job(name="x", description=3)
        with self.assertRaises(TypeError):
            @miniray.track_job(name="gen")
            def gen():
                yield 1

    def test_threads_start_without_a_task(self):
        seen = {}

        @miniray.track_tuning_job(name="threads")
        def run():
            def plain():
                seen["plain"] = miniray.current_task().id

            def copied():
                seen["copied"] = miniray.current_task().id

            t1 = threading.Thread(target=plain)
            ctx = contextvars.copy_context()
            t2 = threading.Thread(target=ctx.run, args=(copied,))
            for t in (t1, t2):
                t.start()
                t.join()
            return miniray.current_task().id

        tid = run()
        self.assertEqual(seen, {"plain": "", "copied": tid})

    def test_coroutine_functions(self):
        @miniray.track_inference_job(name="serve")
        async def serve(x):
            await asyncio.sleep(0)
            miniray.progress(1, 1)
            return x * 2

        @miniray.track_inference_job(name="slow")
        async def slow():
            await asyncio.sleep(10)

        async def main():
            t = asyncio.ensure_future(slow())
            await asyncio.sleep(0.01)
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass
            return await serve(21)

        self.assertEqual(asyncio.run(main()), 42)
        ends = {e["name"]: e for e in self.flushed()
                if e["event_type"] in ("task_completed", "task_cancelled")}
        self.assertEqual(ends["serve"]["data"]["result"], 42)
        self.assertEqual(ends["slow"]["event_type"], "task_cancelled")

    def test_tracking_failure_does_not_stop_the_job(self):
        broken = miniray.Client(url=self.fake.url, spool_dir="", heartbeat=0)
        self.addCleanup(broken.close, 1)
        broken._enqueue = None  # any use raises TypeError

        @miniray.track_job(name="runs", client=broken)
        def runs():
            miniray.progress(1)
            return "done"

        with self.assertLogs("miniray", level="ERROR"):
            self.assertEqual(runs(), "done")


class HeartbeatTest(ClientTest, unittest.TestCase):
    def test_heartbeats_while_running_and_none_after(self):
        c = self.make_client(heartbeat=0.05)

        @miniray.track_training_job(name="beating", client=c)
        def beating():
            time.sleep(0.5)

        beating()
        self.assertTrue(c.flush(10))
        evs = self.fake.snapshot()
        beats = [e for e in evs if e["event_type"] == "task_heartbeat"]
        self.assertGreaterEqual(len(beats), 2)
        done = [e for e in evs if e["event_type"] == "task_completed"][0]
        for b in beats:
            self.assertEqual(b["task_id"], done["task_id"])
            self.assertEqual(b["data"], {"attempt": done["data"]["attempt"]})
            self.assertLessEqual(b["timestamp"], done["timestamp"])
        time.sleep(0.3)
        self.assertTrue(c.flush(10))
        self.assertEqual(len(self.fake.of_type("task_heartbeat")), len(beats))

    def test_interval_from_the_environment(self):
        old = os.environ.get("MINIRAY_HEARTBEAT_INTERVAL")
        self.addCleanup(lambda: os.environ.pop("MINIRAY_HEARTBEAT_INTERVAL", None)
                        if old is None else os.environ.update(MINIRAY_HEARTBEAT_INTERVAL=old))
        for value, want in [("250ms", 0.25), ("0", 0.0), ("2", 2.0), ("soon", 10.0)]:
            os.environ["MINIRAY_HEARTBEAT_INTERVAL"] = value
            with self.assertLogs("miniray", level="DEBUG") as logs:
                c = miniray.Client(url=self.fake.url, spool_dir="")
                logging.getLogger("miniray").debug("made")
            self.addCleanup(c.close, 1)
            self.assertEqual(c._heartbeat, want, value)
            self.assertEqual(any("not a duration" in m for m in logs.output), value == "soon")


class ProcessTest(unittest.TestCase):
    """Whole programs, in a subprocess: what happens at exit."""

    def setUp(self):
        self.fake = FakeCollector()
        self.addCleanup(self.fake.close)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.spool_dir = tmp.name

    def run_script(self, body, timeout=60, **env):
        script = textwrap.dedent(body)
        env.setdefault("MINIRAY_URL", self.fake.url)
        env.setdefault("MINIRAY_SPOOL_DIR", self.spool_dir)
        return subprocess.run([sys.executable, "-c", script], env=subprocess_env(**env),
                              capture_output=True, text=True, timeout=timeout)

    def test_short_script_loses_nothing(self):
        p = self.run_script(ORIGINAL_USAGE + "\ntrain_model(10)\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        types = [e["event_type"] for e in self.fake.snapshot()]
        self.assertEqual(types, ["task_submitted", "task_started", "task_completed"])

    def test_uncaught_failure_is_sent_before_exit(self):
        p = self.run_script("""
            import miniray
            @miniray.track_training_job(name="crash")
            def crash():
                miniray.progress(1, 2, {"loss": 0.3})
                raise RuntimeError("out of memory")
            crash()
        """)
        self.assertEqual(p.returncode, 1)
        self.assertIn("RuntimeError: out of memory", p.stderr)
        last = self.fake.snapshot()[-1]
        self.assertEqual(last["event_type"], "task_failed")
        self.assertEqual(last["data"]["error"], "RuntimeError: out of memory")

    def test_unreachable_collector_warns_and_exits_quickly(self):
        url = "http://127.0.0.1:%d" % free_port()
        start = time.monotonic()
        p = self.run_script(ORIGINAL_USAGE + """
print(train_model(3))
print(train_model(3))
""", MINIRAY_URL=url, MINIRAY_FLUSH_TIMEOUT="3s")
        took = time.monotonic() - start
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.count("{'accuracy': 0.95}"), 2)
        self.assertEqual(p.stderr.count("unreachable"), 1, p.stderr)
        self.assertLess(took, 30)
        # Everything waits in the spool, for the collector or the next job.
        files = os.listdir(self.spool_dir)
        self.assertEqual(len(files), 1, files)
        with open(os.path.join(self.spool_dir, files[0]), "rb") as f:
            self.assertEqual(f.read().count(b"\n"), 6)

    def test_sigterm_cancels_when_asked(self):
        if not hasattr(signal, "SIGTERM") or os.name != "posix":
            self.skipTest("POSIX signals")
        script = textwrap.dedent("""
            import sys, time, miniray
            miniray.cancel_on_sigterm()
            @miniray.track_training_job(name="long")
            def long():
                print("running", flush=True)
                time.sleep(60)
            long()
        """)
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=subprocess_env(MINIRAY_URL=self.fake.url,
                                                MINIRAY_SPOOL_DIR=self.spool_dir))
        try:
            self.assertEqual(p.stdout.readline().strip(), "running")
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(p.returncode, 143)
        last = self.fake.snapshot()[-1]
        self.assertEqual(last["event_type"], "task_cancelled")
        self.assertEqual(last["data"]["reason"], "terminated by a signal")

    @unittest.skipUnless(hasattr(os, "fork"), "needs fork")
    def test_forked_child_reports_with_its_own_ids(self):
        c = miniray.Client(url=self.fake.url, spool_dir="", heartbeat=0)
        miniray.set_client(c)
        self.addCleanup(miniray.set_client, None)
        self.addCleanup(c.close, 5)

        @miniray.track_job(name="forked")
        def job(who):
            miniray.progress(1)
            return who

        job("parent")
        self.assertTrue(c.flush(10))
        with warnings.catch_warnings():
            # Python 3.12 warns that a child of a threaded process may deadlock:
            # the client's locks are made anew in the child for that reason.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: report, flush, and leave without running the tests' exit
            code = 1
            try:
                job("child")
                code = 0 if miniray.close(10) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.WEXITSTATUS(status), 0)
        evs = self.fake.snapshot()
        self.assertEqual(len(evs), 8)
        pids = {e["data"]["pid"] for e in evs if e["event_type"] == "task_started"}
        self.assertEqual(pids, {os.getpid(), pid})
        results = {e["data"]["result"] for e in evs if e["event_type"] == "task_completed"}
        self.assertEqual(results, {"parent", "child"})


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()
