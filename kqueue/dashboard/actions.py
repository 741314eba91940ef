"""The dashboard's actions: suspend, resume, kick all, kick one, delete one, purge, and one
recovery pass (sweep).

Each takes the fields of its form, checks them, calls the public KQueue / Admin API and
returns one line saying what it did. Bad input raises a typed error before anything changes.
A job is named by record key or beanstalkd id; a key is resolved to the beanstalkd job that
holds it, checked to carry that very key (ids are reused by a restarted beanstalkd).
"""

from __future__ import annotations

from collections.abc import Callable

from kqueue.admin import sweep_summary
from kqueue.errors import JobNotFoundError, ValidationError
from kqueue.queue import KQueue
from kqueue.serialization import decode_body
from kqueue.sweeper import is_claim

__all__ = ["ACTIONS", "buried_job_id", "run"]


def _job_type(fields: dict[str, str]) -> str:
    job_type = fields.get("job_type", "")
    if not job_type:
        raise ValidationError("no job type given")
    return job_type


def buried_job_id(queue: KQueue, target: str) -> int:
    """The beanstalkd id of the buried job named by ``target`` (record key or id).

    JobNotFoundError if beanstalkd holds no such job; ValidationError if it is not buried
    (the dashboard kicks and deletes dead letters only, never a job a worker holds).
    """
    target = target.strip()
    if target.isdigit() and len(target) < 32:
        job_id = int(target)
    else:
        record = queue.store.get(target) if queue.store is not None else None
        if record is None or record.ref is None or is_claim(record.ref):
            raise JobNotFoundError(f"no job {target} in beanstalkd (done, purged or lost?)")
        job_id = record.ref.job_id
        found = queue.admin.peek_job(job_id)
        body = decode_body(found.body) if found is not None else None
        if body is None or body.key != target:
            raise JobNotFoundError(f"job {target} is no longer in beanstalkd")
    state = queue.admin.job_stats(job_id).get("state")
    if state != "buried":
        raise ValidationError(f"job {target} is {state}, not buried: left alone")
    return job_id


def _suspend(queue: KQueue, fields: dict[str, str]) -> str:
    queue.suspend(_job_type(fields))
    return f"suspended {fields['job_type']}"


def _resume(queue: KQueue, fields: dict[str, str]) -> str:
    queue.resume(_job_type(fields))
    return f"resumed {fields['job_type']}"


def _kick_all(queue: KQueue, fields: dict[str, str]) -> str:
    kicked = queue.kick_buried(_job_type(fields))
    return f"kicked {kicked} job(s) of type {fields['job_type']}"


def _kick(queue: KQueue, fields: dict[str, str]) -> str:
    target = fields.get("target", "")
    if not queue.admin.kick_job(buried_job_id(queue, target)):
        raise JobNotFoundError(f"job {target} was not kicked: no longer buried")
    return f"kicked job {target}"


def _delete(queue: KQueue, fields: dict[str, str]) -> str:
    target = fields.get("target", "")
    if not queue.admin.delete_job(buried_job_id(queue, target)):
        raise JobNotFoundError(f"job {target} was gone already")
    return f"deleted job {target}"


def _purge(queue: KQueue, fields: dict[str, str]) -> str:
    job_type = _job_type(fields)
    if fields.get("confirm", "").strip() != job_type:
        raise ValidationError(
            f"nothing purged: type the job type's name ({job_type}) to confirm the purge"
        )
    deleted = queue.purge_jobs(job_type, fields.get("match") or None)
    return f"purged {deleted} job(s) of type {job_type}"


def _sweep(queue: KQueue, fields: dict[str, str]) -> str:
    if queue.store is None:
        raise ValidationError("a recovery pass needs a store; this queue has none")
    return sweep_summary(queue.sweep())


ACTIONS: dict[str, Callable[[KQueue, dict[str, str]], str]] = {
    "suspend": _suspend,
    "resume": _resume,
    "kick-all": _kick_all,
    "kick": _kick,
    "delete": _delete,
    "purge": _purge,
    "sweep": _sweep,
}
"""Every action by the name in its URL (``/action/NAME``)."""


def run(queue: KQueue, name: str, fields: dict[str, str]) -> str:
    """Run the action ``name`` with a form's fields; what it did, in one line."""
    action = ACTIONS.get(name)
    if action is None:
        raise ValidationError(f"no action {name!r}: one of {', '.join(ACTIONS)}")
    return action(queue, fields)
