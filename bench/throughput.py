"""Every throughput figure of docs/performance.md in one run, as ratios to plain greenstalk.

Run from the repository root (services as in ci/test.sh; peers need ``pip install rq dramatiq
celery psutil``, or ``pip install .[bench]``)::

    python -m bench.throughput [--jobs 20000] [--rss-jobs 200000] [--skip-peers]

One fresh real beanstalkd serves every kqueue and greenstalk figure. The baseline is plain
greenstalk: N puts, then N reserve + delete, one command per round trip, no store. kqueue adds
with ``add_jobs`` (batches of 1000) and runs with ``run_jobs`` (one process, windowed);
the peers (RQ SimpleWorker, Dramatiq with a one-thread worker, Celery solo pool) do the same
add-then-run cycle on the same Redis with a no-op task.

Two ceilings are measured in the same run to read the targets against: raw pipelined puts
(pre-built commands on a bare socket: what any one Python producer can put into this
beanstalkd), and how busy the machine's cores are while worker processes run (CPU time of
the workers, beanstalkd and Redis over wall time; near 100% nothing more can scale here).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import greenstalk

from bench.dispatch_latency import run as latency_run
from bench.end_to_end import PAYLOAD, STORE_URLS
from kqueue import KQueue
from tests.servers import BeanstalkdProcess, running_beanstalkd

REDIS_URL = "redis://127.0.0.1:6379/0"
BATCH = 1000
HEAVY_US = 200
CEILING_TARGETS = {"inline": 0.75, "redis": 0.5, "sqlite": 0.4}
"""Issue 14's end-to-end targets: a share of the raw pipelined cycle measured in the run."""
"""CPU time of the handler in the second process-scaling pair (its own work, not kqueue's)."""

WORKER = """
import resource, sys, time
from kqueue import KQueue
host, port, store, job_type, n, rss_at, work_us = sys.argv[1:8]
n, rss_at, work_s = int(n), int(rss_at), int(work_us) / 1e6
seen = [0]
def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
marks = {}
def handler(job):
    if work_s:  # CPU-bound work of the handler's own
        until = time.perf_counter() + work_s
        while time.perf_counter() < until:
            pass
    seen[0] += 1
    if seen[0] in (rss_at, n):
        marks[seen[0]] = rss_kb()
q = KQueue(host=host, port=int(port), bulk_store=store or None)
q.add_handler(job_type, handler)
print("ready", flush=True)
sys.stdin.readline()
start = time.time()
ran = q.run_jobs(count_limit=n, time_limit_ms=0 if rss_at == 0 else 60_000)
print(start, time.time(), ran, marks.get(rss_at, 0), marks.get(n, 0), flush=True)
"""


def greenstalk_cycle(server: BeanstalkdProcess, jobs: int) -> tuple[float, float]:
    """(put rate, cycle rate) of plain greenstalk: N puts, then N reserve + delete."""
    with greenstalk.Client(server.address, use="gs", watch="gs") as client:
        body = str(PAYLOAD)
        started = time.perf_counter()
        for _ in range(jobs):
            client.put(body)
        put_done = time.perf_counter()
        for _ in range(jobs):
            client.delete(client.reserve())
        ended = time.perf_counter()
    return jobs / (put_done - started), jobs / (ended - started)


def raw_put_ceiling(server: BeanstalkdProcess, jobs: int) -> float:
    """Put rate of pre-built put commands written 1000 at a time on one socket, no store and no
    client library: the most one Python process can put into this beanstalkd."""
    body = str(PAYLOAD).encode()
    frame = b"put 0 0 60 %d\r\n%s\r\n" % (len(body), body)
    with socket.create_connection(server.address) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        for start in range(0, jobs, BATCH):
            count = min(BATCH, jobs - start)
            sock.sendall(frame * count)
            replies = 0
            while replies < count:
                replies += sock.recv(1 << 16).count(b"\r\n")
        return jobs / (time.perf_counter() - started)


def raw_cycle_ceiling(server: BeanstalkdProcess, jobs: int) -> float:
    """End-to-end rate of the protocol alone: pre-built puts, then ``reserve-with-timeout 0``
    and ``delete`` commands, each written 1000 at a time on one bare socket, no store and no
    client library: the floor of the add-then-run cycle that every end-to-end target is read
    against (issue 14)."""
    body = str(PAYLOAD).encode()
    put = b"put 0 0 60 %d\r\n%s\r\n" % (len(body), body)
    with socket.create_connection(server.address) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"use raw\r\nwatch raw\r\nignore default\r\n")
        _read_lines(sock, 3)
        started = time.perf_counter()
        for start in range(0, jobs, BATCH):
            sock.sendall(put * min(BATCH, jobs - start))
            _read_lines(sock, min(BATCH, jobs - start))
        for start in range(0, jobs, BATCH):
            count = min(BATCH, jobs - start)
            sock.sendall(b"reserve-with-timeout 0\r\n" * count)
            replies = _read_lines(sock, 2 * count)  # RESERVED <id> <bytes>, then the body
            ids = [line.split()[1] for line in replies[0::2]]
            sock.sendall(b"".join(b"delete %s\r\n" % job_id for job_id in ids))
            _read_lines(sock, count)
        return jobs / (time.perf_counter() - started)


