"""The code's own boundaries: no module reaches into another's private names, functions stay
short, and ``__all__`` says what a package exports. (Layers are import-linter's, in CI.)"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kqueue", "fakebeanstalk")
# Private by the underscore convention, public by their library's documentation.
ALLOWED_FOREIGN = frozenset({"_exit", "_replace", "_asdict", "_fields", "_make", "_mapping"})
MAX_FUNCTION_LINES = 40


def _modules() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_here(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, assignments, attributes set on
    any object, dataclass and named tuple fields, and ``__slots__`` entries."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries, dataclass field names given as text
    return {name for name in names if _is_private(name)}


def _is_sibling_module(path: Path, name: str) -> bool:
    """A package's private module (``from kqueue.stores import _sql_schema``) is its own."""
    return (path.parent / f"{name}.py").exists()


def _foreign_private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    own = _defined_here(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found += [
                f"{path.name}:{node.lineno} imports {alias.name} from {node.module}"
                for alias in node.names
                if _is_private(alias.name) and not _is_sibling_module(path, alias.name)
            ]
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
                continue
            if node.attr not in own and node.attr not in ALLOWED_FOREIGN:
                found.append(f"{path.name}:{node.lineno} uses .{node.attr} of another module")
    return found


def test_no_module_reaches_into_another_modules_private_names() -> None:
    violations = [use for path in _modules() for use in _foreign_private_uses(path)]
    assert violations == []


def test_the_check_catches_a_foreign_private_attribute(tmp_path: Path) -> None:
    module = tmp_path / "reach.py"
    module.write_text("from x import _hidden\n\ndef f(queue):\n    return queue._handlers\n")
    uses = _foreign_private_uses(module)
    assert len(uses) == 2 and "_hidden" in uses[0] and "_handlers" in uses[1]


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (lines := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]


def test_no_function_outside_tests_is_over_40_lines() -> None:
    assert [row for path in _modules() for row in _long_functions(path)] == []


@pytest.mark.parametrize(
    "package", ["kqueue", "kqueue.beanstalk", "kqueue.middleware", "kqueue.stores"]
)
def test_a_packages_all_names_only_what_it_defines_or_imports(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    assert sorted(module.__all__) == sorted(set(module.__all__))
