"""Differential test across restarts: the random command streams of test_differential, with
both servers journaling to a binlog (``-b``, small ``-s`` files so that files rotate, are
collected and jobs migrate) and a restart step.

A restart closes every connection and stops both servers the hard way: SIGKILL or SIGTERM
for the real beanstalkd, ``crash()`` or ``stop()`` for the fake. Both come back on their
directories (or, in a *swap*, each on the other's files, which checks that each reads what
the other wrote), and everything that can be looked at without changing anything is
compared byte for byte: list-tubes, stats (binlog-* included), every tube's stats, every
job's stats (``file`` included) and the peeks of the default tube. Then the commands go on.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test

from tests.conformance.targets import FakeTarget, RealTarget
from tests.conformance.test_differential import (
    CONNECTIONS,
    MAX_JOB_SIZE,
    Chunk,
    FakeMatchesRealServer,
    ServerPair,
)

BINLOG_SIZE = 700
"""Small files, so that a run of 30 steps rotates, collects and migrates."""
MAX_RESTARTS = 4
_INSERTED = re.compile(rb"INSERTED (\d+)\r\n")

# Job lifecycles, drawn more often than in the byte-level machine so that restarts find
# jobs in every state: bodies up to the limit (those within 2 bytes of it are dropped on
# replay, with the rest of their file), three tubes, ids of jobs that exist.
LIFE_TUBES = [b"default", b"a", b"b"]
job_ids = st.integers(1, 12)
life_priorities = st.sampled_from([0, 5, 1023, 1024, 2**32 - 1])
life_delays = st.sampled_from([0, 0, 3600])


def _life_line(text: bytes) -> Chunk:
    return Chunk(text + b"\r\n", 1)


@st.composite
def job_puts(draw: st.DrawFn) -> Chunk:
    """A put that fits (or nearly fits) the 64-byte limit."""
    size = draw(st.sampled_from([0, 1, 10, 40, MAX_JOB_SIZE - 2, MAX_JOB_SIZE - 1, MAX_JOB_SIZE]))
    body = draw(st.binary(min_size=size, max_size=size))
    line = b"put %d %d 3600 %d" % (draw(life_priorities), draw(life_delays), len(body))
    return Chunk(line + b"\r\n" + body + b"\r\n", 1)


lifecycle_commands = st.one_of(
    job_puts(),
    st.just(_life_line(b"reserve-with-timeout 0")),
    st.builds(lambda i, p: _life_line(b"bury %d %d" % (i, p)), job_ids, life_priorities),
    st.builds(
        lambda i, p, d: _life_line(b"release %d %d %d" % (i, p, d)),
        job_ids,
        life_priorities,
        life_delays,
    ),
    st.sampled_from([1, 2, 10]).map(lambda n: _life_line(b"kick %d" % n)),
    job_ids.map(lambda i: _life_line(b"kick-job %d" % i)),
    job_ids.map(lambda i: _life_line(b"delete %d" % i)),
    job_ids.map(lambda i: _life_line(b"reserve-job %d" % i)),
    job_ids.map(lambda i: _life_line(b"touch %d" % i)),
    st.sampled_from(LIFE_TUBES).map(lambda t: _life_line(b"use " + t)),
    st.sampled_from(LIFE_TUBES).map(lambda t: _life_line(b"watch " + t)),
    st.sampled_from(LIFE_TUBES).map(lambda t: _life_line(b"ignore " + t)),
)


class RestartingPair(ServerPair):
    """A :class:`ServerPair` whose servers journal to a binlog and can be restarted."""

    def _start_servers(self) -> tuple[RealTarget, FakeTarget]:
        self._dirs = [tempfile.TemporaryDirectory(prefix="kqbinlog") for _ in range(2)]
        self.max_id = 0
        real_dir, fake_dir = (Path(d.name) for d in self._dirs)
        real = RealTarget(
            max_job_size=MAX_JOB_SIZE,
            unix_path=None,
            binlog_dir=real_dir,
            extra_args=("-s", str(BINLOG_SIZE)),
        )
        try:
            fake = FakeTarget(
                max_job_size=MAX_JOB_SIZE,
                unix_path=None,
                binlog_dir=fake_dir,
                binlog_size=BINLOG_SIZE,
            )
        except BaseException:
            real.stop()
            raise
        return real, fake

    def close(self) -> None:
        try:
            super().close()
        finally:
            for directory in self._dirs:
                directory.cleanup()

    def _assert_same(self, index: int, sent: bytes, real: list[bytes], fake: list[bytes]) -> None:
        super()._assert_same(index, sent, real, fake)
        for reply in real:
            for match in _INSERTED.finditer(reply):
                self.max_id = max(self.max_id, int(match.group(1)))

    def restart(self, how: str) -> None:
        """Stop both servers (``kill``: SIGKILL / crash(); ``term``: SIGTERM / stop();
        ``swap``: SIGKILL / crash() and each restarts on the other's directory)."""
        real, fake = self.real, self.fake
        assert isinstance(real, RealTarget) and isinstance(fake, FakeTarget)
        for real_conn, fake_conn in self.conns:
            real_conn.close()
            fake_conn.close()
        if how == "term":
            real.process.stop()
            fake.server.stop()
        else:
            real.process.kill()
            fake.server.crash()
        if how == "swap":
            real.binlog_dir, fake.binlog_dir = fake.binlog_dir, real.binlog_dir
            real.process.binlog_dir = real.binlog_dir
            fake.server.binlog_dir = str(fake.binlog_dir)
        real.process.start()
        fake.server.start()
        self.conns = [(real.connect(), fake.connect()) for _ in range(CONNECTIONS)]
        self.dirty = [False] * CONNECTIONS
        self._settle(CONNECTIONS - 1)
        self.compare_everything()

    def compare_everything(self) -> None:
        """Every read-only view of both servers, compared (the same commands on each)."""
        listing = self.conns[0][0].cmd(b"list-tubes\r\n")
        self.conns[0][1].cmd(b"list-tubes\r\n")
        tubes = [line[2:] for line in listing.split(b"\n")[2:-1]]
        probes = [b"list-tubes", b"stats", b"peek-ready", b"peek-delayed", b"peek-buried"]
        probes += [b"stats-tube " + tube for tube in tubes]
        probes += [b"stats-job %d" % job_id for job_id in range(1, self.max_id + 2)]
        for probe in probes:
            self.send(0, Chunk(probe + b"\r\n", 1), None)


class FakeMatchesRealServerAcrossRestarts(FakeMatchesRealServer):
    """:class:`FakeMatchesRealServer` with journaling servers and a restart step."""

    pair_class = RestartingPair

    def __init__(self) -> None:
        super().__init__()
        self.restarts = 0

    @rule(index=st.integers(0, CONNECTIONS - 1), chunk=lifecycle_commands)
    def lifecycle(self, index: int, chunk: Chunk) -> None:
        self.servers.send(index, chunk, None)

    @rule(index=st.integers(0, CONNECTIONS - 1), chunk=job_puts())
    def put_job(self, index: int, chunk: Chunk) -> None:
        self.servers.send(index, chunk, None)

    @rule(index=st.integers(0, CONNECTIONS - 1), chunks=st.lists(lifecycle_commands, max_size=4))
    def lifecycle_burst(self, index: int, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            self.servers.send(index, chunk, None)

    def _restart(self, how: str) -> None:
        self.restarts += 1
        pair = self.servers
        assert isinstance(pair, RestartingPair)
        pair.restart(how)

    # Three rules rather than one sampled argument: restarts come three times as often.
    @precondition(lambda self: self.restarts < MAX_RESTARTS)
    @rule()
    def restart_after_kill(self) -> None:
        self._restart("kill")

    @precondition(lambda self: self.restarts < MAX_RESTARTS)
    @rule()
    def restart_after_sigterm(self) -> None:
        self._restart("term")

    @precondition(lambda self: self.restarts < MAX_RESTARTS)
    @rule()
    def restart_on_the_other_binlog(self) -> None:
        self._restart("swap")

    def teardown(self) -> None:
        """Every run ends with a swapped restart: whatever state the run reached, each
        server must restore it from the other's files."""
        try:
            for index in range(CONNECTIONS):
                self.servers._compare_until_quiet(index, b"<end of run>")
            self._restart("swap")
        finally:
            super().teardown()


RESTART_SETTINGS = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.usefixtures("both_servers_available")
def test_fake_matches_real_beanstalkd_across_binlog_restarts() -> None:
    """Random command sequences with kill -9, SIGTERM and swapped-binlog restarts get
    identical replies, and identical servers after each restart."""
    run_state_machine_as_test(FakeMatchesRealServerAcrossRestarts, settings=RESTART_SETTINGS)
