"""Job lifecycle middleware: one small class per concern (see :mod:`.base` for the events).

Every queue runs :class:`Counters`, :class:`Retries` (with its retry policy) and
:class:`AutoTouch` (for the handlers registered with ``auto_touch=True``), then the
middleware and hooks it was given. :class:`~kqueue.middleware.prometheus.PrometheusMetrics`
ships too (``pip install kqueue[metrics]``).
"""

from kqueue.middleware.base import (
    DropReason,
    Fail,
    Failure,
    Hooks,
    Middleware,
    MiddlewareChain,
    SkipJob,
)
from kqueue.middleware.counters import Counters
from kqueue.middleware.retries import Retries
from kqueue.middleware.touch import AutoTouch

__all__ = [
    "AutoTouch",
    "Counters",
    "DropReason",
    "Fail",
    "Failure",
    "Hooks",
    "Middleware",
    "MiddlewareChain",
    "Retries",
    "SkipJob",
]
