from celery import Celery

app = Celery("x")


@app.task
def send(to: str, n: int) -> None: ...


send.delay(42, "not an int")
