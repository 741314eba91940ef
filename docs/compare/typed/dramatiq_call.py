import dramatiq


@dramatiq.actor
def send(to: str, n: int) -> None: ...


send.send(42, "not an int")
