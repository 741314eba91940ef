"""Rules the test suite keeps about itself: every skip goes through one helper, which fails
the test under CI (a skip there would hide a broken install step)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SKIP_HELPER = TESTS / "servers.py"
SKIP_SITES = re.compile(r"pytest\.skip\(|importorskip|mark\.skip|skipif|\.xfail|mark\.xfail")


def skip_sites(root: Path) -> list[str]:
    """Every place under ``root`` that skips a test other than through missing_service."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path in (SKIP_HELPER, Path(__file__).resolve()):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SKIP_SITES.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_every_skip_goes_through_the_ci_aware_helper() -> None:
    assert skip_sites(TESTS) == []


def test_the_rule_catches_a_plain_skip(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text('import pytest\n\npytest.skip("no server")\n')
    assert skip_sites(tmp_path) == ['test_x.py:3: pytest.skip("no server")']


def test_the_helper_fails_under_ci_and_skips_elsewhere() -> None:
    text = SKIP_HELPER.read_text()
    helper = text[text.index("def missing_service") :].split("\n\n\n")[0]
    assert "if IN_CI:" in helper and "pytest.fail(" in helper and "pytest.skip(" in helper
