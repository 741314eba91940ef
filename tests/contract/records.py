"""Record builders shared by the store tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from kqueue.stores import JobRecord


def make_record(key: str, job_type: str = "email", **changes: Any) -> JobRecord:
    """A valid record with every field set to something unremarkable, then ``changes``."""
    record = JobRecord(
        key=key,
        job_type=job_type,
        payload=b'{"to": "a@example.com"}',
        codec="json",
        priority=1024,
        delay=0.0,
        ttr=60,
        created_at=1_700_000_000.25,
        updated_at=1_700_000_000.25,
    )
    return dataclasses.replace(record, **changes)
