"""How RQ, Celery, Dramatiq, Huey and arq answer the questions of docs/guide.md, section 9's
table, found by using them: each probe adds a job that fails twice and one that succeeds, runs
a worker in this process on a local Redis, and reads back what the library keeps.

Run in a virtualenv of its own (not kqueue's): ``pip install rq celery "dramatiq[redis]" huey
arq redis``, then ``python docs/compare/probe_others.py redis://127.0.0.1:6379/11``. It writes
only keys under names it makes up (``probe<random>``); it flushes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Callable
from typing import Any

URL = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/11"
NAME = f"probe{uuid.uuid4().hex[:8]}"
CALLS: dict[str, int] = {}


def flaky(n: int) -> int:
    """Fails its first two calls for each n, then returns n * 2."""
    CALLS[str(n)] = CALLS.get(str(n), 0) + 1
    if CALLS[str(n)] <= 2:
        raise ValueError(f"attempt {CALLS[str(n)]} of {n} failed")
    return n * 2


def always_fails(n: int) -> int:
    raise KeyError(f"no user {n}")


def probe_rq() -> dict[str, Any]:
    from redis import Redis
    from rq import Queue, Retry, SimpleWorker

    conn = Redis.from_url(URL)
    queue = Queue(NAME, connection=conn)
    ok = queue.enqueue(flaky, 1, retry=Retry(max=3))
    dead = queue.enqueue(always_fails, 2, retry=Retry(max=1))
    status_before = ok.get_status()
    SimpleWorker([queue], connection=conn).work(burst=True)
    SimpleWorker([queue], connection=conn).work(burst=True)
    ok.refresh()
    dead.refresh()
    return {
        "status_values": [status_before, ok.get_status(), dead.get_status()],
        "result": ok.return_value(),
        "results_kept_of_the_job_that_failed_twice": [r.type.name for r in ok.results()],
        "results_kept_of_the_dead_one": [r.type.name for r in dead.results()],
        "failure_text_kept": (dead.latest_result().exc_string or "")[-60:],
    }


def probe_huey() -> dict[str, Any]:
    from huey import RedisHuey

    huey = RedisHuey(NAME, url=URL)
    ok_task = huey.task(retries=3)(flaky)
    dead_task = huey.task(retries=1)(always_fails)
    ok, dead = ok_task(11), dead_task(12)
    for _ in range(10):
        task = huey.dequeue()
        if task is None:
            break
        huey.execute(task)
    outcome: dict[str, Any] = {"result": ok.get(blocking=True, timeout=5)}
    try:
        dead.get(blocking=True, timeout=5)
    except Exception as exc:  # huey.exceptions.TaskException, with the last error only
        outcome["failure_kept"] = f"{type(exc).__name__}: {exc}"[:120]
    outcome["status_api"] = hasattr(ok, "status") or hasattr(ok, "state")
    return outcome


def probe_celery() -> dict[str, Any]:
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    app = Celery(NAME, broker=URL, backend=URL)
    app.conf.task_default_queue = NAME
    ok_task = app.task(bind=True, max_retries=3, name=f"{NAME}.ok")(_celery_flaky)
    dead_task = app.task(name=f"{NAME}.dead")(always_fails)
    with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
        ok, dead = ok_task.delay(21), dead_task.delay(22)
        value = ok.get(timeout=30)
        with contextlib.suppress(KeyError):
            dead.get(timeout=30)
    return {
        "result": value,
        "status_values": [ok.state, dead.state],
        "failure_kept": (dead.traceback or "").strip().splitlines()[-1],
    }


def _celery_flaky(self: Any, n: int) -> int:
    try:
        return flaky(n)
    except ValueError as exc:
        raise self.retry(exc=exc, countdown=0) from exc


def probe_dramatiq() -> dict[str, Any]:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.results import Results
    from dramatiq.results.backends import RedisBackend

    broker = RedisBroker(url=URL, namespace=NAME)
    broker.add_middleware(Results(backend=RedisBackend(url=URL, namespace=NAME)))
    dramatiq.set_broker(broker)
    ok_actor = dramatiq.actor(flaky, queue_name=NAME, max_retries=3, min_backoff=1, max_backoff=2,
                              store_results=True)  # fmt: skip
    dead_actor = dramatiq.actor(always_fails, queue_name=NAME, max_retries=0, store_results=True)
    worker = dramatiq.Worker(broker, worker_timeout=100)
    worker.start()
    try:
        ok, dead = ok_actor.send(31), dead_actor.send(32)
        value = ok.get_result(block=True, timeout=30_000)
        try:
            dead.get_result(block=True, timeout=30_000)
        except Exception as exc:  # dramatiq.results.ResultFailure: the last error only
            failure = f"{type(exc).__name__}: {exc}"[:120]
    finally:
        worker.stop()
    return {"result": value, "failure_kept": failure, "status_api": hasattr(ok, "status")}


def probe_arq() -> dict[str, Any]:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Retry, Worker, func

    async def arq_flaky(ctx: dict[str, Any], n: int) -> int:
        try:
            return flaky(n)
        except ValueError as exc:
            raise Retry(defer=0) from exc

    async def arq_dead(ctx: dict[str, Any], n: int) -> int:
        return always_fails(n)

    async def run() -> dict[str, Any]:
        settings = RedisSettings.from_dsn(URL)
        pool = await create_pool(settings, default_queue_name=NAME)
        ok = await pool.enqueue_job("arq_flaky", 41, _job_id=f"{NAME}-ok")
        again = await pool.enqueue_job("arq_flaky", 41, _job_id=f"{NAME}-ok")  # same id
        dead = await pool.enqueue_job("arq_dead", 42)
        assert ok is not None and dead is not None
        before = await ok.status()
        worker = Worker(
            functions=[func(arq_flaky, name="arq_flaky"), func(arq_dead, name="arq_dead")],
            redis_pool=pool, queue_name=NAME, burst=True,
            max_tries=3, poll_delay=0.05,
        )  # fmt: skip
        await worker.main()
        info = await dead.result_info()
        outcome = {
            "status_values": [str(before), str(await ok.status())],
            "result": await ok.result(timeout=5),
            "same_job_id_added_twice": again is None,
            "failure_kept": repr(info.result if info else None)[:120],
        }
        await worker.close()
        return outcome

    return asyncio.run(run())


PROBES: dict[str, Callable[[], dict[str, Any]]] = {
    "rq": probe_rq,
    "huey": probe_huey,
    "celery": probe_celery,
    "dramatiq": probe_dramatiq,
    "arq": probe_arq,
}


def main() -> None:
    """Run the probes named after the URL (all by default), printing what each found."""
    wanted = sys.argv[2:] or list(PROBES)
    for name in wanted:  # in the main thread: RQ's worker installs signal handlers
        CALLS.clear()
        try:
            print(f"{name}: {PROBES[name]()}", flush=True)
        except Exception as exc:  # a probe that breaks says how, and the others still run
            print(f"{name}: probe failed: {type(exc).__name__}: {exc}", flush=True)


if __name__ == "__main__":
    # RQ's workers refuse functions of __main__: run the probes from the module, imported.
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import probe_others

    probe_others.main()
