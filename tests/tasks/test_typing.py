"""``Task.add`` is checked by mypy against the decorated function's signature (ParamSpec):
a snippet with the right arguments passes type checking, each wrong one fails it."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET_HEAD = """
from datetime import datetime, timedelta
from kqueue import KQueue, PRIO_HIGH, RetryPolicy, TaskHandle

queue = KQueue()

@queue.task("email", priority=PRIO_HIGH, ttr=30, retry=RetryPolicy(max_attempts=3))
def send_email(to: str, subject: str, urgent: bool = False) -> int:
    return len(to)

@queue.task
def bare(n: int) -> None: ...
"""

RIGHT = """
handle: TaskHandle[int] = send_email.add(to="a@example.com", subject="hi")
send_email.add(to="a@example.com", subject="hi", urgent=True, delay=60)
send_email.add(to="a@example.com", subject="hi", at=datetime(2030, 1, 1))
send_email.add(to="a@example.com", subject="hi", delay=timedelta(minutes=5))
value: int = handle.result(timeout=5)
bare.add(n=3)
"""

WRONG = {
    "wrong_type": 'send_email.add(to=42, subject="hi")',
    "unknown_name": 'send_email.add(to="a", subject="hi", cc="b")',
    "missing": 'send_email.add(to="a")',
    "bare_wrong_type": 'bare.add(n="three")',
    "result_type": 'text: str = send_email.add(to="a", subject="b").result()',
}


def test_right_arguments_pass_and_each_wrong_one_fails_type_checking(tmp_path: Path) -> None:
    files = {"right": SNIPPET_HEAD + RIGHT}
    files |= {name: SNIPPET_HEAD + line + "\n" for name, line in WRONG.items()}
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    out, err, _ = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *(str(tmp_path / f"{name}.py") for name in files),
        ]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert not err
    assert not [line for line in errors if "right.py" in line], errors
    failing = {Path(line.split(":")[0]).stem for line in errors}
    assert failing == set(WRONG), errors
