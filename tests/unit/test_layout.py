"""The shape of the code: the controller reaches the harness only through its contract, the harness
never imports the controller, and the harness root keeps only its entry points."""

from __future__ import annotations

import ast
from pathlib import Path

import harness.contract

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> list[tuple[Path, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path, node.module))
            elif isinstance(node, ast.Import):
                found.extend((path, alias.name) for alias in node.names)
    return found


def test_controller_reaches_the_harness_only_through_its_contract():
    outside = [
        f"{path.relative_to(ROOT)}: {module}"
        for path, module in _imports("lembench")
        if module.startswith("harness")
        and module != "harness"
        and not (module == "harness.contract" or module.startswith("harness.contract."))
    ]
    assert outside == []


def test_harness_never_imports_the_controller():
    assert [m for _, m in _imports("harness") if m.split(".")[0] == "lembench"] == []


def test_the_contract_door_resolves_every_name():
    for name in harness.contract.__all__:
        assert getattr(harness.contract, name) is not None, name


def test_harness_root_holds_only_entry_points():
    modules = sorted(p.name for p in (ROOT / "harness").glob("*.py"))
    assert modules == ["__init__.py", "__main__.py", "cli.py", "protocol.py"]


def test_every_package_on_disk_is_shipped():
    """A folder of code left out of pyproject's package list is missing from every image's wheel."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("lembench", "harness")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk - listed == set()
