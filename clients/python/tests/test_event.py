"""The wire format: ids, times, JSON, bounds and the spool records, as Go has them."""

import json
import os
import tempfile
import unittest
import zlib

from support import TS_STR_RE, miniray

from miniray import _event, _spool


class IDTest(unittest.TestCase):
    def test_ids_are_unique_and_subject_safe(self):
        ids = [_event.new_id() for _ in range(100000)]
        self.assertEqual(len(set(ids)), len(ids))
        for i in ids[:1000]:
            self.assertRegex(i, r"^[0-9A-Za-z]{22}$")

    def test_task_ids_name_their_type(self):
        for tt in _event.TASK_TYPES:
            tid = _event.new_task_id(tt)
            self.assertTrue(tid.startswith(tt + "_"), tid)
            self.assertTrue(_event.valid_id(tid), tid)

    def test_valid_id_follows_the_go_rules(self):
        cases = [("a", True), ("A-b_9", True), ("x" * 128, True), ("x" * 129, False),
                 ("", False), ("a.b", False), ("a b", False), ("a*", False), ("a>", False),
                 ("\u00e9", False), (None, False), (5, False)]
        for value, want in cases:
            with self.subTest(value=value):
                self.assertEqual(_event.valid_id(value), want)

    def test_reseed_changes_the_prefix(self):
        n = _event._NUID()
        a = n.next()
        n.reseed()
        b = n.next()
        self.assertNotEqual(a[:12], b[:12])


class TimeTest(unittest.TestCase):
    def test_format_is_rfc3339_utc_with_microseconds(self):
        self.assertEqual(_event.format_micros(0), "1970-01-01T00:00:00.000000Z")
        self.assertEqual(_event.format_micros(1700000000123456),
                         "2023-11-14T22:13:20.123456Z")

    def test_now_pairs_agree(self):
        ts, s = _event.now()
        self.assertRegex(s, TS_STR_RE)
        self.assertEqual(_event.format_micros(round(ts * 1e6)), s)


class EncodeTest(unittest.TestCase):
    def event(self, data, **kw):
        args = dict(event_id="e1", task_id="training_x", task_type="training", name="n",
                    event_type="task_progress", data=data, at=(1700000000.5, "S"))
        args.update(kw)
        raw = _event.encode_event(**args)
        raw.decode("ascii")  # the whole line is ASCII
        return json.loads(raw)

    def test_fields_in_go_order(self):
        ev = self.event({"step": 3, "attempt": "a"})
        self.assertEqual(list(ev), ["event_id", "task_id", "task_type", "name", "event_type",
                                    "timestamp", "timestamp_str", "data"])
        self.assertEqual(ev["data"], {"attempt": "a", "step": 3})
        self.assertEqual(ev["timestamp"], 1700000000.5)

    def test_empty_values_are_left_out_like_omitempty(self):
        ev = self.event({"description": "", "parent_id": None, "pid": 0, "step": 0})
        self.assertEqual(ev["data"], {"step": 0})

    def test_null_result_is_written(self):
        ev = self.event({"result": _event.encode_value(None, "result")})
        self.assertIn("result", ev["data"])
        self.assertIsNone(ev["data"]["result"])

    def test_text_is_ascii_even_with_surrogates(self):
        ev = self.event({"error": "caf\u00e9 \udcff"}, name="\u2603")
        self.assertEqual(ev["name"], "\u2603")
        self.assertTrue(ev["data"]["error"].startswith("caf\u00e9"))

    def test_long_text_is_cut_at_a_character(self):
        s = "\u00e9" * (_event.MAX_TEXT_LEN)  # two bytes each
        out = _event.truncate(s)
        head, _, note = out.partition("\u2026")
        self.assertLessEqual(len(head.encode("utf-8")), _event.MAX_TEXT_LEN)
        self.assertEqual(set(head), {"\u00e9"})
        self.assertIn("bytes cut", note)
        self.assertEqual(_event.truncate("short"), "short")

    def test_large_json_is_replaced_by_a_note(self):
        v = _event.encode_value(["x" * 1000] * 1000, "result")
        self.assertRegex(json.loads(v.text), r"^\[result of \d+ bytes not kept\]$")

    def test_values_from_array_libraries_encode(self):
        class Scalar:
            def tolist(self):
                return 0.5

        v = _event.encode_value({"acc": Scalar(), "tags": {"a"}}, "result")
        self.assertEqual(json.loads(v.text), {"acc": 0.5, "tags": ["a"]})

    def test_nan_does_not_encode_as_a_result(self):
        with self.assertRaises(ValueError):
            _event.encode_value({"loss": float("nan")}, "result")

    def test_metrics_keep_non_finite_values_as_go_does(self):
        out, bad = _event.encode_metrics({"a": 1, "b": float("nan"), "c": float("inf"),
                                          "d": -float("inf"), "e": "x", 7: True})
        self.assertEqual(out, {"a": 1.0, "b": "NaN", "c": "+Inf", "d": "-Inf", "7": 1.0})
        self.assertEqual(bad, ["e"])

    def test_metrics_are_bounded_by_name(self):
        out, _ = _event.encode_metrics({"m%03d" % i: i for i in range(300)})
        self.assertEqual(len(out), _event.MAX_METRICS)
        self.assertIn("m000", out)
        self.assertNotIn("m299", out)

    def test_metric_names_are_cut_and_must_not_be_empty(self):
        long = "z" * (_event.MAX_LABEL_LEN + 1)
        out, bad = _event.encode_metrics({long: 1, "": 2, "ok": 3})
        self.assertEqual(bad, ["''"])
        self.assertEqual(len(out), 2)
        cut = [k for k in out if k != "ok"][0]
        self.assertLessEqual(len(cut.encode()), _event.MAX_LABEL_LEN)
        self.assertTrue(cut.endswith("bytes cut]"))
        self.assertEqual(_event.truncate_label(cut), cut)


