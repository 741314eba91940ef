"""Stores work without their optional drivers installed, and name the extra when one is needed.

Each case runs in a fresh interpreter where the driver import is blocked
(``sys.modules[name] = None`` makes ``import name`` raise ImportError).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_without(blocked: list[str], code: str) -> str:
    """Run ``code`` with the ``blocked`` modules unimportable; return its stdout."""
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_stores_package_and_memory_store_work_without_redis_or_sqlalchemy() -> None:
    out = run_without(
        ["redis", "sqlalchemy"],
        """
        import kqueue.stores
        from kqueue.stores import MemoryStore, open_store
        assert isinstance(open_store("memory://"), MemoryStore)
        from kqueue.stores import RedisStore, SQLStore
        loaded = [n for n, m in sys.modules.items() if m is not None and n.startswith("redis")]
        print(RedisStore.__name__, SQLStore.__name__, loaded)
        """,
    )
    assert out.strip() == "RedisStore SQLStore []"


def test_importing_the_stores_package_loads_no_driver() -> None:
    out = run_without(
        [],
        """
        import kqueue.stores
        drivers = ("redis", "sqlalchemy", "psycopg", "pymysql")
        print(sorted(n for n in sys.modules if n.split(".")[0] in drivers))
        """,
    )
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("blocked", "url", "extra"),
    [
        (["redis"], "redis://:secret@127.0.0.1:6379/0", "kqueue[redis]"),
        (["redis"], "unix:///run/redis.sock", "kqueue[redis]"),
        (["sqlalchemy"], "sqlite:///x.sqlite3", "kqueue[sql]"),
        (["psycopg", "psycopg2"], "postgresql://u:secret@127.0.0.1/db", "kqueue[postgres]"),
        (["pymysql", "MySQLdb"], "mysql://u:secret@127.0.0.1/db", "kqueue[mysql]"),
        (["pymysql", "MySQLdb"], "mariadb://u@127.0.0.1/db", "kqueue[mysql]"),
    ],
)
def test_a_missing_driver_raises_configuration_error_naming_the_extra(
    blocked: list[str], url: str, extra: str
) -> None:
    out = run_without(
        blocked,
        f"""
        from kqueue.errors import ConfigurationError
        from kqueue.stores import open_store
        try:
            open_store({url!r})
        except ConfigurationError as exc:
            print(exc)
        else:
            print("no error")
        """,
    )
    assert f"pip install {extra}" in out
    assert "secret" not in out
