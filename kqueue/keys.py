"""Record keys: 32 hex digits that sort in creation order.

A key is the job's identity across retries and recoveries (beanstalkd reuses its ids after a
restart without a binlog; the key never repeats). The first 12 digits are the creation time in
milliseconds since the epoch, the other 20 are random (80 bits), the layout of a UUIDv7 without
its version bits. Time-ordered keys land at the end of the stores' indexes (Redis sorted sets,
SQL primary keys), where an insert is cheap, instead of at random places; the sweeper's pages
then go oldest first. A batch draws its randomness in one call.
"""

from __future__ import annotations

import os
import time


def new_keys(count: int) -> list[str]:
    """``count`` fresh keys, all with the current millisecond as their time prefix."""
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    entropy = os.urandom(10 * count).hex()
    return [stamp + entropy[start : start + 20] for start in range(0, 20 * count, 20)]


def new_key() -> str:
    """One fresh key."""
    return new_keys(1)[0]


def key_time(key: str) -> float:
    """The creation time (Unix seconds) written in a key's first 12 digits; 0.0 if none."""
    try:
        return int(key[:12], 16) / 1000
    except ValueError:
        return 0.0