def _read_lines(sock: socket.socket, count: int) -> list[bytes]:
    """Read exactly ``count`` CRLF-terminated lines (the bench's bodies hold no CRLF)."""
    data = b""
    while data.count(b"\r\n") < count:
        data += sock.recv(1 << 16)
    return data.split(b"\r\n")[:count]


def kqueue_cycle(server: BeanstalkdProcess, jobs: int, store: str | None) -> tuple[float, float]:
    """(add rate, cycle rate): add_jobs in batches, then run_jobs until all ran."""
    job_type = f"bench-{uuid.uuid4().hex[:8]}"
    with KQueue(host=server.host, port=server.port, bulk_store=store) as queue:
        queue.add_handler(job_type, lambda job: None)
        started = time.perf_counter()
        for start in range(0, jobs, BATCH):
            queue.add_jobs(job_type, [PAYLOAD] * min(BATCH, jobs - start))
        added = time.perf_counter()
        ran = queue.run_jobs(count_limit=jobs, time_limit_ms=0)
        ended = time.perf_counter()
    assert ran == jobs, f"ran {ran} of {jobs}"
    return jobs / (added - started), jobs / (ended - started)


def one_call_add(server: BeanstalkdProcess, jobs: int, store: str | None) -> float:
    """Add rate of one add_jobs call for all ``jobs`` (its batches of 1000 written ahead of
    the puts before them: Producer._add_batches)."""
    job_type = f"bench-{uuid.uuid4().hex[:8]}"
    with KQueue(host=server.host, port=server.port, bulk_store=store) as queue:
        queue.add_jobs(job_type, [PAYLOAD] * 10)  # connected, scripts loaded
        started = time.perf_counter()
        queue.add_jobs(job_type, [PAYLOAD] * jobs)
        added = time.perf_counter()
        queue.purge_jobs(job_type)
    return jobs / (added - started)


def spawn_workers(
    server: BeanstalkdProcess,
    store: str,
    job_type: str,
    share: int,
    count: int,
    rss_at: int = 0,
    work_us: int = 0,
) -> list[subprocess.Popen[str]]:
    """Worker processes, each ready to run ``share`` jobs when a line arrives on stdin."""
    procs = []
    for _ in range(count):
        args = [server.host, str(server.port), store, job_type, str(share), str(rss_at)]
        args.append(str(work_us))
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        proc.stdout.readline()
        procs.append(proc)
    return procs


def finish(procs: list[subprocess.Popen[str]]) -> list[list[float]]:
    """Each worker's line: start, end, jobs run, RSS at the mark, RSS at the end."""
    results = []
    for proc in procs:
        assert proc.stdout is not None
        results.append([float(x) for x in proc.stdout.readline().split()])
        proc.wait(timeout=600)
    return results


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc); 0 where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_pid() -> int:
    """The local Redis server's process id (0 if unknown)."""
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        return int(client.info("server").get("process_id", 0))


def processes_rate(
    server: BeanstalkdProcess, jobs: int, count: int, work_us: int = 0
) -> tuple[float, float]:
    """(run rate, share of the machine's cores busy in workers + beanstalkd + Redis) of
    ``count`` worker processes draining ``jobs`` jobs added beforehand (handlers busy
    ``work_us`` each). The share is 0 where /proc cannot be read."""
    job_type = f"procs-{uuid.uuid4().hex[:8]}"
    with KQueue(host=server.host, port=server.port, bulk_store=REDIS_URL) as queue:
        for start in range(0, jobs, BATCH):
            queue.add_jobs(job_type, [PAYLOAD] * min(BATCH, jobs - start))
    procs = spawn_workers(server, REDIS_URL, job_type, jobs, count, work_us=work_us)
    assert server.process is not None
    servers = [server.process.pid, redis_pid()]
    before = sum(cpu_seconds(pid) for pid in servers + [p.pid for p in procs])
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:  # each worker's line, read while the worker still exists
        assert proc.stdout is not None
        results.append([float(x) for x in proc.stdout.readline().split()])
    after = sum(cpu_seconds(pid) for pid in servers + [p.pid for p in procs])
    for proc in procs:
        proc.wait(timeout=600)
    assert sum(int(r[2]) for r in results) == jobs
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    return jobs / wall, (after - before) / wall / (os.cpu_count() or 1)


