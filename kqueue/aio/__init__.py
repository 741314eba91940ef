"""kqueue for asyncio: :class:`AsyncKQueue`, the asyncio facade (see docs/asyncio.md).

- :mod:`~kqueue.aio.queue`: :class:`AsyncKQueue`, KQueue's API awaited;
- :mod:`~kqueue.aio.producer`: add_job / add_jobs, the write-ahead protocol awaited;
- :mod:`~kqueue.aio.consumer`: the loop running up to ``concurrency`` jobs at once;
- :mod:`~kqueue.aio.prepare`, :mod:`~kqueue.aio.runner`: a window made ready, a job run and
  settled;
- :mod:`~kqueue.aio.stores`: async access to the stores;
- :mod:`~kqueue.aio.worker`: the long-running asyncio worker with graceful shutdown.
"""

from kqueue.aio.prepare import AsyncJob
from kqueue.aio.queue import AsyncKQueue

__all__ = ["AsyncJob", "AsyncKQueue"]
