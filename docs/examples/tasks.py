# docs/examples/tasks.py: python docs/examples/tasks.py runs it all on an in-process broker
import tempfile
from datetime import datetime, timezone

from fakebeanstalk import FakeBeanstalkServer
from kqueue import PRIO_HIGH, JobFailedError, KQueue, ResultTimeoutError, RetryPolicy

server = FakeBeanstalkServer().start()  # in production: your beanstalkd (host=, port=)
store = f"sqlite:///{tempfile.mkdtemp()}/jobs.sqlite3"  # or redis://, postgresql+psycopg://
queue = KQueue(port=server.port, bulk_store=store)


@queue.task("email.send", priority=PRIO_HIGH, ttr=30, keep_result=3600)
def send_email(to: str, subject: str, cc: list[str] | None = None) -> str:
    return f"sent {subject!r} to {to}"


@queue.task(retry=RetryPolicy(max_attempts=2, base_delay=0, jitter=False), keep_result=600)
def charge(order: int, cents: int) -> None:  # job type: __main__.charge (module.qualname)
    raise ConnectionError(f"payment gateway down (order {order})")


# Producers: the function's own arguments, checked by mypy and again before anything is added.
handle = send_email.add(to="ada@example.com", subject="welcome")
send_email.add(to="bob@example.com", subject="reminder", delay=3600)
send_email.add(to="cy@example.com", subject="2030", at=datetime(2030, 1, 1, tzinfo=timezone.utc))
send_email.add_many(
    [{"to": "dee@example.com", "subject": "a"}, {"to": "eve@example.com", "subject": "b"}]
)
failing = charge.add(order=7, cents=1999)
print(handle.key, handle.id, handle.status())  # 0193...  1  pending

try:
    handle.result(timeout=0.1)  # no worker yet
except ResultTimeoutError:
    print("not done yet")

# Workers: in production, kqueue worker myapp.tasks:queue.
queue.run_jobs(time_limit_ms=0)

print(handle.status(), handle.result(timeout=10))  # done  sent 'welcome' to ada@example.com
print(queue.job_status(handle.key), queue.job_result(handle.key))  # the same, by key
try:
    failing.result(timeout=10)
except JobFailedError as exc:  # buried after 2 attempts: the last failure, with its traceback
    print(failing.status(), exc.error_type, exc.error_message)
for failure in failing.failures():  # every failed attempt: when, where (host:pid), what
    print(failure.attempt, failure.worker, failure.error_type, failure.message)

queue.close()
server.stop()