def rss_growth_mb(server: BeanstalkdProcess, jobs: int) -> tuple[float, float]:
    """(RSS after the first 10% of jobs, growth from there to the last job) of one worker."""
    job_type = f"rss-{uuid.uuid4().hex[:8]}"
    mark = max(1, jobs // 10)
    (proc,) = spawn_workers(server, REDIS_URL, job_type, jobs, 1, rss_at=mark)
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    with KQueue(host=server.host, port=server.port, bulk_store=REDIS_URL) as queue:
        for start in range(0, jobs, BATCH):
            queue.add_jobs(job_type, [PAYLOAD] * min(BATCH, jobs - start))
    (result,) = finish([proc])
    return result[3] / 1024, (result[4] - result[3]) / 1024


def line(label: str, rate: float, base: float, note: str = "") -> None:
    """One row of the table."""
    print(f"{label:34} {rate:9.0f} jobs/s  {rate / base:5.2f}x  {note}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--sql-jobs", type=int, default=10000)
    parser.add_argument("--peer-jobs", type=int, default=5000)
    parser.add_argument("--rss-jobs", type=int, default=200_000)
    parser.add_argument("--latency-jobs", type=int, default=2000)
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    with running_beanstalkd() as server, tempfile.TemporaryDirectory() as tmp:
        run_all(server, args, tmp)


def run_all(server: BeanstalkdProcess, args: argparse.Namespace, tmp: str) -> None:
    """Print every row of the table."""
    put_base, base = greenstalk_cycle(server, args.jobs)
    floor = raw_cycle_ceiling(server, args.jobs)
    print(f"end to end (add N, run N, delete), N={args.jobs}; baseline = greenstalk cycle")
    line("greenstalk put+reserve+delete", base, base, f"(put alone {put_base:.0f}/s)")
    line("ceiling: raw pipelined cycle", floor, base, "(pre-built, no store, no library)")
    add_rates = {}
    for name in ("inline", "redis", "sqlite", "postgres"):
        jobs = args.jobs if name in ("inline", "redis") else args.sql_jobs
        add_rates[name], rate = kqueue_cycle(server, jobs, STORE_URLS[name](tmp))
        target = CEILING_TARGETS.get(name)
        wanted = f" (target {target:.0%})" if target else ""
        share = f"{rate / floor:.0%} of the raw cycle{wanted}"
        line(f"kqueue {name}", rate, base, share)
    if not args.skip_peers:
        from bench.peers import PEERS

        for name, cycle in PEERS.items():
            try:
                line(name, cycle(args.peer_jobs), base)
            except Exception as exc:  # a peer that does not install or run is reported
                print(f"{name:34} failed: {exc!r}")
    print("bulk add (add_jobs, batches of 1000); baseline = greenstalk put")
    line("kqueue redis add_jobs", add_rates["redis"], put_base)
    line("kqueue inline add_jobs", add_rates["inline"], put_base)
    one_call = one_call_add(server, args.jobs, STORE_URLS["redis"](tmp))
    line("kqueue redis, one add_jobs call", one_call, put_base, f"({args.jobs} jobs)")
    ceiling = raw_put_ceiling(server, args.jobs)
    line("ceiling: raw pipelined puts", ceiling, put_base, "(pre-built, no store, no library)")
    print(
        f"kqueue redis add_jobs: {add_rates['redis'] / ceiling:.0%} of the raw pipelined put "
        "rate (target 50%)"
    )
    lat = latency_run(args.latency_jobs, REDIS_URL, 0.001)
    print(
        f"dispatch latency, redis, idle worker process: add_job called -> handler starts "
        f"p50 {lat['call_p50_us']:.0f} us p99 {lat['call_p99_us']:.0f} us "
        f"(bare beanstalkd round trip {lat['bare_rtt_us']:.0f} us)"
    )
    one, one_busy = processes_rate(server, args.jobs, 1)
    two, two_busy = processes_rate(server, args.jobs, 2)
    print(
        "worker processes, redis, run only (jobs added beforehand); busy = CPU time of the "
        f"workers, beanstalkd and Redis over wall time x {os.cpu_count()} cores"
    )
    line("1 process", one, one, f"cores {one_busy:.0%} busy")
    line("2 processes", two, one, f"cores {two_busy:.0%} busy")
    heavy = max(1000, args.jobs // 8)
    one_heavy, one_heavy_busy = processes_rate(server, heavy, 1, work_us=HEAVY_US)
    two_heavy, two_heavy_busy = processes_rate(server, heavy, 2, work_us=HEAVY_US)
    line(
        f"1 process, {HEAVY_US} us CPU handler",
        one_heavy,
        one_heavy,
        f"cores {one_heavy_busy:.0%} busy",
    )
    line(
        f"2 processes, {HEAVY_US} us CPU handler",
        two_heavy,
        one_heavy,
        f"cores {two_heavy_busy:.0%} busy",
    )
    start_mb, growth_mb = rss_growth_mb(server, args.rss_jobs)
    print(
        f"memory: one worker over {args.rss_jobs} jobs (redis): RSS {start_mb:.1f} MB after "
        f"the first 10%, grew {growth_mb:+.1f} MB by the last"
    )


if __name__ == "__main__":
    main()
