from typing import Any

from arq import create_pool


async def send(ctx: dict[str, Any], to: str, n: int) -> None: ...
async def main() -> None:
    pool = await create_pool()
    await pool.enqueue_job("send", 42, "not an int")
