"""Settings from the environment: durations written the way Go writes them."""

from __future__ import annotations

import logging
import os
import re

log = logging.getLogger("miniray")

_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}


def parse_duration(s: str) -> float:
    """Parse a duration the way Go's time.ParseDuration does ("10s", "1m30s",
    "250ms"), and also a bare number of seconds ("2.5"). It returns seconds and
    raises ValueError for anything else."""
    text = s.strip()
    if not text:
        raise ValueError("empty duration")
    try:
        return float(text)
    except ValueError:
        pass
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    total, pos = 0.0, 0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise ValueError("%r is not a duration such as 10s, 500ms or 1m30s" % s)
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError("%r is not a duration such as 10s, 500ms or 1m30s" % s)
    return sign * total


def env_duration(name: str, default: float) -> float:
    """Read a duration from the environment; a bad one is warned about and the
    default used, as the Go client does."""
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return parse_duration(raw)
    except ValueError as e:
        log.warning("miniray: %s: %s; using %gs", name, e, default)
        return default
