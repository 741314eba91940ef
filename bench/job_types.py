"""What job types cost one worker process (issue 22): add and run rates at several counts.

One worker process without a store, a fresh beanstalkd per round, ``jobs`` jobs spread evenly
over the job types (one ``add_job`` each, the types in turn), then ``run_jobs`` until none is
ready: the run as issue 22 measures it, its first window watching every tube (a one-time cost
of the worker's start, O(types), in a run of only a few jobs per type). Then the same jobs
again on the same worker, its watches in place (a worker that is already running). Rounds go
round the counts of types in turn, so a change in the machine's load falls on every row alike;
each figure is the best of its rounds. CPU per job: the worker process's own
(``time.process_time``, all its threads) and beanstalkd's (from /proc). With several
``lanes`` settings (0: a tube per type; N: the types share N tubes, :mod:`kqueue.lanes`),
every setting runs in every round, in turn, and each row's ratio is to the first count of
types of the same setting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.tube_floor import server_cpu
from kqueue import KQueue
from tests.servers import running_beanstalkd

PAYLOAD = {"user": 12345, "action": "send-welcome-email"}


@dataclass
class TypesRound:
    """One round at one count of types: rates, and CPU us per job (own, server's)."""

    add: float
    run: float
    warm_run: float
    add_own: float
    run_own: float
    add_server: float
    run_server: float


def _add(queue: KQueue, names: list[str], jobs: int) -> float:
    started = time.perf_counter()
    for index in range(jobs):
        queue.add_job(names[index % len(names)], PAYLOAD)
    return jobs / (time.perf_counter() - started)


def _run(queue: KQueue, jobs: int) -> float:
    started = time.perf_counter()
    ran = queue.run_jobs(time_limit_ms=0)
    assert ran == jobs, ran
    return ran / (time.perf_counter() - started)


def job_types_round(types: int, jobs: int, lanes: int = 0) -> TypesRound:
    """Add then run ``jobs`` jobs over ``types`` job types, then again with watches in place."""
    names = [f"t{index}" for index in range(types)]
    with (
        running_beanstalkd() as server,
        KQueue(host=server.host, port=server.port, lanes=lanes) as queue,
    ):
        for name in names:
            queue.add_handler(name, lambda job: None)
        server0, own0 = server_cpu(server), time.process_time()
        add = _add(queue, names, jobs)
        server1, own1 = server_cpu(server), time.process_time()
        run = _run(queue, jobs)
        server2, own2 = server_cpu(server), time.process_time()
        _add(queue, names, jobs)
        warm_run = _run(queue, jobs)
    per_job = 1e6 / jobs
    return TypesRound(
        add,
        run,
        warm_run,
        (own1 - own0) * per_job,
        (own2 - own1) * per_job,
        (server1 - server0) * per_job,
        (server2 - server1) * per_job,
    )


Row = tuple[int, int, TypesRound]
"""(lanes, types, the best figures)."""


def measure(counts: list[int], jobs: int, rounds: int, lanes: list[int] | None = None) -> list[Row]:
    """Rounds interleaved over ``counts`` (and ``lanes`` settings); per setting and count the
    best rate of each kind, and the CPU figures of the round with the best add (add) and the
    best run (run)."""
    settings = [(n, types) for n in lanes or [0] for types in counts]
    results: dict[tuple[int, int], list[TypesRound]] = {setting: [] for setting in settings}
    for _ in range(rounds):
        for n, types in settings:
            results[n, types].append(job_types_round(types, jobs, n))
    rows = []
    for n, types in settings:
        got = results[n, types]
        best_add = max(got, key=lambda r: r.add)
        best_run = max(got, key=lambda r: r.run)
        warm = max(r.warm_run for r in got)
        rows.append(
            (
                n,
                types,
                TypesRound(
                    best_add.add,
                    best_run.run,
                    warm,
                    best_add.add_own,
                    best_run.run_own,
                    best_add.add_server,
                    best_run.run_server,
                ),
            )
        )
    return rows


def print_job_types(rows: list[Row]) -> None:
    """The table, rates as ratios to the first row of the same lanes setting."""
    print("\nJob types (one worker process, no store, jobs spread evenly, add then run):")
    print(
        f"{'lanes':>5} | {'types':>6} | {'add_job':>16} | {'run_jobs':>16} |"
        f" {'run, watches in place':>21} | CPU us per job, add / run: kqueue's | beanstalkd's"
        " | lanes vs none, same types: add / run"
    )
    firsts: dict[int, TypesRound] = {}
    plain = {types: row for n, types, row in rows if n == 0}
    for n, types, row in rows:
        first = firsts.setdefault(n, row)
        base = plain.get(types)
        versus = f"{row.add / base.add:.2f}x / {row.run / base.run:.2f}x" if n and base else ""
        print(
            f"{n or '-':>5} | {types:>6} | {row.add:>7,.0f}/s {row.add / first.add:.2f}x"
            f" | {row.run:>7,.0f}/s {row.run / first.run:.2f}x"
            f" | {row.warm_run:>12,.0f}/s {row.warm_run / first.warm_run:.2f}x"
            f" | {row.add_own:.0f} / {row.run_own:.0f}"
            f" | {row.add_server:.0f} / {row.run_server:.0f}"
            f" | {versus}"
        )
