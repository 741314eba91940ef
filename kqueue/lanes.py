"""Lanes: job types sharing a few beanstalkd tubes (opt-in, ``KQueue(lanes=N)``).

beanstalkd walks every tube it holds on each put and reserve, so its cost per job grows with
the number of tubes (docs/performance.md, "Job types"). With ``lanes=N`` the jobs of type
``T`` go to one of N shared tubes, ``<prefix>(lane)<i>`` with ``i = crc32(T) % N``, instead of
a tube of their own; the body names the type, so a worker still finds the handler. The
type's own tube ``<prefix>T`` then only holds the jobs of a suspended type (paused, see
:mod:`kqueue.admin`). ``lanes=0`` (the default) keeps one tube per job type.
"""

from __future__ import annotations

import re
import zlib

from kqueue.errors import ConfigurationError, InvalidJobTypeError
from kqueue.job import MAX_TUBE_NAME_BYTES, tube_for

__all__ = [
    "LANE_MARK",
    "MAX_LANES",
    "check_lanes",
    "is_lane_tube",
    "lane_index",
    "lane_tube",
    "routed_tube",
]

LANE_MARK = "(lane)"
"""What follows the prefix in a lane's tube name (then the lane's index)."""

MAX_LANES = 1024

_LANE_NAME = re.compile(re.escape(LANE_MARK) + r"[0-9]+")


def check_lanes(lanes: object, prefix: str) -> int:
    """A valid number of lanes (0: off) for tubes under ``prefix``; ConfigurationError if not."""
    if isinstance(lanes, bool) or not isinstance(lanes, int):
        raise ConfigurationError(f"lanes must be an int, not {type(lanes).__name__}")
    if not 0 <= lanes <= MAX_LANES:
        raise ConfigurationError(f"lanes must be between 0 (off) and {MAX_LANES}, got {lanes}")
    if lanes and len(lane_tube(lanes - 1, prefix)) > MAX_TUBE_NAME_BYTES:
        raise ConfigurationError(f"tube prefix {prefix!r} leaves no room for the lanes' names")
    return lanes


def lane_index(job_type: str, lanes: int) -> int:
    """The lane of a job type: a hash stable across processes, versions and machines."""
    return zlib.crc32(job_type.encode("ascii")) % lanes


def lane_tube(index: int, prefix: str) -> str:
    """The tube name of lane ``index``."""
    return f"{prefix}{LANE_MARK}{index}"


def is_lane_tube(tube: str, prefix: str) -> bool:
    """True when ``tube`` names a lane under ``prefix`` (of any number of lanes)."""
    return tube.startswith(prefix) and _LANE_NAME.fullmatch(tube[len(prefix) :]) is not None


def routed_tube(job_type: str, prefix: str, lanes: int) -> str:
    """The tube a job of ``job_type`` is put into: its own (lanes 0) or its lane's.

    The name is checked as :func:`~kqueue.job.tube_for` does; with lanes, a job type whose
    own tube would be a lane's name is refused (its held jobs would land in that lane).
    """
    tube = tube_for(job_type, prefix)
    if not lanes:
        return tube
    if _LANE_NAME.fullmatch(job_type):
        raise InvalidJobTypeError(f"job type {job_type!r} is a lane's name: not allowed with lanes")
    return lane_tube(lane_index(job_type, lanes), prefix)
