from redis import Redis
from rq import Queue


def send(to: str, n: int) -> None: ...


Queue(connection=Redis()).enqueue(send, 42, "not an int")
