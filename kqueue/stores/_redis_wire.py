"""How a Redis store's Lua scripts go over the wire: one call described without I/O
(:class:`ScriptCall`), sent by EVALSHA on a held connection (packed by hiredis when it is
installed), read back with the script loaded again if the server lost it, or run through the
client's own pool."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

if TYPE_CHECKING:
    from redis.commands.core import Script


def _hiredis_packer() -> Callable[[tuple[Any, ...]], bytes] | None:
    """hiredis's command packer, or None without hiredis (redis-py then packs itself)."""
    try:
        from hiredis import pack_command
    except ImportError:
        return None
    return cast("Callable[[tuple[Any, ...]], bytes]", pack_command)


pack_command = _hiredis_packer()


class ScriptCall(NamedTuple):
    """One Lua script call, built without I/O: the sync store runs it on its connection
    (:meth:`RedisStore.execute`), the asyncio one on a ``redis.asyncio`` client; ``decode``
    turns the reply into the method's result (or raises its error)."""

    action: str
    script: Script
    keys: list[str]
    args: list[str | bytes | int | float]
    decode: Callable[[Any], Any]


def send_script(conn: Any, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
    """Send one EVALSHA on ``conn`` (a redis-py Connection) without reading its reply."""
    try:
        if pack_command is None:
            conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        else:
            # What redis-py sends with hiredis installed (it packs with hiredis too),
            # without its Python pass over every argument first: the cost is in
            # docs/performance.md (two of these are on every job's way to its handler).
            command = pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
            conn.send_packed_command([command])
    except BaseException:
        conn.disconnect()  # part of the command may be out: the next call reconnects
        raise


def read_script(
    conn: Any,
    script: Script,
    keys: Sequence[str],
    args: Sequence[Any],
    *,
    errors: Any,
    wait_args: tuple[Any, ...] = (),
    check_wait: Callable[[Any], None] | None = None,
) -> Any:
    """Read the reply of :func:`send_script` (loading the script and sending it again when
    the server answers NOSCRIPT), then send ``wait_args`` (WAIT) and hand its reply to
    ``check_wait``. ``errors`` is redis-py's exceptions module."""
    try:
        try:
            reply = conn.read_response()
        except errors.NoScriptError:
            conn.send_command("SCRIPT", "LOAD", script.script)
            conn.read_response()
            conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
            reply = conn.read_response()
        if wait_args:
            assert check_wait is not None
            conn.send_command(*wait_args)
            check_wait(conn.read_response())
        return reply
    except errors.ResponseError:
        raise  # the connection is still in step: the reply was read
    except BaseException:
        conn.disconnect()  # a reply may be left unread: the next call reconnects
        raise


def run_pooled(
    client: Any,
    script: Script,
    keys: Sequence[str],
    args: Sequence[str | bytes | int | float],
    *,
    errors: Any,
    wait_args: tuple[Any, ...],
    check_wait: Callable[[Any], None],
) -> Any:
    """A script call through the client (a pool with ``max_connections``, or a cluster:
    EVALSHA goes to the node of the keys, EVAL when that node lacks the script)."""
    if wait_args:  # WAIT must follow the write on its connection: one pipeline
        with client.pipeline(transaction=False) as pipe:
            script(keys=keys, args=args, client=pipe)
            pipe.execute_command(*wait_args)
            reply, acked = pipe.execute()
        check_wait(acked)
        return reply
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except errors.NoScriptError:
        return client.eval(script.script, len(keys), *keys, *args)
