"""A queue bonded over one, two and three beanstalkd servers, and what bonding costs one server.

Run from the repository root (Redis as in ci/test.sh)::

    python -m bench.bonded [--jobs 5000] [--rounds 3] [--baseline main]

Three fresh real beanstalkds serve every figure of one run. Each figure is one child process
(a fresh interpreter, so no run warms the next): ``add_job`` one at a time, ``add_jobs`` in
batches of 1000, then one worker running them all (``run_jobs``), every job through a Redis
store. The baseline is the same child on a checkout of ``--baseline`` (a git revision:
``git archive`` into a temporary directory), which has no bonded mode, on the first server:
the ratio of the one-server bonded queue to it is what bonding costs a queue that does not use
it. Rounds alternate the configurations, and each figure is the median of its rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = {"user": 12345, "action": "send-welcome-email", "tags": ["a", "b", "c"]}
REDIS_URL = "redis://127.0.0.1:6379/0"


def child(servers: list[str], jobs: int, bonded: bool) -> dict[str, float]:
    """Runs in the child: rates (jobs/s) of add_job, add_jobs and run_jobs."""
    from kqueue import KQueue

    prefix = f"bench-bond-{uuid.uuid4().hex[:8]}:"
    store = f"{REDIS_URL}?prefix={prefix}"
    host, port = servers[0].split(":")
    where = {"servers": servers} if bonded else {"host": host, "port": int(port)}
    rates: dict[str, float] = {}
    with KQueue(bulk_store=store, **where) as queue:
        queue.add_handler("one", lambda job: None)
        queue.add_handler("many", lambda job: None)
        queue.add_job("one", PAYLOAD)  # connected, scripts loaded
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(jobs):
            queue.add_job("one", PAYLOAD)
        rates["add_job"] = jobs / (time.perf_counter() - started)
        rates["add_job_cpu_us"] = (time.process_time() - cpu) / jobs * 1e6
        started = time.perf_counter()
        for _ in range(0, 4 * jobs, 1000):
            queue.add_jobs("many", [PAYLOAD] * 1000)
        rates["add_jobs"] = 4 * jobs / (time.perf_counter() - started)
        total = jobs + 1 + 4 * jobs
        started = time.perf_counter()
        ran = queue.run_jobs(count_limit=total, time_limit_ms=60_000)
        rates["run_jobs"] = ran / (time.perf_counter() - started)
        assert ran == total, f"ran {ran} of {total}"
        assert queue.store is not None
        for key in queue.store.scan(limit=10):  # nothing left behind
            raise AssertionError(f"record {key} left")
    return rates


def spawn(tree: Path, servers: list[str], jobs: int, bonded: bool) -> dict[str, float]:
    """One child on the kqueue of ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    args = [sys.executable, str(Path(__file__)), "--child", json.dumps([servers, jobs, bonded])]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr}")
    rates: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return rates


def baseline_tree(revision: str, into: Path) -> Path:
    """A checkout of ``revision`` (its files only) under ``into``."""
    archive = into / "baseline.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "-o", str(archive), revision, "kqueue"], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "baseline", filter="data")
    return into / "baseline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="main", help="git revision without bonding")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        servers, jobs, bonded = json.loads(args.child)
        print(json.dumps(child(servers, jobs, bonded)))
        return
    sys.path.insert(0, str(ROOT))
    from tests.servers import BeanstalkdProcess, beanstalkd_binary

    binary = beanstalkd_binary()
    if binary is None:
        raise SystemExit("beanstalkd not installed (apt-get install beanstalkd)")
    brokers = [BeanstalkdProcess(binary) for _ in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_tree(args.baseline, Path(tmp))
        try:
            for broker in brokers:
                broker.start()
            addresses = [f"{b.host}:{b.port}" for b in brokers]
            configs = {
                f"{args.baseline} (one server, no bonding)": (base, addresses[:1], False),
                "this tree, host/port": (ROOT, addresses[:1], False),
                "bonded, 1 server": (ROOT, addresses[:1], True),
                "bonded, 2 servers": (ROOT, addresses[:2], True),
                "bonded, 3 servers": (ROOT, addresses, True),
            }
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
            for _ in range(args.rounds):
                for name, (tree, servers, bonded) in configs.items():
                    runs[name].append(spawn(tree, servers, args.jobs, bonded))
        finally:
            for broker in brokers:
                broker.stop()
    report(runs, args)


def report(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    kinds = ["add_job", "add_jobs", "run_jobs", "add_job_cpu_us"]
    medians = {
        name: {kind: statistics.median(r[kind] for r in rounds) for kind in kinds}
        for name, rounds in runs.items()
    }
    base = next(iter(medians.values()))
    print(f"jobs/s, median of {args.rounds} rounds ({args.jobs} add_job, {4 * args.jobs} "
          "add_jobs, one worker), and the producer's CPU time per add_job (µs, less "
          "sensitive to a loaded machine); ratio to the first line")  # fmt: skip
    print(f"{'':40} " + " ".join(f"{kind:>18}" for kind in kinds))
    for name, rates in medians.items():
        cells = " ".join(f"{rates[k]:>9.0f} ({rates[k] / base[k]:4.2f}x)" for k in kinds)
        print(f"{name:40} {cells}")


if __name__ == "__main__":
    main()
