"""Periodic jobs: a cron expression in a time zone, and the job to add at each of its ticks.

Cron expressions are read by cronsim (``pip install kqueue[periodic]``), which evaluates them
in the schedule's own time zone with cron's rules for daylight saving time (a tick in a skipped
hour runs when the hour ends, a tick in a repeated hour runs once). A schedule only describes;
:class:`kqueue.scheduler.Scheduler` adds the jobs, and the store makes sure each tick adds
exactly one job however many schedulers run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from kqueue.errors import ConfigurationError, ValidationError
from kqueue.job import PRIO_NORMAL

__all__ = ["MAX_TICKS", "MissedTicks", "Schedule", "cron_module"]

MissedTicks = Literal["skip", "run_once"]
"""What a scheduler does with ticks that passed while no scheduler ran: ``skip`` them, or
``run_once``: one job for all of them (none when a tick is on time anyway)."""

MAX_TICKS = 1000
"""The most ticks one look at a schedule returns (a scheduler looks every few seconds)."""

_NAME = re.compile(r"[A-Za-z0-9\-+/;.$_()]{1,150}")


def cron_module() -> Any:
    """The cronsim module, or ConfigurationError naming the extra to install."""
    try:
        import cronsim
    except ImportError as exc:
        raise ConfigurationError(
            "periodic jobs need cronsim: pip install kqueue[periodic]"
        ) from exc
    return cronsim


def _zone(tz: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValidationError(
            f"unknown time zone {tz!r} (an IANA name, e.g. 'Europe/Riga')"
        ) from exc


@dataclass(frozen=True)
class Schedule:
    """A job of ``job_type`` with ``payload`` at every tick of ``cron`` in time zone ``tz``.

    ``name`` (default: the job type) identifies the schedule: the job of each tick is unique
    under ``periodic:<name>:<tick in UTC>``. Build one with :meth:`create`, which checks it.
    """

    name: str
    job_type: str
    cron: str
    tz: str = "UTC"
    payload: Any = None
    missed: MissedTicks = "skip"
    priority: int = PRIO_NORMAL
    ttr: int = 30

    @classmethod
    def create(cls, job_type: str, cron: str, **options: Any) -> Schedule:
        """A checked schedule: ValidationError for a bad cron expression, time zone, name or
        missed-tick policy; ConfigurationError without cronsim."""
        options.setdefault("name", None)
        schedule = cls(
            job_type=job_type, cron=cron, **{**options, "name": options["name"] or job_type}
        )
        if not isinstance(schedule.name, str) or _NAME.fullmatch(schedule.name) is None:
            raise ValidationError(
                f"schedule name {schedule.name!r}: 1 to 150 of A-Z a-z 0-9 - + / ; . $ _ ( )"
            )
        if schedule.missed not in ("skip", "run_once"):
            raise ValidationError(f"missed must be 'skip' or 'run_once', not {schedule.missed!r}")
        _zone(schedule.tz)
        cronsim = cron_module()
        try:
            cronsim.CronSim(cron, datetime.now(timezone.utc))
        except (cronsim.CronSimError, TypeError, ValueError) as exc:
            raise ValidationError(f"bad cron expression {cron!r}: {exc}") from exc
        return schedule

    def _iterate(self, start: float, *, reverse: bool) -> Any:
        moment = datetime.fromtimestamp(start, _zone(self.tz))
        return cron_module().CronSim(self.cron, moment, reverse=reverse)

    def ticks_between(self, after: float, until: float) -> list[float]:
        """The ticks ``t`` with ``after < t <= until`` (Unix seconds), at most MAX_TICKS."""
        ticks: list[float] = []
        for moment in self._iterate(after, reverse=False):
            tick = moment.timestamp()
            if tick > until or len(ticks) == MAX_TICKS:
                break
            ticks.append(tick)
        return ticks

    def latest_tick(self, at: float) -> float | None:
        """The last tick at or before ``at``; None if there is none."""
        found = next(iter(self._iterate(at + 1e-3, reverse=True)), None)
        return None if found is None else float(found.timestamp())

    def next_tick(self, after: float) -> float:
        """The first tick after ``after``."""
        return float(next(iter(self._iterate(after, reverse=False))).timestamp())

    def unique_key(self, tick: float) -> str:
        """The unique key of the job of one tick: at most one job per tick is ever added."""
        moment = datetime.fromtimestamp(tick, timezone.utc)
        return f"periodic:{self.name}:{moment.isoformat()}"