class SpoolFormatTest(unittest.TestCase):
    def test_crc_is_ieee(self):
        # The check value of CRC-32/IEEE, which Go's crc32.ChecksumIEEE computes.
        self.assertEqual(_spool.record(b"123456789"), b"cbf43926 123456789\n")

    def test_parse_skips_damaged_lines(self):
        good = [b'{"a":1}', b'{"b":2}']
        data = b"".join(_spool.record(p) for p in good)
        data += b"00000000 {\"c\":3}\n"        # wrong checksum
        data += b"nothex {}\n"
        data += _spool.record(b'{"d":4}')[:-6]  # torn last line
        out, bad = _spool.parse(data)
        self.assertEqual(out, good)
        self.assertEqual(bad, 3)

    def test_file_name_lock_and_removal(self):
        if not _spool.available:
            self.skipTest("no flock on this platform")
        import fcntl
        with tempfile.TemporaryDirectory() as d:
            s = _spool.SpoolFile.create(os.path.join(d, "spool"))
            name = os.path.basename(s.path)
            self.assertRegex(name, r"^\d{19}-%d-[0-9A-Za-z]{22}\.spool$" % os.getpid())
            self.assertEqual(os.stat(s.path).st_mode & 0o777, 0o600)
            s.append([b'{"x":1}'])
            with open(s.path, "rb") as f:
                self.assertEqual(f.read(), _spool.record(b'{"x":1}'))
                with self.assertRaises(OSError):
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            s.close(keep=True)
            with open(s.path, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.assertEqual(zlib.crc32(b'{"x":1}') & 0xFFFFFFFF, int(f.read(8), 16))

    @unittest.skipUnless(_spool.available, "needs flock")
    def test_a_failed_write_leaves_whole_records(self):
        with tempfile.TemporaryDirectory() as d:
            s = _spool.SpoolFile.create(d)
            s.append([b'{"a":1}'])
            real_write = os.write
            calls = []

            def failing(fd, b):
                if fd == s.fd and not calls:
                    calls.append(1)
                    real_write(fd, bytes(b[:5]))  # half a record, then the disk fills
                    raise OSError(28, "No space left on device")
                return real_write(fd, b)

            os.write = failing
            try:
                with self.assertRaises(OSError):
                    s.append([b'{"b":2}'])
            finally:
                os.write = real_write
            s.append([b'{"c":3}'])
            with open(s.path, "rb") as f:
                self.assertEqual(_spool.parse(f.read()), ([b'{"a":1}', b'{"c":3}'], 0))
            s.close(keep=False)
            self.assertFalse(os.path.exists(s.path))

    def test_default_dir(self):
        old = os.environ.pop("MINIRAY_SPOOL_DIR", None)
        try:
            os.environ["MINIRAY_SPOOL_DIR"] = "/somewhere"
            self.assertEqual(_spool.default_dir(), "/somewhere")
            del os.environ["MINIRAY_SPOOL_DIR"]
            self.assertTrue(_spool.default_dir().endswith(os.path.join("miniray", "spool")))
        finally:
            os.environ.pop("MINIRAY_SPOOL_DIR", None)
            if old is not None:
                os.environ["MINIRAY_SPOOL_DIR"] = old


class DurationTest(unittest.TestCase):
    def test_go_durations_and_seconds(self):
        cases = [("10s", 10), ("250ms", 0.25), ("1m30s", 90), ("1h", 3600), ("1.5s", 1.5),
                 ("0", 0), ("-1s", -1), ("2", 2), ("0.5", 0.5), ("100us", 1e-4)]
        for text, want in cases:
            with self.subTest(text=text):
                self.assertAlmostEqual(miniray.parse_duration(text), want)

    def test_bad_durations(self):
        for text in ["", "s", "10x", "ten seconds", "1s2"]:
            with self.subTest(text=text), self.assertRaises(ValueError):
                miniray.parse_duration(text)


if __name__ == "__main__":
    unittest.main()
