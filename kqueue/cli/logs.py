"""Logging for the command line: one line per event on stderr, as text or JSON lines.

The level given applies to the ``kqueue`` logger only; every other library (redis-py,
SQLAlchemy, ...) stays at WARNING unless named: ``--log-level DEBUG,redis=DEBUG``.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from kqueue.errors import ConfigurationError

STRUCTURED_FIELDS = (
    "job_type",
    "key",
    "job_id",
    "attempt",
    "duration_ms",
    "outcome",
    "server",
    "count",
    "scanned",
    "requeued",
    "young",
    "error",
)
"""Fields that kqueue's log calls pass in ``extra=`` and JSON lines carry as their own keys,
for a log pipeline to index (text lines keep them in the message)."""

THIRD_PARTY_LEVEL = logging.WARNING


class JsonLines(logging.Formatter):
    """One JSON object per record: ts, level, logger, pid, message, the structured fields the
    record carries (see :data:`STRUCTURED_FIELDS`), and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for name in STRUCTURED_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def parse_levels(text: str) -> dict[str, int]:
    """``LEVEL[,LOGGER=LEVEL...]`` into {logger name: level}; the bare level is kqueue's.

    ConfigurationError for a name that is not a logging level.
    """
    levels: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, equals, level = part.rpartition("=")
        value = logging.getLevelName(level.upper())
        if not isinstance(value, int):
            raise ConfigurationError(f"--log-level: {level!r} is not a level (DEBUG, INFO, ...)")
        levels[name if equals else "kqueue"] = value
    return levels


def setup_logging(level: str, json_lines: bool) -> None:
    """Send logs to stderr: kqueue's at ``level``, other libraries' at WARNING unless
    ``level`` names them (see :func:`parse_levels`)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(THIRD_PARTY_LEVEL)
    for name, value in parse_levels(level).items():
        logging.getLogger(name).setLevel(value)
