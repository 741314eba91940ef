"""beanstalkd alone with many tubes: the server's share of what job types cost (issue 22).

Raw protocol over one socket, no kqueue: ``use`` + ``put`` for jobs spread evenly over N tubes
(one job per tube in turn, as bench.scale's job types are), then pipelined bursts of
``reserve-with-timeout 0`` and ``delete`` while watching every tube, and again while watching
one tube of N that all hold jobs. Rates, and beanstalkd's CPU per job from /proc. beanstalkd
1.12 walks every tube it holds for each reserve and each put (the next job for a waiting
connection), and every watched tube for each reserve: a cost per existing tube that no client
can avoid while each job type has a tube of its own.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from time import perf_counter

from tests.servers import BeanstalkdProcess, running_beanstalkd

BURST = 100


def server_cpu(server: BeanstalkdProcess) -> float:
    """CPU seconds beanstalkd has used so far (user + system, from /proc)."""
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


class _Raw:
    """One pipelined beanstalkd connection speaking bytes."""

    def __init__(self, server: BeanstalkdProcess) -> None:
        self.sock = socket.create_connection((server.host, server.port))
        self.file = self.sock.makefile("rb")

    def burst(self, commands: list[bytes]) -> list[bytes]:
        """Send ``commands`` in one write; their reply lines (job bodies skipped)."""
        self.sock.sendall(b"".join(commands))
        lines = []
        for _ in commands:
            line = self.file.readline()
            if line.startswith(b"RESERVED"):
                self.file.read(int(line.split()[2]) + 2)
            lines.append(line)
        return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@dataclass
class FloorRow:
    """beanstalkd alone at one count of tubes: rates and server CPU us per job."""

    tubes: int
    put_rate: float
    put_cpu: float
    reserve_rate: float
    reserve_cpu: float
    one_watched_cpu: float


def _reserve_all(raw: _Raw, server: BeanstalkdProcess, jobs: int) -> tuple[float, float]:
    """Reserve and delete ``jobs`` ready jobs in bursts: (jobs a second, server us per job)."""
    cpu, started, got = server_cpu(server), perf_counter(), 0
    while got < jobs:
        lines = raw.burst([b"reserve-with-timeout 0\r\n"] * min(BURST, jobs - got))
        ids = [line.split()[1] for line in lines if line.startswith(b"RESERVED")]
        if not ids:
            break
        raw.burst([b"delete " + job_id + b"\r\n" for job_id in ids])
        got += len(ids)
    assert got == jobs, (got, jobs)
    return jobs / (perf_counter() - started), (server_cpu(server) - cpu) * 1e6 / jobs


def floor_row(tubes: int, jobs: int) -> FloorRow:
    """Puts over ``tubes`` tubes, then reserves watching all of them, then watching one."""
    names = [f"t{index}".encode() for index in range(tubes)]
    with running_beanstalkd() as server:
        raw = _Raw(server)
        commands = []
        for index in range(jobs):
            commands += [b"use " + names[index % tubes] + b"\r\n", b"put 0 0 60 2\r\nhi\r\n"]
        cpu, started = server_cpu(server), perf_counter()
        for start in range(0, len(commands), 2 * BURST):
            raw.burst(commands[start : start + 2 * BURST])
        put_rate = jobs / (perf_counter() - started)
        put_cpu = (server_cpu(server) - cpu) * 1e6 / jobs
        raw.burst([b"watch " + name + b"\r\n" for name in names] + [b"ignore default\r\n"])
        reserve_rate, reserve_cpu = _reserve_all(raw, server, jobs)
        # Every tube holds a job again; this connection watches the first tube only.
        raw.burst(
            [c for name in names for c in (b"use " + name + b"\r\n", b"put 0 0 60 2\r\nhi\r\n")]
        )
        raw.burst([b"use t0\r\n"] + [b"put 0 0 60 2\r\nhi\r\n"] * jobs)
        raw.burst([b"ignore " + name + b"\r\n" for name in names[1:]])
        _, one_watched_cpu = _reserve_all(raw, server, jobs)
        raw.close()
    return FloorRow(tubes, put_rate, put_cpu, reserve_rate, reserve_cpu, one_watched_cpu)


def print_floor(rows: list[FloorRow]) -> None:
    """The table, rates as ratios to the first row."""
    print("\nbeanstalkd alone (raw pipelined commands, one connection), same jobs per row:")
    print(
        f"{'tubes':>6} | {'use+put':>16} | {'reserve+delete':>16} | server CPU us per job: "
        "put | reserve+delete | the same, 1 tube watched"
    )
    first = rows[0]
    for row in rows:
        print(
            f"{row.tubes:>6} | {row.put_rate:>7,.0f}/s {row.put_rate / first.put_rate:.2f}x"
            f" | {row.reserve_rate:>7,.0f}/s {row.reserve_rate / first.reserve_rate:.2f}x"
            f" | {row.put_cpu:.0f} | {row.reserve_cpu:.0f} | {row.one_watched_cpu:.0f}"
        )
