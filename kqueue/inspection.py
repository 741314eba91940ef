"""beanstalkd's inspection and admin commands: peek, kick, stats, list-tubes, pause-tube.

A mixin of :class:`~kqueue.broker.BeanstalkConnection`, kept apart so that the connection
module holds the transport and the hot-path commands.
"""

from __future__ import annotations

from kqueue.wire import Reply, ReservedJob, Stats, parse_yaml_dict, parse_yaml_list


class InspectionCommands:
    """Commands that look at or steer jobs and tubes without reserving them."""

    def _call(
        self, command: bytes, expected: tuple[bytes, ...], body: bytes | None = None
    ) -> Reply:
        raise NotImplementedError

    def _body_of(self, reply: Reply) -> bytes:
        raise NotImplementedError

    def peek(self, job_id: int) -> ReservedJob | None:
        """A job by id in any state, or None."""
        return self._peek(b"peek %d" % job_id)

    def peek_ready(self) -> ReservedJob | None:
        """The next ready job of the used tube, or None."""
        return self._peek(b"peek-ready")

    def peek_delayed(self) -> ReservedJob | None:
        """The delayed job of the used tube with the nearest deadline, or None."""
        return self._peek(b"peek-delayed")

    def peek_buried(self) -> ReservedJob | None:
        """The oldest buried job of the used tube, or None."""
        return self._peek(b"peek-buried")

    def _peek(self, command: bytes) -> ReservedJob | None:
        reply = self._call(command, (b"FOUND", b"NOT_FOUND"))
        if reply.body is None:
            return None
        return ReservedJob(int(reply.args[0]), reply.body)

    def kick(self, bound: int) -> int:
        """Kick up to ``bound`` buried (else delayed) jobs of the used tube; how many."""
        return int(self._call(b"kick %d" % bound, (b"KICKED",)).args[0])

    def kick_job(self, job_id: int) -> bool:
        """Kick one buried or delayed job; False if not found."""
        return self._call(b"kick-job %d" % job_id, (b"KICKED", b"NOT_FOUND")).word == b"KICKED"

    def stats_job(self, job_id: int) -> Stats | None:
        """Statistics of one job, or None if not found."""
        reply = self._call(b"stats-job %d" % job_id, (b"OK", b"NOT_FOUND"))
        return None if reply.body is None else parse_yaml_dict(reply.body)

    def stats_tube(self, tube: str) -> Stats | None:
        """Statistics of one tube, or None if it does not exist."""
        reply = self._call(b"stats-tube %s" % tube.encode(), (b"OK", b"NOT_FOUND"))
        return None if reply.body is None else parse_yaml_dict(reply.body)

    def list_tubes(self) -> list[str]:
        """Every tube that exists on the server."""
        return parse_yaml_list(self._body_of(self._call(b"list-tubes", (b"OK",))))

    def pause_tube(self, tube: str, delay: int) -> bool:
        """Hold back reserves from ``tube`` for ``delay`` seconds (0 lifts it); False if none."""
        reply = self._call(b"pause-tube %s %d" % (tube.encode(), delay), (b"PAUSED", b"NOT_FOUND"))
        return reply.word == b"PAUSED"
