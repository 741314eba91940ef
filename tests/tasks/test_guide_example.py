"""docs/guide.md, section 9: its example is docs/examples/tasks.py word for word, and runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "tasks.py"


def test_the_guide_shows_the_example_as_it_is() -> None:
    guide = (ROOT / "docs" / "guide.md").read_text()
    assert f"```python\n{EXAMPLE.read_text()}```" in guide


def test_the_example_runs_and_prints_what_its_comments_say() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    key, job_id, status = lines[0].split()
    assert len(key) == 32 and int(job_id) >= 1 and status == "pending"
    assert lines[1] == "not done yet"
    assert lines[2] == lines[3] == "done sent 'welcome' to ada@example.com"
    assert lines[4] == "buried builtins.ConnectionError payment gateway down (order 7)"
    assert [line.split()[0] for line in lines[5:]] == ["1", "2"]


def test_the_example_type_checks(tmp_path: Path) -> None:
    out, _, code = api.run(["--strict", "--cache-dir", str(tmp_path), str(EXAMPLE)])
    assert code == 0, out
