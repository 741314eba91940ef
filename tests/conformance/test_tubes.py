"""Tube lifetime, swap-remove list order, watch/ignore and pause rules."""

from __future__ import annotations

from tests.conformance.rawclient import RawConnection, ok_reply, put_cmd, stats_dict
from tests.conformance.targets import ServerTarget


def _yaml_list(*names: bytes) -> bytes:
    return ok_reply(b"---\n" + b"".join(b"- " + name + b"\n" for name in names))


def test_new_connection_uses_and_watches_default(conn: RawConnection) -> None:
    """A fresh connection uses and watches only ``default``."""
    assert conn.cmd(b"list-tube-used\r\n") == b"USING default\r\n"
    assert conn.cmd(b"list-tubes-watched\r\n") == _yaml_list(b"default")
    assert conn.cmd(b"list-tubes\r\n") == _yaml_list(b"default")


def test_default_tube_is_never_destroyed(server: ServerTarget) -> None:
    """``default`` outlives every user and watcher."""
    with server.connect() as conn:
        assert conn.cmd(b"use a\r\n") == b"USING a\r\n"
        assert conn.cmd(b"watch a\r\n") == b"WATCHING 2\r\n"
        assert conn.cmd(b"ignore default\r\n") == b"WATCHING 1\r\n"
        assert conn.cmd(b"list-tubes\r\n") == _yaml_list(b"default", b"a")
        assert stats_dict(conn.cmd(b"stats-tube default\r\n"))["current-watching"] == "0"


def test_tube_vanishes_when_its_last_user_watcher_and_job_are_gone(conn: RawConnection) -> None:
    """Tubes are reference-counted by uses, watches and jobs."""
    assert conn.cmd(b"use a\r\n") == b"USING a\r\n"
    assert conn.cmd(put_cmd(b"x")) == b"INSERTED 1\r\n"
    assert conn.cmd(b"watch a\r\n") == b"WATCHING 2\r\n"
    assert conn.cmd(b"use default\r\n") == b"USING default\r\n"
    assert conn.cmd(b"ignore a\r\n") == b"WATCHING 1\r\n"
    assert conn.cmd(b"list-tubes\r\n") == _yaml_list(b"default", b"a")
    assert conn.cmd(b"delete 1\r\n") == b"DELETED\r\n"
    assert conn.cmd(b"list-tubes\r\n") == _yaml_list(b"default")
    assert conn.cmd(b"stats-tube a\r\n") == b"NOT_FOUND\r\n"


def test_closing_a_connection_drops_the_tubes_only_it_used(server: ServerTarget) -> None:
    """A connection's use and watches are released when it closes."""
    with server.connect() as observer:
        with server.connect() as conn:
            assert conn.cmd(b"use u\r\n") == b"USING u\r\n"
            assert conn.cmd(b"watch w\r\n") == b"WATCHING 2\r\n"
            assert observer.cmd(b"list-tubes\r\n") == _yaml_list(b"default", b"u", b"w")
        for _ in range(200):
            if observer.cmd(b"list-tubes\r\n") == _yaml_list(b"default"):
                break
        assert observer.cmd(b"list-tubes\r\n") == _yaml_list(b"default")


def test_watch_list_uses_swap_remove(conn: RawConnection) -> None:
    """``[default, a, b]`` then ``ignore default`` lists ``[b, a]``."""
    assert conn.cmd(b"watch a\r\n") == b"WATCHING 2\r\n"
    assert conn.cmd(b"watch b\r\n") == b"WATCHING 3\r\n"
    assert conn.cmd(b"ignore default\r\n") == b"WATCHING 2\r\n"
    assert conn.cmd(b"list-tubes-watched\r\n") == _yaml_list(b"b", b"a")


def test_tube_list_uses_swap_remove(conn: RawConnection) -> None:
    """When tube a of ``[default, a, b, c]`` vanishes, the list becomes ``[default, c, b]``."""
    for tube in (b"a", b"b", b"c"):
        assert conn.cmd(b"watch " + tube + b"\r\n").startswith(b"WATCHING")
    assert conn.cmd(b"list-tubes\r\n") == _yaml_list(b"default", b"a", b"b", b"c")
    assert conn.cmd(b"ignore a\r\n") == b"WATCHING 3\r\n"
    assert conn.cmd(b"list-tubes\r\n") == _yaml_list(b"default", b"c", b"b")


