"""Dispatch latency: from add_job to the handler starting, with the worker in another process.

Run from the repository root::

    python -m bench.dispatch_latency [--jobs 2000] [--store URL]
    python -m bench.dispatch_latency --compare [--jobs 2000]

It spawns a real beanstalkd on a free port, an idle worker process, then adds jobs one at a
time (spaced so the worker is idle for each) and prints p50/p99 next to the round-trip time of a
bare beanstalkd command (greenstalk ``stats-tube``) measured in the same run.

``--compare`` measures, one after another on the same server, the floor (plain greenstalk: a
``put`` to a process blocked in ``reserve``), kqueue without a store and kqueue with Redis,
and prints kqueue's percentiles as ratios to the floor's, next to issue 14's targets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import greenstalk

from kqueue import KQueue
from tests.servers import BeanstalkdProcess, running_beanstalkd

WORKER = """
import json, sys, time
from kqueue import KQueue
host, port, store, n, out = sys.argv[1:6]
port, n, store = int(port), int(n), store or None
started = {}
q = KQueue(host=host, port=port, bulk_store=store)
q.add_handler("lat", lambda job: started.__setitem__(job.data, time.monotonic_ns()))
print("ready", flush=True)
q.run_jobs(count_limit=n)
json.dump(started, open(out, "w"))
"""

BASELINE_WORKER = """
import json, sys, time
import greenstalk
host, port, _store, n, out = sys.argv[1:6]
started = {}
with greenstalk.Client((host, int(port)), use="lat-floor", watch="lat-floor") as client:
    print("ready", flush=True)
    for _ in range(int(n)):
        job = client.reserve()
        started[job.body] = time.monotonic_ns()
        client.delete(job)
json.dump(started, open(out, "w"))
"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def bare_round_trip_us(server: BeanstalkdProcess, samples: int = 2000) -> float:
    with greenstalk.Client(server.address) as client:
        times = []
        for _ in range(samples):
            t0 = time.perf_counter_ns()
            client.stats_tube("default")
            times.append((time.perf_counter_ns() - t0) / 1000)
    return statistics.median(times)


def run(jobs: int, store: str | None, gap_s: float) -> dict[str, float]:
    with running_beanstalkd() as server:
        return _measure(server, jobs, store, gap_s)


FLOOR = "greenstalk"
"""The ``store`` argument of :func:`_measure` that measures plain greenstalk instead."""


def _measure(
    server: BeanstalkdProcess, jobs: int, store: str | None, gap_s: float
) -> dict[str, float]:
    """Percentiles of one kqueue configuration (``store`` None: inline), or of the floor."""
    out = Path(f"/tmp/kqueue-bench-lat-{server.port}.json")
    script = BASELINE_WORKER if store == FLOOR else WORKER
    args = [server.host, str(server.port), store or "", str(jobs), str(out)]
    try:
        worker = subprocess.Popen(
            [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True
        )
        assert worker.stdout is not None
        worker.stdout.readline()
        time.sleep(0.3)  # let the worker block in reserve
        called, returned = _add_one_at_a_time(server, jobs, store, gap_s)
        worker.wait(timeout=60)
        started = json.loads(out.read_text())
        from_call = [(started[k] - called[k]) / 1000 for k in called]
        from_return = [(started[k] - returned[k]) / 1000 for k in returned]
        rtt = bare_round_trip_us(server)
    finally:
        out.unlink(missing_ok=True)
    return {
        "call_p50_us": percentile(from_call, 50),
        "call_p99_us": percentile(from_call, 99),
        "return_p50_us": percentile(from_return, 50),
        "return_p99_us": percentile(from_return, 99),
        "bare_rtt_us": rtt,
    }


def _add_one_at_a_time(
    server: BeanstalkdProcess, jobs: int, store: str | None, gap_s: float
) -> tuple[dict[str, int], dict[str, int]]:
    """Add ``jobs`` jobs spaced ``gap_s`` apart; when each add was called and returned."""
    called: dict[str, int] = {}
    returned: dict[str, int] = {}
    if store == FLOOR:
        with greenstalk.Client(server.address, use="lat-floor") as client:
            for i in range(jobs):
                called[str(i)] = time.monotonic_ns()
                client.put(str(i))
                returned[str(i)] = time.monotonic_ns()
                time.sleep(gap_s)
        return called, returned
    with KQueue(host=server.host, port=server.port, bulk_store=store) as queue:
        for i in range(jobs):
            called[str(i)] = time.monotonic_ns()
            queue.add_job("lat", str(i))
            returned[str(i)] = time.monotonic_ns()
            time.sleep(gap_s)
    return called, returned


def compare(jobs: int, store: str, gap_s: float) -> None:
    """The floor, kqueue inline and kqueue with ``store``, one after another on one server,
    as ratios to the floor (issue 14's targets: store p50 <= 2x, p99 <= 3x; inline p50 <=
    1.3x)."""
    with running_beanstalkd() as server:
        floor = _measure(server, jobs, FLOOR, gap_s)
        inline = _measure(server, jobs, None, gap_s)
        stored = _measure(server, jobs, store, gap_s)
    print(f"dispatch latency, put/add_job called -> handler starts, {jobs} jobs, one at a time")
    for label, result, targets in (
        ("floor: plain greenstalk", floor, ""),
        ("kqueue inline", inline, "(target p50 <= 1.3x)"),
        (f"kqueue {store}", stored, "(target p50 <= 2x, p99 <= 3x)"),
    ):
        p50, p99 = result["call_p50_us"], result["call_p99_us"]
        print(
            f"  {label:32} p50 {p50:6.0f} us {p50 / floor['call_p50_us']:5.2f}x  "
            f"p99 {p99:6.0f} us {p99 / floor['call_p99_us']:5.2f}x  {targets}"
        )
    print(f"  bare beanstalkd round trip (stats-tube): {floor['bare_rtt_us']:.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--store", default=None, help="bulk store URL (default: inline)")
    parser.add_argument("--gap-ms", type=float, default=1.0)
    parser.add_argument("--compare", action="store_true", help="floor, inline and store")
    args = parser.parse_args()
    if args.compare:
        compare(args.jobs, args.store or "redis://127.0.0.1:6379/0", args.gap_ms / 1000)
        return
    result = run(args.jobs, args.store, args.gap_ms / 1000)
    label = args.store or "inline"
    print(f"dispatch latency, {label}, {args.jobs} jobs, worker in another process:")
    print(
        f"  add_job called -> handler starts:   p50 {result['call_p50_us']:6.0f} us  "
        f"p99 {result['call_p99_us']:6.0f} us"
    )
    print(
        f"  add_job returned -> handler starts: p50 {result['return_p50_us']:6.0f} us  "
        f"p99 {result['return_p99_us']:6.0f} us (negative: the handler started first)"
    )
    print(f"  bare beanstalkd round trip (stats-tube): {result['bare_rtt_us']:.0f} us")


if __name__ == "__main__":
    main()
