from huey import RedisHuey

huey = RedisHuey("x")


@huey.task()
def send(to: str, n: int) -> None: ...


send(42, "not an int")
