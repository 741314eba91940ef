"""The package's public surface and its independence from kqueue."""

from __future__ import annotations

import subprocess
import sys
import types

import fakebeanstalk


def test_package_exports_exactly_its_public_names() -> None:
    public = {
        name
        for name, value in vars(fakebeanstalk).items()
        if not name.startswith(("_", "@"))  # "@py_builtins": pytest rewrote the module
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # the __future__ feature
    }
    assert set(fakebeanstalk.__all__) == public


def test_exceptions_share_one_root() -> None:
    for name in fakebeanstalk.__all__:
        obj = getattr(fakebeanstalk, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, fakebeanstalk.FakeBeanstalkError)


def test_importing_fakebeanstalk_never_imports_kqueue() -> None:
    code = (
        "import sys, fakebeanstalk.__main__, fakebeanstalk.pytest_plugin;"
        "print('kqueue' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
