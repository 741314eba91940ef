"""The Celery app of bench/peers.py: one task that counts its runs in Redis."""

from __future__ import annotations

import importlib
import os
from typing import Any

import redis

app = importlib.import_module("celery").Celery("kqbench", broker="redis://127.0.0.1:6379/0")
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=64)
_counter = redis.Redis.from_url("redis://127.0.0.1:6379/0")


def _count(payload: Any) -> None:
    """Count one run (the only work this task does)."""
    _counter.incr(os.environ.get("KQ_BENCH_COUNTER", "kqbench:done"))


count = app.task(name="kqbench.count")(_count)