def test_watching_a_watched_tube_changes_nothing(conn: RawConnection) -> None:
    """A second watch of a tube keeps the count and the tube's watcher count."""
    assert conn.cmd(b"watch a\r\n") == b"WATCHING 2\r\n"
    assert conn.cmd(b"watch a\r\n") == b"WATCHING 2\r\n"
    assert conn.cmd(b"watch default\r\n") == b"WATCHING 2\r\n"
    assert stats_dict(conn.cmd(b"stats-tube a\r\n"))["current-watching"] == "1"


def test_ignoring_an_unwatched_tube_answers_watching_and_creates_nothing(
    conn: RawConnection,
) -> None:
    """``ignore nope`` answers the current count; no tube ``nope`` appears."""
    assert conn.cmd(b"ignore nope\r\n") == b"WATCHING 1\r\n"
    assert conn.cmd(b"list-tubes\r\n") == _yaml_list(b"default")


def test_ignoring_the_last_watched_tube_is_not_ignored(conn: RawConnection) -> None:
    """NOT_IGNORED only when the tube is the last one watched."""
    assert conn.cmd(b"ignore default\r\n") == b"NOT_IGNORED\r\n"
    assert conn.cmd(b"watch a\r\n") == b"WATCHING 2\r\n"
    assert conn.cmd(b"ignore default\r\n") == b"WATCHING 1\r\n"
    assert conn.cmd(b"ignore default\r\n") == b"WATCHING 1\r\n"
    assert conn.cmd(b"ignore a\r\n") == b"NOT_IGNORED\r\n"


def test_pause_of_an_unknown_tube_is_not_found(conn: RawConnection) -> None:
    """pause-tube never creates a tube."""
    assert conn.cmd(b"pause-tube nope 10\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"list-tubes\r\n") == _yaml_list(b"default")


def test_pause_zero_unpauses(conn: RawConnection) -> None:
    """``pause-tube t 0`` is a 1 ns pause: the tube is reservable again at once."""
    assert conn.cmd(put_cmd(b"a")) == b"INSERTED 1\r\n"
    assert conn.cmd(b"pause-tube default 3600\r\n") == b"PAUSED\r\n"
    stats = stats_dict(conn.cmd(b"stats-tube default\r\n"))
    assert (stats["pause"], stats["pause-time-left"], stats["cmd-pause-tube"]) == (
        "3600",
        "3599",
        "1",
    )
    assert conn.cmd(b"reserve-with-timeout 0\r\n") == b"TIMED_OUT\r\n"
    assert conn.cmd(b"pause-tube default 0\r\n") == b"PAUSED\r\n"
    assert conn.cmd(b"reserve-with-timeout 0\r\n") == b"RESERVED 1 1\r\na\r\n"
    stats = stats_dict(conn.cmd(b"stats-tube default\r\n"))
    assert (stats["pause"], stats["pause-time-left"], stats["cmd-pause-tube"]) == (
        "0",
        "0",
        "2",
    )


def test_stats_tube_counts_users_watchers_and_waiters(server: ServerTarget) -> None:
    """current-using, current-watching and current-waiting count connections."""
    with server.connect() as first, server.connect() as second:
        assert first.cmd(b"use t\r\n") == b"USING t\r\n"
        assert second.cmd(b"watch t\r\n") == b"WATCHING 2\r\n"
        second.send(b"reserve-with-timeout 5\r\n")
        for _ in range(200):
            stats = stats_dict(first.cmd(b"stats-tube t\r\n"))
            if stats["current-waiting"] == "1":
                break
        assert (stats["current-using"], stats["current-watching"]) == ("1", "1")
        assert stats["current-waiting"] == "1"
        assert first.cmd(put_cmd(b"x", ttr=10)) == b"INSERTED 1\r\n"
        assert second.reply() == b"RESERVED 1 1\r\nx\r\n"
